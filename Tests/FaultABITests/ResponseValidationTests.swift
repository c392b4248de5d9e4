import CFaultRingABI
import FaultABI
import Testing

@Suite struct ResponseValidationTests {
    /// A slot holding `response` encoded for `abi`, then patched by `mutate`.
    static func validate(_ response: PageResponse, abi: ABIVersion, mutate: (UnsafeMutableRawPointer) -> Void = { _ in })
        -> Result<PageResponse, ResponseRejection>
    {
        var slot = [UInt8](repeating: 0xEE, count: 64)
        return slot.withUnsafeMutableBytes { raw in
            response.encode(into: raw.baseAddress!, abi: abi)
            mutate(raw.baseAddress!)
            return PageResponse.validate(slot: raw.baseAddress!, abi: abi)
        }
    }

    static func reason(_ result: Result<PageResponse, ResponseRejection>) -> ResponseRejection.Reason? {
        if case .failure(let rejection) = result { return rejection.reason }
        return nil
    }

    @Test func validResponsesRoundTrip() throws {
        let v1 = PageResponse(code: .success, pasid: 0x42, prgi: 0x1FF)
        #expect(try Self.validate(v1, abi: .v1).get() == v1)
        let v1NoPASID = PageResponse(code: .invalid, prgi: 3)
        #expect(try Self.validate(v1NoPASID, abi: .v1).get() == v1NoPASID)
        let v2 = PageResponse(code: .failure, cookie: 0xFEED_0000_0000_0001, pasid: 9, prgi: nil)
        #expect(try Self.validate(v2, abi: .v2).get() == v2)
    }

    @Test func argszRules() {
        let r = PageResponse(code: .success, cookie: 1)
        // Too small for the ABI, larger than a slot.
        #expect(Self.reason(Self.validate(r, abi: .v2) { $0.storeBytes(of: UInt32(24), as: UInt32.self) }) == .badArgsz)
        #expect(Self.reason(Self.validate(r, abi: .v2) { $0.storeBytes(of: UInt32(65), as: UInt32.self) }) == .badArgsz)
        // Larger argsz is fine when the extra bytes are zero ...
        #expect(Self.reason(Self.validate(r, abi: .v2) { $0.storeBytes(of: UInt32(64), as: UInt32.self) }) == nil)
        // ... and E2BIG-style rejected when they are not.
        let trailing = Self.validate(r, abi: .v2) {
            $0.storeBytes(of: UInt32(48), as: UInt32.self)
            $0.storeBytes(of: UInt8(1), toByteOffset: 40, as: UInt8.self)
        }
        #expect(Self.reason(trailing) == .trailingNonZero)
        // Bytes past argsz are not the response's and are ignored.
        let past = Self.validate(r, abi: .v2) { $0.storeBytes(of: UInt8(1), toByteOffset: 40, as: UInt8.self) }
        #expect(Self.reason(past) == nil)
    }

    @Test func eachRejectionReason() {
        let v1 = PageResponse(code: .success, prgi: 1)
        let v2 = PageResponse(code: .success, cookie: 1)
        #expect(Self.reason(Self.validate(v1, abi: .v1) { $0.storeBytes(of: UInt32(2), toByteOffset: 4, as: UInt32.self) }) == .badVersion)
        #expect(Self.reason(Self.validate(v2, abi: .v2) { $0.storeBytes(of: UInt32(1), toByteOffset: 4, as: UInt32.self) }) == .badVersion)
        #expect(Self.reason(Self.validate(v1, abi: .v1) { $0.storeBytes(of: UInt32(2), toByteOffset: 8, as: UInt32.self) }) == .unknownFlags)
        #expect(Self.reason(Self.validate(v2, abi: .v2) { $0.storeBytes(of: UInt32(4), toByteOffset: 8, as: UInt32.self) }) == .unknownFlags)
        // pasid set without PASID_VALID; v2 grpid set without GRPID_VALID.
        #expect(Self.reason(Self.validate(v1, abi: .v1) { $0.storeBytes(of: UInt32(5), toByteOffset: 12, as: UInt32.self) }) == .reservedNonZero)
        #expect(Self.reason(Self.validate(v2, abi: .v2) { $0.storeBytes(of: UInt32(5), toByteOffset: 28, as: UInt32.self) }) == .reservedNonZero)
        #expect(Self.reason(Self.validate(v1, abi: .v1) { $0.storeBytes(of: UInt32(3), toByteOffset: 20, as: UInt32.self) }) == .badCode)
        #expect(Self.reason(Self.validate(v2, abi: .v2) { $0.storeBytes(of: UInt32(0xF), toByteOffset: 12, as: UInt32.self) }) == .badCode)
        let widePASID = PageResponse(code: .success, pasid: 0x10_0000, prgi: 1)
        #expect(Self.reason(Self.validate(widePASID, abi: .v1)) == .outOfRange)
        #expect(Self.reason(Self.validate(PageResponse(code: .success, prgi: 0x200), abi: .v1)) == .outOfRange)
    }
}
