import CFaultRingABI

/// A page response code (`FAULTRING_RESP_*`, the kernel's `enum iommu_page_response_code`).
public struct ResponseCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The wire value: `FAULTRING_RESP_SUCCESS` (0), `_INVALID` (1) or `_FAILURE` (2).
    public let rawValue: UInt32
    /// Creates a code from its wire value, or `nil` if it is not one of the three.
    public init?(rawValue: UInt32) {
        guard rawValue <= FAULTRING_RESP_FAILURE else { return nil }
        self.rawValue = rawValue
    }
    /// The pages are mapped; the device retries the access (PCIe "Success").
    public static let success = ResponseCode(rawValue: FAULTRING_RESP_SUCCESS)!
    /// This request cannot be served; do not retry (PCIe "Invalid Request").
    public static let invalid = ResponseCode(rawValue: FAULTRING_RESP_INVALID)!
    /// PCIe "Response Failure": disables PRI on the whole function and its VFs.
    public static let failure = ResponseCode(rawValue: FAULTRING_RESP_FAILURE)!

    /// Prints `success`, `invalid` or `failure`.
    public var description: String {
        switch rawValue {
        case FAULTRING_RESP_SUCCESS: return "success"
        case FAULTRING_RESP_INVALID: return "invalid"
        default: return "failure"
        }
    }
}

/// A consumer's answer to one page-request group.
///
/// ABI 1 identifies the group by (`pasid`, `prgi`) within the queue's device;
/// ABI 2 by `cookie`, with `pasid` and `prgi` optional extra checks.
public struct PageResponse: Sendable, Hashable {
    /// What the device is told.
    public var code: ResponseCode
    /// The group's cookie (ABI 2); ignored on ABI 1.
    public var cookie: UInt64
    /// The request's PASID, when the response carries one.
    public var pasid: UInt32?
    /// The request's PRGI: required on ABI 1, optional on ABI 2.
    public var prgi: UInt32?

    /// A response from its fields. Nothing is checked here; `validate(slot:abi:)`
    /// checks what a consumer wrote.
    public init(code: ResponseCode, cookie: UInt64 = 0, pasid: UInt32? = nil, prgi: UInt32? = nil) {
        self.code = code
        self.cookie = cookie
        self.pasid = pasid
        self.prgi = prgi
    }

    /// Writes this response into a 64-byte response slot in `abi`'s format,
    /// zeroing the rest of the slot (bytes past `argsz` are not read, but a
    /// clean slot keeps old responses from lingering in shared memory).
    @inlinable
    public func encode(into slot: UnsafeMutableRawPointer, abi: ABIVersion) {
        slot.initializeMemory(as: UInt8.self, repeating: 0, count: ABILayout.responseSlotSize)
        if abi == .v1 {
            var wire = faultring_v1_response()
            wire.argsz = UInt32(MemoryLayout<faultring_v1_response>.size)
            wire.version = FAULTRING_RESP_VERSION_1
            if let pasid {
                wire.flags = FAULTRING_RESP_PASID_VALID
                wire.pasid = pasid
            }
            wire.grpid = prgi ?? 0
            wire.code = code.rawValue
            slot.storeBytes(of: wire, as: faultring_v1_response.self)
        } else {
            var wire = faultring_v2_response()
            wire.argsz = UInt32(MemoryLayout<faultring_v2_response>.size)
            wire.version = FAULTRING_RESP_VERSION_2
            if let pasid {
                wire.flags |= FAULTRING_RESP_PASID_VALID
                wire.pasid = pasid
            }
            if let prgi {
                wire.flags |= FAULTRING_RESP_GRPID_VALID
                wire.grpid = prgi
            }
            wire.code = code.rawValue
            wire.cookie = cookie
            slot.storeBytes(of: wire, as: faultring_v2_response.self)
        }
    }
}
