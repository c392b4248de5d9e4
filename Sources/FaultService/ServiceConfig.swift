import Glibc
import PageRequests

/// How a service runs: the daemon's own settings. Where faults come from is
/// not here: the service is given a `FaultSource`.
public struct ServiceConfig: Sendable {
    /// Listen on this path (created; removed at exit), or ...
    public var socketPath: String?
    /// ... use this inherited, already-listening SOCK_SEQPACKET socket.
    public var inheritedFD: Int32?
    /// Spin this long (ns) looking for consumer responses before sleeping,
    /// as io_uring's SQPOLL idle does: lower latency for a busy consumer, at
    /// the cost of a core while it spins. 0: sleep at once.
    public var pollNS: UInt64 = 0
    /// Page-request policy (timeout, FAILURE, caps).
    public var policy = PageRequestPolicy()
    /// Event loop backend (nil: io_uring if available, else poll).
    public var backend: EventLoop.Backend?
    /// Peer uids allowed to connect (nil: the service's own uid and root).
    public var allowedUIDs: Set<UInt32>?
    /// The socket file's mode (default 0600: only the service's uid, and root, can connect;
    /// widen it, e.g. 0660 with a group, together with `allowedUIDs`).
    public var socketMode: mode_t = 0o600
    /// Devices that only one uid may attach (device id → uid). Devices not
    /// named here may be attached by any allowed uid.
    public var deviceOwners: [UInt32: UInt32] = [:]
    /// Fault ring entries of each client's queue.
    public var entryCount = 4096
    /// Response ring entries of each client's queue.
    public var responseCount = 1024
    /// Connections at once, from everyone; one more is refused (EAGAIN) and closed.
    public var maxSessions = 256
    /// Connections at once from one uid.
    public var maxSessionsPerUID = 64
    /// A connection that has not said HELLO this long after it connected is dropped, ns.
    public var helloTimeoutNS: UInt64 = 5_000_000_000
    /// A connection that said HELLO but holds nothing (no queue, device or
    /// source) and sends nothing this long is dropped, ns; 0: never. A
    /// connection that holds a device is never idle-dropped: a VMM whose
    /// guest raises no faults is quiet on purpose.
    public var idleTimeoutNS: UInt64 = 60_000_000_000
    /// Control messages taken from one connection per loop turn, and
    /// connections accepted per turn: a client that keeps its socket full
    /// waits for the next turn like everyone else, and timeouts still fire.
    public var messagesPerTurn = 32
    /// Connections accepted per loop turn.
    public var acceptsPerTurn = 32
    /// PASIDs one VM may have bound at once (nested IOMMU).
    public var pasidQuota = 64
    /// Devices without an ATC (`serve --dma-no-pri`): the nested IOMMU
    /// caches their translations in the IOTLB only, and refuses device-TLB
    /// invalidations for them.
    public var devicesWithoutATS: Set<UInt32> = []
    /// How long a DMA may use a translation its guest changed before that
    /// counts as the guest's bug: the guest's invalidation crossing the
    /// control socket (nested IOMMU, `NestedDomain.staleGraceNS`).
    public var staleGraceNS: UInt64 = 100_000_000
    /// Tests only: a BIND fails on the device at this index of its set,
    /// after the ones before it took it (the rollback sweep).
    public var failBindAtDevice: Int?

    /// Defaults: no spinning, the default policy, 4096 / 1024 ring entries.
    public init() {}
}
