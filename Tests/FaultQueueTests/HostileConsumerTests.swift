import FaultSys
import CFaultRingSys
import CFaultRingABI
import FaultABI
@_spi(Testing) import FaultQueue
import Glibc
import SystemPackage
import Testing

/// Everything a consumer writes is hostile input. Each test writes one kind
/// of bad value into a live queue, checks it is counted under its own
/// reason, and checks the producer keeps working afterwards.
@Suite struct HostileConsumerTests {
    static let faultCons = MemoryLayout<faultring_consumer_header>.offset(of: \.fault_cons)!
    static let respProd = MemoryLayout<faultring_consumer_header>.offset(of: \.resp_prod)!

    /// The producer still delivers (after any LOST record it owes).
    static func stillWorks(_ pair: QueuePair) throws {
        let before = pair.producer.countersSnapshot.recordsPublished
        #expect(pair.producer.publish(unrecoverable(1)) == .published)
        #expect(pair.producer.countersSnapshot.recordsPublished > before)
        let last = try pair.drain().last
        guard case .event(.unrecoverable(let fault), _) = last else {
            Issue.record("last record is \(String(describing: last))")
            return
        }
        #expect(fault.address == 1 << 12)
    }

    @Test func consumerIndexMovingBackwardsIsIgnored() throws {
        let pair = try QueuePair(entries: 8)
        pair.producer.publish(batch: (0..<6).map(unrecoverable))
        pair.consumer.release(4)
        pair.producer.publish(batch: (0..<6).map(unrecoverable))  // 2 + 6 = 8 in flight: full
        poke(pair.consumer, Self.faultCons, 1)  // backwards from 4
        #expect(pair.producer.publish(unrecoverable(9)) == .dropped)  // still full: the bad index freed nothing
        #expect(pair.producer.countersSnapshot.badConsumerIndex == 1)
        poke(pair.consumer, Self.faultCons, 6)  // a legal advance is accepted again
        #expect(pair.producer.publish(unrecoverable(10)) == .published)
    }

    @Test func consumerIndexOvershootingIsIgnored() throws {
        let pair = try QueuePair(entries: 8)
        pair.producer.publish(batch: (0..<8).map(unrecoverable))
        poke(pair.consumer, Self.faultCons, 1000)  // beyond fault_prod
        #expect(pair.producer.publish(unrecoverable(9)) == .dropped)
        poke(pair.consumer, Self.faultCons, 0xFFFF_FFF0)  // "behind" by wrap-around
        #expect(pair.producer.publish(unrecoverable(9)) == .dropped)
        #expect(pair.producer.countersSnapshot.badConsumerIndex == 2)
        #expect(pair.producer.status.faultProducerIndex == 8)  // nothing written over unread records
        pair.consumer.release(8)  // the library's own, legal, advance
        try Self.stillWorks(pair)
    }

    @Test func responseIndexOvershootingIsIgnored() throws {
        let pair = try QueuePair(entries: 8, responses: 4)
        poke(pair.consumer, Self.respProd, 5)  // more than a ring ahead of resp_cons = 0
        var seen = 0
        #expect(pair.producer.readResponses { _ in seen += 1 } == 0)
        #expect(pair.producer.readResponses { _ in seen += 1 } == 0)
        #expect(seen == 0)
        #expect(pair.producer.countersSnapshot.badResponseIndex == 1)
        poke(pair.consumer, Self.respProd, 0xFFFF_FFFF)  // backwards
        #expect(pair.producer.readResponses { _ in seen += 1 } == 0)
        #expect(pair.producer.countersSnapshot.badResponseIndex == 2)
        poke(pair.consumer, Self.respProd, 0)
        try Self.stillWorks(pair)
    }

    /// One response slot per rejection reason, then a good one: each bad
    /// slot is counted under its reason and the good one is still accepted.
    @Test(arguments: [
        (ResponseRejection.Reason.badArgsz, 0, UInt32(8)),
        (.trailingNonZero, 0, UInt32(40)),  // argsz 40 with byte 40.. zero except we poke byte 36 below
        (.badVersion, 4, UInt32(1)),
        (.unknownFlags, 8, UInt32(0x10)),
        (.reservedNonZero, 24, UInt32(3)),  // pasid without PASID_VALID
        (.badCode, 12, UInt32(7)),
    ])
    func badResponseSlotIsCountedByReason(reason: ResponseRejection.Reason, offset: Int, value: UInt32) throws {
        let pair = try QueuePair(entries: 8, responses: 4)
        #expect(pair.consumer.respond(batch: [PageResponse(code: .success, cookie: 1), PageResponse(code: .success, cookie: 2)]) == 2)
        let slot0 = pair.consumer.unsafeConsumerRegion() + QueueGeometry.responseRingOffset
        slot0.storeBytes(of: value, toByteOffset: offset, as: UInt32.self)
        if reason == .trailingNonZero { slot0.storeBytes(of: UInt32(1), toByteOffset: 36, as: UInt32.self) }
        var results: [Result<PageResponse, ResponseRejection>] = []
        #expect(pair.producer.readResponses { results.append($0) } == 2)
        if case .failure(let rejection) = results[0] {
            #expect(rejection.reason == reason)
        } else {
            Issue.record("slot with \(reason) accepted")
        }
        #expect((try? results[1].get())?.cookie == 2)
        let counters = pair.producer.countersSnapshot
        #expect(counters.rejected(reason) == 1)
        #expect(counters.responsesRejectedTotal == 1)
        #expect(counters.responsesValid == 1)
        try Self.stillWorks(pair)
    }

    @Test func outOfRangeGrpidIsRejected() throws {
        let pair = try QueuePair(entries: 8, responses: 4, abi: .v1)
        #expect(pair.consumer.respond(PageResponse(code: .success, prgi: 0x3FF)))
        var reason: ResponseRejection.Reason?
        pair.producer.readResponses { if case .failure(let r) = $0 { reason = r.reason } }
        #expect(reason == .outOfRange)
        #expect(pair.producer.countersSnapshot.rejected(.outOfRange) == 1)
    }

    @Test func consumerCannotWriteTheProducerRegion() throws {
        let producer = try FaultProducer(geometry: QueueGeometry(entryCount: 8, responseCount: 8))
        let files = try producer.consumerFiles()
        let size = producer.geometry.producerRegionSize
        let writable = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, files.producerRegion.rawValue, 0)
        #expect(writable == MAP_FAILED)
        #expect(Glibc.errno == EACCES)
        let readable = mmap(nil, size, PROT_READ, MAP_SHARED, files.producerRegion.rawValue, 0)
        #expect(readable != MAP_FAILED)
        munmap(readable, size)
        // The fd itself is read-only: write(2) fails too.
        var byte: UInt8 = 1
        #expect(write(files.producerRegion.rawValue, &byte, 1) == -1)
    }

    @Test func regionsAreSealedAgainstResizing() throws {
        let producer = try FaultProducer(geometry: QueueGeometry(entryCount: 8, responseCount: 8))
        let files = try producer.consumerFiles()
        let seals = faultring_sys_get_seals(files.consumerRegion.rawValue)
        #expect(seals & faultring_sys_seal_shrink() != 0)
        #expect(seals & faultring_sys_seal_grow() != 0)
        #expect(seals & faultring_sys_seal_seal() != 0)
        #expect(ftruncate(files.consumerRegion.rawValue, 0) == -1)  // would SIGBUS the service
        #expect(Glibc.errno == EPERM)
    }

    @Test func consumerRejectsARegionThatIsNotAQueue() throws {
        let fd = try MappedRegion.createSealedMemfd(name: "not-a-queue", size: 8192)
        let other = try MappedRegion.createSealedMemfd(name: "not-a-queue-2", size: 8192)
        let files = QueueFiles(producerRegion: fd, consumerRegion: other, consumerDoorbell: try Sys.eventfd(),
                               producerDoorbell: try Sys.eventfd())
        do {
            _ = try FaultConsumer(files: files)
            Issue.record("zero-filled region accepted")
        } catch {
            #expect(error.code == .badRegion)
            #expect(error.detail.contains("magic"))
        }
    }
}
