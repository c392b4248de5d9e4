import CFaultRingABI
import FaultABI
import FaultQueue
import Testing

@Suite struct NegotiationTests {
    @Test func nothingIsWrittenBeforeNegotiation() throws {
        let pair = try QueuePair(abi: nil)
        #expect(pair.producer.publish(unrecoverable(1)) == .notNegotiated)
        #expect(pair.producer.publishGroup([pageRequest(prgi: 1)]) == .notNegotiated)
        #expect(pair.producer.status.faultProducerIndex == 0)
        #expect(pair.producer.countersSnapshot.publishRefused == 2)
        #expect(pair.producer.status.state == "starting")
        #expect(pair.consumer.abi == nil)
        #expect(throws: FaultQueueError.self) { try pair.consumer.peek() }
    }

    @Test(arguments: [ABIVersion.v1, .v2])
    func consumerRequestIsPutInForce(abi: ABIVersion) throws {
        let pair = try QueuePair(abi: nil)
        try pair.consumer.requestABI(abi)
        #expect(pair.producer.consumerHasWork)
        pair.producer.poll()
        #expect(pair.producer.abi == abi)
        #expect(pair.consumer.abi == abi)
        #expect(pair.producer.status.state == "running")
        #expect(pair.producer.publish(unrecoverable(1)) == .published)
    }

    @Test func secondDifferentRequestIsIgnoredAndCounted() throws {
        let pair = try QueuePair(abi: .v2)
        // The library refuses; a hostile consumer writes the word anyway.
        #expect(throws: FaultQueueError.self) { try pair.consumer.requestABI(.v1) }
        poke(pair.consumer, 0, 1)
        pair.producer.poll()
        pair.producer.poll()  // counted once per new value, not per poll
        #expect(pair.producer.abi == .v2)
        #expect(pair.producer.countersSnapshot.renegotiations == 1)
        #expect(pair.producer.publish(unrecoverable(1)) == .published)
        #expect(try pair.drain().count == 1)
    }

    @Test func outOfRangeRequestIsCountedAndAValidOneStillWorks() throws {
        let pair = try QueuePair(abi: nil)
        poke(pair.consumer, 0, 7)
        pair.producer.poll()
        #expect(pair.producer.abi == nil)
        #expect(pair.producer.countersSnapshot.badABIRequests == 1)
        poke(pair.consumer, 0, 1)
        pair.producer.poll()
        #expect(pair.producer.abi == .v1)
    }

    @Test func unknownFeatureBitsAreCountedAndNotGranted() throws {
        let pair = try QueuePair(abi: nil)
        try pair.consumer.requestABI(.v2, features: 0x8000)
        pair.producer.poll()
        #expect(pair.producer.abi == .v2)
        #expect(pair.producer.status.featuresInForce == 0)
        #expect(pair.producer.countersSnapshot.badFeatureRequests == 1)
    }

    @Test func negotiateWaitsForTheProducerOnAnotherThread() throws {
        let pair = try QueuePair(abi: nil)
        let producer = pair.producer
        let thread = Thread { () -> Void in
            _ = producer.waitForConsumer(timeoutMilliseconds: 5000)
            producer.poll()
        }
        thread.start()
        #expect(try pair.consumer.negotiate(.v1, timeoutMilliseconds: 10_000) == .v1)
        thread.join()
    }
}
