import CFaultRingABI
import FaultABI
import FaultPipeline
import FaultSys
import Glibc
import IOMMUFormats
import PageRequests
import SystemPackage

/// A fault source over one descriptor that speaks the iommufd record
/// protocol: the kernel's fault queue or vEVENTQ handed over by a VMM, or a
/// device process's socket (see `FaultFDKind`).
///
/// Page requests: each record becomes a `PageRequest`; a group's LAST_PAGE
/// record closes it in the tracker, and the kernel's cookie is kept beside
/// the service's own. The group's one answer is written back as an
/// `iommu_hwpt_page_response {cookie, code}`, batched (one `write` per
/// flush). The kernel refuses an unknown cookie with EINVAL and stops the
/// batch there: that entry is counted and skipped, the rest written; never
/// retried. FAILURE becomes INVALID (the iommufd uAPI has no FAILURE).
///
/// Events: each vEVENTQ record (header + SMMUv3 event, StreamID = device
/// id) becomes an unrecoverable fault for the device's queue; LOST_EVENTS
/// headers and sequence gaps are carried into the queue's own loss
/// accounting (header counter, LOST record, sequence gap).
///
/// Owns the descriptor and closes it when the source is closed or released.
/// Never blocks: the kernel fds never block on read or write, and sockets
/// are read and written with MSG_DONTWAIT.
public final class FaultFDSource: FaultSource {
    /// What the descriptor is.
    public let kind: FaultFDKind
    /// The devices it serves (ids as ATTACH names them; the records' `dev_id`,
    /// or the event records' StreamID).
    public let devices: [SourceDevice]
    /// What happened so far.
    public var bookkeeping: FaultFDBooks {
        var books = counts
        books.answersPending = UInt64(pending.count)
        books.groupsOutstanding = UInt64(kernelCookie.count)
        return books
    }
    var counts = FaultFDBooks()
    /// Called once when the descriptor closes on its own (peer hang-up,
    /// read error), so the owner can remove the source.
    public var onClose: ((FaultFDSource) -> Void)?

    var fd: OwnedFD?
    let raw: Int32
    let served: Set<UInt32>
    /// The kernel cookie of each outstanding group, by the service's cookie.
    var kernelCookie: [UInt64: UInt32] = [:]
    /// While a LAST_PAGE record is being received: its kernel cookie, and
    /// whether its answer came at once (no slot, overflow).
    var receiving: UInt32?
    var answeredDuringReceive = false
    /// Answers batched for the next flush.
    var pending: [HWPTPageResponse] = []
    /// Per-device books: groups read, answers by source.
    var issued: [UInt32: UInt64] = [:]
    var answered: [UInt32: [String: UInt64]] = [:]
    var unexpected: UInt64 = 0
    /// The next vEVENTQ sequence expected (nil before the first record).
    var expectedSequence: UInt32?
    /// A whole number of 40-byte records: the kernel's fault-queue `read`
    /// refuses a count that is not a multiple of the record size (ESPIPE).
    var buffer = [UInt8](repeating: 0, count: 1638 * HWPTPageFault.size)
    /// The peer refused our writes (EPIPE, ECONNRESET): the next read sees
    /// the hang-up and removes the source.
    var peerGone = false

    /// A source reading `fd` (owned from now on) as `kind`, serving `devices`.
    /// - Throws: `FaultFDError` if `fd` is not a `kind` descriptor, or a
    ///   device id is repeated or above `maxDeviceID`.
    public init(kind: FaultFDKind, fd: consuming OwnedFD, devices: [SourceDevice]) throws(FaultFDError) {
        try kind.validate(fd.descriptor)
        guard !devices.isEmpty else { throw FaultFDError(.badDevice, "a \(kind) must serve at least one device") }
        guard Set(devices.map(\.id)).count == devices.count, devices.allSatisfy({ $0.id <= Self.maxDeviceID }) else {
            throw FaultFDError(.badDevice, "device ids \(devices.map(\.id)) must be distinct and at most \(Self.maxDeviceID)")
        }
        self.kind = kind
        self.devices = devices
        served = Set(devices.map(\.id))
        raw = fd.rawValue
        self.fd = consume fd
    }

    /// The largest device id a source may serve. The tracker keeps its
    /// devices in a table indexed by id, so an id is bounded; iommufd object
    /// ids and vSIDs are small (xarray ids, a guest's StreamIDs).
    public static let maxDeviceID: UInt32 = 0xFFFF

    /// The descriptor, while it is open.
    public var descriptors: [Int32] { fd == nil ? [] : [raw] }

    /// The descriptor's number, open or not: what the loop watches, so it
    /// can stop watching even after the source has closed.
    public var number: Int32 { raw }

    /// Whether the descriptor has closed.
    public var isClosed: Bool { fd == nil }

    /// Closes the descriptor (a device socket's peer then sees every
    /// pending group answered INVALID; a kernel fault fd's object lives on
    /// in the VMM, which destroys it to have the kernel do the same).
    public func close() {
        guard fd != nil else { return }
        flush()
        fd = nil
        counts.closed = true
    }

    // MARK: Reading

    /// Nothing on a clock: records arrive when the descriptor is readable.
    public func raise(now: UInt64, into intake: any FaultIntake) {}

    /// Answers kept because a device's socket was full (AF_UNIX
    /// SEQPACKET queues only `net.unix.max_dgram_qlen` packets) are retried
    /// in a millisecond; nothing else is on a clock.
    public func nextDeadline(after now: UInt64, intake: any FaultIntake) -> UInt64? {
        pending.isEmpty || fd == nil ? nil : now &+ 1_000_000
    }

    /// Reads everything waiting (bounded per call, so other descriptors get
    /// their turn; the loop's poll is level-triggered and comes back).
    public func readable(_ descriptor: Int32, now: UInt64, into intake: any FaultIntake) {
        guard fd != nil else { return }
        if readBatch(now: now, into: intake, limit: 64) == .gone { hangUp() }
    }

    /// Takes what is still queued on the descriptor (at most 1024 packets),
    /// stopping at the first empty read or end of stream without hanging
    /// up: a source about to be removed reads what its peer sent before it
    /// left, while the descriptor stays open for the answers its removal owes.
    public func drainQueued(now: UInt64, into intake: any FaultIntake) {
        guard fd != nil else { return }
        _ = readBatch(now: now, into: intake, limit: 1024)
    }

    /// How a batch of reads ended.
    enum ReadEnd { case more, empty, gone }

    /// Reads up to `limit` packets (or chunks); `.gone` if the peer closed or a read failed.
    func readBatch(now: UInt64, into intake: any FaultIntake, limit: Int) -> ReadEnd {
        for _ in 0..<limit {
            let n = buffer.withUnsafeMutableBytes { b in
                kind.isSocket ? recv(raw, b.baseAddress, b.count, Int32(MSG_DONTWAIT)) : read(raw, b.baseAddress, b.count)
            }
            if n < 0 {
                let error = Glibc.errno
                if error == EAGAIN || error == EINTR { return .empty }
                counts.readErrors[Errno(rawValue: error).description, default: 0] += 1
                return .gone
            }
            if n == 0 { return kind.isSocket ? .gone : .empty }  // a socket's peer closed; the kernel's 0 means empty
            buffer.withUnsafeBytes { b in
                let bytes = UnsafeRawBufferPointer(rebasing: b[0..<n])
                if kind.carriesPageRequests { takeRequests(bytes, now: now, into: intake) } else { takeEvents(bytes, now: now, into: intake) }
            }
        }
        return .more
    }

    /// The descriptor hung up or failed: the owner removes the source (which
    /// answers its groups while the descriptor is still open, then closes
    /// it); with no owner, the source closes itself.
    func hangUp() {
        guard fd != nil else { return }
        if let onClose {
            self.onClose = nil
            onClose(self)
        }
        close()
    }

    func takeRequests(_ bytes: UnsafeRawBufferPointer, now: UInt64, into intake: any FaultIntake) {
        if kind.isSocket && bytes.count == DeviceRefusal.size {
            // A device's error report for an answer it could not match.
            let refusal = DeviceRefusal(bytes: bytes)
            counts.answersRefused[Errno(rawValue: refusal.error).description, default: 0] += 1
            return
        }
        guard bytes.count % HWPTPageFault.size == 0 else {
            counts.malformed += 1  // a packet that is not whole records
            return
        }
        for offset in stride(from: 0, to: bytes.count, by: HWPTPageFault.size) {
            let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + HWPTPageFault.size)])
            let record: HWPTPageFault
            do {
                record = try HWPTPageFault(bytes: slice)
            } catch {
                counts.malformed += 1
                // Whatever it was, a record that closes a group is owed an answer.
                let raw = slice.loadUnaligned(as: faultring_hwpt_pgfault.self)
                if raw.flags & FAULTRING_IOMMU_PGFAULT_FLAGS_LAST_PAGE != 0 { answerDirectly(raw.cookie, label: "malformed") }
                continue
            }
            counts.requests += 1
            guard served.contains(record.deviceID) else {
                counts.foreignDevice += 1
                if record.isLastPage { answerDirectly(record.cookie, label: "foreign_device") }
                continue
            }
            let request = record.pageRequest(timestampNS: now)
            guard record.isLastPage, !request.isStopMarker else {  // a stop marker is owed no answer
                intake.receive(request, now: now)
                continue
            }
            counts.groups += 1
            issued[record.deviceID, default: 0] += 1
            receiving = record.cookie
            answeredDuringReceive = false
            let cookie = intake.receive(request, now: now)
            receiving = nil
            if let cookie, !answeredDuringReceive { kernelCookie[cookie] = record.cookie }
        }
    }

    /// Answers INVALID a group the tracker never saw (malformed, foreign).
    func answerDirectly(_ cookie: UInt32, label: String) {
        pending.append(HWPTPageResponse(cookie: cookie, code: .invalid))
        counts.answersBySource[label, default: 0] += 1
    }

    func takeEvents(_ bytes: UnsafeRawBufferPointer, now: UInt64, into intake: any FaultIntake) {
        var offset = 0
        while offset + VEventHeader.size <= bytes.count {
            let header = VEventHeader(bytes: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + VEventHeader.size)]))
            offset += VEventHeader.size
            // Every event, lost ones included, takes a sequence number; a
            // LOST_EVENTS header carries the last lost one's.
            var lost = expectedSequence.map { UInt64(VEventHeader.gap(from: $0, to: header.sequence)) } ?? 0
            expectedSequence = VEventHeader.next(header.sequence)
            if header.lostEvents { lost += 1 }
            if lost > 0 { carryLoss(lost, into: intake) }
            if header.lostEvents { continue }
            guard offset + VEventHeader.smmuv3PayloadSize <= bytes.count else {
                counts.malformed += 1  // a header without its payload
                return
            }
            let words = (0..<4).map { i in
                bytes.loadUnaligned(fromByteOffset: offset + 8 * i, as: UInt64.self).littleEndian
            }
            offset += VEventHeader.smmuv3PayloadSize
            counts.events += 1
            guard let record = try? SMMUv3EventRecord(words: words[0], words[1], words[2], words[3]) else {
                counts.malformed += 1
                continue
            }
            guard served.contains(record.streamID) else {
                counts.foreignDevice += 1
                continue
            }
            guard case .unrecoverable(let fault) = record.fault(deviceID: record.streamID, timestampNS: now) else {
                counts.malformed += 1  // a stall belongs on the fault queue, not the vEVENTQ
                continue
            }
            if intake.deliver(fault) == .published { counts.eventsDelivered += 1 }
        }
        if offset != bytes.count { counts.malformed += 1 }
    }

    /// A vEVENTQ belongs to one vIOMMU, whose devices share one queue: the
    /// loss goes to the queue of the first of them that is attached.
    func carryLoss(_ count: UInt64, into intake: any FaultIntake) {
        counts.eventsLost &+= count
        let device = devices.first { intake.isAttached($0.id) }?.id ?? devices[0].id
        intake.lost(count, device: device)
    }

    // MARK: Answers

    /// Batches the group's answer under its kernel cookie.
    public func complete(_ completion: DeviceCompletion) {
        let cookie: UInt32
        if let current = receiving {
            answeredDuringReceive = true
            cookie = current
        } else if let known = kernelCookie.removeValue(forKey: completion.cookie) {
            cookie = known
        } else {
            unexpected += 1
            return
        }
        answered[completion.deviceID, default: [:]][completion.source.label, default: 0] += 1
        counts.answersBySource[completion.source.label, default: 0] += 1
        pending.append(HWPTPageResponse(cookie: cookie, code: completion.code))
    }

    /// The most answers written by one `write` or `send` (32 KiB): well
    /// under a SEQPACKET socket's send buffer and a device's read buffer.
    public static let maxAnswersPerWrite = 4096

    /// Writes the batched answers: one `write` (kernel) or `send` (socket)
    /// per `maxAnswersPerWrite`. Never re-entered, never blocks: a peer that
    /// is gone (EPIPE) is noted and found by the next read.
    public func flush() {
        guard !pending.isEmpty else { return }
        guard fd != nil, !peerGone else {
            counts.answersNotWritten[fd == nil ? "closed" : "peer gone", default: 0] += UInt64(pending.count)
            pending.removeAll()
            return
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(pending.count * HWPTPageResponse.size)
        for response in pending { bytes += response.bytes }
        var start = 0
        while start < pending.count {
            let count = Swift.min(pending.count - start, Self.maxAnswersPerWrite)
            let want = count * HWPTPageResponse.size
            let n = bytes.withUnsafeBytes { b in
                kind.isSocket
                    ? send(raw, b.baseAddress! + start * HWPTPageResponse.size, want, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
                    : write(raw, b.baseAddress! + start * HWPTPageResponse.size, want)
            }
            if n == want {
                counts.answersWritten &+= UInt64(count)
                start += count
                continue
            }
            if n >= 0 {
                guard n % HWPTPageResponse.size == 0, !kind.isSocket else {
                    // Responses are whole or not at all; this cannot happen, and is not retried.
                    counts.answersNotWritten["short write", default: 0] += UInt64(pending.count - start)
                    break
                }
                // The kernel stopped at an entry it refused (EINVAL): skip it, write the rest.
                counts.answersWritten &+= UInt64(n / HWPTPageResponse.size)
                start += n / HWPTPageResponse.size
                counts.answersRefused[Errno.invalidArgument.description, default: 0] += 1
                start += 1
                continue
            }
            let error = Glibc.errno
            if error == EINTR { continue }
            if error == EINVAL && !kind.isSocket {
                counts.answersRefused[Errno.invalidArgument.description, default: 0] += 1
                start += 1
                continue
            }
            if error == EAGAIN && kind.isSocket {
                // The device's socket is full: keep the rest for the next flush.
                pending.removeFirst(start)
                counts.answersNotWritten["would block, kept", default: 0] += 1
                return
            }
            counts.answersNotWritten[Errno(rawValue: error).description, default: 0] += UInt64(pending.count - start)
            if error == EPIPE || error == ECONNRESET { peerGone = true }
            break
        }
        pending.removeAll(keepingCapacity: true)
    }

    // MARK: Books

    /// Per device: groups read, answers by source.
    public func books() -> [DeviceBooks] {
        devices.map { device in
            let bySource = answered[device.id] ?? [:]
            let done = bySource.values.reduce(0, +)
            let raised = issued[device.id] ?? 0
            return DeviceBooks(id: device.id, issued: raised, answered: done,
                               outstanding: Int(clamping: raised > done ? raised - done : 0),
                               unexpected: device.id == devices[0].id ? unexpected : 0, wrong: 0,
                               answersBySource: bySource)
        }
    }
}
