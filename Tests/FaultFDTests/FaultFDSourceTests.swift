import CFaultRingABI
import FaultABI
import FaultFD
import FaultPipeline
import FaultQueue
import FaultSys
import Glibc
import IOMMUFormats
import PageRequests
import SystemPackage
import Testing

/// A pipeline with no source of its own, for sources added later.
final class NoDevices: FaultSource {
    var devices: [SourceDevice] { [] }
    func raise(now: UInt64, into intake: any FaultIntake) {}
    func complete(_ completion: DeviceCompletion) {}
}

/// The record reader on a real socket pair, the test playing the device
/// (or the kernel's side of the protocol), with a real queue and consumer.
final class Bench {
    let pipeline = Pipeline(source: NoDevices(), policy: PageRequestPolicy())
    let producer: FaultProducer
    let consumer: FaultConsumer
    let source: FaultFDSource
    let device: OwnedFD
    let channel: ChannelID
    var closedSeen = 0

    init(kind: FaultFDKind, devices: [UInt32] = [5]) throws {
        producer = try FaultProducer(geometry: QueueGeometry(entryCount: 64, responseCount: 64), name: "faultfd-test")
        consumer = try FaultConsumer(files: producer.consumerFiles())
        try consumer.requestABI(.v2)
        producer.poll()
        let pair = try Sys.seqpacketPair()
        let local = pair.local
        device = pair.remote
        source = try FaultFDSource(kind: kind, fd: local, devices: devices.map { SourceDevice(id: $0, allocation: 64) })
        #expect(pipeline.add(source))
        channel = pipeline.addQueue(producer)
        for id in devices { pipeline.attach(id, to: channel) }
        source.onClose = { [unowned self] _ in closedSeen += 1 }
    }

    func sendFromDevice(_ bytes: [UInt8]) {
        let n = bytes.withUnsafeBytes { send(device.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        #expect(n == bytes.count)
    }

    func readable() { pipeline.readable(source.descriptors.first ?? -1, of: source, now: Sys.monotonicNS) }

    /// The answers the device got: every 8-byte response waiting on its end.
    func answersAtDevice() -> [HWPTPageResponse] {
        var out: [HWPTPageResponse] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(device.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard n > 0 else { return out }
            buffer.withUnsafeBytes { b in
                for offset in stride(from: 0, to: n, by: 8) {
                    out.append(try! HWPTPageResponse(bytes: UnsafeRawBufferPointer(rebasing: b[offset..<(offset + 8)])))
                }
            }
        }
    }

    /// Reads the ring; answers every page-request group SUCCESS by cookie.
    func consumerAnswers() throws -> [DecodedRecord] {
        let batch = try consumer.peek()
        var records: [DecodedRecord] = []
        for i in batch.indices {
            let record = try batch.decode(i)
            records.append(record)
            if case .event(.pageRequest(let r), _) = record, r.isLastPage {
                #expect(consumer.respond(PageResponse(code: .success, cookie: r.cookie,
                                                      pasid: r.needsPASID ? r.pasid : nil, prgi: r.prgi)))
            }
        }
        consumer.release(batch.count)
        return records
    }
}

func request(_ prgi: UInt32, last: Bool, device: UInt32 = 5, pasid: UInt32? = 3) -> PageRequest {
    PageRequest(deviceID: device, pasid: pasid, prgi: prgi, permissions: [.read, .write], address: 0x1000 * UInt64(prgi + 1),
                isLastPage: last, needsPASID: pasid != nil)
}

@Suite struct FaultFDSourceTests {
    /// A group arrives whole; its answer goes back under the device's own
    /// cookie, not the service's; the service's cookie never leaks out.
    @Test func wholeGroupsAndTheirCookies() throws {
        let bench = try Bench(kind: .deviceFaults)
        bench.sendFromDevice(HWPTPageFault(request(7, last: false), cookie: 0xC0FFEE).bytes
                             + HWPTPageFault(request(7, last: true), cookie: 0xC0FFEE).bytes)
        bench.readable()
        let records = try bench.consumerAnswers()
        #expect(records.count == 2)
        guard case .event(.pageRequest(let last), _) = records[1] else { Issue.record("\(records)"); return }
        #expect(last.isLastPage && last.prgi == 7 && last.pasid == 3 && last.deviceID == 5)
        #expect(last.cookie != 0xC0FFEE)  // the service's own cookie travels in the ring
        bench.pipeline.readResponses(bench.channel)
        let answers = bench.answersAtDevice()
        #expect(answers == [HWPTPageResponse(cookie: 0xC0FFEE, code: .success)])
        let books = bench.source.bookkeeping
        #expect(books.groups == 1 && books.requests == 2 && books.answersWritten == 1)
        #expect(books.answersBySource == ["consumer": 1])
        #expect(bench.source.books().first?.outstanding == 0)
    }

    /// Several whole groups in one packet (as one kernel read returns them)
    /// are tracked and answered each under its own cookie; a stop marker
    /// among them is owed nothing and is not booked as a group.
    @Test func severalGroupsPerPacket() throws {
        let bench = try Bench(kind: .deviceFaults)
        let stop = PageRequest(deviceID: 5, pasid: 3, prgi: 0, permissions: [], address: 0, isLastPage: true)
        bench.sendFromDevice(HWPTPageFault(request(1, last: true), cookie: 11).bytes
                             + HWPTPageFault(stop, cookie: 99).bytes
                             + HWPTPageFault(request(2, last: false), cookie: 12).bytes
                             + HWPTPageFault(request(2, last: true), cookie: 12).bytes)
        bench.readable()
        #expect(bench.source.bookkeeping.groups == 2)
        _ = try bench.consumerAnswers()
        bench.pipeline.readResponses(bench.channel)
        #expect(Set(bench.answersAtDevice()) == [HWPTPageResponse(cookie: 11, code: .success),
                                                 HWPTPageResponse(cookie: 12, code: .success)])
        #expect(bench.source.books().first?.outstanding == 0)
    }

    /// Records that cannot be trusted still close their group: answered
    /// INVALID at once under their cookie, and counted by reason.
    @Test func foreignAndMalformedRecordsAreAnsweredInvalidAndCounted() throws {
        let bench = try Bench(kind: .deviceFaults)
        var bad = HWPTPageFault(request(9, last: true), cookie: 41).bytes
        bad[20] = 1  // __reserved
        bench.sendFromDevice(HWPTPageFault(request(8, last: true, device: 99), cookie: 40).bytes)
        bench.sendFromDevice(bad)
        bench.sendFromDevice([UInt8](repeating: 0, count: 17))  // not whole records
        bench.readable()
        bench.pipeline.flush()
        let answers = bench.answersAtDevice()
        #expect(Set(answers) == [HWPTPageResponse(cookie: 40, code: .invalid), HWPTPageResponse(cookie: 41, code: .invalid)])
        let books = bench.source.bookkeeping
        #expect(books.foreignDevice == 1)
        #expect(books.malformed == 2)
        #expect(try bench.consumerAnswers().isEmpty)  // nothing untrusted reached the guest
    }

    /// The device refuses an answer whose cookie it does not know (the
    /// kernel's EINVAL); the service counts it by errno.
    @Test func aRefusedCookieIsCounted() throws {
        let bench = try Bench(kind: .deviceFaults)
        bench.sendFromDevice(LittleEndian.bytes(UInt32(1234)) + LittleEndian.bytes(UInt32(bitPattern: EINVAL)))
        bench.readable()
        #expect(bench.source.bookkeeping.answersRefused == [Errno.invalidArgument.description: 1])
    }

    /// The device hangs up with a group outstanding: the source closes,
    /// its owner is told, and removing it answers the group INVALID
    /// (device removed) so the tracker's books balance.
    @Test func aHangUpClosesTheSourceAndItsGroupsAreAnswered() throws {
        let bench = try Bench(kind: .deviceFaults)
        bench.sendFromDevice(HWPTPageFault(request(3, last: true), cookie: 9).bytes)
        bench.readable()
        #expect(bench.pipeline.tracker.outstandingGroups == 1)
        shutdown(bench.device.rawValue, Int32(SHUT_RDWR))
        bench.readable()
        #expect(bench.closedSeen == 1)
        #expect(bench.source.isClosed)
        bench.pipeline.remove(bench.source)
        #expect(bench.pipeline.tracker.outstandingGroups == 0)
        #expect(bench.pipeline.tracker.snapshot.auto(.deviceRemoved) == 1)
        #expect(bench.source.bookkeeping.answersNotWritten == ["closed": 1])
    }

    /// vEVENTQ records become unrecoverable faults for the device's queue;
    /// sequence gaps and LOST_EVENTS headers become the queue's own loss.
    @Test func eventLossIsCarriedIntoTheRing() throws {
        let bench = try Bench(kind: .deviceEvents)
        func event(_ sequence: UInt32) -> [UInt8] {
            let record = SMMUv3EventRecord(eventID: SMMUv3EventRecord.translation, substreamID: nil, streamID: 5,
                                           privileged: false, instruction: false, read: true,
                                           inputAddress: 0x7000, fetchAddress: 0)
            let (a, b, c, d) = record.words
            return VEventHeader(flags: 0, sequence: sequence).bytes + [a, b, c, d].flatMap { LittleEndian.bytes($0) }
        }
        bench.sendFromDevice(event(0))
        bench.sendFromDevice(event(3))  // 1 and 2 lost
        bench.sendFromDevice(VEventHeader(flags: FAULTRING_IOMMU_VEVENTQ_FLAG_LOST_EVENTS, sequence: 4).bytes)  // one more
        bench.sendFromDevice(event(5))
        bench.readable()
        let books = bench.source.bookkeeping
        #expect(books.events == 3 && books.eventsDelivered == 3)
        #expect(books.eventsLost == 3)
        #expect(bench.producer.countersSnapshot.recordsLost == 3)
        bench.producer.poll()
        let records = try bench.consumerAnswers()
        let faults = records.filter { if case .event(.unrecoverable, _) = $0 { return true } else { return false } }
        let lost = records.compactMap { if case .lost(let l) = $0 { return l.lostRecords } else { return nil } }
        #expect(faults.count == 3)
        #expect(lost.reduce(0, +) == 3, "LOST records: \(lost)")
    }

    /// A descriptor of the wrong kind is refused before anything is read.
    @Test func theKindIsValidated() throws {
        let pair = try Sys.seqpacketPair()
        #expect(throws: FaultFDError.self) {
            try FaultFDKind.faultQueue.validate(pair.local.descriptor)  // a socket is no iommufd fd
        }
        let pipe = try Sys.pipe()
        #expect(throws: FaultFDError.self) { try FaultFDKind.deviceFaults.validate(pipe.read.descriptor) }
        #expect(FaultFDKind.faultQueue.rawValue == FAULTRING_SOURCE_FAULT_QUEUE)
        #expect(FaultFDKind.eventQueue.rawValue == FAULTRING_SOURCE_EVENT_QUEUE)
        #expect(FaultFDKind.deviceFaults.rawValue == FAULTRING_SOURCE_DEVICE_FAULTS)
        #expect(FaultFDKind.deviceEvents.rawValue == FAULTRING_SOURCE_DEVICE_EVENTS)
    }
}
