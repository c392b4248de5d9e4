import FaultABI
import PageRequests
import Testing

/// Every automatic path answers INVALID exactly once, and every bad
/// response is rejected under its own reason without completing anything.
@Suite struct ExactlyOnceTests {
    @Test func timeoutAnswersInvalidAndALateAnswerIsRejected() {
        var policy = PageRequestPolicy()
        policy.timeoutNS = 1000
        var b = Bench(policy: policy)
        b.send(request(prgi: 1), at: 0)
        b.tick(999)
        #expect(b.completions.isEmpty)
        b.tick(1000)
        #expect(b.completions.count == 1)
        #expect(b.completions[0].code == .invalid)
        #expect(b.completions[0].source == .automatic(.timeout))
        #expect(b.answer(PageResponse(code: .success, cookie: b.sink.cookie(0), pasid: 5)) == .rejected(.late))
        b.tick(5000)
        #expect(b.completions.count == 1)
    }

    @Test func overflowAnswersAtOnce() {
        var b = Bench(entries: 2)
        b.send(request(prgi: 1, last: false))
        b.send(request(prgi: 1, last: false))
        b.send(request(prgi: 1))  // 3 records, a ring of 2
        #expect(b.sink.sizes.isEmpty)
        #expect(b.completions.map(\.source) == [.automatic(.overflow)])
        #expect(b.tracker.outstandingGroups == 0)
    }

    /// A burst is delivered in runs (one publish per channel): a group that
    /// does not fit is answered INVALID on its own, and a later one that fits
    /// is still delivered, in order, as one by one.
    @Test func aBatchDeliversWhatFitsAndAnswersTheRestAlone() {
        var b = Bench(entries: 4)
        let burst = [request(prgi: 1, last: false), request(prgi: 1),  // 2 records: fits, 2 left
                     request(prgi: 2, last: false), request(prgi: 2, last: false), request(prgi: 2),  // 3: no room
                     request(prgi: 3, last: false), request(prgi: 3)]  // 2: fits
        var out: [DeviceCompletion] = []
        b.tracker.receive(batch: burst, now: 0) { out.append($0) }
        #expect(out.map(\.source) == [.automatic(.overflow)])
        #expect(out.map(\.prgi) == [2])
        #expect(b.sink.sizes == [2, 2])
        #expect(b.sink.groups.map { $0[0].prgi } == [1, 3])
        #expect(b.tracker.outstandingGroups == 2)
        #expect(b.tracker.snapshot.groupsDelivered == 2)
    }

    /// The tracker is a value: a copy answers and admits in its own cookie
    /// table (which is shared until one of them writes), never the other's.
    @Test func aCopiedTrackerKeepsItsOwnGroups() {
        var b = Bench()
        b.send(request(prgi: 1))
        var copy = b.tracker
        let cookie = b.sink.cookie(0)
        #expect(b.answer(PageResponse(code: .success, cookie: cookie)) == .completed(cookie: cookie))
        #expect(b.tracker.outstandingGroups == 0)
        #expect(copy.outstandingGroups == 1)
        var out: [DeviceCompletion] = []
        let verdict = copy.respond(.success(PageResponse(code: .success, cookie: cookie)), channel: b.channel,
                                   abi: .v2) { out.append($0) }
        #expect(verdict == .completed(cookie: cookie))
        #expect(out.count == 1)
        #expect(b.answer(PageResponse(code: .success, cookie: cookie)) == .rejected(.duplicate))
        copy.receive(request(prgi: 2), now: 0) { out.append($0) }
        #expect(copy.outstandingGroups == 1)
        #expect(b.tracker.outstandingGroups == 0)
        // Nor its per-PRG-index table: PRGI 2 is free in the original.
        b.send(request(prgi: 2))
        #expect(b.tracker.snapshot.prgiReused == 0)
        #expect(b.tracker.outstandingGroups == 1)
    }

    /// Deadlines fire in the order given, one each, after the deadline
    /// queue has wrapped and grown (it starts with room for 16).
    @Test func deadlinesFireInOrderAfterTheQueueWrapsAndGrows() {
        var policy = PageRequestPolicy()
        policy.timeoutNS = 1000
        var b = Bench(policy: policy, entries: 64)
        for prgi in UInt32(0)..<10 { b.send(request(prgi: prgi), at: UInt64(prgi)) }
        b.tick(1009)  // the first 10 time out: the queue's head has moved on
        #expect(b.completions.map(\.prgi) == Array(0..<10))
        _ = b.sink.sizes  // read them, freeing the ring
        for prgi in UInt32(10)..<50 { b.send(request(prgi: prgi), at: 100 + UInt64(prgi)) }
        #expect(b.tracker.outstandingGroups == 40)
        b.answer(PageResponse(code: .success, cookie: b.sink.cookie(30)))  // prgi 30, answered in time
        for t in UInt64(1110)..<1150 { b.tick(t) }
        let timedOut = b.completions.filter { $0.source == .automatic(.timeout) }.map(\.prgi)
        #expect(timedOut == Array(0..<30) + Array(31..<50))
        #expect(b.completions.count == 50)
        #expect(b.tracker.outstandingGroups == 0)
    }

    /// Without a closure, answers wait in `answers`, in the order given,
    /// until taken; taking them leaves none behind, and the closure
    /// variants hand over exactly what they gave.
    @Test func answersWaitUntilTakenAndAreTakenOnce() {
        var policy = PageRequestPolicy()
        policy.timeoutNS = 100
        var b = Bench(policy: policy, entries: 2)
        b.tracker.receive(request(prgi: 1, device: 9), now: 0)  // unknown device: no consumer
        b.tracker.receive(request(prgi: 2), now: 0)  // delivered, times out at 100
        b.tracker.receive(batch: [request(prgi: 3, last: false), request(prgi: 3, last: false), request(prgi: 3)],
                          now: 0)  // does not fit: overflow
        #expect(b.tracker.answers.map(\.source) == [.automatic(.noConsumer), .automatic(.overflow)])
        var taken: [DeviceCompletion] = []
        b.tracker.takeAnswers(into: &taken)
        #expect(taken.map(\.prgi) == [1, 3])
        #expect(b.tracker.answers.isEmpty)
        b.tick(100)  // the closure variant: the timeout, once
        #expect(b.completions.map(\.prgi) == [2])
        #expect(b.completions[0].source == .automatic(.timeout))
        #expect(b.tracker.answers.isEmpty)
        b.tick(200)
        #expect(b.completions.count == 1)
    }

    @Test func detachRemovalAndShutdownEachAnswerTheirGroups() {
        var b = Bench()
        let otherSink = try! QueueChannel()
        let other = b.tracker.addChannel(otherSink.sink)
        b.tracker.addDevice(2, allocation: 64, channel: other)
        b.send(request(prgi: 1))
        b.send(request(prgi: 2, device: 2))
        b.send(request(prgi: 3, device: 2))
        var out: [DeviceCompletion] = []
        b.tracker.removeChannel(b.channel) { out.append($0) }
        #expect(out.map(\.source) == [.automatic(.detach)])
        #expect(out.map(\.deviceID) == [1])
        out = []
        b.tracker.removeDevice(2) { out.append($0) }
        #expect(out.count == 2)
        #expect(out.allSatisfy { $0.source == .automatic(.deviceRemoved) && $0.code == .invalid })
        b.tracker.addDevice(3, allocation: 8, channel: other)
        b.send(request(prgi: 4, device: 3))
        out = []
        b.tracker.shutdown { out.append($0) }
        #expect(out.map(\.source) == [.automatic(.shutdown)])
        out = []
        b.tracker.shutdown { out.append($0) }
        #expect(out.isEmpty)  // nothing is answered twice
    }

    @Test func everyRejectionReasonIsDistinctAndCounted() {
        var b = Bench()
        let otherSink = try! QueueChannel()
        let other = b.tracker.addChannel(otherSink.sink)
        b.tracker.addDevice(2, allocation: 64, channel: other)
        b.send(request(prgi: 1))  // needs PASID 5
        b.send(request(prgi: 2, device: 2))
        let mine = b.sink.cookie(0)
        let theirs = otherSink.cookie(0)
        #expect(b.answer(PageResponse(code: .success, cookie: 0)) == .rejected(.unknown))
        #expect(b.answer(PageResponse(code: .success, cookie: 0x7FFF_0000_0000_0003)) == .rejected(.unknown))
        #expect(b.answer(PageResponse(code: .success, cookie: theirs, pasid: 5)) == .rejected(.foreignDevice))
        #expect(b.answer(PageResponse(code: .success, cookie: mine, pasid: 6)) == .rejected(.mismatch))  // wrong PASID
        #expect(b.answer(PageResponse(code: .success, cookie: mine, pasid: 5, prgi: 9)) == .rejected(.mismatch))
        var malformed: [DeviceCompletion] = []
        let bad = b.tracker.respond(.failure(ResponseRejection(.badCode, field: "code", value: 9)), channel: b.channel,
                                    abi: .v2) { malformed.append($0) }
        #expect(bad == .rejected(.malformed))
        #expect(b.completions.isEmpty && malformed.isEmpty)  // none of these completed anything
        // The cookie alone suffices in ABI 2, even for a NEEDS_PASID group (as in iommufd).
        #expect(b.answer(PageResponse(code: .success, cookie: mine)) == .completed(cookie: mine))
        #expect(b.completions.last?.pasid == 5)  // the device still gets its PASID back
        #expect(b.answer(PageResponse(code: .success, cookie: mine, pasid: 5)) == .rejected(.duplicate))
        let counters = b.tracker.snapshot
        for (reason, count) in [(ResponseRejectionReason.unknown, 2), (.foreignDevice, 1), (.mismatch, 2), (.malformed, 1),
                                (.duplicate, 1)] {
            #expect(counters.rejected(reason) == UInt64(count), "\(reason)")
        }
    }

    @Test func aCookieBecomesStaleOnceItsSlotIsReused() {
        var policy = PageRequestPolicy()
        policy.maxOutstandingGroups = 4
        var b = Bench(policy: policy)
        b.send(request(prgi: 0))
        let first = b.sink.cookie(0)
        b.answer(PageResponse(code: .success, cookie: first, pasid: 5))
        for n in 1...4 {  // FIFO reuse: four more groups bring slot 0 round again
            b.send(request(prgi: UInt32(n)))
            b.answer(PageResponse(code: .success, cookie: b.sink.cookie(n), pasid: 5))
        }
        #expect(b.answer(PageResponse(code: .success, cookie: first, pasid: 5)) == .rejected(.stale))
    }

    @Test func fullTableAnswersAtOnce() {
        var policy = PageRequestPolicy()
        policy.maxOutstandingGroups = 2
        var b = Bench(policy: policy)
        for n in 0..<3 { b.send(request(prgi: UInt32(n))) }
        #expect(b.sink.sizes.count == 2)
        #expect(b.completions.map(\.source) == [.automatic(.tableFull)])
    }

    @Test func groupsWaitForNegotiationAndStillTimeOut() {
        var policy = PageRequestPolicy()
        policy.timeoutNS = 100
        var b = Bench(policy: policy, negotiated: false)
        b.send(request(prgi: 1), at: 0)
        b.send(request(prgi: 2), at: 10)
        // A waiting group is live: its cookie is returned (a source maps its own ids to it).
        let waiting = b.tracker.receive(request(prgi: 3), now: 20) { _ in Issue.record("answered at once") }
        #expect(waiting != nil)
        #expect(b.sink.producer.status.faultProducerIndex == 0)  // nothing written before negotiation
        b.sink.negotiate()
        b.tick(50)
        b.sink.read()
        #expect(b.sink.groups.map { $0[0].prgi } == [1, 2, 3])  // delivered in order once negotiated
        #expect(b.sink.groups.last?.last?.cookie == waiting)
        var c = Bench(policy: policy, negotiated: false)
        c.send(request(prgi: 1), at: 0)
        c.tick(100)
        #expect(c.completions.map(\.source) == [.automatic(.timeout)])
        c.sink.negotiate()
        c.tick(101)
        #expect(c.sink.sizes.isEmpty)  // a timed-out group is never delivered
    }

    @Test func unknownOrUnattachedDevicesAreAnsweredInvalid() {
        var b = Bench()
        b.send(request(prgi: 1, device: 99))
        #expect(b.completions.map(\.source) == [.automatic(.noConsumer)])
        #expect(b.tracker.snapshot.unknownDevice == 1)
        b.tracker.attach(1, to: nil)
        b.send(request(prgi: 2))
        #expect(b.completions.count == 2)
    }
}
