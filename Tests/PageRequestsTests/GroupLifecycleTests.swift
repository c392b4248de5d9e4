import FaultABI
import PageRequests
import Testing

@Suite struct GroupLifecycleTests {
    @Test func partialsAreParkedUntilLastPageAndDeliveredWhole() {
        var b = Bench()
        b.send(request(prgi: 3, last: false))
        b.send(request(prgi: 3, last: false))
        #expect(b.sink.sizes.isEmpty)
        b.send(request(prgi: 4))  // another group closes first
        b.send(request(prgi: 3))
        #expect(b.sink.sizes == [1, 3])
        let cookies = Set(b.sink.groups[1].map(\.cookie))
        #expect(cookies.count == 1)  // one cookie for the whole group
        #expect(b.sink.cookie(0) != b.sink.cookie(1))
    }

    /// Earlier requests wait in pooled chains, which are freed when their
    /// group is answered and reused by later groups: across thousands of
    /// interleaved groups on several PRG indices, with answers freeing
    /// chains as it goes, every group still arrives with exactly its own
    /// requests, in order, under one cookie.
    @Test func pooledEarlierRequestsArriveIntactAsChainsAreReused() {
        var policy = PageRequestPolicy()
        policy.timeoutNS = 1 << 60
        var b = Bench(policy: policy, entries: 256, allocation: 1 << 20)
        var state: UInt64 = 0x9E37_79B9
        func draw(_ n: UInt64) -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (state >> 33) % n
        }
        var open: [UInt32: [UInt64]] = [:]
        var expected: [[UInt64]] = []
        var answered = 0
        var address: UInt64 = 0x10_0000
        for step in 0..<4000 {
            let prgi = UInt32(draw(6))
            address += 0x1000
            let closes = draw(3) == 0
            b.send(request(prgi: prgi, pasid: 5 + prgi % 2, last: closes, address: address))
            if closes {
                expected.append((open.removeValue(forKey: prgi) ?? []) + [address])
            } else {
                open[prgi, default: []].append(address)
            }
            if step % 5 == 0 {  // answer what arrived: its records and chains are freed for reuse
                b.sink.read()
                while answered < b.sink.groups.count {
                    b.answer(PageResponse(code: .success, cookie: b.sink.cookie(answered)))
                    answered += 1
                }
            }
        }
        b.sink.read()
        #expect(b.sink.groups.map { $0.map(\.address) } == expected)
        #expect(b.sink.groups.allSatisfy { Set($0.map(\.cookie)).count == 1 })
        #expect(b.sink.groups.contains { $0.count >= 4 })
        #expect(b.tracker.snapshot.partialsDiscarded == 0)
        #expect(b.completions.count == answered)
    }

    /// Two PASIDs interleaved on one PRG index: the first PASID's requests
    /// are parked, the second's wait in `partials`, and each group, closed
    /// from either, arrives with its own requests in order under one cookie.
    /// (Written by the second reviewer of the request pool.)
    @Test func aSecondPASIDOnOneIndexArrivesInOrderUnderItsOwnCookie() {
        var b = Bench()
        b.send(request(prgi: 1, pasid: 5, last: false, address: 0x1000))
        b.send(request(prgi: 1, pasid: 6, last: false, address: 0x2000))  // partials
        b.send(request(prgi: 1, pasid: 5, last: false, address: 0x3000))
        b.send(request(prgi: 1, pasid: 6, last: false, address: 0x4000))  // partials
        b.send(request(prgi: 1, pasid: 6, last: true, address: 0x5000))  // closes from partials
        b.send(request(prgi: 1, pasid: 5, last: true, address: 0x6000))  // closes the parked chain
        b.sink.read()
        #expect(b.sink.groups.map { $0.map(\.address) } == [[0x2000, 0x4000, 0x5000], [0x1000, 0x3000, 0x6000]])
        #expect(b.sink.groups.map { $0.map(\.pasid) } == [[6, 6, 6], [5, 5, 5]])
        #expect(b.sink.groups.allSatisfy { Set($0.map(\.cookie)).count == 1 && $0[0].cookie != 0 })
        #expect(b.sink.groups.map { $0.map(\.isLastPage) } == [[false, false, true], [false, false, true]])
    }

    /// A burst of large multi-page groups grows the request pool; once they
    /// are answered the pool shrinks again, and the chains still in use —
    /// parked requests, a live group's earlier requests — move intact.
    @Test func theRequestPoolShrinksOnceABurstIsAnsweredAndKeepsWhatIsLive() {
        var policy = PageRequestPolicy()
        policy.timeoutNS = 1000
        var b = Bench(policy: policy, negotiated: false, allocation: 1 << 20)
        var address: UInt64 = 0x100_0000
        func page(_ prgi: UInt32, last: Bool) -> PageRequest {
            address += 0x1000
            return request(prgi: prgi, last: last, address: address)
        }
        for g in UInt32(0)..<200 {  // 200 groups of 401 pages, waiting for negotiation
            for _ in 0..<400 { b.send(page(g, last: false)) }
            b.send(page(g, last: true))
        }
        #expect(b.tracker.pooledRequests.held == 80_000)
        let peak = b.tracker.pooledRequests.capacity
        #expect(peak >= 80_000)
        // Still in use when the burst times out: three parked requests, and
        // a group closed after the burst (its deadline is later).
        var parked: [UInt64] = []
        for _ in 0..<3 { b.send(page(500, last: false), at: 600); parked.append(address) }
        var live: [UInt64] = []
        for _ in 0..<2 { b.send(page(501, last: false), at: 600); live.append(address) }
        b.send(page(501, last: true), at: 600)
        live.append(address)
        b.tick(1000)  // the burst times out: 200 answers
        #expect(b.completions.count == 200)
        #expect(b.tracker.pooledRequests.held == 5)
        #expect(b.tracker.pooledRequests.capacity < peak / 4)
        b.send(page(500, last: true), at: 1000)
        parked.append(address)
        b.sink.negotiate()
        b.tick(1001)  // delivers what waited
        b.sink.read()
        #expect(b.sink.groups.map { $0.map(\.address) } == [live, parked])
    }

    /// Pages asked under one owner never reach the next: a DETACH drops the
    /// device's partial groups (issue 13, finding 12).
    @Test func partialGroupsDoNotSurviveADetachIntoTheNextOwner() {
        var b = Bench()
        b.send(request(prgi: 3, last: false))
        b.send(request(prgi: 3, last: false))
        var out: [DeviceCompletion] = []
        b.tracker.detachDevice(1) { out.append($0) }
        let next = try! QueueChannel()
        let channel = b.tracker.addChannel(next.sink)
        b.tracker.attach(1, to: channel)
        b.send(request(prgi: 3))
        #expect(next.sizes == [1], "the new owner sees only the page raised after it attached")
        #expect(b.tracker.snapshot.partialsDiscarded == 2)
    }

    /// A removed channel's id is used again: a service whose clients come and
    /// go keeps a table as large as its clients at once.
    @Test func channelIDsAreReusedOnceRemoved() {
        var b = Bench()
        var ids: Set<ChannelID> = []
        for _ in 0..<50 {
            let sink = try! QueueChannel()
            let id = b.tracker.addChannel(sink.sink)
            ids.insert(id)
            b.tracker.removeChannel(id) { _ in }
        }
        #expect(ids.count == 1)
    }

    @Test func groupsAreKeyedByPASIDToo() {
        var b = Bench()
        b.send(request(prgi: 3, pasid: 1, last: false))
        b.send(request(prgi: 3, pasid: 2))  // same PRGI, other PASID: a different group
        #expect(b.sink.sizes == [1])
    }

    @Test func consumerAnswerCompletesOnceWithPrivateDataAndPASID() {
        var b = Bench()
        let data = PrivateData(low: 0xAA, high: 0xBB)
        b.send(request(prgi: 9, pasid: 7, data: data))
        let verdict = b.answer(PageResponse(code: .success, cookie: b.sink.cookie(0), pasid: 7))
        #expect(verdict == .completed(cookie: b.sink.cookie(0)))
        #expect(b.completions.count == 1)
        #expect(b.completions[0].privateData == data)  // echoed from the tracker's copy
        #expect(b.completions[0].pasid == 7)
        #expect(b.completions[0].code == .success)
        #expect(b.completions[0].source == .consumer)
        #expect(b.answer(PageResponse(code: .success, cookie: b.sink.cookie(0), pasid: 7)) == .rejected(.duplicate))
        #expect(b.completions.count == 1)
    }

    @Test func stopMarkersGetNoResponse() {
        var b = Bench()
        b.send(PageRequest(deviceID: 1, pasid: 4, prgi: 0, permissions: [], address: 0, isLastPage: true))
        #expect(b.sink.sizes.isEmpty)
        #expect(b.completions.isEmpty)
        #expect(b.tracker.snapshot.stopMarkers == 1)
        // Without a PASID the same bits are an ordinary request (SMMUv3 spec rule).
        b.send(PageRequest(deviceID: 1, pasid: nil, prgi: 1, permissions: [], address: 0, isLastPage: true))
        #expect(b.sink.sizes.count == 1)
    }

    @Test func failureBecomesInvalidUnlessPolicyPassesIt() {
        var b = Bench()
        b.send(request(prgi: 1))
        b.answer(PageResponse(code: .failure, cookie: b.sink.cookie(0), pasid: 5))
        #expect(b.completions.last?.code == .invalid)
        #expect(b.tracker.snapshot.failureConverted == 1)
        var policy = PageRequestPolicy()
        policy.passFailure = true
        var p = Bench(policy: policy)
        p.send(request(prgi: 1))
        p.answer(PageResponse(code: .failure, cookie: p.sink.cookie(0), pasid: 5))
        #expect(p.completions.last?.code == .failure)
        #expect(p.tracker.snapshot.failurePassed == 1)
    }

    @Test func v1MatchesByPASIDAndPRGI() {
        var b = Bench()
        b.send(request(prgi: 2, pasid: 8))
        b.send(request(prgi: 3, pasid: nil, needsPASID: false))
        // The group on PRGI 2 needs PASID 8 back: an answer without it, or with another, is a mismatch.
        #expect(b.answer(PageResponse(code: .success, prgi: 2), abi: .v1) == .rejected(.mismatch))
        #expect(b.answer(PageResponse(code: .success, pasid: 9, prgi: 2), abi: .v1) == .rejected(.mismatch))
        // The group on PRGI 3 needs none: a PASID_VALID answer is taken with the flag cleared, as the
        // kernel's iommu_page_response() did.
        #expect(b.answer(PageResponse(code: .success, pasid: 8, prgi: 3), abi: .v1) != .rejected(.mismatch))
        #expect(b.completions.last?.pasid == nil && b.completions.last?.prgi == 3)
        #expect(b.answer(PageResponse(code: .success, pasid: 8, prgi: 2), abi: .v1) != .rejected(.unknown))
        #expect(b.completions.count == 2)
        #expect(b.answer(PageResponse(code: .success, prgi: 44), abi: .v1) == .rejected(.unknown))
        #expect(b.answer(PageResponse(code: .success, prgi: 3), abi: .v1) == .rejected(.duplicate))
    }
}
