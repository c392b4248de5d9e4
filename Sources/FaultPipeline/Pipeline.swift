import FaultABI
import FaultQueue
import PageRequests

/// The data path, once: a fault source feeds the page-request tracker,
/// closed groups go into the producer of the device's queue, consumers'
/// responses come back through the response rings, are matched, and each
/// group's one answer returns to the source.
///
/// The daemon (`FaultService`) and the in-process loopback run this same
/// type; they differ only in who drives it (an event loop and real time, or
/// a loop in virtual time) and in where the consumer lives.
///
/// Ownership: one thread drives a pipeline. It owns its tracker; it holds
/// the queues its driver registers, and closes none of them.
///
/// The stored properties read on every step are `@exclusivity(unchecked)`:
/// a run-time check costs a thread-local lookup per access, and with one
/// thread the only overlap possible is re-entry, which `completeAll` rules
/// out for the tracker (below). Replacing an array while a loop iterates
/// it is safe either way: the loop holds its own copy.
public final class Pipeline: FaultIntake {
    /// Where faults come from first: the source the pipeline was made with.
    public let source: any FaultSource
    /// Every source, the first one included, in the order added.
    @exclusivity(unchecked) public private(set) var sources: [any FaultSource]
    /// Which source fronts each device (completions go back to it).
    var sourceOf: [UInt32: Int] = [:]
    /// The page-request lifecycle (groups, cookies, matching, timeouts).
    ///
    /// Not checked for exclusive access at run time (a check costs a
    /// thread-local lookup on every access, several per step): one thread
    /// drives a pipeline, and the one way to reach the tracker from inside
    /// an access to it — a source's `complete` or the observer calling back
    /// mid-access — is closed by `completeAll`, through which every path
    /// that answers groups goes: completions are handed over only after the
    /// access has ended. (Calling back is against `FaultSource.complete`'s
    /// contract anyway; this keeps a source that breaks it from corrupting
    /// the tracker now that no run-time check would stop it.)
    @exclusivity(unchecked) public private(set) var tracker: PageRequestTracker
    /// Called with every completion after the source got it (a service's
    /// latency histogram, a capture's books). Like a source's `complete`,
    /// it must not call back into the pipeline.
    @exclusivity(unchecked) public var observer: ((DeviceCompletion) -> Void)?

    /// Queues by channel id (nil once removed), in registration order.
    @exclusivity(unchecked) var queues: [FaultProducer?] = [nil]
    /// The channel each attached device is on, and the attach order.
    var channelOf: [UInt32: ChannelID] = [:]
    /// Attached devices, in attach order.
    @exclusivity(unchecked) public private(set) var attachedDevices: [UInt32] = []
    /// The answers of one read or tick, reused between them (`completeAll`).
    @exclusivity(unchecked) var completionBuffer: [DeviceCompletion] = []  // touched only by completeAll, not reentrant
    /// Records lost on queues that have been removed.
    var lostOnRemovedQueues: UInt64 = 0
    /// Records a source lost for a device no queue serves.
    public private(set) var lostWithoutQueue: UInt64 = 0

    /// A pipeline for `source`'s devices under `policy`.
    public init(source: any FaultSource, policy: PageRequestPolicy) {
        self.source = source
        sources = [source]
        tracker = PageRequestTracker(policy: policy)
        for device in source.devices {
            tracker.addDevice(device.id, allocation: device.allocation)
            sourceOf[device.id] = 0
        }
    }

    /// Every source's device ids.
    public var knownDevices: Set<UInt32> { Set(sourceOf.keys) }

    /// Adds a source while running (a kernel fault fd or a device process
    /// handed over ADD_SOURCE). Its devices must be new; those the source
    /// only reports events for may already belong to `sharing` sources.
    /// - Returns: false, adding nothing, if a device is already known and
    ///   not shareable.
    public func add(_ newSource: any FaultSource, sharing: [any FaultSource] = []) -> Bool {
        let shareable = Set(sharing.flatMap { $0.devices.map(\.id) })
        for device in newSource.devices where sourceOf[device.id] != nil && !shareable.contains(device.id) { return false }
        sources.append(newSource)
        for device in newSource.devices where sourceOf[device.id] == nil {
            tracker.addDevice(device.id, allocation: device.allocation)
            sourceOf[device.id] = sources.count - 1
        }
        return true
    }

    /// Removes a source that went away: its devices' outstanding groups
    /// are answered INVALID (device removed) and the devices forgotten
    /// (detached from their queues). The first source cannot be removed.
    public func remove(_ gone: any FaultSource) {
        guard let index = sources.firstIndex(where: { $0 === gone }), index > 0 else { return }
        let devices = sourceOf.compactMap { $0.value == index ? $0.key : nil }
        // Answered while the devices still name their source, so the answers reach it.
        completeAll { withTracker { tracker in for device in devices { tracker.removeDevice(device) } } }
        for device in devices {
            sourceOf.removeValue(forKey: device)
            if channelOf.removeValue(forKey: device) != nil { attachedDevices.removeAll { $0 == device } }
        }
        gone.flush()
        sources[index] = RemovedSource()
    }

    // MARK: Queues and devices

    /// Registers a consumer's queue: groups of devices attached to it go into `producer`.
    public func addQueue(_ producer: FaultProducer) -> ChannelID {
        let channel = tracker.addChannel(ProducerSink(producer))
        while queues.count <= Int(channel) { queues.append(nil) }
        queues[Int(channel)] = producer
        return channel
    }

    /// The queue's consumer is gone: reads what it answered before it left,
    /// answers INVALID what it still owed (detach), detaches its devices
    /// and forgets the queue (the caller closes it). Cannot fail.
    public func removeQueue(_ channel: ChannelID) {
        read(channel)
        completeAll { withTracker { $0.removeChannel(channel) } }
        flush()
        attachedDevices.removeAll { channelOf[$0] == channel }
        channelOf = channelOf.filter { $0.value != channel }
        if let queue = queue(channel) { lostOnRemovedQueues &+= queue.countersSnapshot.recordsLost }
        queues[Int(channel)] = nil
    }

    /// Attaches a known device to a queue.
    public func attach(_ device: UInt32, to channel: ChannelID) {
        if channelOf.updateValue(channel, forKey: device) == nil { attachedDevices.append(device) }
        tracker.attach(device, to: channel)
    }

    /// Detaches a device: its outstanding groups are answered INVALID. Cannot fail.
    public func detach(_ device: UInt32) {
        completeAll { withTracker { $0.detachDevice(device) } }
        flush()
        if channelOf.removeValue(forKey: device) != nil { attachedDevices.removeAll { $0 == device } }
    }

    /// The producer of `channel`, if registered.
    public func queue(_ channel: ChannelID) -> FaultProducer? {
        Int(channel) < queues.count ? queues[Int(channel)] : nil
    }

    /// The producer serving `device`, if it is attached.
    public func queue(of device: UInt32) -> FaultProducer? { channelOf[device].flatMap { queue($0) } }

    // MARK: The step

    /// The one service step at `now`: the source raises what is due, then
    /// every queue is serviced (`serviceQueues`).
    public func step(now: UInt64) {
        raise(now: now)
        serviceQueues(now: now)
    }

    /// Every source raises what is due at `now`.
    public func raise(now: UInt64) {
        for source in sources { source.raise(now: now, into: self) }
    }

    /// One of `source`'s descriptors is readable: it reads and raises, and
    /// its answers are flushed.
    public func readable(_ descriptor: Int32, of source: any FaultSource, now: UInt64) {
        source.readable(descriptor, now: now, into: self)
        source.flush()
    }

    /// Every source writes the answers it batched.
    public func flush() {
        for source in sources { source.flush() }
    }

    /// Reads and matches every queue's responses, lets every producer see
    /// its consumer (negotiation, LOST records owed), then fires timeouts
    /// and delivers groups that waited for negotiation.
    public func serviceQueues(now: UInt64) {
        for channel in queues.indices {
            guard let queue = queues[channel] else { continue }
            read(ChannelID(channel), of: queue)
            queue.poll()
        }
        completeAll { tracker.tick(now: now) }
        flush()
    }

    /// Reads and matches the responses `channel`'s consumer wrote; the
    /// answers reach their sources at once (`flush`).
    public func readResponses(_ channel: ChannelID) {
        read(channel)
        flush()
    }

    func read(_ channel: ChannelID) {
        if let queue = queue(channel) { read(channel, of: queue) }
    }

    /// `read` with the channel's queue in hand.
    func read(_ channel: ChannelID, of queue: FaultProducer) {
        guard let abi = queue.abi else { return }
        completeAll { withTracker { readResponses(of: queue, channel: channel, abi: abi, into: &$0) } }
    }

    /// Runs `body` with the tracker: one access to it for a whole ring or
    /// burst, where each call on the stored property would be checked for
    /// exclusivity at run time. `body` must not reach the pipeline's sources:
    /// run it inside `completeAll`, which takes the answers after the
    /// access has ended.
    func withTracker<R>(_ body: (inout PageRequestTracker) -> R) -> R { body(&tracker) }

    /// Reads `queue`'s response ring, matching each response.
    func readResponses(of queue: FaultProducer, channel: ChannelID, abi: ABIVersion,
                       into tracker: inout PageRequestTracker) {
        tracker.makeTablesUnique()  // once for the ring (`respondPrepared`)
        queue.readResponses { result in
            let verdict = tracker.respondPrepared(result, channel: channel, abi: abi)
            switch verdict {
            case .completed: queue.countMatch(.completed)
            case .rejected(.malformed): break  // counted by the queue's slot validation
            case .rejected(.unknown): queue.countMatch(.unknown)
            case .rejected(.duplicate): queue.countMatch(.duplicate)
            case .rejected(.late): queue.countMatch(.late)
            case .rejected(.stale): queue.countMatch(.stale)
            case .rejected(.foreignDevice): queue.countMatch(.foreignDevice)
            case .rejected(.mismatch): queue.countMatch(.mismatch)
            }
        }
    }

    /// The earliest time (ns) the pipeline has work without any descriptor
    /// becoming readable: the source's next raise, the next timeout. Nil
    /// when there is none, so the driver may block until woken.
    public func nextDeadline(after now: UInt64) -> UInt64? {
        var timeout = tracker.nextDeadline()
        var raise: UInt64?
        for source in sources {
            if let due = source.nextDeadline(after: now, intake: self) { raise = Swift.min(raise ?? due, due) }
        }
        // A queue owes a LOST record until its consumer frees a slot, and
        // freeing one rings no doorbell: look again in a millisecond.
        if queues.contains(where: { $0?.owesLostRecord == true }) {
            timeout = Swift.min(timeout ?? .max, now &+ Self.lostRecordRetryNS)
        }
        switch (timeout, raise) {
        case let (t?, r?): return Swift.min(t, r)
        case let (t?, nil): return t
        case let (nil, r?): return r
        case (nil, nil): return nil
        }
    }

    /// How soon a queue that owes a LOST record is looked at again.
    public static let lostRecordRetryNS: UInt64 = 1_000_000

    /// Answers INVALID every outstanding group (the service stops).
    public func shutdown() {
        // Answers already in the rings are taken first: a consumer that answered just before the
        // service stopped gets its answer through, not the shutdown's INVALID (as `removeQueue` does).
        for (channel, queue) in queues.enumerated() { if let queue { read(ChannelID(channel), of: queue) } }
        completeAll { withTracker { $0.shutdown() } }
        flush()
    }

    /// The counts so far, for the source's `finish` and for reports.
    public var summary: PipelineSummary {
        var lost = lostOnRemovedQueues &+ lostWithoutQueue
        for case let queue? in queues { lost &+= queue.countersSnapshot.recordsLost }
        return PipelineSummary(pageRequests: tracker.snapshot, recordsLost: lost)
    }

    /// Runs `body` (which calls the tracker), then takes the answers the
    /// tracker gave meanwhile and hands them to their sources and to the
    /// observer. With one source (the common case) that is one
    /// `complete(batch:)` call: a read of a response ring costs one
    /// dispatch, not one per answer; with several, one `complete` each.
    func completeAll(_ body: () -> Void) {
        body()
        guard !tracker.answers.isEmpty else { return }
        var done: [DeviceCompletion] = []
        swap(&done, &completionBuffer)  // empty, with the capacity of earlier answers
        tracker.takeAnswers(into: &done)
        if sources.count == 1 {
            source.complete(batch: done)
            if let observer { for completion in done { observer(completion) } }
        } else {
            for completion in done { complete(completion) }
        }
        done.removeAll(keepingCapacity: true)
        completionBuffer = done
    }

    /// The source that fronts `deviceID`; the first source for a device no
    /// source fronts (its books count the answer).
    func owner(of deviceID: UInt32) -> any FaultSource {
        guard sources.count > 1, let owner = sourceOf[deviceID] else { return source }  // one source: no lookup
        return sources[owner]
    }

    func complete(_ completion: DeviceCompletion) {
        owner(of: completion.deviceID).complete(completion)
        observer?(completion)
    }

    // MARK: FaultIntake

    /// Whether `device` is attached to a queue.
    public func isAttached(_ device: UInt32) -> Bool { channelOf[device] != nil }

    /// Whether `device`'s queue has an ABI in force.
    public func isReady(_ device: UInt32) -> Bool { queue(of: device)?.abi != nil }

    /// Hands a page request to the tracker; the cookie of the group it
    /// closed, if it closed one and the group is still live.
    @discardableResult
    public func receive(_ request: PageRequest, now: UInt64) -> UInt64? {
        var cookie: UInt64?
        completeAll { withTracker { tracker in cookie = tracker.receive(request, now: now) } }
        return cookie
    }

    /// Hands a burst of page requests to the tracker with one access to it
    /// (`PageRequestTracker.receive(batch:)`: the groups go to each queue in
    /// one publish); the answers it gives at once reach their sources after
    /// the burst.
    public func receive(batch requests: UnsafeMutableBufferPointer<PageRequest>, now: UInt64) {
        completeAll { withTracker { tracker in tracker.receive(batch: requests, now: now) } }
    }

    /// Publishes an unrecoverable fault into its device's queue.
    public func deliver(_ fault: UnrecoverableFault) -> FaultDelivery {
        guard let queue = queue(of: fault.deviceID) else { return .noQueue }
        return queue.publish(.unrecoverable(fault)) == .published ? .published : .dropped
    }

    /// Records lost before they reached the service (a vEVENTQ overflow):
    /// counted by the device's queue as its own loss, so the consumer sees a
    /// LOST record and a sequence gap; with no queue, counted here.
    public func lost(_ count: UInt64, device: UInt32) {
        guard let queue = queue(of: device) else {
            lostWithoutQueue &+= count
            return
        }
        queue.noteLost(count)
    }
}

/// Stands in for a removed source, so source indices stay stable.
final class RemovedSource: FaultSource {
    var devices: [SourceDevice] { [] }
    func raise(now: UInt64, into intake: any FaultIntake) {}
    func complete(_ completion: DeviceCompletion) {}
}
