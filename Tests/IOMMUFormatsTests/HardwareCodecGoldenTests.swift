import FaultABI
import IOMMUFormats
import Testing

/// Bit patterns worked out by hand from the field tables (SMMUv3 IHI 0070 /
/// Linux arm-smmu-v3.h; VT-d spec / Linux prq.c and iommu.h), then checked
/// both ways: encode gives the words, decode gives the fields back.
@Suite struct HardwareCodecGoldenTests {
    @Test func smmuPRIRecord() throws {
        // StreamID 0x12, SSID 0x345 (SSV), R W L, PRG 0x1AB, page 0xDEADB000:
        // dw0 = 0x12 | 0x345 << 32 | bits 60,61,62,63 = 0xF000_0345_0000_0012
        // dw1 = 0x1AB | 0xDEADB000                    = 0x0000_0000_DEAD_B1AB
        let record = SMMUv3PRIRecord(streamID: 0x12, substreamID: 0x345, read: true, write: true, last: true,
                                     prgIndex: 0x1AB, address: 0xDEAD_B000)
        #expect(record.words == (0xF000_0345_0000_0012, 0x0000_0000_DEAD_B1AB))
        #expect(try SMMUv3PRIRecord(words: 0xF000_0345_0000_0012, 0x0000_0000_DEAD_B1AB) == record)
        // A stop marker: L=1, R=W=0, SSV=1 → dw0 bits 62, 63.
        let stop = try SMMUv3PRIRecord(words: 0xC000_0004_0000_0012, 0).pageRequest(deviceID: 1, needsPASID: false)
        #expect(stop.isLastPage && stop.permissions.isEmpty && stop.pasid == 4)
    }

    @Test func smmuPRIRecordRejectsReservedBitsAndPrivWithoutPASID() {
        #expect(throws: HardwareRecordError.self) { try SMMUv3PRIRecord(words: 1 << 52, 0) }
        #expect(throws: HardwareRecordError.self) { try SMMUv3PRIRecord(words: 0, 1 << 9) }
        #expect(throws: HardwareRecordError.self) { try SMMUv3PRIRecord(words: 1 << 58, 0) }  // Priv, SSV = 0
    }

    @Test func smmuPRIResponseAndResume() throws {
        // CMD_PRI_RESP: 0x41 | SSV(11) | 0x345 << 12 | 0x12 << 32 = 0x0000_0012_0034_5841; dw1 = 0x1AB | 2 << 12 = 0x21AB
        let completion = GroupResponse(pasid: 0x345, prgi: 0x1AB, code: .success)
        let priResp = SMMUv3Command.priResponse(for: completion, streamID: 0x12)
        #expect(priResp.words == (0x0000_0012_0034_5841, 0x21AB))
        #expect(try SMMUv3Command(words: 0x0000_0012_0034_5841, 0x21AB) == priResp)
        var invalid = completion
        invalid.code = .invalid
        #expect(SMMUv3Command.priResponse(for: invalid, streamID: 0x12).words.1 == 0x01AB)  // DENY = 0
        // CMD_RESUME: 0x44 | RETRY(1) << 12 | 0x12 << 32 = 0x0000_0012_0000_1044; dw1 = STAG 0x77
        let resume = SMMUv3Command.resume(for: completion, streamID: 0x12, stallTag: 0x77)
        #expect(resume.words == (0x0000_0012_0000_1044, 0x77))
        #expect(SMMUv3Command.resume(for: invalid, streamID: 0x12, stallTag: 0x77).words.0 == 0x0000_0012_0000_2044)  // ABORT
        #expect(throws: HardwareRecordError.self) { try SMMUv3Command(words: 0x46, 0) }  // CMD_SYNC is not an answer
        #expect(throws: HardwareRecordError.self) { try SMMUv3Command(words: 0x41, 3 << 12) }  // Resp 3
    }

    @Test func smmuStalledEventIsAPageRequest() throws {
        // F_PERMISSION 0x13, SSV, SSID 5, SID 0x12: dw0 = 0x13 | 1 << 11 | 5 << 12 | 0x12 << 32 = 0x0000_0012_0000_5813
        // STAG 0x22, Stall(31), RnW(35): dw1 = 0x0000_0008_8000_0022
        let event = try SMMUv3EventRecord(words: 0x0000_0012_0000_5813, 0x0000_0008_8000_0022, 0x4000_1234, 0)
        #expect(event.eventID == 0x13 && event.substreamID == 5 && event.streamID == 0x12 && event.stall)
        #expect(event.words == (0x0000_0012_0000_5813, 0x0000_0008_8000_0022, 0x4000_1234, 0))
        guard case .pageRequest(let request) = event.fault(deviceID: 3) else {
            Issue.record("stalled fault is not a page request")
            return
        }
        #expect(request.prgi == 0x22 && request.pasid == 5 && request.address == 0x4000_1000 && request.isLastPage)
        #expect(request.permissions == .read)
        // Not stalled: unrecoverable, reason from the event ID.
        let plain = try SMMUv3EventRecord(words: 0x0000_0012_0000_0010, 0, 0x9000, 0x8)
        guard case .unrecoverable(let fault) = plain.fault(deviceID: 3) else {
            Issue.record("F_TRANSLATION without stall is not unrecoverable")
            return
        }
        #expect(fault.reason == 5 && fault.address == 0x9000 && fault.fetchAddress == 0x8)
        // A stall on an event that cannot stall is refused.
        #expect(throws: HardwareRecordError.self) { try SMMUv3EventRecord(words: 0x02, 1 << 31, 0, 0) }
    }

    @Test func vtdPageRequestDescriptor() throws {
        // RID 0x0310, PASID 0x12345 (PP), PDP, read, LPIG, PRG 0x1AB, page 0xDEADB000, private 0x1111/0x2222:
        // qw0 = 1 | 1 << 8 | 1 << 9 | 0x0310 << 16 | 0x12345 << 32 = 0x0001_2345_0310_0301
        // qw1 = 1 | 4 | 0x1AB << 3 | 0xDEADB000                     = 0x0000_0000_DEAD_BD5D
        let descriptor = VTdPageRequest(requesterID: 0x0310, pasid: 0x12345, read: true, write: false, lastInGroup: true,
                                        prgIndex: 0x1AB, address: 0xDEAD_B000,
                                        privateData: PrivateData(low: 0x1111, high: 0x2222))
        #expect(descriptor.words == (0x0001_2345_0310_0301, 0x0000_0000_DEAD_BD5D, 0x1111, 0x2222))
        #expect(try VTdPageRequest(words: 0x0001_2345_0310_0301, 0x0000_0000_DEAD_BD5D, 0x1111, 0x2222) == descriptor)
        let request = descriptor.pageRequest(deviceID: 4)
        #expect(request.needsPASID)  // Linux sets NEEDS_PASID whenever a PASID is present
        #expect(throws: HardwareRecordError.self) { try VTdPageRequest(words: 0x2, 0, 0, 0) }  // wrong type
        #expect(throws: HardwareRecordError.self) { try VTdPageRequest(words: 0x1 | 1 << 60, 0, 0, 0) }  // reserved
    }

    @Test func vtdPageGroupResponseDescriptor() throws {
        // type 9 | PP(4) | PDP(5) | code 1 << 12 | RID 0x0310 << 16 | PASID 0x12345 << 32 = 0x0001_2345_0310_1039
        // qw1 = LPIG(2) | 0x1AB << 3 = 0xD5C
        let completion = GroupResponse(pasid: 0x12345, prgi: 0x1AB, code: .invalid,
                                       privateData: PrivateData(low: 0x1111, high: 0x2222))
        let descriptor = VTdPageGroupResponse(completion, requesterID: 0x0310)
        #expect(descriptor.words == (0x0001_2345_0310_1039, 0xD5C, 0x1111, 0x2222))
        #expect(try VTdPageGroupResponse(words: 0x0001_2345_0310_1039, 0xD5C, 0x1111, 0x2222) == descriptor)
        var failure = completion
        failure.code = .failure
        #expect(VTdPageGroupResponse(failure, requesterID: 0x0310).words.0 >> 12 & 0xF == 0xF)  // PCIe Response Failure
        #expect(throws: HardwareRecordError.self) { try VTdPageGroupResponse(words: 0x9 | 2 << 12, 4, 0, 0) }  // code 2
    }
}
