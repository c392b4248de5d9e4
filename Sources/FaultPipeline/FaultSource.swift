import FaultABI
import PageRequests

/// Where faults come from, as the service and the loopback see it: the one
/// seam between sources (simulated devices, a fixture feed, and later a
/// kernel fault fd or a device in another process) and the pipeline.
///
/// A source is driven, never driving: the pipeline calls `raise` at each
/// step and `readable` when one of its descriptors is, and hands it each
/// group's one answer through `complete`. It must not block in any of them.
///
/// Contract: every page-request group a source raises gets exactly one
/// `complete` call for it (consumer answer or automatic INVALID), and
/// nothing else does. Unrecoverable faults get no answer.
public protocol FaultSource: AnyObject {
    /// The devices the source fronts, known from the start: ids and PRI
    /// outstanding-request allocations.
    var devices: [SourceDevice] { get }

    /// Raises what is due at `now` (ns, the pipeline's clock) into `intake`.
    func raise(now: UInt64, into intake: any FaultIntake)

    /// When `raise` next has something to do (ns), if the source raises on
    /// a clock; nil if it raises only when a descriptor is readable or
    /// something else wakes the loop. An event-driven driver arms one timer
    /// for the earliest of this and the tracker's next timeout.
    func nextDeadline(after now: UInt64, intake: any FaultIntake) -> UInt64?

    /// The one answer to a group one of its devices raised.
    ///
    /// The pipeline may call it while it is matching or retiring groups: it
    /// must not call back into the pipeline (receive, detach, remove); the
    /// tracker is in use and the access would overlap.
    func complete(_ completion: DeviceCompletion)

    /// The answers to several groups its devices raised, in order: what
    /// `complete` does for each, in one call. The pipeline uses it when the
    /// source fronts every device (a response ring's worth, or a burst's
    /// immediate answers, at once). The same rule as `complete` holds. The
    /// default calls `complete` for each.
    func complete(batch completions: [DeviceCompletion])

    /// Descriptors the event loop should watch for this source (none for
    /// a source that only raises on `raise`).
    var descriptors: [Int32] { get }

    /// One of `descriptors` is readable (or hung up): read it without
    /// blocking and raise what it carried.
    func readable(_ descriptor: Int32, now: UInt64, into intake: any FaultIntake)

    /// Each device's books as the source keeps them, for stats (empty if it keeps none).
    func books() -> [DeviceBooks]

    /// The source has nothing more to raise and nothing outstanding: the
    /// service may stop (a fixture that has played out).
    var isFinished: Bool { get }

    /// Whether, asked to stop, the source wants its outstanding groups
    /// answered by their consumers first (a capture, so its books are whole).
    var drainsBeforeStop: Bool { get }

    /// Raise nothing more (the service is draining).
    func stopRaising()

    /// The run is over: `summary` holds the pipeline's final counts. Called
    /// once, before the service answers what is still outstanding.
    func finish(_ summary: PipelineSummary)

    /// Writes the answers `complete` batched (one system call for many).
    /// The pipeline calls it after every step, read and removal.
    func flush()
}

extension FaultSource {
    /// One `complete` call per answer.
    public func complete(batch completions: [DeviceCompletion]) {
        for completion in completions { complete(completion) }
    }
    /// No clock of its own.
    public func nextDeadline(after now: UInt64, intake: any FaultIntake) -> UInt64? { nil }
    /// No descriptors.
    public var descriptors: [Int32] { [] }
    /// Nothing to read.
    public func readable(_ descriptor: Int32, now: UInt64, into intake: any FaultIntake) {}
    /// No books.
    public func books() -> [DeviceBooks] { [] }
    /// Never finished by itself.
    public var isFinished: Bool { false }
    /// Stops at once.
    public var drainsBeforeStop: Bool { false }
    /// Nothing to stop.
    public func stopRaising() {}
    /// Nothing to write.
    public func finish(_ summary: PipelineSummary) {}
    /// Nothing batched.
    public func flush() {}
}

/// A device a source fronts.
public struct SourceDevice: Sendable, Hashable {
    /// Service-wide device id (what ATTACH names; ABI 2 records carry it).
    public var id: UInt32
    /// PCIe PRI outstanding page request allocation.
    public var allocation: Int

    /// Device `id` with PRI allocation `allocation`.
    public init(id: UInt32, allocation: Int) {
        self.id = id
        self.allocation = allocation
    }
}

/// What a source raises into: the pipeline, or something interposed in
/// front of it (a capture recording what passes).
public protocol FaultIntake: AnyObject {
    /// Whether `device` is attached to a queue (a consumer could answer).
    func isAttached(_ device: UInt32) -> Bool
    /// Whether `device`'s queue has an ABI in force (records can flow).
    func isReady(_ device: UInt32) -> Bool
    /// The attached devices, in attach order.
    var attachedDevices: [UInt32] { get }
    /// One page request from a device, at `now`. Returns the cookie the
    /// service gave the group the request closed, if it closed one that is
    /// still outstanding (a group answered at once, without a slot or for
    /// overflow, has had its `complete` call already and returns nil).
    @discardableResult
    func receive(_ request: PageRequest, now: UInt64) -> UInt64?
    /// Several page requests from devices, at `now`, in order: a burst,
    /// from one device or several, taken as `receive` takes each except
    /// that the groups reach their queues once the whole burst is admitted
    /// (`PageRequestTracker.receive(batch:)` says what that changes).
    /// Answers the service gives at once reach the source during the batch
    /// or after it (the pipeline: after it).
    ///
    /// `requests` is the caller's, lent for the call: an intake must not
    /// keep it, and the caller must not change it until the call returns
    /// (an answer given at once may reach the source during the call). The
    /// intake may write the requests' `cookie` (the service's field, which a
    /// device leaves 0), and nothing else: the pipeline stamps each group's
    /// cookie there and writes the ring from the burst itself.
    func receive(batch requests: UnsafeMutableBufferPointer<PageRequest>, now: UInt64)
    /// One unrecoverable fault for its device's queue.
    func deliver(_ fault: UnrecoverableFault) -> FaultDelivery
    /// `count` records for `device` were lost before they reached the
    /// service (a vEVENTQ overflow or sequence gap): the device's queue
    /// accounts for them as its own loss.
    func lost(_ count: UInt64, device: UInt32)
}

extension FaultIntake {
    /// One `receive` per request.
    public func receive(batch requests: UnsafeMutableBufferPointer<PageRequest>, now: UInt64) {
        for request in requests { receive(request, now: now) }
    }

    /// `receive(batch:now:)` from an array (a copy of it: the caller's is not written).
    public func receive(batch requests: [PageRequest], now: UInt64) {
        var requests = requests
        requests.withUnsafeMutableBufferPointer { receive(batch: $0, now: now) }
    }
}

/// What became of an unrecoverable fault.
public enum FaultDelivery: Sendable, Hashable {
    /// Written into the device's fault ring.
    case published
    /// The ring was full or not negotiated: dropped and counted by the queue.
    case dropped
    /// No queue serves the device: nobody to deliver it to.
    case noQueue
}
