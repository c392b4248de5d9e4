import CFaultRingABI

/// A private snapshot of one 64-byte response slot.
///
/// The consumer may rewrite a slot while the producer reads it; copying it
/// once and validating only the copy means the checks and the use agree.
@usableFromInline
struct ResponseSlotSnapshot {
    @usableFromInline var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
}

extension PageResponse {
    /// Copies the slot at `slot` and validates it as a response of `abi`.
    ///
    /// Rules (kernel extensible-struct rules, `faultring_abi.h`):
    /// `argsz` in `abi.responseSize ... 64`; bytes in `[responseSize, argsz)`
    /// zero; `version` equal to the ABI's; no unknown flags; `pasid`/`grpid`
    /// zero unless flagged; `code` known; PASID ≤ 20 bits, PRGI ≤ 9 bits.
    /// The first rule broken decides the rejection.
    ///
    /// Inlinable, as its checks are: the service's read loop then validates
    /// each slot in registers, with no call per response.
    @inlinable
    @inline(__always)
    public static func validate(slot: UnsafeRawPointer, abi: ABIVersion) -> Result<PageResponse, ResponseRejection> {
        var snapshot = slot.load(as: ResponseSlotSnapshot.self)
        return withUnsafeBytes(of: &snapshot) { bytes in validate(copy: bytes, abi: abi) }
    }

    @inlinable
    @inline(__always)
    static func validate(copy bytes: UnsafeRawBufferPointer, abi: ABIVersion) -> Result<PageResponse, ResponseRejection> {
        let argsz = bytes.load(fromByteOffset: 0, as: UInt32.self)
        let known = abi.responseSize
        guard argsz >= known && argsz <= ABILayout.responseSlotSize else {
            return .failure(ResponseRejection(.badArgsz, field: "argsz", value: argsz))
        }
        for offset in known..<Int(argsz) where bytes[offset] != 0 {
            return .failure(ResponseRejection(trailingByte: offset, value: bytes[offset]))
        }
        let version = bytes.load(fromByteOffset: 4, as: UInt32.self)
        guard version == abi.responseVersion else {
            return .failure(ResponseRejection(.badVersion, field: "version", value: version))
        }
        if abi == .v1 {
            let wire = bytes.load(as: faultring_v1_response.self)
            return check(flags: wire.flags, allowed: FAULTRING_RESP_PASID_VALID, pasid: wire.pasid, prgi: wire.grpid,
                         prgiAlwaysPresent: true, code: wire.code, cookie: 0)
        }
        let wire = bytes.load(as: faultring_v2_response.self)
        return check(flags: wire.flags, allowed: FAULTRING_RESP_PASID_VALID | FAULTRING_RESP_GRPID_VALID,
                     pasid: wire.pasid, prgi: wire.grpid, prgiAlwaysPresent: false, code: wire.code, cookie: wire.cookie)
    }

    // The checks common to both ABIs, in the order the rejection reasons are documented.
    @inlinable
    static func check(
        flags: UInt32, allowed: UInt32, pasid: UInt32, prgi: UInt32, prgiAlwaysPresent: Bool, code: UInt32,
        cookie: UInt64
    ) -> Result<PageResponse, ResponseRejection> {
        guard flags & ~allowed == 0 else {
            return .failure(ResponseRejection(.unknownFlags, field: "flags", value: flags))
        }
        let hasPASID = flags & FAULTRING_RESP_PASID_VALID != 0
        let hasPRGI = prgiAlwaysPresent || flags & FAULTRING_RESP_GRPID_VALID != 0
        if !hasPASID && pasid != 0 {
            return .failure(ResponseRejection(.reservedNonZero, field: "pasid", value: pasid))
        }
        if !hasPRGI && prgi != 0 {
            return .failure(ResponseRejection(.reservedNonZero, field: "grpid", value: prgi))
        }
        guard let responseCode = ResponseCode(rawValue: code) else {
            return .failure(ResponseRejection(.badCode, field: "code", value: code))
        }
        if pasid > FAULTRING_PASID_MAX {
            return .failure(ResponseRejection(.outOfRange, field: "pasid", value: pasid))
        }
        if prgi > FAULTRING_PRGI_MAX {
            return .failure(ResponseRejection(.outOfRange, field: "grpid", value: prgi))
        }
        return .success(PageResponse(code: responseCode, cookie: cookie, pasid: hasPASID ? pasid : nil,
                                     prgi: hasPRGI ? prgi : nil))
    }
}
