import IOMMUFormats
import FaultABI
import PageRequests
import Testing
import VMMClient

/// Guest formats with bytes worked out by hand from the layouts in
/// hardware-queues.md (virtio-iommu spec, Linux iommufd uAPI, SMMUv3, VT-d).
@Suite struct GuestFormatGoldenTests {
    static let request = PageRequest(deviceID: 7, pasid: 0x12345, prgi: 0x1AB, permissions: [.read, .write],
                                     address: 0xDEAD_B000, isLastPage: true, needsPASID: true, cookie: 0x1_0000_0042)

    @Test func virtioFaultReport() {
        var encoder = GuestEncoder(format: .virtio)
        let fault = UnrecoverableFault(deviceID: 7, reason: 6, permissions: .write, address: 0x4000)  // PERMISSION
        let bytes = encoder.encode(.event(.unrecoverable(fault), sequence: 1), endpoint: 0x0310)!
        // reason R_MAPPING (2), reserved 0 0 0; flags WRITE | ADDRESS = 0x102; endpoint 0x310; reserved1 0; address
        #expect(bytes == [2, 0, 0, 0, 0x02, 0x01, 0, 0, 0x10, 0x03, 0, 0, 0, 0, 0, 0, 0x00, 0x40, 0, 0, 0, 0, 0, 0])
        let domain = UnrecoverableFault(deviceID: 7, reason: 3)  // PASID_INVALID, no address
        #expect(encoder.encode(.event(.unrecoverable(domain), sequence: 2), endpoint: 1)![0...7] == [1, 0, 0, 0, 0, 0, 0, 0])
        #expect(encoder.encode(.lost(LostRecord(lostRecords: 1, firstLostSequence: 0, totalLost: 1, timestampNS: 0)),
                               endpoint: 1) == nil)
    }

    @Test func vsmmuPRIRecordAndEvent() {
        var encoder = GuestEncoder(format: .smmuv3)
        let bytes = encoder.encode(.event(.pageRequest(Self.request), sequence: 0), endpoint: 0x12)!
        // dw0 = 0x12 | 0x12345 << 32 | R(60) W(61) L(62) SSV(63); dw1 = 0x1AB | 0xDEADB000
        #expect(bytes == le(0xF001_2345_0000_0012) + le(0x0000_0000_DEAD_B1AB))
        let fault = UnrecoverableFault(deviceID: 7, reason: 8, pasid: 5, permissions: .read, address: 0x9000)  // OOR
        let event = encoder.encode(.event(.unrecoverable(fault), sequence: 0), endpoint: 0x12)!
        // F_ADDR_SIZE 0x11 | SSV | 5 << 12 | 0x12 << 32; dw1: RnW (35); dw2: address
        #expect(event == le(0x0000_0012_0000_5811) + le(1 << 35) + le(0x9000) + le(0))
    }

    @Test func vtdPageRequestAndNoUnrecoverable() {
        var encoder = GuestEncoder(format: .vtd)
        let bytes = encoder.encode(.event(.pageRequest(Self.request), sequence: 0), endpoint: 0x0310)!
        // qw0 = 1 | PP(8) | 0x0310 << 16 | 0x12345 << 32; qw1 = R | W | LPIG | 0x1AB << 3 | 0xDEADB000
        #expect(bytes == le(0x0001_2345_0310_0101) + le(0x0000_0000_DEAD_BD5F) + le(0) + le(0))
        #expect(encoder.encode(.event(.unrecoverable(UnrecoverableFault(reason: 1)), sequence: 0), endpoint: 1) == nil)
    }

    @Test func veventqHeaderSequenceAndLoss() {
        var encoder = GuestEncoder(format: .veventq)
        let first = encoder.encode(.event(.pageRequest(Self.request), sequence: 0), endpoint: 9)!
        // header {flags 0, sequence 0} + iommu_hwpt_pgfault (40 B):
        // flags PASID_VALID|LAST_PAGE = 3, dev_id 9, pasid, grpid, perm 3, reserved 0, addr, length 0, cookie (low 32 bits)
        #expect(first == le32(0) + le32(0) + le32(3) + le32(9) + le32(0x12345) + le32(0x1AB) + le32(3) + le32(0)
                    + le(0xDEAD_B000) + le32(0) + le32(0x42))
        let lost = encoder.encode(.lost(LostRecord(lostRecords: 4, firstLostSequence: 1, totalLost: 4, timestampNS: 0)),
                                  endpoint: 9)!
        #expect(lost == le32(1) + le32(1))  // LOST_EVENTS flag, next sequence, no payload
        let event = encoder.encode(.event(.unrecoverable(UnrecoverableFault(reason: 5, address: 0x1000)), sequence: 0),
                                   endpoint: 9)!
        #expect(event.count == 8 + 32)
        #expect(Array(event[4..<8]) == le32(2))
    }

    @Test func guestAnswersDecodeBackToPageResponses() throws {
        var pending = GuestPendingGroups()
        pending.note(Self.request, endpoint: 0x12)
        var other = Self.request
        other.cookie = 99
        other.pasid = 7
        pending.note(other, endpoint: 0x12)  // same PRGI, another PASID (a misbehaving device)
        // The guest answers the PASID-7 group SUCCESS with CMD_PRI_RESP: 0x41 | SSV | 7 << 12 | 0x12 << 32; SUCC(2) << 12 | 0x1AB
        let response = try pending.decodeSMMUv3(0x0000_0012_0000_7841, 0x21AB)
        #expect(response == PageResponse(code: .success, cookie: 99, pasid: 7, prgi: 0x1AB))
        #expect(pending.count == 1)
        // VT-d page group response: type 9 | PP | code INVALID(1) << 12 | RID 0x12 << 16 | PASID 0x12345 << 32; LPIG | PRG << 3
        let vtd = try pending.decodeVTd(0x0001_2345_0012_1019, 0xD5C, 0, 0)
        #expect(vtd == PageResponse(code: .invalid, cookie: 0x1_0000_0042, pasid: 0x12345, prgi: 0x1AB))
        #expect(pending.count == 0)
        // Nothing pending any more: named, not silently nil.
        #expect(throws: GuestAnswerError.noPendingGroup(endpoint: 0x12, prgi: 0x1AB, pasid: 0x12345)) {
            try pending.decodeVTd(0x0001_2345_0012_1019, 0xD5C, 0, 0)
        }
        // CMD_SYNC is no answer: malformed, with the field named.
        do {
            _ = try pending.decodeSMMUv3(0x46, 0)
            Issue.record("CMD_SYNC decoded as an answer")
        } catch {
            guard case .malformed(let why) = error else { Issue.record("\(error)"); return }
            #expect(why.field == "opcode")
        }
    }

    @Test func guestResumeAnswersAStalledFault() throws {
        var pending = GuestPendingGroups()
        let stalled = PageRequest(deviceID: 3, pasid: 5, prgi: 0x22, permissions: .read, address: 0x4000_1000,
                                  isLastPage: true, needsPASID: true, cookie: 77)
        pending.note(stalled, endpoint: 0x12)
        // CMD_RESUME: 0x44 | ABORT(2) << 12 | SID 0x12 << 32; dw1 = STAG 0x22
        let response = try pending.decodeSMMUv3(0x0000_0012_0000_2044, 0x22)
        #expect(response == PageResponse(code: .invalid, cookie: 77, pasid: 5, prgi: 0x22))
    }

    func le(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}
