import DequeModule
import FaultABI

/// Identifies a queue (one consumer) to the tracker.
public typealias ChannelID = UInt32

/// The page-request lifecycle: assembles groups, gives each a cookie, hands
/// whole groups to a queue, matches responses, and answers every group
/// exactly once — by the consumer, or automatically on timeout, overflow,
/// detach, device removal, shutdown, or a full table.
///
/// No I/O: groups leave through `GroupSink`, answers leave through the
/// `complete` closure each call takes. A value type, so a caller keeping it
/// in a local `var` pays no runtime exclusivity checks.
///
/// Invariants (kept by `retire`, the only place a live group ends):
/// - a cookie is live in exactly one slot until retired, never reused
///   (the slot's generation moves on);
/// - retiring emits exactly one `DeviceCompletion` and releases the
///   group's share of the device's outstanding-request allocation;
/// - a retired cookie remembers how it ended, so a later response is
///   rejected as duplicate, late or stale rather than completing anything.
public struct PageRequestTracker {
    /// The policy in force.
    public let policy: PageRequestPolicy

    struct Group {
        var deviceID: UInt32
        var pasid: UInt32?
        var prgi: UInt32
        var needsPASID: Bool
        var privateData: PrivateData?
        var channel: ChannelID
        var requests: [PageRequest]
        var delivered: Bool
    }

    enum RetireKind: UInt8 {
        case none, consumer, timeout, other
    }

    /// One entry of the cookie table. Cookie = generation << 32 | slot index.
    struct Slot {
        var generation: UInt32 = 1
        var live = false
        var group: Group?
        var retiredCookie: UInt64 = 0
        var retiredBy: RetireKind = .none
    }

    struct Device {
        var channel: ChannelID?
        var allocation: Int
        var outstandingRequests = 0
        var partialRequests = 0
    }

    struct Channel {
        let sink: any GroupSink
        var backlog = Deque<UInt64>()
    }

    /// Assembly key: (device, PASID when valid, PRGI).
    struct AssemblyKey: Hashable {
        var device: UInt32
        var pasid: UInt32?
        var prgi: UInt32
    }

    /// Outstanding index: PRG indices are per function, so (device, PRGI).
    struct PRGKey: Hashable {
        var device: UInt32
        var prgi: UInt32
    }

    var slots: [Slot]
    /// FIFO, so a retired slot is reused as late as possible: its cookie is
    /// remembered (duplicate / late) for the next `maxOutstandingGroups - 1`
    /// groups at least, and only then becomes merely stale.
    var freeSlots: Deque<UInt32>
    var timeouts = Deque<(deadline: UInt64, cookie: UInt64)>()
    var outstanding: [PRGKey: [UInt64]] = [:]
    var lastRetired: [PRGKey: RetireKind] = [:]
    var partials: [AssemblyKey: [PageRequest]] = [:]
    var devices: [UInt32: Device] = [:]
    var channels: [ChannelID: Channel] = [:]
    var nextChannel: ChannelID = 1
    var counters = PageRequestCounters()
    var autoTally = [UInt64](repeating: 0, count: AutoResponseCause.allCases.count)
    var rejectTally = [UInt64](repeating: 0, count: ResponseRejectionReason.allCases.count)

    /// A tracker with an empty cookie table of `policy.maxOutstandingGroups` slots.
    public init(policy: PageRequestPolicy = PageRequestPolicy()) {
        self.policy = policy
        slots = [Slot](repeating: Slot(), count: policy.maxOutstandingGroups)
        freeSlots = Deque(0..<UInt32(policy.maxOutstandingGroups))
    }

    /// What the tracker has counted so far.
    public var snapshot: PageRequestCounters {
        var c = counters
        for (i, cause) in AutoResponseCause.allCases.enumerated() where autoTally[i] > 0 {
            c.autoResponses[cause.rawValue] = autoTally[i]
        }
        for (i, reason) in ResponseRejectionReason.allCases.enumerated() where rejectTally[i] > 0 {
            c.rejections[reason.rawValue] = rejectTally[i]
        }
        return c
    }

    /// Groups closed and not yet answered.
    public var outstandingGroups: Int { policy.maxOutstandingGroups - freeSlots.count }

    // MARK: Channels and devices

    /// Registers a queue; groups of devices attached to it go to `sink`.
    public mutating func addChannel(_ sink: any GroupSink) -> ChannelID {
        let id = nextChannel
        nextChannel += 1
        channels[id] = Channel(sink: sink)
        return id
    }

    /// Makes `deviceID` known, with its PRI outstanding-request allocation,
    /// optionally attached to a channel.
    public mutating func addDevice(_ deviceID: UInt32, allocation: Int, channel: ChannelID? = nil) {
        devices[deviceID] = Device(channel: channel, allocation: allocation)
    }

    /// Attaches a known device to a channel (or detaches it with `nil`).
    public mutating func attach(_ deviceID: UInt32, to channel: ChannelID?) {
        devices[deviceID]?.channel = channel
    }

    // MARK: Requests from devices

    /// Takes one page request from a device at time `now` (ns).
    ///
    /// Stop markers are counted and dropped. Non-last requests are parked.
    /// A LAST_PAGE request closes its group, which gets a cookie and goes to
    /// the device's channel, or waits there if the channel has no ABI yet.
    public mutating func receive(
        _ request: PageRequest, now: UInt64, complete: (DeviceCompletion) -> Void
    ) {
        counters.requests &+= 1
        guard var device = devices[request.deviceID] else {
            counters.unknownDevice &+= 1
            if request.isLastPage { answerUnowned(request, cause: .noConsumer, complete: complete) }
            return
        }
        if request.isLastPage && request.pasid != nil && !request.permissions.contains(.read)
            && !request.permissions.contains(.write)
        {
            counters.stopMarkers &+= 1
            return
        }
        if device.outstandingRequests >= device.allocation { counters.allocationExceeded &+= 1 }
        device.outstandingRequests += 1
        let key = AssemblyKey(device: request.deviceID, pasid: request.pasid, prgi: request.prgi)
        guard request.isLastPage else {
            partials[key, default: []].append(request)
            device.partialRequests += 1
            devices[request.deviceID] = device
            if device.partialRequests > policy.maxPartialRequestsPerDevice {
                discardPartials(of: request.deviceID)
            }
            return
        }
        var requests: [PageRequest]
        if device.partialRequests > 0, let parked = partials.removeValue(forKey: key) {
            requests = parked
            device.partialRequests -= parked.count
            requests.append(request)
        } else {
            requests = [request]
        }
        devices[request.deviceID] = device
        counters.groupsClosed &+= 1
        let prgKey = PRGKey(device: request.deviceID, prgi: request.prgi)
        if let live = outstanding[prgKey], !live.isEmpty { counters.prgiReused &+= 1 }

        let group = Group(
            deviceID: request.deviceID, pasid: request.pasid, prgi: request.prgi, needsPASID: request.needsPASID,
            privateData: request.privateData, channel: device.channel ?? 0, requests: requests, delivered: false)
        guard let channelID = device.channel, channels[channelID] != nil else {
            releaseAllocation(request.deviceID, requests.count)
            emit(group, cookie: 0, code: .invalid, source: .automatic(.noConsumer), complete: complete)
            return
        }
        guard let slotIndex = freeSlots.popFirst() else {
            releaseAllocation(request.deviceID, requests.count)
            emit(group, cookie: 0, code: .invalid, source: .automatic(.tableFull), complete: complete)
            return
        }
        let cookie = UInt64(slots[Int(slotIndex)].generation) << 32 | UInt64(slotIndex)
        slots[Int(slotIndex)].live = true
        slots[Int(slotIndex)].group = group
        outstanding[prgKey, default: []].append(cookie)
        timeouts.append((now &+ policy.timeoutNS, cookie))
        if channels[channelID]!.backlog.isEmpty {
            deliver(cookie, channel: channelID, complete: complete)
        } else {
            channels[channelID]!.backlog.append(cookie)
        }
    }

    /// Hands a live group to its channel's sink; queues it if the channel is
    /// not ready; answers it INVALID if it does not fit whole.
    mutating func deliver(_ cookie: UInt64, channel channelID: ChannelID, complete: (DeviceCompletion) -> Void) {
        let slotIndex = Int(UInt32(truncatingIfNeeded: cookie))
        guard let group = slots[slotIndex].group else { return }
        let sink = channels[channelID]!.sink
        guard sink.abi != nil else {
            channels[channelID]!.backlog.append(cookie)
            return
        }
        var events: [FaultEvent] = []
        events.reserveCapacity(group.requests.count)
        for var request in group.requests {
            request.cookie = cookie
            events.append(.pageRequest(request))
        }
        switch sink.deliverGroup(events) {
        case .delivered:
            slots[slotIndex].group!.delivered = true
            counters.groupsDelivered &+= 1
        case .noRoom:
            retire(cookie, code: .invalid, source: .automatic(.overflow), complete: complete)
        case .notReady:
            channels[channelID]!.backlog.append(cookie)
        }
    }

    mutating func releaseAllocation(_ deviceID: UInt32, _ count: Int) {
        devices[deviceID]?.outstandingRequests -= count
    }

    /// Drops every partial group of a device without response, as the kernel
    /// does after a page request queue overflow (the LAST_PAGE requests that
    /// would have closed them may be lost).
    mutating func discardPartials(of deviceID: UInt32) {
        let keys = partials.keys.filter { $0.device == deviceID }
        var dropped = 0
        for key in keys { dropped += partials.removeValue(forKey: key)?.count ?? 0 }
        counters.partialsDiscarded &+= UInt64(dropped)
        devices[deviceID]?.partialRequests = 0
        releaseAllocation(deviceID, dropped)
    }

    /// The single exit of a live group: emits its completion, remembers how
    /// it ended, frees its slot and its share of the device allocation.
    mutating func retire(
        _ cookie: UInt64, code: ResponseCode, source: CompletionSource, complete: (DeviceCompletion) -> Void
    ) {
        let slotIndex = Int(UInt32(truncatingIfNeeded: cookie))
        guard slots[slotIndex].live, let group = slots[slotIndex].group else { return }
        slots[slotIndex].live = false
        slots[slotIndex].group = nil
        slots[slotIndex].retiredCookie = cookie
        let kind: RetireKind
        switch source {
        case .consumer: kind = .consumer
        case .automatic(.timeout): kind = .timeout
        case .automatic: kind = .other
        }
        slots[slotIndex].retiredBy = kind
        slots[slotIndex].generation &+= 1
        if slots[slotIndex].generation == 0 { slots[slotIndex].generation = 1 }
        freeSlots.append(UInt32(slotIndex))
        let prgKey = PRGKey(device: group.deviceID, prgi: group.prgi)
        if var live = outstanding[prgKey] {
            live.removeAll { $0 == cookie }
            if live.isEmpty { outstanding.removeValue(forKey: prgKey) } else { outstanding[prgKey] = live }
        }
        lastRetired[prgKey] = kind
        releaseAllocation(group.deviceID, group.requests.count)
        emit(group, cookie: cookie, code: code, source: source, complete: complete)
    }

    mutating func emit(
        _ group: Group, cookie: UInt64, code: ResponseCode, source: CompletionSource,
        complete: (DeviceCompletion) -> Void
    ) {
        switch source {
        case .consumer: counters.completedByConsumer &+= 1
        case .automatic(let cause): autoTally[cause.ordinal] &+= 1
        }
        complete(DeviceCompletion(
            deviceID: group.deviceID, pasid: group.needsPASID ? group.pasid : nil, prgi: group.prgi, code: code,
            privateData: group.privateData, cookie: cookie, source: source))
    }

    /// Answers a group that never got a cookie (no device state to keep).
    mutating func answerUnowned(_ request: PageRequest, cause: AutoResponseCause, complete: (DeviceCompletion) -> Void) {
        let group = Group(
            deviceID: request.deviceID, pasid: request.pasid, prgi: request.prgi, needsPASID: request.needsPASID,
            privateData: request.privateData, channel: 0, requests: [request], delivered: false)
        emit(group, cookie: 0, code: .invalid, source: .automatic(cause), complete: complete)
    }
}

extension AutoResponseCause {
    /// Position in `allCases`, for fixed-size tallies.
    var ordinal: Int {
        switch self {
        case .timeout: return 0
        case .overflow: return 1
        case .detach: return 2
        case .deviceRemoved: return 3
        case .shutdown: return 4
        case .tableFull: return 5
        case .noConsumer: return 6
        }
    }
}

extension ResponseRejectionReason {
    /// Position in `allCases`, for fixed-size tallies.
    var ordinal: Int {
        switch self {
        case .unknown: return 0
        case .duplicate: return 1
        case .late: return 2
        case .stale: return 3
        case .foreignDevice: return 4
        case .mismatch: return 5
        case .malformed: return 6
        }
    }
}
