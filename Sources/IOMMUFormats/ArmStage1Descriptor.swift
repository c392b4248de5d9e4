/// One Arm VMSAv8-64 translation-table descriptor, 4 KiB granule, stage 1:
/// the guest's page tables under an SMMUv3 context descriptor.
///
/// Bit positions: Arm ARM (DDI 0487) D8.3, checked against Linux
/// `drivers/iommu/io-pgtable-arm.c`: valid 0 (`ARM_LPAE_PTE_VALID`), type
/// 1:0 (`ARM_LPAE_PTE_TYPE_TABLE` 3 / `_BLOCK` 1 / `_PAGE` 3), AttrIndx 4:2,
/// NS 5, AP[1] 6 (`ARM_LPAE_PTE_AP_UNPRIV`), AP[2] 7 (`_AP_RDONLY`), SH
/// 9:8, AF 10, nG 11, output address 47:12 (`ARM_LPAE_PTE_ADDR_MASK`), DBM
/// 51, contiguous 52, PXN 53, UXN 54 (`ARM_LPAE_PTE_XN` sets both).
/// Only 48-bit output addresses are modelled (no FEAT_LPA/LPA2).
public struct ArmStage1Descriptor: Hashable, Sendable {
    /// The descriptor as it sits in guest memory (little-endian).
    public var raw: UInt64

    /// Bit 0.
    public static let valid: UInt64 = 1 << 0
    /// Bit 1: with bit 0, a table (levels 0–2) or a page (level 3).
    public static let tableOrPage: UInt64 = 1 << 1
    /// Bit 6, AP[1]: unprivileged (EL0) access allowed.
    public static let unprivileged: UInt64 = 1 << 6
    /// Bit 7, AP[2]: read-only.
    public static let readOnly: UInt64 = 1 << 7
    /// Bit 10: access flag.
    public static let accessFlag: UInt64 = 1 << 10
    /// Bit 11: not global (ASID-tagged).
    public static let notGlobal: UInt64 = 1 << 11
    /// Bit 51: dirty-bit modifier.
    public static let dirtyBitModifier: UInt64 = 1 << 51
    /// Bit 53: privileged execute-never.
    public static let privilegedExecuteNever: UInt64 = 1 << 53
    /// Bit 54: unprivileged execute-never.
    public static let unprivilegedExecuteNever: UInt64 = 1 << 54
    /// Bits 47:12: the output address (next table, page or block).
    public static let addressMask: UInt64 = 0x0000_FFFF_FFFF_F000

    /// The descriptor with these raw bits.
    public init(raw: UInt64) { self.raw = raw }

    /// A table descriptor pointing at `table` (4 KiB aligned).
    public static func table(at table: UInt64) -> ArmStage1Descriptor {
        ArmStage1Descriptor(raw: (table & addressMask) | valid | tableOrPage)
    }

    /// A leaf at `level` (3: 4 KiB page; 2: 2 MiB block; 1: 1 GiB block) with
    /// the bits Linux writes for stage 1 (`arm_lpae_prot_to_pte`): AF, nG,
    /// inner shareable, AttrIndx 1 (cacheable); AP[2] unless writable, AP[1]
    /// if unprivileged access is allowed, XN unless executable.
    public static func leaf(_ output: UInt64, level: Int, writable: Bool, unprivileged: Bool = true,
                            executable: Bool = false) -> ArmStage1Descriptor {
        var raw = (output & addressMask) | valid | (level == 3 ? tableOrPage : 0)
            | accessFlag | notGlobal | (3 << 8) | (1 << 2)
        if !writable { raw |= readOnly }
        if unprivileged { raw |= Self.unprivileged }
        if !executable { raw |= privilegedExecuteNever | unprivilegedExecuteNever }
        return ArmStage1Descriptor(raw: raw)
    }

    /// Bit 0.
    public var isValid: Bool { raw & Self.valid != 0 }
    /// A valid table descriptor: bits 1:0 = 0b11 at levels 0–2.
    public func isTable(level: Int) -> Bool { level < 3 && raw & 3 == 3 }
    /// A valid leaf: a page (0b11) at level 3, a block (0b01) at levels 1–2.
    /// A block at level 0, or 0b01 at level 3, is not a valid descriptor.
    public func isLeaf(level: Int) -> Bool {
        level == 3 ? raw & 3 == 3 : (level == 1 || level == 2) && raw & 3 == 1
    }
    /// Bits 47:12, unshifted.
    public var address: UInt64 { raw & Self.addressMask }
    /// The output of a leaf at `level`, aligned to its size.
    public func output(level: Int) -> UInt64 { address & ~(ArmStage1Geometry.leafSize(level: level) - 1) }
    /// AP[2].
    public var isReadOnly: Bool { raw & Self.readOnly != 0 }
    /// AP[1].
    public var allowsUnprivileged: Bool { raw & Self.unprivileged != 0 }
    /// AF.
    public var hasAccessFlag: Bool { raw & Self.accessFlag != 0 }
    /// AttrIndx (bits 4:2).
    public var attributeIndex: Int { Int(Bits.get(raw, 2, 3)) }

    /// Whether a leaf permits an access (AP[2:1] table of the Arm ARM; the
    /// SMMU takes privilege from the transaction). Execute needs PXN or
    /// UXN clear.
    public func permits(write: Bool, execute: Bool, privileged: Bool) -> Bool {
        if !privileged && !allowsUnprivileged { return false }
        if write && isReadOnly { return false }
        if execute {
            let never = privileged ? Self.privilegedExecuteNever : Self.unprivilegedExecuteNever
            if raw & never != 0 { return false }
        }
        return true
    }
}

/// Where a VMSAv8-64 4 KiB-granule walk starts, from the context
/// descriptor's T0SZ (Linux `arm_lpae_alloc_pgtable`: `va_bits = ias − 12`,
/// `levels = ⌈va_bits / 9⌉`, `start_level = 4 − levels`).
public struct ArmStage1Geometry: Hashable, Sendable {
    /// Input address bits: 64 − T0SZ.
    public let inputBits: Int
    /// The level of the root table: 0 for 40–48 bits, 1 for 31–39, 2 for
    /// 22–30, 3 for 13–21.
    public let startLevel: Int

    /// The geometry for `t0sz`; nil outside 16…51 (4 KiB granule without
    /// FEAT_LPA2 and FEAT_TTST: at most 48 input bits, at least 13).
    public init?(t0sz: Int) {
        guard (16...51).contains(t0sz) else { return nil }
        inputBits = 64 - t0sz
        let levels = (inputBits - 12 + 8) / 9
        startLevel = 4 - levels
    }

    /// The index into the table at `level` that `address` selects: 9 bits
    /// from `12 + 9 * (3 − level)` (fewer at the start level, by the
    /// input size).
    public func index(of address: UInt64, level: Int) -> Int {
        let shift = 12 + 9 * (3 - level)
        let width = level == startLevel ? inputBits - shift : 9
        return Int(Bits.get(address, shift, width))
    }

    /// Whether `address` fits the input size (the bits above it are zero;
    /// TTB1 is not modelled, so an upper-half address faults).
    public func fits(_ address: UInt64) -> Bool { inputBits >= 64 || address >> UInt64(inputBits) == 0 }

    /// The size a leaf at `level` maps: 1 GiB, 2 MiB or 4 KiB.
    public static func leafSize(level: Int) -> UInt64 { UInt64(1) << UInt64(12 + 9 * (3 - level)) }
}
