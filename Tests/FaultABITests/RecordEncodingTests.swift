import CFaultRingABI
import FaultABI
import Testing

/// Golden bytes worked out by hand from the struct layouts in faultring_abi.h.
@Suite struct RecordEncodingTests {
    static func bytes(of event: FaultEvent, abi: ABIVersion, sequence: UInt32 = 0) -> [UInt8] {
        var slot = [UInt8](repeating: 0xAA, count: 64)  // garbage: encode must overwrite every byte
        slot.withUnsafeMutableBytes { event.encode(into: $0.baseAddress!, abi: abi, sequence: sequence) }
        return slot
    }

    /// Decodes a slot image; a `Result` keeps typed throws out of closures.
    static func decode(_ slot: [UInt8], abi: ABIVersion) -> Result<DecodedRecord, RecordDecodeError> {
        slot.withUnsafeBytes { raw -> Result<DecodedRecord, RecordDecodeError> in
            do throws(RecordDecodeError) {
                return .success(try DecodedRecord.decode(raw.baseAddress!, abi: abi))
            } catch {
                return .failure(error)
            }
        }
    }

    static func le32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }

    static func le64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
    }

    static let request = PageRequest(
        deviceID: 7, pasid: 0x12345, prgi: 0x1AB, permissions: [.read, .write], address: 0xDEAD_B000,
        isLastPage: true, needsPASID: true, privateData: PrivateData(low: 0x1111, high: 0x2222),
        cookie: 0xC0FFEE_0000_0001, timestampNS: 0x0102_0304_0506_0708)

    @Test func v1PageRequestIsTheKernelLayout() {
        let b = Self.bytes(of: .pageRequest(Self.request), abi: .v1)
        #expect(Self.le32(b, 0) == 2)  // type = IOMMU_FAULT_PAGE_REQ
        #expect(Self.le32(b, 4) == 0)  // padding
        #expect(Self.le32(b, 8) == 0b1111)  // PASID_VALID | LAST_PAGE | PRIV_DATA | NEEDS_PASID
        #expect(Self.le32(b, 12) == 0x12345)
        #expect(Self.le32(b, 16) == 0x1AB)
        #expect(Self.le32(b, 20) == 3)
        #expect(Self.le64(b, 24) == 0xDEAD_B000)
        #expect(Self.le64(b, 32) == 0x1111)
        #expect(Self.le64(b, 40) == 0x2222)
        #expect(b[48..<64].allSatisfy { $0 == 0 })  // rest of padding2
    }

    @Test func v2PageRequestLayoutAndNoPrivateData() {
        let b = Self.bytes(of: .pageRequest(Self.request), abi: .v2, sequence: 0xFFFF_FFFE)
        #expect(Self.le32(b, 0) == 2)
        #expect(Self.le32(b, 4) == 0xFFFF_FFFE)
        #expect(Self.le32(b, 8) == 7)
        #expect(Self.le32(b, 12) == 0b111)  // PASID_VALID | LAST_PAGE | NEEDS_PASID
        #expect(Self.le32(b, 16) == 0x12345)
        #expect(Self.le32(b, 20) == 0x1AB)
        #expect(Self.le32(b, 24) == 3)
        #expect(Self.le32(b, 28) == 0)
        #expect(Self.le64(b, 32) == 0xDEAD_B000)
        #expect(Self.le64(b, 40) == 0)
        #expect(Self.le64(b, 48) == 0xC0FFEE_0000_0001)
        #expect(Self.le64(b, 56) == 0x0102_0304_0506_0708)
        #expect(!b.contains(0x11) && !b.contains(0x22))  // private data never reaches the consumer
    }

    @Test func v1UnrecoverableLayout() {
        let fault = UnrecoverableFault(
            reason: FAULTRING_REASON_PERMISSION, pasid: 5, permissions: .write, address: 0x1000, fetchAddress: 0x2000)
        let b = Self.bytes(of: .unrecoverable(fault), abi: .v1)
        #expect(Self.le32(b, 0) == 1)
        #expect(Self.le32(b, 8) == 6)  // reason
        #expect(Self.le32(b, 12) == 0b111)  // PASID | ADDR | FETCH_ADDR valid
        #expect(Self.le32(b, 16) == 5)
        #expect(Self.le32(b, 20) == 2)
        #expect(Self.le64(b, 24) == 0x1000)
        #expect(Self.le64(b, 32) == 0x2000)
        #expect(b[40..<64].allSatisfy { $0 == 0 })
    }

    @Test(arguments: [ABIVersion.v1, .v2])
    func roundTrip(abi: ABIVersion) throws {
        var request = Self.request
        if abi == .v1 {
            request.deviceID = 0  // ABI 1 has no device id, cookie or timestamp
            request.cookie = 0
            request.timestampNS = 0
        } else {
            request.privateData = nil  // ABI 2 does not carry it
        }
        let fault = UnrecoverableFault(
            deviceID: abi == .v1 ? 0 : 3, reason: 4, pasid: nil, permissions: .read, address: 0x5000,
            timestampNS: abi == .v1 ? 0 : 99)
        for event in [FaultEvent.pageRequest(request), .unrecoverable(fault)] {
            let b = Self.bytes(of: event, abi: abi, sequence: 42)
            let decoded = try Self.decode(b, abi: abi).get()
            #expect(decoded == .event(event, sequence: abi == .v1 ? nil : 42))
        }
    }

    @Test func lostRecordRoundTripAndSequence() throws {
        let lost = LostRecord(lostRecords: 12, firstLostSequence: 0xFFFF_FFF8, totalLost: 40, timestampNS: 5)
        var slot = [UInt8](repeating: 0xAA, count: 64)
        slot.withUnsafeMutableBytes { lost.encode(into: $0.baseAddress!) }
        #expect(Self.le32(slot, 0) == 3)
        #expect(Self.le32(slot, 4) == 4)  // 0xFFFFFFF8 + 12 wraps to 4
        let decoded = try Self.decode(slot, abi: .v2).get()
        #expect(decoded == .lost(lost))
        #expect(decoded.sequence == 4)
    }

    @Test func decodeRejectsUnknownTypeAndFlags() {
        var slot = [UInt8](repeating: 0, count: 64)
        slot[0] = 9
        #expect(throws: RecordDecodeError.self) { try Self.decode(slot, abi: .v2).get() }
        slot[0] = 2
        slot[12] = 0x80  // unknown v2 flag
        guard case .failure(let error) = Self.decode(slot, abi: .v2) else {
            Issue.record("unknown flag accepted")
            return
        }
        #expect(error.field == "flags")
    }
}
