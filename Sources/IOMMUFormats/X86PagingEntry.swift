/// One x86-64 paging-structure entry (PML5E, PML4E, PDPTE, PDE or PTE) as
/// VT-d scalable-mode first-stage translation reads it: the guest's own
/// page tables, walked by the IOMMU with 4 or 5 levels.
///
/// Bit positions: Intel SDM vol. 3 §4.5 and the VT-d spec's first-stage
/// chapter, checked against Linux `drivers/iommu/intel/iommu.h`
/// (`DMA_FL_PTE_PRESENT` 0, `DMA_FL_PTE_US` 2, `DMA_FL_PTE_ACCESS` 5,
/// `DMA_FL_PTE_DIRTY` 6, `DMA_PTE_LARGE_PAGE` 7, `DMA_FL_PTE_XD` 63),
/// `drivers/iommu/generic_pt/fmt/x86_64.h` (`X86_64_FMT_OA` =
/// GENMASK(51, 12)) and `arch/x86/include/asm/pgtable_types.h`.
/// QEMU's first-stage walker (`hw/i386/intel_iommu_internal.h`) gives the
/// reserved-bit masks used by ``reservedBitsSet(level:addressWidth:)``.
public struct X86PagingEntry: Hashable, Sendable {
    /// The 64-bit entry as it sits in guest memory (little-endian).
    public var raw: UInt64

    /// Bit 0: the entry maps something.
    public static let present: UInt64 = 1 << 0
    /// Bit 1: writes allowed through this entry.
    public static let writable: UInt64 = 1 << 1
    /// Bit 2: user-mode (non-privileged) requests allowed.
    public static let user: UInt64 = 1 << 2
    /// Bit 3: page-level write-through.
    public static let writeThrough: UInt64 = 1 << 3
    /// Bit 4: page-level cache disable.
    public static let cacheDisable: UInt64 = 1 << 4
    /// Bit 5: accessed; the IOMMU sets it when it uses the entry.
    public static let accessed: UInt64 = 1 << 5
    /// Bit 6: dirty (leaves); the IOMMU sets it on a write.
    public static let dirty: UInt64 = 1 << 6
    /// Bit 7: in a PDPTE or PDE, the entry is a 1 GiB or 2 MiB leaf (PS);
    /// in a PTE it is PAT; reserved in a PML4E and PML5E.
    public static let pageSize: UInt64 = 1 << 7
    /// Bit 8: global (leaves).
    public static let global: UInt64 = 1 << 8
    /// Bit 63: execute-disable.
    public static let executeDisable: UInt64 = 1 << 63
    /// Bits 51:12: the next table's or the frame's guest-physical address.
    public static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000

    /// The entry with these raw bits.
    public init(raw: UInt64) { self.raw = raw }

    /// A non-leaf entry pointing at the table at `table` (4 KiB aligned),
    /// with the bits Linux writes into one: P, R/W, U/S, A.
    public static func table(at table: UInt64, writable: Bool = true, user: Bool = true) -> X86PagingEntry {
        X86PagingEntry(raw: (table & addressMask) | present | accessed
                       | (writable ? Self.writable : 0) | (user ? Self.user : 0))
    }

    /// A leaf mapping `frame` at `level` (0: 4 KiB PTE, 1: 2 MiB PDE,
    /// 2: 1 GiB PDPTE; PS is set for 1 and 2), with A set, and D with W.
    public static func leaf(_ frame: UInt64, level: Int, writable: Bool, user: Bool = true,
                            executable: Bool = true) -> X86PagingEntry {
        var raw = (frame & addressMask) | present | accessed
        if writable { raw |= Self.writable | dirty }
        if user { raw |= Self.user }
        if level > 0 { raw |= pageSize }
        if !executable { raw |= executeDisable }
        return X86PagingEntry(raw: raw)
    }

    /// Bit 0.
    public var isPresent: Bool { raw & Self.present != 0 }
    /// Bit 1.
    public var isWritable: Bool { raw & Self.writable != 0 }
    /// Bit 2.
    public var isUser: Bool { raw & Self.user != 0 }
    /// Bit 5.
    public var isAccessed: Bool { raw & Self.accessed != 0 }
    /// Bit 6.
    public var isDirty: Bool { raw & Self.dirty != 0 }
    /// Bit 63.
    public var isExecuteDisabled: Bool { raw & Self.executeDisable != 0 }
    /// Bits 51:12, unshifted.
    public var address: UInt64 { raw & Self.addressMask }

    /// Whether the entry at `level` (0 PTE … 4 PML5E) ends the walk: always
    /// at level 0, with PS at levels 1 and 2, never above.
    public func isLeaf(level: Int) -> Bool {
        level == 0 || ((level == 1 || level == 2) && raw & Self.pageSize != 0)
    }

    /// The frame a leaf at `level` maps: the address with the bits below the
    /// leaf's size cleared (2 MiB: 51:21; 1 GiB: 51:30).
    public func frame(level: Int) -> UInt64 {
        address & ~(X86PagingMode.leafSize(level: level) - 1)
    }

    /// The reserved bits set in this present entry at `level`, 0 if none:
    /// bits of 51:12 at or above `addressWidth` (the guest's physical
    /// address width); PS in a PML4E or PML5E; in a 2 MiB leaf bits 20:13,
    /// in a 1 GiB leaf bits 29:13 (bit 12 is PAT there). Bits 62:52 and
    /// 11:9 are ignored (QEMU's `VTD_FPTE_*_RSVD_MASK`).
    public func reservedBitsSet(level: Int, addressWidth: Int) -> UInt64 {
        var mask = addressWidth >= 52 ? 0 : (Self.addressMask & ~((UInt64(1) << UInt64(addressWidth)) - 1))
        if level >= 3 { mask |= Self.pageSize }
        if isLeaf(level: level) && level == 1 { mask |= 0x1F_E000 }      // 20:13
        if isLeaf(level: level) && level == 2 { mask |= 0x3FFF_E000 }    // 29:13
        return raw & mask
    }
}

/// x86-64 first-stage paging modes, as the VT-d PASID-table entry's FLPM
/// selects them (0: 4-level, 48-bit input; 1: 5-level, 57-bit input).
public enum X86PagingMode: Int, Hashable, Sendable, CaseIterable {
    /// PML4 at the root: 48-bit input addresses (Linux `ADDR_WIDTH_4LEVEL`).
    case fourLevel = 4
    /// PML5 at the root: 57-bit input addresses (Linux `ADDR_WIDTH_5LEVEL`).
    case fiveLevel = 5

    /// Levels walked: 4 or 5.
    public var levels: Int { rawValue }
    /// Input address bits: 48 or 57.
    public var inputBits: Int { rawValue == 4 ? 48 : 57 }
    /// The root level: 3 (PML4) or 4 (PML5).
    public var rootLevel: Int { rawValue - 1 }

    /// The index into the table at `level` (0 PT … 4 PML5) that `address`
    /// selects: bits `12 + 9 * level` up, 9 of them.
    public static func index(of address: UInt64, level: Int) -> Int {
        Int((address >> UInt64(12 + 9 * level)) & 0x1FF)
    }

    /// The size a leaf at `level` maps: 4 KiB, 2 MiB or 1 GiB.
    public static func leafSize(level: Int) -> UInt64 { UInt64(1) << UInt64(12 + 9 * level) }

    /// Whether `address` is canonical: bits 63 down to the top input bit are
    /// all equal (QEMU `vtd_iova_fl_check_canonical`). A non-canonical input
    /// faults before any table is read.
    public func isCanonical(_ address: UInt64) -> Bool {
        let top = address >> UInt64(inputBits - 1)
        return top == 0 || top == (UInt64.max >> UInt64(inputBits - 1))
    }
}
