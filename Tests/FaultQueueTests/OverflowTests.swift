import CFaultRingABI
import FaultABI
import FaultQueue
import Testing

/// The producer never waits: a full ring drops and counts, and what was
/// published always equals what was delivered plus what was counted lost.
@Suite struct OverflowTests {
    @Test func v2LostRecordAndSequenceGapAccountForEveryDrop() throws {
        let pair = try QueuePair(entries: 8)
        var outcomes: [FaultProducer.PublishOutcome] = []
        for n in 0..<20 { outcomes.append(pair.producer.publish(unrecoverable(n))) }
        #expect(outcomes.filter { $0 == .published }.count == 8)
        #expect(outcomes.filter { $0 == .dropped }.count == 12)
        #expect(pair.producer.status.counters.recordsLost == 12)

        var delivered = try pair.drain()
        #expect(delivered.count == 8)
        pair.producer.poll()  // a slot freed: the LOST record goes out now
        for n in 20..<23 { _ = pair.producer.publish(unrecoverable(n)) }
        delivered += try pair.drain()

        let lost = delivered.compactMap { record -> LostRecord? in
            if case .lost(let l) = record { return l }
            return nil
        }
        #expect(lost.count == 1)
        #expect(lost.first?.lostRecords == 12)
        #expect(lost.first?.firstLostSequence == 8)
        #expect(lost.first?.totalLost == 12)
        // Sequences: 0..7, then LOST at 20 (8..19 dropped), then 21..23.
        let expectedSequences: [UInt32?] = [0, 1, 2, 3, 4, 5, 6, 7, 20, 21, 22, 23]
        #expect(delivered.map(\.sequence) == expectedSequences)
        let events = delivered.count - lost.count
        #expect(23 == events + Int(lost.reduce(0) { $0 + $1.lostRecords }))
    }

    @Test func lostRecordWaitsForAFreeSlotBeforeTheNextRecord() throws {
        let pair = try QueuePair(entries: 4)
        for n in 0..<6 { _ = pair.producer.publish(unrecoverable(n)) }  // 4 in, 2 lost
        pair.consumer.release(1)  // one slot frees
        #expect(pair.producer.publish(unrecoverable(6)) == .dropped)  // the LOST record takes it
        let records = try pair.drain()
        guard case .lost(let lost) = records.last else {
            Issue.record("last record is not LOST: \(records)")
            return
        }
        // The LOST record went out as soon as a slot freed, and counts the
        // record that the slot could not also hold.
        #expect(lost.lostRecords == 2)
        #expect(pair.producer.countersSnapshot.recordsLost == 3)
        pair.producer.poll()
        guard case .lost(let second) = try pair.drain().first else {
            Issue.record("no second LOST record")
            return
        }
        #expect(second.lostRecords == 1)
        #expect(second.totalLost == 3)
    }

    @Test func v1CountsDropsInTheHeader() throws {
        let pair = try QueuePair(entries: 4, abi: .v1)
        for n in 0..<10 { _ = pair.producer.publish(unrecoverable(n)) }
        #expect(try pair.drain().count == 4)
        pair.producer.poll()
        #expect(try pair.drain().isEmpty)  // no LOST records in ABI 1
        #expect(pair.consumer.status.counters.recordsLost == 6)
        #expect(pair.consumer.status.counters.recordsPublished == 4)
    }

    @Test func randomStormKeepsTheBooksBalanced() throws {
        let pair = try QueuePair(entries: 64)
        var generator = SplitMix(seed: 42)
        var attempted = 0
        var events = 0
        var lostReported: UInt64 = 0
        var lastSequence: UInt32?
        for _ in 0..<2000 {
            let burst = Int(generator.next() % 40)
            attempted += burst
            pair.producer.publish(batch: (0..<burst).map { unrecoverable($0) })
            let take = Int(generator.next() % 50)
            let batch = try pair.consumer.peek(max: take)
            for i in batch.indices {
                let record = try batch.decode(i)
                // Consecutive sequence numbers, except where a LOST record
                // stands for the gap it explains.
                if let last = lastSequence, let sequence = record.sequence {
                    var expected = last &+ 1
                    if case .lost(let lost) = record { expected = expected &+ UInt32(lost.lostRecords) }
                    #expect(sequence == expected)
                }
                lastSequence = record.sequence
                if case .lost(let lost) = record { lostReported += lost.lostRecords } else { events += 1 }
            }
            pair.consumer.release(batch.count)
            pair.producer.poll()
        }
        for _ in 0..<3 {
            for record in try pair.drain() {
                if case .lost(let lost) = record { lostReported += lost.lostRecords } else { events += 1 }
            }
            pair.producer.poll()
        }
        let counters = pair.producer.countersSnapshot
        #expect(counters.recordsLost > 0)
        #expect(UInt64(attempted) == UInt64(events) + counters.recordsLost)
        #expect(lostReported == counters.recordsLost)
    }
}

/// A small deterministic generator, so storms repeat exactly.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
