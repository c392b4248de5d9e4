import FaultABI
import PageRequests
import Testing

@Suite struct MisbehavingDeviceTests {
    @Test func reusedPRGIIsCountedAndBothGroupsAreAnswered() {
        var b = Bench()
        b.send(request(prgi: 7))
        b.send(request(prgi: 7))  // still outstanding: misbehaving
        #expect(b.tracker.snapshot.prgiReused == 1)
        #expect(b.sink.sizes.count == 2)
        b.answer(PageResponse(code: .success, cookie: b.sink.cookie(1), pasid: 5))
        b.answer(PageResponse(code: .success, cookie: b.sink.cookie(0), pasid: 5))
        #expect(b.completions.count == 2)
    }

    @Test func exceedingTheAllocationIsCountedNotFatal() {
        var b = Bench(allocation: 2)
        for n in 0..<4 { b.send(request(prgi: UInt32(n))) }
        #expect(b.tracker.snapshot.allocationExceeded == 2)
        #expect(b.sink.sizes.count == 4)
    }

    @Test func neverClosedPartialsAreCappedAndDiscarded() {
        var policy = PageRequestPolicy()
        policy.maxPartialRequestsPerDevice = 8
        var b = Bench(policy: policy, allocation: 1000)
        for n in 0..<9 { b.send(request(prgi: UInt32(n), last: false)) }
        let counters = b.tracker.snapshot
        #expect(counters.partialsDiscarded == 9)
        #expect(b.completions.isEmpty)  // partial groups are owed no response
        b.send(request(prgi: 0))  // the device carries on: a fresh one-page group
        #expect(b.sink.sizes == [1])
    }
}
