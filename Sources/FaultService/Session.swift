import FaultABI
import FaultControl
import FaultFD
import FaultQueue
import NestedIOMMU
import PageRequests

/// One client connection and what it owns: its queue, its tracker channel,
/// its devices. A device belongs to at most one session.
final class Session {
    let socket: ControlSocket
    let pid: UInt32
    let uid: UInt32
    /// When it connected (monotonic ns): it must say HELLO within `ServiceConfig.helloTimeoutNS`.
    let connectedAt: UInt64
    /// When it last sent a well-formed message (monotonic ns; malformed ones
    /// do not count): a session that holds nothing is dropped after
    /// `ServiceConfig.idleTimeoutNS` without one.
    var lastHeardAt: UInt64
    /// Malformed messages it sent (logged only now and then: no log flood).
    var badMessages: UInt64 = 0
    var helloDone = false
    var queue: FaultProducer?
    var channel: ChannelID?
    var abi: ABIVersion?
    var devices: Set<UInt32> = []
    /// Fault sources this client handed over (ADD_SOURCE); they end with it.
    var sources: [FaultFDSource] = []
    /// Its VM's nested IOMMU state (guest memory, bindings), once it sends one of those commands.
    var nested: NestedVM?

    /// Holds nothing the service must keep for it: no queue, no device, no
    /// source. Only such a session can be idle: an attached VMM may be quiet
    /// for hours on purpose.
    var holdsNothing: Bool {
        queue == nil && devices.isEmpty && sources.isEmpty && (nested?.memory.regions.isEmpty ?? true)
    }

    init(socket: ControlSocket, pid: UInt32, uid: UInt32, connectedAt: UInt64) {
        self.connectedAt = connectedAt
        self.lastHeardAt = connectedAt
        self.socket = socket
        self.pid = pid
        self.uid = uid
    }
}
