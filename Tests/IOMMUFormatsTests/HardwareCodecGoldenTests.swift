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

    @Test func smmuPRIRecordReservedBitsAndPrivWithoutPASID() throws {
        // Linux (arm_smmu_handle_ppr) reads only the defined fields, and Priv / Exec whatever SSV says.
        let res0 = try SMMUv3PRIRecord(words: 1 << 57 | 1 << 62, 0x1AB | 1 << 9 | 0x5000)  // dw0 bit 57, dw1 bit 9
        #expect(res0.last && res0.prgIndex == 0x1AB && res0.address == 0x5000)
        let priv = try SMMUv3PRIRecord(words: 1 << 58 | 1 << 59 | 1 << 60, 0)  // Priv, Exec, Read; SSV = 0
        #expect(priv.privileged && priv.execute && priv.substreamID == nil)
        #expect(priv.pageRequest(deviceID: 1, needsPASID: true).permissions == [.read, .exec, .privileged])
        // The specification's reading refuses each, naming the field.
        #expect(throws: HardwareRecordError(format: "SMMUv3 PRI record", field: "dw0[57:52]", value: 0x20,
                                            problem: "RES0 not zero")) {
            try SMMUv3PRIRecord(words: 1 << 57, 0, dialect: .spec)
        }
        #expect(throws: HardwareRecordError.self) { try SMMUv3PRIRecord(words: 0, 1 << 9, dialect: .spec) }
        #expect(throws: HardwareRecordError.self) { try SMMUv3PRIRecord(words: 1 << 58, 0, dialect: .spec) }
        #expect(try SMMUv3PRIRecord(words: 1 << 58 | 1 << 63, 0, dialect: .spec).privileged)  // with a PASID: fine
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
        // As arm_smmu_handle_event reports it: the full InputAddr, LAST_PAGE, the PASID, no NEEDS_PASID.
        #expect(request.prgi == 0x22 && request.pasid == 5 && request.address == 0x4000_1234 && request.isLastPage)
        #expect(!request.needsPASID)
        #expect(request.permissions == .read)
        // Not stalled: unrecoverable, reason from the event ID.
        let plain = try SMMUv3EventRecord(words: 0x0000_0012_0000_0010, 0, 0x9000, 0x8)
        guard case .unrecoverable(let fault) = plain.fault(deviceID: 3) else {
            Issue.record("F_TRANSLATION without stall is not unrecoverable")
            return
        }
        #expect(fault.reason == 5 && fault.address == 0x9000 && fault.fetchAddress == 0x8)
    }

    @Test func smmuStallOnConfigurationEvents() throws {
        // Linux handles C_BAD_STE (0x04) and reports it as a page request when Stall is set; the spec says it cannot stall.
        let badSTE = try SMMUv3EventRecord(words: 0x0000_0012_0000_0004, 1 << 31 | 0x7, 0x3000, 0)
        guard case .pageRequest(let request) = badSTE.fault(deviceID: 1) else {
            Issue.record("a stalled C_BAD_STE is not a page request")
            return
        }
        #expect(request.prgi == 7 && request.address == 0x3000)
        #expect(throws: HardwareRecordError(format: "SMMUv3 event record", field: "Stall", value: 4,
                                            problem: "event ID cannot stall (only 0x10 to 0x13 may)")) {
            try SMMUv3EventRecord(words: 0x04, 1 << 31, 0, 0, dialect: .spec)
        }
        // C_BAD_STREAMID (0x02): Linux does not handle it at all, so in neither reading.
        #expect(throws: HardwareRecordError.self) { try SMMUv3EventRecord(words: 0x02, 1 << 31, 0, 0) }
        #expect(throws: HardwareRecordError.self) { try SMMUv3EventRecord(words: 0x02, 1 << 31, 0, 0, dialect: .spec) }
        #expect(!(try SMMUv3EventRecord(words: 0x02, 0, 0, 0).stall))  // not stalled: an unrecoverable fault
    }

    @Test func smmuEventTableWalkRead() throws {
        // F_PERMISSION, CLASS = 1 (TT), TTRnW = EVTQ_1_TT_READ (bit 44): dw1 = 1 << 40 | 1 << 44 = 0x0000_1100_0000_0000
        let record = SMMUv3EventRecord(eventID: 0x13, substreamID: nil, streamID: 1, read: false, eventClass: 1,
                                       tableWalkRead: true, inputAddress: 0x8000)
        #expect(record.words == (0x0000_0001_0000_0013, 0x0000_1100_0000_0000, 0x8000, 0))
        let decoded = try SMMUv3EventRecord(words: 0x0000_0001_0000_0013, 0x0000_1100_0000_0000, 0x8000, 0)
        #expect(decoded == record && decoded.tableWalkRead && decoded.eventClass == 1)
        #expect(!(try SMMUv3EventRecord(words: 0x13, 1 << 40, 0, 0).tableWalkRead))  // a write: HTTU updating A/D
    }

    @Test func vtdPageRequestDescriptorCurrentLinux() throws {
        // struct page_req_dsc (prq.c): RID 0x0310, PASID 0x12345 (PP), read, LPIG, PRG 0x1AB, page 0xDEADB000:
        // qw0 = 1 | 1 << 8 | 0x0310 << 16 | 0x12345 << 32 = 0x0001_2345_0310_0101
        // qw1 = 1 | 4 | 0x1AB << 3 | 0xDEADB000         = 0x0000_0000_DEAD_BD5D
        let descriptor = VTdPageRequest(requesterID: 0x0310, pasid: 0x12345, read: true, write: false, lastInGroup: true,
                                        prgIndex: 0x1AB, address: 0xDEAD_B000,
                                        privateData: PrivateData(low: 0x1111, high: 0x2222))
        #expect(descriptor.words() == (0x0001_2345_0310_0101, 0x0000_0000_DEAD_BD5D, 0, 0))  // VT-d 4: no private data
        var plain = descriptor
        plain.privateData = nil
        #expect(try VTdPageRequest(words: 0x0001_2345_0310_0101, 0x0000_0000_DEAD_BD5D, 0, 0) == plain)
        #expect(plain.pageRequest(deviceID: 4).needsPASID)  // Linux sets NEEDS_PASID whenever a PASID is present
        // A VT-d 3 descriptor (bit 9 set) read as VT-d 4: Linux ignores bits 15:9 and qw2/qw3.
        let legacy = try VTdPageRequest(words: 0x0001_2345_0310_0301, 0x0000_0000_DEAD_BD5D, 0x1111, 0x2222)
        #expect(legacy == plain)
        #expect(throws: HardwareRecordError.self) {
            try VTdPageRequest(words: 0x0001_2345_0310_0301, 0x0000_0000_DEAD_BD5D, 0, 0, dialect: .spec)
        }
        #expect(throws: HardwareRecordError.self) {
            try VTdPageRequest(words: 0x0001_2345_0310_0101, 0x0000_0000_DEAD_BD5D, 0x1111, 0, dialect: .spec)  // qw2
        }
        #expect(try VTdPageRequest(words: 0x1 | 1 << 60, 0, 0, 0).prgIndex == 0)  // reserved [63:54]: ignored
        #expect(throws: HardwareRecordError.self) { try VTdPageRequest(words: 0x1 | 1 << 60, 0, 0, 0, dialect: .spec) }
        #expect(throws: HardwareRecordError.self) { try VTdPageRequest(words: 0x2, 0, 0, 0) }  // wrong type
    }

    @Test func vtdPageRequestDescriptorWithPrivateData() throws {
        // VT-d 3 (svm.c before 6.10): as above with PDP (qw0 bit 9) and private data 0x1111/0x2222 in qw2/qw3.
        let descriptor = VTdPageRequest(requesterID: 0x0310, pasid: 0x12345, read: true, write: false, lastInGroup: true,
                                        prgIndex: 0x1AB, address: 0xDEAD_B000,
                                        privateData: PrivateData(low: 0x1111, high: 0x2222))
        #expect(descriptor.words(.v3) == (0x0001_2345_0310_0301, 0x0000_0000_DEAD_BD5D, 0x1111, 0x2222))
        #expect(try VTdPageRequest(words: 0x0001_2345_0310_0301, 0x0000_0000_DEAD_BD5D, 0x1111, 0x2222,
                                   dialect: .linux69) == descriptor)
        // PDP without LPIG is still owed a response: Linux ≤ 6.9 marked it LAST_PAGE.
        let middle = try VTdPageRequest(words: 0x0001_2345_0310_0301, 0x0000_0000_DEAD_BD59, 0x1111, 0x2222,
                                        dialect: .linux69)
        #expect(!middle.lastInGroup && middle.pageRequest(deviceID: 4).isLastPage)
        #expect(throws: HardwareRecordError.self) { try VTdPageRequest(words: 0x1 | 1 << 10, 0, 0, 0, dialect: .specVTd3) }
    }

    @Test func vtdPageGroupResponseDescriptor() throws {
        // intel_iommu_page_response(): type 9 | PP(4) | code 1 << 12 | RID 0x0310 << 16 | PASID 0x12345 << 32
        //   = 0x0001_2345_0310_1019; qw1 = LPIG(2) | 0x1AB << 3 = 0xD5C; qw2 = qw3 = 0 (no PDP, no private data).
        let completion = GroupResponse(pasid: 0x12345, prgi: 0x1AB, code: .invalid,
                                       privateData: PrivateData(low: 0x1111, high: 0x2222))
        let descriptor = VTdPageGroupResponse(completion, requesterID: 0x0310)
        #expect(descriptor.words() == (0x0001_2345_0310_1019, 0xD5C, 0, 0))
        // VT-d 3 echoes the private data with PDP (qw0 bit 5): 0x...1039.
        #expect(descriptor.words(.v3) == (0x0001_2345_0310_1039, 0xD5C, 0x1111, 0x2222))
        #expect(try VTdPageGroupResponse(words: 0x0001_2345_0310_1039, 0xD5C, 0x1111, 0x2222, dialect: .linux69) == descriptor)
        let current = try VTdPageGroupResponse(words: 0x0001_2345_0310_1039, 0xD5C, 0x1111, 0x2222)
        #expect(current.privateData == nil && current.code == .invalid)  // PDP is reserved in VT-d 4: ignored
        #expect(throws: HardwareRecordError.self) {
            try VTdPageGroupResponse(words: 0x0001_2345_0310_1039, 0xD5C, 0, 0, dialect: .spec)
        }
        var failure = completion
        failure.code = .failure
        #expect(VTdPageGroupResponse(failure, requesterID: 0x0310).words().0 >> 12 & 0xF == 0xF)  // PCIe Response Failure
        #expect(throws: HardwareRecordError.self) { try VTdPageGroupResponse(words: 0x9 | 1 << 9, 4, 0, 0) }  // type 0x29
        #expect(throws: HardwareRecordError.self) { try VTdPageGroupResponse(words: 0x9, 4 | 1, 0, 0, dialect: .spec) }
        #expect(try VTdPageGroupResponse(words: 0x9, 4 | 1, 0, 0).prgIndex == 0)  // qw1 bit 0 reserved: ignored
    }

    @Test func vtdResponseCodeTwoFromALinuxGuest() throws {
        // intel_iommu_page_response() writes IOMMU_PAGE_RESP_FAILURE (2) as it is: a Linux guest's FAILURE.
        let two = try VTdPageGroupResponse(words: 0x9 | 2 << 12, 4, 0, 0)
        #expect(two.responseCode == 2 && two.code == .failure)
        #expect(throws: HardwareRecordError(format: "VT-d page group response descriptor", field: "response code",
                                            value: 2, problem: "not 0, 1 or 0xF")) {
            try VTdPageGroupResponse(words: 0x9 | 2 << 12, 4, 0, 0, dialect: .spec)
        }
        #expect(throws: HardwareRecordError.self) { try VTdPageGroupResponse(words: 0x9 | 5 << 12, 4, 0, 0) }  // reserved
    }

    @Test func dialectNames() {
        for (name, dialect) in HardwareDialect.named {
            #expect(HardwareDialect(named: name) == dialect && dialect.description == name)
        }
        #expect(Set(HardwareDialect.named.map(\.dialect)).count == 4)  // every combination has a name
        #expect(HardwareDialect(named: "linux-6.10") == nil)
        #expect(HardwareDialect() == .linux && HardwareDialect.linux.vtd == .v4 && !HardwareDialect.linux.strict)
    }
}
