/// A cache invalidation a guest's driver asks for, at the granularities
/// VT-d's queued invalidation, SMMUv3's commands and the historical
/// `struct iommu_cache_invalidate_info` share.
public enum Invalidation: Hashable, Sendable, Codable, CustomStringConvertible {
    /// IOTLB, the whole domain (VT-d domain-selective; SMMUv3 TLBI_NH_ALL).
    case global
    /// IOTLB, one PASID (VT-d PASID-selective, `QI_GRAN_NONG_PASID`;
    /// SMMUv3 TLBI_NH_ASID by the CD's ASID).
    case pasid(UInt32)
    /// IOTLB, `size` bytes at `address` in a PASID (VT-d page-selective,
    /// `QI_GRAN_PSI_PASID` with AM; SMMUv3 TLBI_NH_VA). `size` is a power of
    /// two ≥ 4 KiB and `address` is aligned to it; `leafOnly` is the hint
    /// that only leaf entries changed (VT-d IH, SMMUv3 Leaf).
    case range(pasid: UInt32, address: UInt64, size: UInt64, leafOnly: Bool)
    /// One device's ATC (VT-d device-TLB, SMMUv3 ATC_INV): a PASID (nil:
    /// all, SMMUv3 SSV clear) and optionally a range (nil: everything).
    case deviceTLB(device: UInt32, pasid: UInt32?, range: AddressRange?)
    /// The cached PASID entry or context descriptor of a device's PASID
    /// (VT-d PASID-cache; SMMUv3 CFGI_CD), or all of them (CFGI_CD_ALL).
    case context(device: UInt32, pasid: UInt32?)

    /// An aligned power-of-two range.
    public struct AddressRange: Hashable, Sendable, Codable {
        /// The first address, aligned to `size`.
        public var address: UInt64
        /// A power of two, at least 4 KiB.
        public var size: UInt64
        /// A range.
        public init(address: UInt64, size: UInt64) {
            self.address = address
            self.size = size
        }
        /// The addresses covered.
        public var closed: ClosedRange<UInt64> { address...(address + (size - 1)) }

        /// Nil if valid, else why not.
        func problem() -> String? {
            guard size >= 4096, size & (size - 1) == 0, size <= 1 << 57 else {
                return "size 0x\(String(size, radix: 16)) is not a power of two from 4 KiB to 2^57"
            }
            guard address & (size - 1) == 0 else {
                return "address 0x\(String(address, radix: 16)) is not aligned to its size 0x\(String(size, radix: 16))"
            }
            guard address.addingReportingOverflow(size - 1).overflow == false else { return "range wraps" }
            return nil
        }
    }

    /// The kind, for counters and messages: "global", "pasid", "range",
    /// "device-tlb", "context".
    public var kind: String {
        switch self {
        case .global: "global"
        case .pasid: "pasid"
        case .range: "range"
        case .deviceTLB: "device-tlb"
        case .context: "context"
        }
    }

    /// The kind and its fields.
    public var description: String {
        switch self {
        case .global: "global"
        case .pasid(let p): "pasid \(p)"
        case .range(let p, let a, let s, let leaf): "range pasid \(p) 0x\(String(a, radix: 16)) +0x\(String(s, radix: 16))\(leaf ? " leaf" : "")"
        case .deviceTLB(let d, let p, let r):
            "device-tlb device \(d) pasid \(p.map(String.init) ?? "all")" + (r.map { " 0x\(String($0.address, radix: 16)) +0x\(String($0.size, radix: 16))" } ?? "")
        case .context(let d, let p): "context device \(d) pasid \(p.map(String.init) ?? "all")"
        }
    }
}
