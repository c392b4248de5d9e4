import CFaultRingABI

/// A record ABI version, as offered in `faultring_producer_header.max_abi` and
/// requested in `faultring_consumer_header.requested_abi`.
///
/// ABI 1 records are byte-identical to the kernel's `struct iommu_fault`;
/// ABI 2 records add device id, sequence, cookie and timestamp
/// (`faultring_abi.h`). Both use 64-byte records and 64-byte response slots.
public struct ABIVersion: RawRepresentable, Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The value stored in the shared header.
    public let rawValue: UInt32

    /// Creates a version from a raw header value, or `nil` if no version
    /// with that number exists in this build.
    public init?(rawValue: UInt32) {
        guard rawValue >= FAULTRING_ABI_V1 && rawValue <= FAULTRING_ABI_MAX else { return nil }
        self.rawValue = rawValue
    }

    /// ABI 1: the kernel's `struct iommu_fault` / `struct iommu_page_response`.
    public static let v1 = ABIVersion(rawValue: FAULTRING_ABI_V1)!
    /// ABI 2: the extended record with device id, sequence, cookie, timestamp.
    public static let v2 = ABIVersion(rawValue: FAULTRING_ABI_V2)!
    /// The highest ABI this build can produce.
    public static let maximum = ABIVersion(rawValue: FAULTRING_ABI_MAX)!

    /// Size of the response struct of this ABI: the minimum legal `argsz`.
    public var responseSize: Int {
        self == .v1 ? MemoryLayout<faultring_v1_response>.size : MemoryLayout<faultring_v2_response>.size
    }

    /// The `version` field a response of this ABI must carry.
    public var responseVersion: UInt32 {
        self == .v1 ? FAULTRING_RESP_VERSION_1 : FAULTRING_RESP_VERSION_2
    }

    /// Orders versions by number.
    public static func < (lhs: ABIVersion, rhs: ABIVersion) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Prints `v` and the number, e.g. `v2`.
    public var description: String { "v\(rawValue)" }
}

/// Sizes fixed by the layout version, re-exported for Swift callers.
public enum ABILayout {
    /// Bytes in every fault record slot (both ABIs).
    public static let entrySize = Int(FAULTRING_ENTRY_SIZE)
    /// Bytes in every response slot (both ABIs).
    public static let responseSlotSize = Int(FAULTRING_RESPONSE_SLOT_SIZE)
    /// Alignment of ring offsets inside a region.
    public static let regionAlign = Int(FAULTRING_REGION_ALIGN)
    /// Inclusive bounds on ring slot counts (which must be powers of two).
    public static let entryCountRange = Int(FAULTRING_MIN_ENTRIES)...Int(FAULTRING_MAX_ENTRIES)
    /// Highest PASID (20 bits, PCIe).
    public static let maxPASID = FAULTRING_PASID_MAX
    /// Highest page request group index (9 bits, PCIe).
    public static let maxPRGI = FAULTRING_PRGI_MAX
}
