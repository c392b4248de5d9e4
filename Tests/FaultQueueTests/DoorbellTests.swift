import FaultABI
import FaultQueue
import Foundation
import Testing

@Suite struct DoorbellTests {
    /// Steady traffic to an awake consumer makes no system call per record:
    /// the producer rings only when the consumer said it sleeps.
    @Test func noDoorbellWhileTheConsumerIsAwake() throws {
        let pair = try QueuePair(entries: 64)
        for n in 0..<10_000 {
            _ = pair.producer.publish(unrecoverable(n))
            if n % 32 == 31 { _ = try pair.drain() }
        }
        #expect(pair.producer.countersSnapshot.doorbellsRung == 0)
        #expect(pair.producer.countersSnapshot.recordsPublished == 10_000)
    }

    /// A sleeping consumer is woken by the `flush` after a publish, and a
    /// flush rings at most once whatever came before it: 2000 records in
    /// batches of 10 cost at most 200 doorbells, however the two threads are
    /// scheduled.
    /// Bounded: the producer gives a full ring a fixed number of retries,
    /// then closes, which also wakes the consumer; a lost wake-up shows as a
    /// short count, not a hang.
    @Test func sleepingConsumerIsWoken() throws {
        let pair = try QueuePair(entries: 64, abi: .v1)  // v1: no LOST records to count
        let consumer = pair.consumer
        let total = 2_000
        let batch = 10
        let received = Counter()
        let thread = Thread {
            var seen = 0
            while seen < total && consumer.waitForRecords(spins: 0, timeoutMilliseconds: 10_000) {
                if let n = try? consumer.peek().count {
                    consumer.release(n)
                    seen += n
                }
            }
            received.set(seen)
        }
        thread.start()
        var published = 0
        var commits = 0
        var retries = 0
        while published < total && retries < 100_000 {
            guard pair.producer.hasRoom(for: batch) else {
                retries += 1
                usleep(50)
                continue
            }
            let written = pair.producer.publish(batch: (published..<(published + batch)).map(unrecoverable))
            #expect(written == batch)
            published += written
            pair.producer.flush()
            commits += 1
            if published % 100 == 0 { usleep(500) }  // let the consumer fall asleep now and then
        }
        thread.join()
        pair.producer.close()
        #expect(published == total)
        #expect(received.value == total)
        let rung = pair.producer.countersSnapshot.doorbellsRung
        #expect(rung > 0)  // it did sleep, and was woken
        #expect(rung <= UInt64(commits))  // never more than one doorbell per flush
        #expect(commits == total / batch)
    }

    /// A publish never rings: the wake-up check is `flush`'s, once per run
    /// of publishes (and `poll` and `prepareToSleep` flush). Deterministic:
    /// the consumer is seen asleep before anything is published, and the
    /// doorbell counter, not a clock, says who rang.
    @Test func publishDefersTheWakeUpToFlush() throws {
        let pair = try QueuePair(entries: 64)
        let consumer = pair.consumer
        let got = Counter()
        let thread = Thread { got.set(consumer.waitForRecords(spins: 0, timeoutMilliseconds: 60_000) ? 1 : 0) }
        thread.start()
        while pair.producer.status.consumerSleeping != true { usleep(100) }
        for n in 0..<5 { #expect(pair.producer.publish(unrecoverable(n)) == .published) }
        pair.producer.publish(batch: (5..<10).map(unrecoverable))
        #expect(pair.producer.countersSnapshot.doorbellsRung == 0)
        pair.producer.flush()
        thread.join()
        #expect(got.value == 1)
        #expect(pair.producer.countersSnapshot.doorbellsRung == 1)
        pair.producer.flush()  // nothing new: no second ring, no fence
        #expect(pair.producer.countersSnapshot.doorbellsRung == 1)
        #expect(try consumer.peek().count == 10)
    }

    /// The producer side of the protocol: a response wakes a sleeping producer.
    @Test func sleepingProducerIsWokenByAResponse() throws {
        let pair = try QueuePair(entries: 8)
        let producer = pair.producer
        let woke = Counter()
        let thread = Thread {
            woke.set(producer.waitForConsumer(timeoutMilliseconds: 10_000) ? 1 : 0)
        }
        thread.start()
        usleep(20_000)
        #expect(pair.consumer.respond(PageResponse(code: .success, cookie: 5)))
        thread.join()
        #expect(woke.value == 1)
    }

    @Test func closingWakesTheConsumer() throws {
        let pair = try QueuePair(entries: 8)
        let consumer = pair.consumer
        let thread = Thread { _ = consumer.waitForRecords(spins: 0, timeoutMilliseconds: 10_000) }
        thread.start()
        usleep(20_000)
        pair.producer.close()
        thread.join()
        #expect(consumer.isClosed)
    }
}

/// An integer shared with a test thread.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = 0
    var value: Int { lock.withLock { stored } }
    func set(_ v: Int) { lock.withLock { stored = v } }
}
