import CFaultRingABI
import FaultABI

/// `struct iommu_hwpt_pgfault` (40 bytes, `faultring_iommufd.h`): one page
/// request as the iommufd fault queue delivers it, and as a faultring
/// device socket carries it.
public struct HWPTPageFault: Sendable, Hashable {
    /// Bytes per record.
    public static let size = MemoryLayout<faultring_hwpt_pgfault>.size
    /// Flags faultring understands: PASID_VALID, LAST_PAGE, and the
    /// kernel-internal NEEDS_PASID the kernel copies through raw.
    public static let knownFlags = FAULTRING_IOMMU_PGFAULT_FLAGS_PASID_VALID | FAULTRING_IOMMU_PGFAULT_FLAGS_LAST_PAGE
        | FAULTRING_IOMMU_PGFAULT_FLAGS_NEEDS_PASID
    static let format = "iommu_hwpt_pgfault"

    /// PASID_VALID, LAST_PAGE, NEEDS_PASID.
    public var flags: UInt32
    /// The iommufd device object id (faultring's device id).
    public var deviceID: UInt32
    /// Valid with PASID_VALID.
    public var pasid: UInt32
    /// The PRG index.
    public var grpid: UInt32
    /// READ / WRITE / EXEC / PRIV: the same bits as `Permissions`.
    public var perm: UInt32
    /// The faulting address.
    public var address: UInt64
    /// The group's cookie (one per group, chosen by the kernel or the device).
    public var cookie: UInt32

    /// The record for `request` of a group with `cookie`.
    public init(_ request: PageRequest, cookie: UInt32) {
        var flags: UInt32 = 0
        if request.pasid != nil { flags |= FAULTRING_IOMMU_PGFAULT_FLAGS_PASID_VALID }
        if request.isLastPage { flags |= FAULTRING_IOMMU_PGFAULT_FLAGS_LAST_PAGE }
        if request.needsPASID { flags |= FAULTRING_IOMMU_PGFAULT_FLAGS_NEEDS_PASID }
        self.flags = flags
        deviceID = request.deviceID
        pasid = request.pasid ?? 0
        grpid = request.prgi
        perm = request.permissions.rawValue & FAULTRING_PERM_MASK
        address = request.address
        self.cookie = cookie
    }

    /// Decodes the record at `bytes` (at least `size` bytes, any alignment).
    /// - Throws: `HardwareRecordError` naming the field: unknown flags,
    ///   `__reserved` not zero, a PRG index above 511, unknown permission bits.
    public init(bytes: UnsafeRawBufferPointer) throws(HardwareRecordError) {
        precondition(bytes.count >= Self.size, "a record is \(Self.size) bytes")
        let raw = bytes.loadUnaligned(as: faultring_hwpt_pgfault.self)
        func bad(_ field: String, _ value: UInt64, _ problem: String) -> HardwareRecordError {
            HardwareRecordError(format: Self.format, field: field, value: value, problem: problem)
        }
        guard raw.flags & ~Self.knownFlags == 0 else { throw bad("flags", UInt64(raw.flags), "unknown flag bits") }
        guard raw.__reserved == 0 else { throw bad("__reserved", UInt64(raw.__reserved), "must be zero") }
        guard raw.grpid <= PRILimits.maxPRGI else { throw bad("grpid", UInt64(raw.grpid), "a PRG index is 9 bits") }
        guard raw.perm & ~FAULTRING_PERM_MASK == 0 else { throw bad("perm", UInt64(raw.perm), "unknown permission bits") }
        flags = raw.flags
        deviceID = raw.dev_id
        pasid = raw.pasid
        grpid = raw.grpid
        perm = raw.perm
        address = raw.addr
        cookie = raw.cookie
    }

    /// Whether this request closes its group.
    public var isLastPage: Bool { flags & FAULTRING_IOMMU_PGFAULT_FLAGS_LAST_PAGE != 0 }

    /// The page request the tracker takes (no private data: the kernel
    /// keeps the hardware's own).
    public func pageRequest(timestampNS: UInt64) -> PageRequest {
        let pasidValid = flags & FAULTRING_IOMMU_PGFAULT_FLAGS_PASID_VALID != 0
        return PageRequest(deviceID: deviceID, pasid: pasidValid ? pasid : nil, prgi: grpid,
                           permissions: Permissions(rawValue: perm), address: address, isLastPage: isLastPage,
                           needsPASID: pasidValid && flags & FAULTRING_IOMMU_PGFAULT_FLAGS_NEEDS_PASID != 0,
                           privateData: nil, timestampNS: timestampNS)
    }

    /// The 40 bytes, little-endian (`length` and `__reserved` zero).
    public var bytes: [UInt8] {
        var raw = faultring_hwpt_pgfault()
        raw.flags = flags
        raw.dev_id = deviceID
        raw.pasid = pasid
        raw.grpid = grpid
        raw.perm = perm
        raw.addr = address
        raw.cookie = cookie
        return withUnsafeBytes(of: &raw) { Array($0) }
    }
}

/// `struct iommu_hwpt_page_response` (8 bytes): a group's answer, by cookie.
public struct HWPTPageResponse: Sendable, Hashable {
    /// Bytes per response.
    public static let size = MemoryLayout<faultring_hwpt_page_response>.size
    /// The group's cookie, as read.
    public var cookie: UInt32
    /// `FAULTRING_IOMMUFD_PAGE_RESP_SUCCESS` or `_INVALID`.
    public var code: UInt32

    /// The answer `code` for the group of `cookie`: SUCCESS stays SUCCESS,
    /// anything else is INVALID (the iommufd uAPI has no FAILURE).
    public init(cookie: UInt32, code: ResponseCode) {
        self.cookie = cookie
        self.code = code == .success ? FAULTRING_IOMMUFD_PAGE_RESP_SUCCESS : FAULTRING_IOMMUFD_PAGE_RESP_INVALID
    }

    /// Decodes the response at `bytes` (at least `size` bytes).
    /// - Throws: `HardwareRecordError` if `code` is neither SUCCESS nor INVALID
    ///   (the kernel's `write` returns EINVAL for it).
    public init(bytes: UnsafeRawBufferPointer) throws(HardwareRecordError) {
        precondition(bytes.count >= Self.size, "a response is \(Self.size) bytes")
        let raw = bytes.loadUnaligned(as: faultring_hwpt_page_response.self)
        guard raw.code == FAULTRING_IOMMUFD_PAGE_RESP_SUCCESS || raw.code == FAULTRING_IOMMUFD_PAGE_RESP_INVALID else {
            throw HardwareRecordError(format: "iommu_hwpt_page_response", field: "code", value: UInt64(raw.code),
                                      problem: "is neither SUCCESS (0) nor INVALID (1)")
        }
        cookie = raw.cookie
        code = raw.code
    }

    /// The response code as faultring names it.
    public var responseCode: ResponseCode { code == FAULTRING_IOMMUFD_PAGE_RESP_SUCCESS ? .success : .invalid }

    /// The 8 bytes, little-endian.
    public var bytes: [UInt8] { LittleEndian.bytes(cookie) + LittleEndian.bytes(code) }
}

/// `struct iommufd_vevent_header` (8 bytes): precedes every vEVENTQ record.
public struct VEventHeader: Sendable, Hashable {
    /// Bytes per header.
    public static let size = MemoryLayout<faultring_vevent_header>.size
    /// Bytes of an SMMUv3 payload (`struct iommu_vevent_arm_smmuv3`).
    public static let smmuv3PayloadSize = MemoryLayout<faultring_vevent_arm_smmuv3>.size
    /// LOST_EVENTS: events were lost here; no payload follows.
    public var flags: UInt32
    /// 0 ... INT_MAX, wrapping to 0.
    public var sequence: UInt32

    /// A header with these fields.
    public init(flags: UInt32, sequence: UInt32) {
        self.flags = flags
        self.sequence = sequence
    }

    /// Decodes the header at `bytes` (at least `size` bytes).
    public init(bytes: UnsafeRawBufferPointer) {
        let raw = bytes.loadUnaligned(as: faultring_vevent_header.self)
        flags = raw.flags
        sequence = raw.sequence
    }

    /// Whether this header marks lost events (and carries no payload).
    public var lostEvents: Bool { flags & FAULTRING_IOMMU_VEVENTQ_FLAG_LOST_EVENTS != 0 }

    /// The sequence after `sequence` (INT_MAX wraps to 0).
    public static func next(_ sequence: UInt32) -> UInt32 {
        sequence == FAULTRING_IOMMU_VEVENTQ_SEQUENCE_MAX ? 0 : sequence + 1
    }

    /// Events missing between `expected` and `sequence`, modulo the wrap.
    public static func gap(from expected: UInt32, to sequence: UInt32) -> UInt32 {
        (sequence &- expected) & FAULTRING_IOMMU_VEVENTQ_SEQUENCE_MAX
    }

    /// The 8 bytes, little-endian.
    public var bytes: [UInt8] { LittleEndian.bytes(flags) + LittleEndian.bytes(sequence) }
}
