import CFaultRingABI
import FaultABI
@_spi(Benchmarks) import FaultQueue
import Testing

@Suite struct RecordFlowTests {
    @Test(arguments: [ABIVersion.v1, .v2])
    func recordsArriveInOrderOverManyLaps(abi: ABIVersion) throws {
        let pair = try QueuePair(entries: 16, abi: abi)
        var expected = 0
        for lap in 0..<100 {
            let events = (0..<(lap % 16 + 1)).map { unrecoverable(lap * 100 + $0) }
            #expect(pair.producer.publish(batch: events) == events.count)
            for (n, record) in try pair.drain().enumerated() {
                guard case .event(.unrecoverable(let fault), let sequence) = record else {
                    Issue.record("unexpected \(record)")
                    continue
                }
                #expect(fault.address == UInt64(lap * 100 + n) << 12)
                if abi == .v2 { #expect(sequence == UInt32(expected)) }
                expected += 1
            }
        }
        let counters = pair.producer.countersSnapshot
        #expect(counters.recordsPublished == UInt64(expected))
        #expect(counters.recordsLost == 0)
    }

    /// Batches longer than the producer's staging buffer (64 records) go
    /// through it in chunks; each chunk's copy may wrap the ring.
    @Test(arguments: [ABIVersion.v1, .v2])
    func batchesLongerThanTheStagingBufferArriveWhole(abi: ABIVersion) throws {
        let pair = try QueuePair(entries: 256, abi: abi)
        var expected = 0
        for lap in 0..<12 {
            let events = (0..<(150 + lap * 7)).map { unrecoverable(lap * 1000 + $0) }
            #expect(pair.producer.publish(batch: events) == events.count)
            var n = 0
            for record in try pair.drain() {
                guard case .event(.unrecoverable(let fault), let sequence) = record else {
                    Issue.record("unexpected \(record)")
                    continue
                }
                #expect(fault.address == UInt64(lap * 1000 + n) << 12)
                if abi == .v2 { #expect(sequence == UInt32(expected)) }
                n += 1
                expected += 1
            }
            #expect(n == events.count)
        }
        #expect(pair.producer.countersSnapshot.recordsLost == 0)
    }

    @Test func batchViewIsZeroCopyAndWrapsAround() throws {
        let pair = try QueuePair(entries: 8)
        for n in 0..<6 { _ = pair.producer.publish(unrecoverable(n)) }
        _ = try pair.drain()
        for n in 6..<14 { _ = pair.producer.publish(unrecoverable(n)) }  // slots 6,7,0..5
        let batch = try pair.consumer.peek()
        #expect(batch.count == 8)
        let wrapOffset: Int = -6 * 64  // record 2 sits in slot 0, record 0 in slot 6
        #expect(batch[2] == batch[0].advanced(by: wrapOffset))
        let addresses = try batch.indices.map { i -> UInt64 in
            guard case .event(.unrecoverable(let f), _) = try batch.decode(i) else { return 0 }
            return f.address! >> 12
        }
        #expect(addresses == Array(6..<14).map(UInt64.init))
        pair.consumer.release(batch.count)
    }

    @Test func groupsAreAllOrNothing() throws {
        let pair = try QueuePair(entries: 8)
        let group = (0..<5).map { pageRequest(prgi: 3, last: $0 == 4, cookie: 77) }
        #expect(pair.producer.publishGroup(group) == .published)
        #expect(pair.producer.publishGroup(group) == .noRoom)  // 3 free, 5 needed
        #expect(pair.producer.countersSnapshot.groupsOverflowed == 1)
        #expect(pair.producer.status.faultProducerIndex == 5)  // nothing partial
        #expect(pair.producer.publishGroup(Array(group.prefix(3))) == .published)
        let records = try pair.drain()
        #expect(records.count == 8)
        #expect(pair.producer.publishGroup((0..<9).map { _ in pageRequest(prgi: 1) }) == .noRoom)  // larger than the ring
    }

    /// `publishGroups` writes a run that fits as one batch, and one that
    /// does not group by group: each group whole or `.noRoom`, never split,
    /// and a LOST record owed goes first. The addresses say which group and
    /// page each record is.
    @Test(arguments: [ABIVersion.v1, .v2])
    func groupRunsArriveWholeWhetherTheRunFitsOrNot(abi: ABIVersion) throws {
        let pair = try QueuePair(entries: 16, abi: abi)
        func run(_ sizes: [Int], tag: Int) -> [FaultProducer.GroupOutcome] {
            var requests: [PageRequest] = []
            for (g, size) in sizes.enumerated() {
                for page in 0..<size {
                    requests.append(PageRequest(deviceID: 1, pasid: 4, prgi: UInt32(g), address: UInt64(tag * 100 + g * 10 + page) << 12,
                                                isLastPage: page == size - 1, cookie: UInt64(tag * 100 + g)))
                }
            }
            var outcomes: [FaultProducer.GroupOutcome] = []
            pair.producer.publishGroups(requests, sizes: sizes) { outcomes.append($0) }
            return outcomes
        }
        func pages() throws -> [UInt64] {
            try pair.drain().compactMap { record in
                guard case .event(.pageRequest(let request), _) = record else { return nil }
                return request.address >> 12
            }
        }
        // 8 records into 16 free slots: the run fits, as one batch.
        #expect(run([3, 1, 4], tag: 1) == [.published, .published, .published])
        #expect(pair.producer.status.faultProducerIndex == 8)
        // 11 records into the 8 left: group by group, the 4-page one overflows, the 2-page one after it fits.
        #expect(run([5, 4, 2], tag: 2) == [.published, .noRoom, .published])
        #expect(pair.producer.countersSnapshot.groupsOverflowed == 1)
        #expect(try pages() == [100, 101, 102, 110, 120, 121, 122, 123, 200, 201, 202, 203, 204, 220, 221])
        if abi == .v2 {
            // A LOST record owed: the run goes group by group, behind it.
            #expect(pair.producer.publish(batch: (0..<17).map(unrecoverable)) == 16)
            _ = try pair.drain()
            #expect(run([2, 1], tag: 3) == [.published, .published])
            let records = try pair.drain()
            guard case .lost(let lost) = records.first else {
                Issue.record("expected a LOST record first, got \(String(describing: records.first))")
                return
            }
            #expect(lost.lostRecords == 1)
            #expect(records.count == 4)
        }
    }

    @Test func responsesFlowBackAndSlotsAreReused() throws {
        let pair = try QueuePair(entries: 8, responses: 4)
        var received: [PageResponse] = []
        for round in 0..<10 {
            let responses = (0..<4).map { PageResponse(code: .success, cookie: UInt64(round * 4 + $0)) }
            #expect(pair.consumer.respond(batch: responses) == 4)
            #expect(!pair.consumer.respond(PageResponse(code: .invalid, cookie: 999)))  // full
            let n = pair.producer.readResponses { result in
                if case .success(let r) = result { received.append(r) }
            }
            #expect(n == 4)
        }
        #expect(received.map(\.cookie) == (0..<40).map(UInt64.init))
        #expect(pair.producer.countersSnapshot.responsesValid == 40)
    }
}

@Suite struct EncodedPublishTests {
    /// Pre-encoded records go in as they are, with ABI 2 sequence numbers
    /// stamped by the producer, and overflow is counted like any other.
    @Test func encodedRecordsAreStampedAndOverflowIsCounted() throws {
        let pair = try QueuePair(entries: 8)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 12 * 64, alignment: 64)
        defer { buffer.deallocate() }
        for n in 0..<12 {
            var record = unrecoverable(n).v2Record(sequence: 0xDEAD)  // the producer overwrites the sequence
            withUnsafeBytes(of: &record) { (buffer.baseAddress! + n * 64).copyMemory(from: $0.baseAddress!, byteCount: 64) }
        }
        #expect(pair.producer.publish(encoded: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(6 * 64)])) == 6)
        #expect(pair.producer.publish(encoded: UnsafeMutableRawBufferPointer(rebasing: buffer[(6 * 64)...])) == 2)  // 2 fit, 4 lost
        var records = try pair.drain()
        pair.producer.poll()  // the LOST record goes out
        records += try pair.drain()
        let expected: [UInt32?] = [0, 1, 2, 3, 4, 5, 6, 7, 12]
        #expect(records.map(\.sequence) == expected)
        guard case .event(.unrecoverable(let f), _) = records[7], case .lost(let lost) = records[8] else {
            Issue.record("unexpected records \(records)")
            return
        }
        #expect(f.address == 7 << 12)
        #expect(lost.lostRecords == 4 && lost.firstLostSequence == 8)
        #expect(pair.producer.countersSnapshot.recordsLost == 4)
    }
}
