import FaultABI
import FaultSimulation
import PageRequests
import Testing

/// `receive(batch:)` admits a group whose requests arrive together in one
/// burst without parking them, and delivers it from the burst. These tests
/// hold it to what admitting the same requests one at a time does.
@Suite struct BurstAdmissionTests {
    /// One tracker fed bursts, the other the same requests one at a time,
    /// each with its own ring. Rings and cookie tables are large enough that
    /// delivery at the end of a burst (rather than per group) changes no
    /// outcome, so everything must agree: the records read, the answers in
    /// order, the counters.
    struct Twins {
        var bursts: Bench
        var single: Bench

        init(policy: PageRequestPolicy, negotiated: Bool) {
            bursts = Bench(policy: policy, negotiated: negotiated, entries: 4096, allocation: 24)
            single = Bench(policy: policy, negotiated: negotiated, entries: 4096, allocation: 24)
            for device: UInt32 in [2, 3] {
                bursts.tracker.addDevice(device, allocation: 24, channel: bursts.channel)
                single.tracker.addDevice(device, allocation: 24, channel: single.channel)
            }
        }

        mutating func receive(_ burst: [PageRequest], at now: UInt64) {
            bursts.tracker.receive(batch: burst, now: now)
            for request in burst { single.tracker.receive(request, now: now) }
        }

        /// Compares both sides, then answers every delivered group on both.
        mutating func compareAndAnswer(at now: UInt64, answerEvery: Int, _ step: Int) {
            bursts.sink.read()
            single.sink.read()
            #expect(bursts.sink.groups == single.sink.groups, "records differ after step \(step)")
            var fromBursts: [DeviceCompletion] = []
            var fromSingle: [DeviceCompletion] = []
            bursts.tracker.takeAnswers(into: &fromBursts)
            single.tracker.takeAnswers(into: &fromSingle)
            #expect(fromBursts == fromSingle, "answers differ after step \(step)")
            #expect(bursts.tracker.snapshot == single.tracker.snapshot, "counters differ after step \(step)")
            for (n, group) in bursts.sink.groups.enumerated() where n % answerEvery == 0 {
                let response = PageResponse(code: .success, cookie: group.last!.cookie)
                #expect(bursts.answer(response) == single.answer(response))
            }
            bursts.tick(now)
            single.tick(now)
            #expect(bursts.completions == single.completions, "completions differ after step \(step)")
        }
    }

    /// A random mix, 300 bursts: whole groups of 1–8 pages, groups split
    /// across bursts or interleaved with another index's, a second PASID on
    /// an index with parked requests, stop markers after earlier requests,
    /// an unknown device's requests, and devices that pass their
    /// partial-request limit in the middle of a group.
    @Test(arguments: [true, false])
    func aBurstIsAdmittedAsItsRequestsOneAtATimeWouldBe(negotiatedFirst: Bool) {
        var policy = PageRequestPolicy()
        policy.timeoutNS = 40
        policy.maxPartialRequestsPerDevice = 9
        var twins = Twins(policy: policy, negotiated: negotiatedFirst)
        var rng = SplitMix64(seed: 7)
        var address: UInt64 = 0
        func page(_ device: UInt32, _ prgi: UInt32, _ pasid: UInt32, last: Bool) -> PageRequest {
            address += 1
            return PageRequest(deviceID: device, pasid: pasid, prgi: prgi, permissions: .read, address: address << 12,
                               isLastPage: last, needsPASID: true, privateData: PrivateData(low: address, high: 0))
        }
        for step in 0..<300 {
            var burst: [PageRequest] = []
            for _ in 0..<rng.below(6) {
                let device: UInt32 = [1, 2, 3, 3, 9][rng.below(5)]
                let prgi = UInt32(rng.below(8))
                let pasid: UInt32 = rng.below(4) == 0 ? 6 : 5
                switch rng.below(10) {
                case 0, 1:  // lone earlier requests: closed in a later burst, or never
                    for _ in 0...rng.below(3) { burst.append(page(device, prgi, pasid, last: false)) }
                case 2:  // earlier requests, then a stop marker on their index (which closes nothing)
                    for _ in 0...rng.below(3) { burst.append(page(device, prgi, pasid, last: false)) }
                    burst.append(PageRequest(deviceID: device, pasid: pasid, prgi: prgi, permissions: [], address: 0,
                                             isLastPage: true))
                case 3:  // two groups' requests interleaved
                    let other = (prgi + 1) % 8
                    burst += [page(device, prgi, pasid, last: false), page(device, other, pasid, last: false),
                              page(device, prgi, pasid, last: true), page(device, other, pasid, last: true)]
                default:  // a whole group, together
                    let size = 1 + rng.below(8)
                    for n in 0..<size { burst.append(page(device, prgi, pasid, last: n == size - 1)) }
                }
            }
            twins.receive(burst, at: UInt64(step))
            if step == 40 && !negotiatedFirst {
                twins.bursts.sink.negotiate()
                twins.single.sink.negotiate()
            }
            twins.compareAndAnswer(at: UInt64(step), answerEvery: 1 + step % 3, step)
        }
        twins.compareAndAnswer(at: 1_000, answerEvery: 1, 300)
        #expect(twins.bursts.tracker.snapshot.groupsClosed > 300)
        #expect(twins.bursts.tracker.snapshot.partialsDiscarded > 0)
        #expect(twins.bursts.tracker.snapshot.allocationExceeded > 0)
    }

    /// Against the burst path as it was (`receiveParkingEach`) the two must
    /// agree under every limit, so this one runs them tight: rings of 4–32
    /// slots (overflow), a cookie table of 2–11 (table full), a partial
    /// limit of 2–9, allocations of 3–12, two channels (one negotiated
    /// late), a device with no channel, unknown devices, PRG indices 512
    /// apart (one slot), no PASID, groups larger than the ring; detach,
    /// remove, re-add, attach and shutdown between bursts; bursts received
    /// through a copy of the tracker. After every burst nothing may refer
    /// to it. (Adapted from the review of the burst path.)
    @Test(arguments: Array(UInt64(1)...24))
    func aBurstMatchesParkingEachRequestUnderEveryLimit(seed: UInt64) {
        struct Side {
            var tracker: PageRequestTracker
            let channels: [QueueChannel]
            var ids: [ChannelID] = []
            init(policy: PageRequestPolicy, entries: [Int], allocation: Int) {
                tracker = PageRequestTracker(policy: policy)
                channels = zip(entries, [true, false]).map { try! QueueChannel(entries: $0.0, negotiate: $0.1) }
                for channel in channels { ids.append(tracker.addChannel(channel.sink)) }
                for (device, channel) in [(1, ids[0]), (2, ids[1]), (3, nil), (4, ids[0]), (5000, ids[1])] as [(UInt32, ChannelID?)] {
                    tracker.addDevice(device, allocation: allocation, channel: channel)
                }
            }
            mutating func answers() -> [DeviceCompletion] {
                var out: [DeviceCompletion] = []
                tracker.takeAnswers(into: &out)
                return out
            }
        }
        var rng = SplitMix64(seed: seed)
        var policy = PageRequestPolicy()
        policy.timeoutNS = UInt64(5 + rng.below(30))
        policy.maxPartialRequestsPerDevice = 2 + rng.below(8)
        policy.maxOutstandingGroups = 2 + rng.below(10)
        let entries = [[4, 8, 16][rng.below(3)], [8, 16, 32][rng.below(3)]]
        let allocation = 3 + rng.below(10)
        var new = Side(policy: policy, entries: entries, allocation: allocation)
        var old = Side(policy: policy, entries: entries, allocation: allocation)
        var address: UInt64 = 0
        func page(_ device: UInt32, _ prgi: UInt32, _ pasid: UInt32?, last: Bool) -> PageRequest {
            address += 1
            return PageRequest(deviceID: device, pasid: pasid, prgi: prgi, permissions: .read, address: address << 12,
                               isLastPage: last, needsPASID: pasid != nil, privateData: PrivateData(low: address, high: 0))
        }
        for step in 0..<200 {
            let now = UInt64(step)
            var burst: [PageRequest] = []
            for _ in 0..<rng.below(7) {
                let device: UInt32 = [1, 2, 3, 4, 4, 5000, 9, 1][rng.below(8)]
                let prgi = UInt32(rng.below(4)) + (rng.below(10) == 0 ? 512 : 0)
                let pasid: UInt32? = [5, 5, 6, nil][rng.below(4)]
                switch rng.below(12) {
                case 0, 1:
                    for _ in 0...rng.below(3) { burst.append(page(device, prgi, pasid, last: false)) }
                case 2:
                    for _ in 0...rng.below(3) { burst.append(page(device, prgi, pasid, last: false)) }
                    burst.append(PageRequest(deviceID: device, pasid: pasid ?? 5, prgi: prgi, permissions: [], address: 0,
                                             isLastPage: true))
                case 3:
                    let other = (prgi + 1) % 4
                    burst += [page(device, prgi, pasid, last: false), page(device, other, pasid, last: false),
                              page(device, prgi, pasid, last: true), page(device, other, pasid, last: true)]
                case 4:  // the last request names the index 512 away: another group
                    burst += [page(device, prgi, pasid, last: false), page(device, prgi ^ 512, pasid, last: true)]
                default:
                    let size = 1 + rng.below(rng.below(4) == 0 ? 20 : 6)
                    for n in 0..<size { burst.append(page(device, prgi, pasid, last: n == size - 1)) }
                }
            }
            if rng.below(4) == 0 {
                var copy = new.tracker  // the copy admits; the original must not see it
                copy.receive(batch: burst, now: now)
                new.tracker = copy
            } else {
                new.tracker.receive(batch: burst, now: now)
            }
            old.tracker.receiveParkingEach(batch: burst, now: now)
            #expect(!new.tracker.refersToABurst, "seed \(seed) step \(step): a group refers to the burst")
            #expect(new.answers() == old.answers(), "seed \(seed) step \(step): answers to the burst")
            switch rng.below(30) {
            case 0: new.tracker.detachDevice(1); old.tracker.detachDevice(1)
            case 1: new.tracker.removeDevice(4); old.tracker.removeDevice(4)
            case 2:
                new.tracker.addDevice(4, allocation: allocation, channel: new.ids[0])
                old.tracker.addDevice(4, allocation: allocation, channel: old.ids[0])
            case 3: new.tracker.attach(1, to: new.ids[0]); old.tracker.attach(1, to: old.ids[0])
            case 4: new.tracker.attach(3, to: new.ids[1]); old.tracker.attach(3, to: old.ids[1])
            case 5: new.tracker.attach(3, to: nil); old.tracker.attach(3, to: nil)
            case 6 where step > 150: new.tracker.shutdown(); old.tracker.shutdown()
            default: break
            }
            if step == 60 { new.channels[1].negotiate(); old.channels[1].negotiate() }
            if rng.below(3) != 0 {
                let answerEvery = 1 + rng.below(3)
                for c in 0..<2 {
                    new.channels[c].read()
                    old.channels[c].read()
                    #expect(new.channels[c].groups == old.channels[c].groups, "seed \(seed) step \(step): records, channel \(c)")
                    for (n, group) in new.channels[c].groups.enumerated() where n % answerEvery == 0 {
                        let response = Result<PageResponse, ResponseRejection>.success(
                            PageResponse(code: .success, cookie: group.last!.cookie))
                        #expect(new.tracker.respond(response, channel: new.ids[c], abi: .v2)
                                == old.tracker.respond(response, channel: old.ids[c], abi: .v2))
                    }
                }
            }
            if rng.below(2) == 0 {
                new.tracker.tick(now: now)
                old.tracker.tick(now: now)
            }
            #expect(new.answers() == old.answers(), "seed \(seed) step \(step): answers")
            #expect(new.tracker.snapshot == old.tracker.snapshot, "seed \(seed) step \(step): counters")
            #expect(new.tracker.backlogged == old.tracker.backlogged)
        }
        new.tracker.tick(now: 100_000)
        old.tracker.tick(now: 100_000)
        #expect(new.answers() == old.answers())
        #expect(new.tracker.outstandingGroups == 0 && old.tracker.outstandingGroups == 0)
    }

    /// A LAST_PAGE request alone in its burst whose earlier requests wait in
    /// `partials` (they came while another PASID's were parked on the
    /// index, since closed) closes a group with them, not a one-page group.
    @Test func aLastRequestAloneClosesTheRequestsWaitingUnderItsPASID() {
        var twins = Twins(policy: PageRequestPolicy(), negotiated: true)
        twins.receive([request(prgi: 1, pasid: 5, last: false, address: 0x1000),
                       request(prgi: 1, pasid: 6, last: false, address: 0x2000)], at: 0)
        twins.receive([request(prgi: 1, pasid: 5, last: true, address: 0x3000)], at: 0)
        twins.receive([request(prgi: 1, pasid: 6, last: true, address: 0x4000)], at: 0)
        twins.compareAndAnswer(at: 0, answerEvery: 1, 0)
        #expect(twins.bursts.sink.groups.map { $0.map(\.address) } == [[0x1000, 0x3000], [0x2000, 0x4000]])
    }

    /// Groups admitted from a burst that cannot be delivered yet (no ABI
    /// negotiated) keep their requests past the burst: the burst's buffer
    /// is gone, and each arrives intact once the ABI is in force.
    @Test func groupsWaitingForTheirChannelKeepTheirRequestsPastTheBurst() {
        var b = Bench(negotiated: false)
        var burst: [PageRequest] = []
        for g in UInt32(0)..<4 {
            for n in 0..<3 { burst.append(request(prgi: g, last: n == 2, address: UInt64(g * 16 + UInt32(n)) << 12)) }
        }
        b.tracker.receive(batch: burst, now: 0)
        #expect(b.tracker.pooledRequests.held == 8)  // two earlier requests of each of four groups
        burst = []  // the burst's storage is released
        b.sink.negotiate()
        b.tick(1)
        b.sink.read()
        let addresses: [[UInt64]] = (0..<4).map { (g: UInt64) in (0..<3).map { (n: UInt64) in (g * 16 + n) << 12 } }
        #expect(b.sink.groups.map { $0.map(\.address) } == addresses)
        #expect(b.sink.groups.allSatisfy { Set($0.map(\.cookie)).count == 1 })
    }

    /// A sink that answers `.notReady` in the middle of a run (a queue
    /// that lost its ABI while the run was written): the groups it did not
    /// take keep their requests past the burst and arrive whole on the next
    /// delivery, after the one it took.
    @Test func groupsASinkRefusesMidRunKeepTheirRequestsPastTheBurst() {
        final class ReadyOnce: GroupSink {
            var taken: [[PageRequest]] = []
            var calls = 0
            var abi: ABIVersion? { .v2 }
            func deliverGroups(_ requests: UnsafeBufferPointer<PageRequest>, sizes: UnsafeBufferPointer<Int>,
                               outcomes: UnsafeMutableBufferPointer<GroupDelivery>) -> Int {
                calls += 1
                var at = 0
                for (n, size) in sizes.enumerated() {
                    // The first call takes only its first group; later calls take all.
                    outcomes[n] = calls > 1 || n == 0 ? .delivered : .notReady
                    if outcomes[n] == .delivered { taken.append(Array(requests[at..<at + size])) }
                    at += size
                }
                return sizes.count
            }
        }
        let sink = ReadyOnce()
        var tracker = PageRequestTracker()
        tracker.addDevice(1, allocation: 64, channel: tracker.addChannel(sink))
        var burst: [PageRequest] = []
        for g in UInt32(0)..<3 {
            for n in 0..<3 { burst.append(request(prgi: g, last: n == 2, address: UInt64(g * 16 + UInt32(n)) << 12)) }
        }
        tracker.receive(batch: burst, now: 0)
        #expect(sink.taken.count == 1)
        #expect(!tracker.refersToABurst)
        #expect(tracker.pooledRequests.held == 4)  // the two refused groups' earlier requests
        burst = []
        tracker.flushBacklogs()
        let addresses: [[UInt64]] = (0..<3).map { (g: UInt64) in (0..<3).map { (n: UInt64) in (g * 16 + n) << 12 } }
        #expect(sink.taken.map { $0.map(\.address) } == addresses)
        #expect(sink.taken.allSatisfy { Set($0.map(\.cookie)).count == 1 })
        #expect(tracker.snapshot.groupsDelivered == 3)
    }

    /// A run whose groups lie back to back in the burst is written from
    /// the burst itself: the sink is lent the caller's buffer, with each
    /// group's cookie stamped on its requests and nothing else changed. A
    /// run with a gap (a stop marker between two groups) is gathered into
    /// the tracker's own buffer instead, with the same records.
    @Test func aRunBackToBackInTheBurstIsWrittenFromIt() {
        final class Recorder: GroupSink {
            var runs: [(base: UnsafePointer<PageRequest>?, records: [PageRequest], sizes: [Int])] = []
            var abi: ABIVersion? { .v2 }
            func deliverGroups(_ requests: UnsafeBufferPointer<PageRequest>, sizes: UnsafeBufferPointer<Int>,
                               outcomes: UnsafeMutableBufferPointer<GroupDelivery>) -> Int {
                runs.append((requests.baseAddress, Array(requests), Array(sizes)))
                for n in sizes.indices { outcomes[n] = .delivered }
                return sizes.count
            }
        }
        let sink = Recorder()
        var tracker = PageRequestTracker()
        let channel = tracker.addChannel(sink)
        tracker.addDevice(1, allocation: 64, channel: channel)
        // Groups of 3, 1 and 2 pages, back to back; then two groups with a stop marker between.
        let sizes = [3, 1, 2]
        var original: [PageRequest] = []
        for (g, size) in sizes.enumerated() {
            for n in 0..<size { original.append(request(prgi: UInt32(g), last: n == size - 1, address: UInt64(original.count) << 12)) }
        }
        var burst = original
        burst.withUnsafeMutableBufferPointer { tracker.receive(batch: $0, now: 0) }
        #expect(sink.runs.count == 1)
        #expect(sink.runs[0].sizes == sizes)
        burst.withUnsafeBufferPointer { #expect(sink.runs[0].base == $0.baseAddress) }  // no copy
        #expect(sink.runs[0].records == burst)
        var start = 0
        var cookies: [UInt64] = []
        for size in sizes {
            let group = burst[start..<start + size]
            #expect(Set(group.map(\.cookie)).count == 1 && group.first!.cookie != 0)
            cookies.append(group.last!.cookie)
            start += size
        }
        #expect(Set(cookies).count == sizes.count)  // each group its own: the stamp moves on at each LAST_PAGE
        for cookie in cookies { #expect(tracker.respond(.success(PageResponse(code: .success, cookie: cookie)),
                                                        channel: channel, abi: .v2) == .completed(cookie: cookie)) }
        var unstamped = burst
        for i in unstamped.indices { unstamped[i].cookie = 0 }
        #expect(unstamped == original)
        #expect(!tracker.refersToABurst)

        var gapped = [request(prgi: 10, last: false), request(prgi: 10, address: 0x2000),
                      PageRequest(deviceID: 1, pasid: 5, prgi: 0, permissions: [], address: 0),  // a stop marker
                      request(prgi: 11, address: 0x3000)]
        gapped.withUnsafeMutableBufferPointer { tracker.receive(batch: $0, now: 0) }
        #expect(sink.runs.count == 2)
        #expect(sink.runs[1].sizes == [2, 1])
        gapped.withUnsafeBufferPointer { #expect(sink.runs[1].base != $0.baseAddress) }  // gathered
        #expect(sink.runs[1].records.map(\.address) == [0x1000, 0x2000, 0x3000])
        #expect(sink.runs[1].records[0].cookie == sink.runs[1].records[1].cookie)
        #expect(sink.runs[1].records[1].cookie != sink.runs[1].records[2].cookie)
        #expect(tracker.snapshot.stopMarkers == 1)
        #expect(!tracker.refersToABurst)
    }

    /// A group delivered from its burst never enters the pool; one that
    /// overflows the ring is answered at once and leaves nothing behind.
    @Test func aDeliveredOrOverflowedBurstGroupHoldsNoPooledRequest() {
        var b = Bench(entries: 4)
        let burst = (0..<3).map { request(prgi: 1, last: $0 == 2) } + (0..<3).map { request(prgi: 2, last: $0 == 2) }
        b.tracker.receive(batch: burst, now: 0)
        var answers: [DeviceCompletion] = []
        b.tracker.takeAnswers(into: &answers)
        #expect(answers.map(\.source) == [.automatic(.overflow)])
        #expect(b.sink.sizes == [3])
        #expect(b.tracker.pooledRequests.held == 0)
        #expect(b.tracker.outstandingGroups == 1)
    }
}

extension SplitMix64 {
    /// A draw in `0 ..< n`, as an `Int` index or count (seeded: a failing trace is reproducible).
    mutating func below(_ n: Int) -> Int { Int(next(below: UInt64(n))) }
}
