/// An SMMUv3 context descriptor (64 bytes, 8 little-endian words): the
/// stage-1 configuration of one substream (PASID). In a nested set-up the
/// guest owns the CD table; the host's STE points at it.
///
/// Bit positions: SMMUv3 spec (IHI 0070) §5.4, checked against Linux
/// `drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h` (`CTXDESC_CD_0_*`,
/// `CTXDESC_CD_1_TTB0_MASK`) and `arm_smmu_make_s1_cd`: word 0: T0SZ 5:0,
/// TG0 7:6, IRGN0 9:8, ORGN0 11:10, SH0 13:12, EPD0 14, ENDI 15, EPD1 30,
/// V 31, IPS 34:32, AFFD 35 (spec), TBI0 38, AA64 41, HD 42, HA 43, S 44,
/// R 45, A 46, ASET 47, ASID 63:48; word 1: TTB0 51:4; word 3: MAIR.
public struct SMMUv3ContextDescriptor: Hashable, Sendable {
    /// The 8 words as they sit in guest memory.
    public var words: [UInt64]

    /// A descriptor with these words (exactly 8).
    public init(words: [UInt64]) {
        precondition(words.count == 8, "a context descriptor is 8 words")
        self.words = words
    }

    /// The valid stage-1 descriptor Linux builds for a 4 KiB-granule table
    /// at `ttb0` with `inputBits` of input (T0SZ = 64 − inputBits), 48-bit
    /// output, `asid`: TG0 4K, IRGN0/ORGN0 WBWA, SH0 inner, EPD1, V, IPS 48,
    /// AA64, R, A, ASET, and Linux's MAIR (0xf404ff44).
    public static func stage1(ttb0: UInt64, inputBits: Int = 48, asid: UInt16) -> SMMUv3ContextDescriptor {
        let w0 = Bits.put(UInt64(64 - inputBits), 0, 6) | Bits.put(1, 8, 2) | Bits.put(1, 10, 2) | Bits.put(3, 12, 2)
            | Bits.flag(true, 30) | Bits.flag(true, 31) | Bits.put(5, 32, 3) | Bits.flag(true, 41)
            | Bits.flag(true, 45) | Bits.flag(true, 46) | Bits.flag(true, 47) | Bits.put(UInt64(asid), 48, 16)
        return SMMUv3ContextDescriptor(words: [w0, ttb0 & 0x000F_FFFF_FFFF_FFF0, 0, 0xF404_FF44, 0, 0, 0, 0])
    }

    /// V (word 0 bit 31).
    public var isValid: Bool { Bits.flag(words[0], 31) }
    /// T0SZ (word 0 bits 5:0).
    public var t0sz: Int { Int(Bits.get(words[0], 0, 6)) }
    /// TG0 (word 0 bits 7:6): 0 4 KiB, 1 64 KiB, 2 16 KiB.
    public var tg0: Int { Int(Bits.get(words[0], 6, 2)) }
    /// EPD0 (word 0 bit 14): walks through TTB0 disabled.
    public var ttb0Disabled: Bool { Bits.flag(words[0], 14) }
    /// ENDI (word 0 bit 15): big-endian tables.
    public var bigEndian: Bool { Bits.flag(words[0], 15) }
    /// IPS (word 0 bits 34:32): 0 32, 1 36, 2 40, 3 42, 4 44, 5 48, 6 52 bits.
    public var ips: Int { Int(Bits.get(words[0], 32, 3)) }
    /// AFFD (word 0 bit 35): an access-flag fault is not raised.
    public var accessFlagFaultDisabled: Bool { Bits.flag(words[0], 35) }
    /// AA64 (word 0 bit 41): AArch64 tables.
    public var aarch64: Bool { Bits.flag(words[0], 41) }
    /// HA (word 0 bit 43): hardware sets AF.
    public var hardwareAccessFlag: Bool { Bits.flag(words[0], 43) }
    /// S (word 0 bit 44): stall on fault.
    public var stall: Bool { Bits.flag(words[0], 44) }
    /// ASID (word 0 bits 63:48).
    public var asid: UInt16 { UInt16(Bits.get(words[0], 48, 16)) }
    /// TTB0 (word 1 bits 51:4).
    public var ttb0: UInt64 { words[1] & 0x000F_FFFF_FFFF_FFF0 }
    /// MAIR (word 3).
    public var mair: UInt64 { words[3] }

    /// Output address bits that IPS selects; nil for a reserved encoding.
    public var outputBits: Int? {
        switch ips {
        case 0: 32
        case 1: 36
        case 2: 40
        case 3: 42
        case 4: 44
        case 5: 48
        case 6: 52
        default: nil
        }
    }

    /// Why this valid descriptor cannot be used by the model, or nil: the
    /// SMMU raises C_BAD_CD for these. AArch32 tables, big-endian tables, a
    /// granule other than 4 KiB, a T0SZ outside 16…51, a reserved IPS, and
    /// TTB0 bits above the output size or below 4 KiB alignment.
    public var badDescriptorReason: String? {
        guard aarch64 else { return "AA64 clear: AArch32 tables are not modelled" }
        guard !bigEndian else { return "ENDI set: big-endian tables are not modelled" }
        guard tg0 == 0 else { return "TG0 \(tg0): only the 4 KiB granule is modelled" }
        guard ArmStage1Geometry(t0sz: t0sz) != nil else { return "T0SZ \(t0sz) outside 16…51" }
        guard let bits = outputBits else { return "IPS \(ips) is reserved" }
        guard ttb0 & 0xFF0 == 0 else { return "TTB0 0x\(String(ttb0, radix: 16)) not 4 KiB aligned" }
        guard bits >= 52 || ttb0 >> UInt64(bits) == 0 else {
            return "TTB0 0x\(String(ttb0, radix: 16)) above the \(bits)-bit output size"
        }
        return nil
    }

    /// The CD of `ssid` in a linear table: at `base + ssid * 64` (Linux
    /// `arm_smmu_get_cd_ptr`); in a two-level table (S1Fmt 2) the level-1
    /// index is `ssid / 1024` and the level-2 index `ssid % 1024`
    /// (`CTXDESC_L2_ENTRIES`).
    public static let level2Entries = 1024
}

/// A level-1 CD-table descriptor (8 bytes): V (bit 0) and the level-2
/// table's address (51:12); Linux `CTXDESC_L1_DESC_V`,
/// `CTXDESC_L1_DESC_L2PTR_MASK`.
public struct SMMUv3CDLevel1Descriptor: Hashable, Sendable {
    /// The raw descriptor.
    public var raw: UInt64
    /// The descriptor with these bits.
    public init(raw: UInt64) { self.raw = raw }
    /// A valid descriptor pointing at the level-2 table at `table`.
    public init(table: UInt64) { raw = (table & 0x000F_FFFF_FFFF_F000) | 1 }
    /// V (bit 0).
    public var isValid: Bool { Bits.flag(raw, 0) }
    /// L2Ptr (bits 51:12).
    public var table: UInt64 { raw & 0x000F_FFFF_FFFF_F000 }
}
