import DequeModule
import FaultABI

/// Identifies a queue (one consumer) to the tracker.
public typealias ChannelID = UInt32

/// The page-request lifecycle: assembles groups, gives each a cookie, hands
/// whole groups to a queue, matches responses, and answers every group
/// exactly once — by the consumer, or automatically on timeout, overflow,
/// detach, device removal, shutdown, or a full table.
///
/// No I/O: groups leave through `GroupSink`; answers collect in `answers`
/// for the caller to take (`takeAnswers`), or reach the `complete` closure
/// of the convenience variants before they return.
///
/// A value type, so a caller keeping it in a local `var` pays no runtime
/// exclusivity checks. Its cookie table (`GroupTable`) is shared by copies
/// until one of them writes, like an array's buffer, but checked for that
/// once per call rather than on every store.
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

    /// A closed group: its LAST_PAGE request (which carries the PASID,
    /// PRGI, NEEDS_PASID and private data the answer must echo) and how
    /// many requests it has. The earlier requests, if any, are a chain in
    /// `pool`, so that a group is plain data: copying one retains nothing
    /// and goes through no value witness.
    struct Group {
        var last: PageRequest
        var channel: ChannelID
        /// The device's dense index (`deviceIndex`). Valid while the group
        /// is live: a device is removed only after its live groups are retired.
        var device: Int32
        var delivered = false
        /// The requests before `last`: a chain in `pool`; or, for a group
        /// whose requests arrived together in the burst being received,
        /// a chain that holds none (`RequestChain.notHeld`, or empty for a
        /// one-page group) and `batchStart`.
        var earlier: RequestChain
        /// Where the group's requests are in `batch` (-1: not there): its
        /// earlier requests from here, then its LAST_PAGE one. Only between
        /// the group's admission and its delivery in the same
        /// `receive(batch:)`; a group that is not delivered then has its
        /// earlier requests moved into `pool` first (`holdEarlier`).
        var batchStart: Int32

        init(last: PageRequest, channel: ChannelID, device: Int, earlier: RequestChain, batchStart: Int = -1) {
            self.last = last
            self.channel = channel
            self.device = Int32(truncatingIfNeeded: device)
            self.earlier = earlier
            self.batchStart = Int32(truncatingIfNeeded: batchStart)
        }

        /// The positions of the requests before `last` in `batch` (while
        /// `batchStart` is not -1).
        var batchPositions: Range<Int> { Int(batchStart)..<Int(batchStart) + Int(earlier.count) }

        /// Requests in the group, `last` included.
        var pages: Int { Int(earlier.count) + 1 }
        var deviceID: UInt32 { last.deviceID }
        var pasid: UInt32? { last.pasid }
        var prgi: UInt32 { last.prgi }
        var needsPASID: Bool { last.needsPASID }
        var privateData: PrivateData? { last.privateData }
    }

    enum RetireKind: UInt8 {
        case none, consumer, timeout, other
    }

    /// One PRG index of one device.
    struct IndexState {
        /// The cookie of its oldest live group, 0 for none (no cookie is 0:
        /// generations start at 1). Later live groups on the same index,
        /// which only a misbehaving device has, are in `reusedLive`.
        var oldestLive: UInt64 = 0
        /// How its last group ended (ABI 1 classification).
        var lastRetired: RetireKind = .none
    }

    /// One entry of the cookie table (`GroupCookie`: generation and slot
    /// index): 12 bytes. Slots are reused first-in first-out, so the slot a
    /// new group takes is the one unused longest, cold in cache; small
    /// slots, taken in order, share a cache line with their neighbours.
    /// The group itself is in a record (`GroupTable`), reused last-in
    /// first-out, which stays warm.
    struct Slot {
        var generation: UInt32 = 1
        /// The group's index in `records`, while live.
        var record: UInt32 = 0
        var live = false
        /// How the previous generation's group ended (`.none`: the slot was
        /// never retired). Its cookie is `previous(generation)`'s.
        var retiredBy: RetireKind = .none
    }

    /// The generation before `generation` (generations skip 0).
    static func previous(_ generation: UInt32) -> UInt32 { generation == 1 ? .max : generation &- 1 }

    /// A device's state: plain values (its per-PRGI tables are the
    /// tracker's flat `indexStates` and `parked`), and not optional, so a
    /// field is read without copying the rest.
    struct Device {
        /// Whether the slot holds a device (`addDevice` until `removeDevice`).
        var known = true
        var channel: ChannelID?
        var allocation: Int
        var outstandingRequests = 0
        var partialRequests = 0

        init(channel: ChannelID?, allocation: Int) {
            self.channel = channel
            self.allocation = allocation
        }

        /// An id with no device.
        static var unknown: Device {
            var device = Device(channel: nil, allocation: 0)
            device.known = false
            return device
        }
    }

    /// A timeout: when, and which cookie (a struct, not a tuple: tuple
    /// element types cost runtime metadata lookups in generic containers).
    struct Deadline {
        var at: UInt64
        var cookie: UInt64
    }

    /// Assembly key: (device, PASID when valid, PRGI).
    struct AssemblyKey: Hashable {
        var device: UInt32
        var pasid: UInt32?
        var prgi: UInt32
    }


    /// The cookie slots and live groups' records (`GroupTable`).
    var table: GroupTable
    /// Requests parked (`parked`) and the earlier requests of live groups
    /// (`Group.earlier`), in chains.
    var pool = RequestPool()
    var timeouts = FIFORing(filler: Deadline(at: 0, cookie: 0))
    var partials: [AssemblyKey: [PageRequest]] = [:]
    /// Dense, in the order devices were first added (`deviceIndex`); a
    /// removed device keeps its slot as an unknown placeholder.
    var devices = PlainTable<Device>()
    /// The dense index of each device id ever added: ids below `directIDs`
    /// through a table (the common case: service-assigned, small), others
    /// through a map. Never indexed by the id itself: a fixture or source
    /// naming device 2^32 − 1 costs one entry, not four billion.
    var directIndex: [Int32] = []
    var mappedIndex: [UInt32: Int] = [:]
    static let directIDs: UInt32 = 4096
    /// Each channel's sink, by channel id (nil: none, or removed). Apart
    /// from `backlogs`, so that the per-group checks (is the channel there,
    /// has it a backlog) read a word each and copy no channel.
    var sinks: [(any GroupSink)?] = [nil]
    /// Each channel's groups waiting for its ABI, in order, by channel id.
    var backlogs: [Deque<UInt64>] = [Deque()]
    /// Each device's PRG indices (a PRGI is per function), at
    /// `reuseKey(device index, PRGI)`: one flat array for all devices, so a
    /// group's admission and its retirement each store into one buffer,
    /// not a device's and then its array's.
    var indexStates = PlainTable<IndexState>()
    /// Parked (non-last) requests of each device's PRG index, all of one
    /// PASID, at `reuseKey(device index, PRGI)`, as chains in `pool`; a
    /// second PASID on the same index goes to `partials`. Flat, as
    /// `indexStates` is.
    var parked = PlainTable<RequestChain>()
    /// Groups that got a slot during this `receive` and wait to go to their
    /// channel, in arrival order (`deliverPending`).
    var pending = PlainTable<UInt64>()
    /// The record counts and outcomes of one run of groups handed to a sink, reused.
    var runSizes = PlainTable<Int>()
    var runOutcomes = PlainTable<GroupDelivery>()
    /// Live groups after the oldest on one device's PRG index (a device that
    /// reuses a PRGI while its group is outstanding), oldest first, keyed by
    /// `reuseKey(device index, PRGI)`. Empty unless a device misbehaves.
    var reusedLive: [Int: [UInt64]] = [:]
    /// Records of a run gathered for delivery (one not back to back in the
    /// burst: `deliverRun`), reused between runs.
    var scratch = PlainTable<PageRequest>()
    /// The burst `receive(batch:)` is admitting, while it runs (empty
    /// otherwise): groups whose requests all arrived in it are delivered
    /// from it (`Group.batchStart`).
    var batch = UnsafeMutableBufferPointer<PageRequest>(start: nil, count: 0)
    var counters = PageRequestCounters()
    /// Shared with copies of this tracker until one of them writes.
    var copyToken = CopyToken()
    /// Answers given and not yet taken, in the order given (`takeAnswers`).
    ///
    /// Every method that can answer a group leaves its answers here rather
    /// than calling out: a caller takes a whole read's or burst's answers
    /// at once, after its access to the tracker has ended, so a device's
    /// completion can never run inside the tracker. The `complete:`
    /// variants (`PageRequestTracker+Answers.swift`) hand them over before
    /// they return.
    public internal(set) var answers: [DeviceCompletion] = []
    var autoTally = [UInt64](repeating: 0, count: AutoResponseCause.allCases.count)
    var rejectTally = [UInt64](repeating: 0, count: ResponseRejectionReason.allCases.count)

    /// A tracker with an empty cookie table of `policy.maxOutstandingGroups` slots.
    public init(policy: PageRequestPolicy = PageRequestPolicy()) {
        self.policy = policy
        table = GroupTable(capacity: policy.maxOutstandingGroups)
    }

    /// Unshares the tables written through pointers (`GroupTable`,
    /// `PlainTable`) if a copy of this tracker shares them: every operation
    /// that writes a table calls it first, once, instead of a check on
    /// every store (every public mutating method but `addChannel` and
    /// `takeAnswers`, which write none; `respondPrepared` relies on its
    /// caller's call).
    ///
    /// One check, of `copyToken`, stands for all the tables: they are
    /// shared only with a copy of the tracker (nothing else holds them past
    /// an operation), and a copy shares the token too.
    package mutating func makeTablesUnique() {
        guard !isKnownUniquelyReferenced(&copyToken) else { return }
        copyToken = CopyToken()
        table.makeUnique()
        indexStates.makeUnique()
        devices.makeUnique()
        timeouts.makeUnique()
        pending.makeUnique()
        scratch.makeUnique()
        runSizes.makeUnique()
        runOutcomes.makeUnique()
        pool.makeUnique()
        parked.makeUnique()
    }

    /// Held by this tracker and by its copies only (`makeTablesUnique`).
    final class CopyToken {}

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
    public var outstandingGroups: Int { table.capacity - table.freeSlotCount }

    // MARK: Channels and devices

    /// Registers a queue; groups of devices attached to it go to `sink`.
    ///
    /// A removed channel's id is reused (lowest first), so a service whose
    /// clients come and go keeps a table as large as its clients at once.
    /// Reuse is safe: removing a channel retired every group it held.
    public mutating func addChannel(_ sink: any GroupSink) -> ChannelID {
        if let free = sinks.indices.dropFirst().first(where: { sinks[$0] == nil }) {
            sinks[free] = sink
            return ChannelID(free)
        }
        sinks.append(sink)
        backlogs.append(Deque())
        return ChannelID(sinks.count - 1)
    }

    /// Makes `deviceID` known, with its PRI outstanding-request allocation,
    /// optionally attached to a channel. For a device already known, sets
    /// its allocation and channel and keeps its outstanding groups.
    public mutating func addDevice(_ deviceID: UInt32, allocation: Int, channel: ChannelID? = nil) {
        makeTablesUnique()
        let device = Device(channel: channel, allocation: allocation)
        if let d = deviceIndex(deviceID) {
            if devices[d].known {
                // Still known: its live and parked groups stay where DETACH,
                // removal and matching find them; only the settings change.
                devices[d].allocation = allocation
                devices[d].channel = channel
            } else {
                devices[d] = device  // removed earlier (nothing live): a fresh start
                clearIndexTables(of: d)
            }
            return
        }
        devices.append(device)
        indexStates.append(repeating: IndexState(), count: PRILimits.prgiCount)
        parked.append(repeating: RequestChain(), count: PRILimits.prgiCount)
        if deviceID < Self.directIDs {
            while directIndex.count <= Int(deviceID) { directIndex.append(-1) }
            directIndex[Int(deviceID)] = Int32(devices.count - 1)
        } else {
            mappedIndex[deviceID] = devices.count - 1
        }
    }

    /// Forgets how device index `d`'s groups ended (its slot is reused or
    /// emptied); it has no live group.
    mutating func clearIndexTables(of d: Int) {
        for key in Self.indexKeys(of: d) {
            indexStates[key] = IndexState()
            _ = dropParked(at: key)
        }
    }

    /// The keys of device index `d`'s PRG indices in the flat per-PRGI tables.
    static func indexKeys(of d: Int) -> Range<Int> { reuseKey(d, 0)..<reuseKey(d, 0) + PRILimits.prgiCount }

    /// Frees the requests parked at `key`. Returns how many there were.
    mutating func dropParked(at key: Int) -> Int {
        let chain = parked[key]
        guard !chain.isEmpty else { return 0 }
        pool.release(chain)
        parked[key] = RequestChain()
        return Int(chain.count)
    }

    /// The dense index of `deviceID` in `devices`, if it was ever added.
    @inline(__always) func deviceIndex(_ deviceID: UInt32) -> Int? {
        if deviceID < Self.directIDs {
            let i = Int(deviceID)
            return i < directIndex.count && directIndex[i] >= 0 ? Int(directIndex[i]) : nil
        }
        return mappedIndex[deviceID]
    }

    /// Attaches a known device to a channel (or detaches it with `nil`).
    public mutating func attach(_ deviceID: UInt32, to channel: ChannelID?) {
        makeTablesUnique()
        guard let d = deviceIndex(deviceID), devices[d].known else { return }
        devices[d].channel = channel
    }

    func hasChannel(_ id: ChannelID) -> Bool { Int(id) < sinks.count && sinks[Int(id)] != nil }

    // MARK: Requests from devices

    /// Takes one page request from a device at time `now` (ns).
    ///
    /// Stop markers are counted and dropped. Non-last requests are parked.
    /// A LAST_PAGE request closes its group, which gets a cookie and goes to
    /// the device's channel, or waits there if the channel has no ABI yet.
    /// - Returns: the cookie of the group this request closed, if it is
    ///   still outstanding; nil otherwise (not a LAST_PAGE request, or the
    ///   group was answered at once: its answer is in `answers`).
    @discardableResult
    public mutating func receive(_ request: PageRequest, now: UInt64) -> UInt64? {
        makeTablesUnique()
        guard let cookie = admit(request, now: now) else { return nil }
        deliverPending()
        // Delivery may have retired it already (overflow): then it is not live.
        return isLive(cookie) ? cookie : nil
    }

    /// Takes a burst of page requests, in order, as `receive` takes each,
    /// and then hands the groups they closed to their channels in runs: one
    /// sink call, and one index store on the ring, per channel and run
    /// rather than per group. Answers given at once (no consumer, full
    /// table, overflow) are in `answers` when it returns.
    ///
    /// One difference from `receive` one request at a time: a group that
    /// then finds no room in the ring holds its slot until the whole burst
    /// is admitted. With the cookie table otherwise full, a later group of
    /// the same burst is answered `tableFull` where, one at a time, it
    /// could have taken that slot. Every group is still answered once.
    ///
    /// A group whose requests arrive together in the burst, one after the
    /// other (as a device sends them), is not parked request by request: it
    /// is admitted whole, and delivered from the burst (`admitTogether`).
    /// What is counted, answered and delivered is the same.
    ///
    /// `requests` is the caller's, lent for the call: the tracker keeps no
    /// pointer into it once it returns. It may write the `cookie` of the
    /// requests of a group admitted from there (the service's field: what
    /// the ring carries), so that the ring is written from the burst itself,
    /// and changes nothing else.
    public mutating func receive(batch requests: UnsafeMutableBufferPointer<PageRequest>, now: UInt64) {
        makeTablesUnique()
        batch = requests
        var next = 0
        while next < requests.count {
            if !requests[next].isLastPage, let (last, d) = lastOfGroup(startingAt: next) {
                admitTogether(next...last, device: d, now: now)
                next = last + 1
            } else {
                _ = admit(requests[next], now: now, at: next)
                next += 1
            }
        }
        // Every group admitted with its requests in `batch` is delivered
        // here, or has them moved into the pool (`deliverRun`).
        deliverPending()
        batch = UnsafeMutableBufferPointer(start: nil, count: 0)
    }

    /// `receive(batch:now:)` from an array (a copy of it: the caller's is not written).
    public mutating func receive(batch requests: [PageRequest], now: UInt64) {
        var requests = requests
        requests.withUnsafeMutableBufferPointer { receive(batch: $0, now: now) }
    }

    /// `receive(batch:)` as it was before groups were admitted together:
    /// every request through `admit` (earlier requests parked one by one),
    /// then delivery. The reference `receive(batch:)` is tested against,
    /// with every limit in play (a one-at-a-time `receive` delivers each
    /// group at once, so it differs once the ring or the table fills).
    package mutating func receiveParkingEach(batch requests: [PageRequest], now: UInt64) {
        makeTablesUnique()
        for request in requests { _ = admit(request, now: now) }
        deliverPending()
    }

    /// Whether anything still refers to a burst: `batch` set, or a live
    /// group with its earlier requests there (for tests: never, between calls).
    package var refersToABurst: Bool {
        guard batch.count == 0 else { return true }
        return (0..<table.capacity).contains { index in
            let slot = table.slot(index).pointee
            return slot.live && table.record(Int(slot.record)).pointee.batchStart >= 0
        }
    }

    /// The position in `batch` of the LAST_PAGE request that closes the
    /// group whose first request is at `first` (not a LAST_PAGE one), and
    /// its device's index, if
    /// every request between them is of that group and admitting them
    /// together is what admitting them one at a time would do: a known
    /// device, nothing parked on the PRG index (one at a time, the requests
    /// would all be parked there, and taken from there: `partials` would
    /// play no part), not a stop marker at the end, and not so many that
    /// the device's partial requests would pass their limit on the way.
    @inline(__always) func lastOfGroup(startingAt first: Int) -> (last: Int, device: Int)? {
        let head = batch[first]
        guard let d = deviceIndex(head.deviceID), devices[d].known,
              parked[Self.reuseKey(d, PRILimits.slot(head.prgi))].isEmpty
        else { return nil }
        var position = first + 1
        while position < batch.count {
            let request = batch[position]
            guard request.deviceID == head.deviceID, request.prgi == head.prgi, request.pasid == head.pasid else {
                return nil
            }
            if request.isLastPage {
                guard !request.isStopMarker,
                      devices[d].partialRequests + (position - first) <= policy.maxPartialRequestsPerDevice
                else { return nil }
                return (position, d)
            }
            position += 1
        }
        return nil
    }

    /// Admits the group at `positions` of `batch`, of device index `d`
    /// (`lastOfGroup`): its requests counted as `account` counts them one
    /// at a time, then the group closed with its earlier requests left
    /// where they are.
    @inline(__always) mutating func admitTogether(_ positions: ClosedRange<Int>, device d: Int, now: UInt64) {
        // One at a time, request p (from 0) would pass the allocation if
        // outstanding + p >= allocation: every p from `room` on.
        let count = positions.count
        let room = devices[d].allocation - devices[d].outstandingRequests
        counters.requests &+= UInt64(count)
        counters.allocationExceeded &+= UInt64(count - Swift.min(Swift.max(room, 0), count))
        devices[d].outstandingRequests += count
        let last = batch[positions.upperBound]
        let key = Self.reuseKey(d, PRILimits.slot(last.prgi))
        _ = close(last, device: d, key: key, now: now,
                  earlier: .notHeld(count: count - 1), batchStart: positions.lowerBound)
    }

    /// The record of a live group's cookie.
    @inline(__always) func record(of cookie: UInt64) -> Int {
        Int(table.slot(Int(GroupCookie(rawValue: cookie).slot)).pointee.record)
    }

    /// The group of a live cookie's record, to read or (after
    /// `table.makeUnique()`) to write in place.
    @inline(__always) func group(of cookie: UInt64) -> UnsafeMutablePointer<Group> { table.record(record(of: cookie)) }

    /// Whether `cookie` names a live group.
    func isLive(_ cookie: UInt64) -> Bool {
        let slot = table.slot(Int(GroupCookie(rawValue: cookie).slot))
        return slot.pointee.live && slot.pointee.generation == GroupCookie(rawValue: cookie).generation
    }

    /// `receive` up to delivery: counts the request, parks it or closes its
    /// group, and gives a closed group a slot, a deadline and a place in
    /// `pending` (or its channel's backlog). `position`: where `request`
    /// is in `batch`, if it is there (-1: it is not).
    /// - Returns: the cookie of the group it closed, if it got a slot.
    @inline(__always) mutating func admit(_ request: PageRequest, now: UInt64, at position: Int = -1) -> UInt64? {
        guard let d = account(request) else { return nil }
        let prgi = PRILimits.slot(request.prgi)
        let key = Self.reuseKey(d, prgi)
        guard request.isLastPage else {
            if parked[key].isEmpty || pool.first(of: parked[key]).pasid == request.pasid {
                var chain = parked[key]
                pool.append(request, to: &chain)
                parked[key] = chain
            } else {
                partials[AssemblyKey(device: request.deviceID, pasid: request.pasid, prgi: request.prgi), default: []]
                    .append(request)
            }
            devices[d].partialRequests += 1
            if devices[d].partialRequests > policy.maxPartialRequestsPerDevice {
                discardPartials(of: request.deviceID)
            }
            return nil
        }
        // The group's earlier requests: none for a one-page group, which
        // then lies whole in the burst (if it came in one), as a group
        // admitted together does, and is delivered from there.
        let earlier = devices[d].partialRequests > 0 ? takeParked(request, device: d, key: key) : RequestChain()
        return close(request, device: d, key: key, now: now, earlier: earlier,
                     batchStart: earlier.isEmpty ? position : -1)
    }

    /// Counts a request from a device and its share of the device's
    /// allocation. Returns the device's index; nil if the request goes no
    /// further (an unknown device's, answered if it is a LAST_PAGE one; a
    /// stop marker).
    @inline(__always) mutating func account(_ request: PageRequest) -> Int? {
        counters.requests &+= 1
        guard let d = deviceIndex(request.deviceID), devices[d].known else {
            counters.unknownDevice &+= 1
            if request.isLastPage { answerUnowned(request, cause: .noConsumer) }
            return nil
        }
        if request.isStopMarker {
            counters.stopMarkers &+= 1
            return nil
        }
        if devices[d].outstandingRequests >= devices[d].allocation { counters.allocationExceeded &+= 1 }
        devices[d].outstandingRequests += 1
        return d
    }

    /// Closes the group `request` (a LAST_PAGE one of device index `d`, at
    /// `key`) ends, whose earlier requests are `earlier` (and, if
    /// `batchStart` is not -1, in `batch` from there): gives it a slot, a
    /// deadline and a place in `pending` (or its channel's backlog), or
    /// answers it at once.
    /// - Returns: the cookie of the group, if it got a slot.
    @inline(__always) mutating func close(
        _ request: PageRequest, device d: Int, key: Int, now: UInt64, earlier: RequestChain, batchStart: Int = -1
    ) -> UInt64? {
        let pages = Int(earlier.count) + 1
        counters.groupsClosed &+= 1
        // Counted whether or not the group then gets a slot: the device reused an index in use.
        if indexStates[key].oldestLive != 0 { counters.prgiReused &+= 1 }

        let channel = devices[d].channel
        guard let channelID = channel, hasChannel(channelID) else {
            releaseAllocation(request.deviceID, pages)
            pool.release(earlier)
            emit(request, cookie: 0, code: .invalid, source: .automatic(.noConsumer))
            return nil
        }
        guard let slotIndex = table.takeSlot() else {
            releaseAllocation(request.deviceID, pages)
            pool.release(earlier)
            emit(request, cookie: 0, code: .invalid, source: .automatic(.tableFull))
            return nil
        }
        let slot = table.slot(Int(slotIndex))
        let cookie = GroupCookie(generation: slot.pointee.generation, slot: slotIndex).rawValue
        var last = request
        last.cookie = cookie  // as it goes to the ring (a gathered run copies it; one from the burst has it stamped)
        let record = table.takeRecord(Group(last: last, channel: channelID, device: d, earlier: earlier,
                                            batchStart: batchStart))
        slot.pointee.record = record
        slot.pointee.live = true
        if indexStates[key].oldestLive == 0 {
            indexStates[key].oldestLive = cookie
        } else {
            reusedLive[key, default: []].append(cookie)
        }
        timeouts.append(Deadline(at: now &+ policy.timeoutNS, cookie: cookie))
        // Behind a backlog, in order; else with this call's other groups.
        if backlogs[Int(channelID)].isEmpty {
            pending.append(cookie)
        } else {
            holdEarlier(cookie)
            backlogs[Int(channelID)].append(cookie)
        }
        return cookie
    }

    /// Moves a live group's earlier requests from `batch` into `pool`, for
    /// a group that waits past the `receive(batch:)` that admitted it.
    mutating func holdEarlier(_ cookie: UInt64) {
        let group = group(of: cookie)
        guard group.pointee.batchStart >= 0 else { return }
        var chain = RequestChain()
        for position in group.pointee.batchPositions { pool.append(batch[position], to: &chain) }
        group.pointee.earlier = chain
        group.pointee.batchStart = -1
    }

    /// The parked requests that `request` (a LAST_PAGE one, of device index
    /// `d`, at `key`) closes: those of its PRG index and PASID, taken out of
    /// `parked` or `partials` (moved into the pool); empty if there are none.
    mutating func takeParked(_ request: PageRequest, device d: Int, key: Int) -> RequestChain {
        var chain = RequestChain()
        if !parked[key].isEmpty && pool.first(of: parked[key]).pasid == request.pasid {
            chain = parked[key]
            parked[key] = RequestChain()
        } else if !partials.isEmpty,
                  let other = partials.removeValue(
                    forKey: AssemblyKey(device: request.deviceID, pasid: request.pasid, prgi: request.prgi))
        {
            for parkedRequest in other { pool.append(parkedRequest, to: &chain) }
        }
        devices[d].partialRequests -= Int(chain.count)
        return chain
    }

    /// Moves every live chain (parked, and held by live groups) into a new
    /// pool just large enough, so a burst of multi-page groups does not keep
    /// its memory once answered. Called when the pool is sparse: its cost,
    /// a pass over the PRG index table and the cookie slots, is paid at most
    /// once per seven-eighths of a large table released.
    mutating func compactPool() {
        var fresh = RequestPool()
        for key in parked.indices where !parked[key].isEmpty {
            parked[key] = pool.move(parked[key], into: &fresh)
        }
        for index in 0..<table.capacity where table.slot(index).pointee.live {
            let group = table.record(Int(table.slot(index).pointee.record))
            guard group.pointee.earlier.isHeld else { continue }
            group.pointee.earlier = pool.move(group.pointee.earlier, into: &fresh)
        }
        pool = fresh
    }

    /// Requests held before their group's LAST_PAGE one (parked, or in a
    /// closed group not yet answered), and the pool's size in requests: for
    /// diagnostics and tests of its memory.
    public var pooledRequests: (held: Int, capacity: Int) { (pool.live, pool.nodes.count) }

    /// Hands `pending` to the channels, one run of consecutive groups of
    /// the same channel at a time (`deliverRun`).
    mutating func deliverPending() {
        guard !pending.isEmpty else { return }
        // Groups are only ever added to `pending` by `admit`, never while this
        // runs (`deliverRun` answers, it does not admit): the table is not
        // reallocated, so each run is lent as a pointer into it, and the
        // table is emptied at the end.
        var start = 0
        while start < pending.count {
            let channel = group(of: pending[start]).pointee.channel
            var end = start + 1
            while end < pending.count && group(of: pending[end]).pointee.channel == channel {
                end += 1
            }
            deliverRun(UnsafeBufferPointer(rebasing: pending.buffer[start..<end]), channel: channel)
            start = end
        }
        pending.removeAll()
    }

    /// Hands live groups to their channel's sink in one call, in order:
    /// each goes whole, or is answered INVALID (overflow) if it does not
    /// fit; if the channel is not ready (or has a backlog), they wait in its
    /// backlog, in order.
    ///
    /// Every cookie must be live (callers check, or have just admitted it):
    /// records are reused newest first, so a retired cookie's record may
    /// already hold another group.
    mutating func deliverRun(_ cookies: UnsafeBufferPointer<UInt64>, channel channelID: ChannelID) {
        guard !cookies.isEmpty else { return }
        assert(cookies.allSatisfy(isLive), "deliverRun given a group that is not live")
        let sink = sinks[Int(channelID)]!
        guard backlogs[Int(channelID)].isEmpty, sink.abi != nil else {
            for cookie in cookies { holdEarlier(cookie) }
            backlogs[Int(channelID)].append(contentsOf: cookies)
            return
        }
        // The run's groups usually lie back to back in the burst, each
        // whole there (devices send a group's requests together): then the
        // ring is written from the burst itself, cookies stamped in place.
        // Otherwise their requests are gathered into `scratch`.
        runSizes.removeAll()
        let first = Int(group(of: cookies[0]).pointee.batchStart)
        var end = first
        var inBatch = first >= 0
        for cookie in cookies {
            let group = group(of: cookie)
            runSizes.append(group.pointee.pages)
            inBatch = inBatch && Int(group.pointee.batchStart) == end
            end += group.pointee.pages
        }
        let records: UnsafeBufferPointer<PageRequest>
        if inBatch {
            stampCookies(UnsafeMutableBufferPointer(rebasing: batch[first..<end]), cookies)
            records = UnsafeBufferPointer(rebasing: batch[first..<end])
        } else {
            gather(cookies)
            records = scratch.buffer
        }
        runOutcomes.removeAll()
        runOutcomes.append(repeating: .notReady, count: runSizes.count)  // each overwritten by the sink
        let written = sink.deliverGroups(records, sizes: runSizes.buffer, outcomes: runOutcomes.mutableBuffer)
        precondition(written == runSizes.count, "a GroupSink wrote \(written) outcomes for \(runSizes.count) groups")
        for (cookie, outcome) in zip(cookies, runOutcomes) {
            switch outcome {
            case .delivered:
                let group = group(of: cookie)
                group.pointee.delivered = true
                group.pointee.batchStart = -1  // never read again: a delivered group is not delivered twice
                counters.groupsDelivered &+= 1
            case .noRoom:
                retire(cookie, code: .invalid, source: .automatic(.overflow))
            case .notReady:
                holdEarlier(cookie)
                backlogs[Int(channelID)].append(cookie)
            }
        }
    }

    /// Writes each group's cookie into its requests: `requests` holds whole
    /// groups back to back, the first group's cookie being `cookies[0]`.
    /// The group changes after each LAST_PAGE request, which only a group's
    /// last is: a select per request, where a loop per group would guess
    /// wrong about once a group where it ends (sizes vary at random).
    @inline(__always) func stampCookies(_ requests: UnsafeMutableBufferPointer<PageRequest>,
                                        _ cookies: UnsafeBufferPointer<UInt64>) {
        var group = 0
        for position in requests.indices {
            requests[position].cookie = cookies[group]
            // The flag's byte (0 or 1) added as a number: written as a
            // conditional, the compiler made it a branch.
            group &+= Int(unsafeBitCast(requests[position].isLastPage, to: UInt8.self))
        }
    }

    /// Copies the groups of `cookies` into `scratch`, back to back, each
    /// request with its group's cookie: from `batch` or the pool, then the
    /// LAST_PAGE request kept with the group.
    mutating func gather(_ cookies: UnsafeBufferPointer<UInt64>) {
        scratch.removeAll()
        for cookie in cookies {
            let group = group(of: cookie)
            if group.pointee.batchStart >= 0 {
                for position in group.pointee.batchPositions {
                    var request = batch[position]
                    request.cookie = cookie
                    scratch.append(request)
                }
            } else {
                pool.forEach(in: group.pointee.earlier) { request in
                    var request = request
                    request.cookie = cookie
                    scratch.append(request)
                }
            }
            scratch.append(group.pointee.last)  // carries its cookie since admission
        }
    }

    /// The key of device index `d`'s PRG index `prgi` in the flat per-PRGI
    /// tables (`indexStates`, `parked`) and in `reusedLive`.
    static func reuseKey(_ d: Int, _ prgi: Int) -> Int { PRILimits.key(function: d, prgi: UInt32(prgi)) }

    /// The live groups on device index `d`'s PRG index `prgi`, oldest first.
    func liveCookies(device d: Int, prgi: Int) -> [UInt64] {
        let oldest = indexStates[Self.reuseKey(d, prgi)].oldestLive
        guard oldest != 0 else { return [] }
        guard !reusedLive.isEmpty, let more = reusedLive[Self.reuseKey(d, prgi)] else { return [oldest] }
        return [oldest] + more
    }

    /// Forgets `cookie` among device index `d`'s live groups on `prgi` (the
    /// next oldest, if any, becomes the oldest) and records how it ended.
    mutating func removeLive(_ cookie: UInt64, device d: Int, prgi: Int, ended: RetireKind) {
        let key = Self.reuseKey(d, prgi)
        var state = indexStates[key]
        state.lastRetired = ended
        if state.oldestLive == cookie {
            if !reusedLive.isEmpty, var more = reusedLive.removeValue(forKey: key), !more.isEmpty {
                state.oldestLive = more.removeFirst()
                if !more.isEmpty { reusedLive[key] = more }
            } else {
                state.oldestLive = 0
            }
        } else if !reusedLive.isEmpty, var more = reusedLive.removeValue(forKey: key) {
            more.removeAll { $0 == cookie }
            if !more.isEmpty { reusedLive[key] = more }
        }
        indexStates[key] = state
    }

    mutating func releaseAllocation(_ deviceID: UInt32, _ count: Int) {
        guard let d = deviceIndex(deviceID), devices[d].known else { return }
        devices[d].outstandingRequests -= count
    }

    /// Drops every partial group of a device without response, as the kernel
    /// does after a page request queue overflow (the LAST_PAGE requests that
    /// would have closed them may be lost).
    mutating func discardPartials(of deviceID: UInt32) {
        let keys = partials.keys.filter { $0.device == deviceID }
        var dropped = 0
        for key in keys { dropped += partials.removeValue(forKey: key)?.count ?? 0 }
        if let d = deviceIndex(deviceID), devices[d].known {
            for key in Self.indexKeys(of: d) { dropped += dropParked(at: key) }
            if pool.isSparse { compactPool() }
            devices[d].partialRequests = 0
        }
        counters.partialsDiscarded &+= UInt64(dropped)
        releaseAllocation(deviceID, dropped)
    }

    /// The single exit of a live group: emits its completion, remembers how
    /// it ended, frees its slot and its share of the device allocation.
    @inline(__always) mutating func retire(
        _ cookie: UInt64, code: ResponseCode, source: CompletionSource
    ) {
        let slotIndex = Int(GroupCookie(rawValue: cookie).slot)
        let slot = table.slot(slotIndex)
        guard slot.pointee.live else { return }
        let r = Int(slot.pointee.record)
        let group = table.record(r)  // read in place (about 110 bytes); freed last
        let pages = group.pointee.pages
        let hadEarlier = group.pointee.earlier.isHeld
        pool.release(group.pointee.earlier)
        let kind: RetireKind
        switch source {
        case .consumer: kind = .consumer
        case .automatic(.timeout): kind = .timeout
        case .automatic: kind = .other
        }
        slot.pointee.live = false
        slot.pointee.retiredBy = kind
        slot.pointee.generation = slot.pointee.generation == .max ? 1 : slot.pointee.generation &+ 1  // never 0
        table.freeSlot(UInt32(slotIndex))
        let d = Int(group.pointee.device)
        assert(devices[d].known, "a live group of a removed device")
        let prgi = PRILimits.slot(group.pointee.last.prgi)
        let key = Self.reuseKey(d, prgi)
        if reusedLive.isEmpty && indexStates[key].oldestLive == cookie {
            indexStates[key] = IndexState(oldestLive: 0, lastRetired: kind)  // the index's one live group
        } else {
            removeLive(cookie, device: d, prgi: prgi, ended: kind)
        }
        devices[d].outstandingRequests -= pages  // its share of the allocation
        emit(group.pointee.last, cookie: cookie, code: code, source: source)
        table.freeRecord(UInt32(r))
        // Only now: the group is no longer live, so its released chain is not moved.
        if hadEarlier && pool.isSparse { compactPool() }
    }

    /// Counts and gives the one answer to the group whose LAST_PAGE request
    /// is `last` (its PASID, when it needs it back, PRGI and private data
    /// are echoed).
    mutating func emit(
        _ last: borrowing PageRequest, cookie: UInt64, code: ResponseCode, source: CompletionSource
    ) {
        switch source {
        case .consumer: counters.completedByConsumer &+= 1
        case .automatic(let cause): autoTally[cause.ordinal] &+= 1
        }
        answers.append(DeviceCompletion(
            deviceID: last.deviceID, pasid: last.needsPASID ? last.pasid : nil, prgi: last.prgi, code: code,
            privateData: last.privateData, cookie: cookie, source: source, requestedAtNS: last.timestampNS))
    }

    /// Answers a group that never got a cookie (no device state to keep).
    mutating func answerUnowned(_ request: PageRequest, cause: AutoResponseCause) {
        emit(request, cookie: 0, code: .invalid, source: .automatic(cause))
    }
}

extension AutoResponseCause {
    /// Position in `allCases`, for fixed-size tallies.
    public var ordinal: Int {
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
