import FaultABI
import FaultQueue
import Testing

/// The books of Docs/ABI.md section 7, checked counter by counter against
/// what a consumer actually received from an overflowing ring.
@Suite struct BooksTests {
    @Test func everyCounterMatchesTheDocumentedEquations() throws {
        let pair = try QueuePair(entries: 16)
        var rng = SystemRandomNumberGenerator()
        var received: [DecodedRecord] = []
        var overflowedGroups: UInt64 = 0
        var prgi: UInt32 = 0
        for round in 0..<400 {
            // Faults arrive faster than the consumer reads: the ring overflows often.
            for n in 0..<Int.random(in: 0...12, using: &rng) { _ = pair.producer.publish(unrecoverable(round * 16 + n)) }
            if round % 3 == 0 {
                prgi = (prgi + 1) & 0x1FF
                let group = [pageRequest(prgi: prgi, last: false), pageRequest(prgi: prgi, last: true)]
                if pair.producer.publishGroup(group) == .noRoom { overflowedGroups += 1 }
            }
            if Bool.random(using: &rng) { received += try pair.drain() }
            pair.producer.poll()
        }
        received += try pair.drain()
        pair.producer.close()  // owes its last LOST record now, if a slot is free
        received += try pair.drain()
        let c = pair.producer.countersSnapshot
        let lostRecords = received.compactMap { if case .lost(let l) = $0 { return l } else { return nil } }
        let data = UInt64(received.count - lostRecords.count)
        let reported = lostRecords.reduce(0) { $0 + $1.lostRecords }
        #expect(c.recordsLost > 0 && overflowedGroups > 0, "the run must overflow both ways")
        // records_published counts every record written, LOST records included.
        #expect(c.recordsPublished == data + UInt64(lostRecords.count))
        // Every dropped record is reported by a LOST record (the last one at close).
        #expect(reported == c.recordsLost)
        #expect(lostRecords.last?.totalLost == c.recordsLost)
        // Sequence numbers: one per record written or dropped; overflowed groups take none.
        let next = received.last.flatMap { record -> UInt64? in record.sequence.map { UInt64($0) + 1 } }
        #expect(next == c.recordsPublished + c.recordsLost)
        #expect(c.groupsOverflowed == overflowedGroups)
        // Every sequence step is +1, or +1 + lost_records at a LOST record.
        var expected: UInt32 = 0
        for record in received {
            if case .lost(let l) = record { expected &+= UInt32(l.lostRecords) }
            #expect(record.sequence == expected)
            expected &+= 1
        }
    }
}
