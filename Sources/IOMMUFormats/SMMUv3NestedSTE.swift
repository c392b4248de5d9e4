/// The part of an SMMUv3 stream-table entry a guest may give the host when
/// it binds its CD table: the kernel's `struct iommu_hwpt_arm_smmuv3
/// { __aligned_le64 ste[2]; }` (`IOMMU_HWPT_DATA_ARM_SMMUV3`).
///
/// Validated as Linux `arm_smmu_validate_vste` does: word 0 may carry only
/// V, Config, S1Fmt, S1ContextPtr and S1CDMax; word 1 only S1DSS, S1CIR,
/// S1COR, S1CSH, S1STALLD and EATS (`STRTAB_STE_0/1_NESTING_ALLOWED`);
/// Config must be abort (0), bypass (4) or stage-1 translate (5); EATS 0
/// or 1; V clear makes the whole entry an abort. Bit positions from
/// `arm-smmu-v3.h`: V 0, Config 3:1, S1Fmt 5:4, S1ContextPtr 51:6, S1CDMax
/// 63:59; S1DSS 1:0, S1CIR 3:2, S1COR 5:4, S1CSH 7:6, S1STALLD 27, EATS 29:28.
public struct SMMUv3NestedSTE: Hashable, Sendable {
    /// What the stream does.
    public enum Config: UInt64, Hashable, Sendable {
        /// 0: every transaction aborts.
        case abort = 0
        /// 4: no stage 1 (stage 2 only, the host's).
        case bypass = 4
        /// 5: stage 1 through the guest's CD table, then stage 2.
        case stage1 = 5
    }

    /// Config (an entry with V clear is `.abort`).
    public let config: Config
    /// S1Fmt: 0 linear, 2 two-level with 64 KiB leaves (1 is not supported,
    /// as in Linux).
    public let s1Format: Int
    /// S1ContextPtr: the CD table's guest-physical address (64-byte aligned).
    public let contextPointer: UInt64
    /// S1CDMax: log2 of the number of CDs (0: one, no substreams).
    public let s1CDMax: Int
    /// S1DSS: 0 terminate, 1 bypass, 2 use CD 0, for traffic without a PASID.
    public let s1DSS: Int
    /// EATS: 1 if the device may use ATS (it has an ATC).
    public let ats: Bool

    static let word0Allowed: UInt64 = 0xF80F_FFFF_FFFF_FFFF   // V, Config, S1Fmt, S1ContextPtr, S1CDMax
    static let word1Allowed: UInt64 = 0x3800_00FF             // S1DSS/CIR/COR/CSH, S1STALLD, EATS

    /// Decodes and validates the two words.
    /// - Throws: `HardwareRecordError` naming the word and the stray bits,
    ///   or the Config, S1Fmt, EATS or S1DSS value (the kernel's `-EIO`).
    public init(words: [UInt64]) throws(HardwareRecordError) {
        func bad(_ field: String, _ value: UInt64, _ problem: String) -> HardwareRecordError {
            HardwareRecordError(format: "SMMUv3 nested STE", field: field, value: value, problem: problem)
        }
        guard words.count == 2 else { throw bad("size", UInt64(words.count * 8), "a nested STE is 16 bytes") }
        guard Bits.flag(words[0], 0) else {
            // V = 0: the kernel zeroes the entry into an abort STE.
            config = .abort; s1Format = 0; contextPointer = 0; s1CDMax = 0; s1DSS = 0; ats = false
            return
        }
        let stray0 = words[0] & ~Self.word0Allowed, stray1 = words[1] & ~Self.word1Allowed
        guard stray0 == 0 else { throw bad("ste[0]", stray0, "bits outside V, Config, S1Fmt, S1ContextPtr, S1CDMax") }
        guard stray1 == 0 else { throw bad("ste[1]", stray1, "bits outside S1DSS, S1CIR, S1COR, S1CSH, S1STALLD, EATS") }
        let cfg = Bits.get(words[0], 1, 3)
        guard let config = Config(rawValue: cfg) else { throw bad("Config", cfg, "not abort (0), bypass (4) or S1 (5)") }
        self.config = config
        s1Format = Int(Bits.get(words[0], 4, 2))
        guard config != .stage1 || s1Format == 0 || s1Format == 2 else {
            throw bad("S1Fmt", UInt64(s1Format), "not 0 (linear) or 2 (two-level, 64 KiB leaves)")
        }
        contextPointer = words[0] & 0x000F_FFFF_FFFF_FFC0
        s1CDMax = Int(Bits.get(words[0], 59, 5))
        s1DSS = Int(Bits.get(words[1], 0, 2))
        guard s1DSS != 3 else { throw bad("S1DSS", 3, "reserved") }
        let eats = Bits.get(words[1], 28, 2)
        guard eats <= 1 else { throw bad("EATS", eats, "not 0 (no ATS) or 1 (full ATS)") }
        ats = eats == 1
    }

    /// Encodes a valid entry.
    public static func words(config: Config, contextPointer: UInt64, s1CDMax: Int, s1Format: Int = 0,
                             s1DSS: Int = 0, ats: Bool = false) -> [UInt64] {
        let w0 = 1 | Bits.put(config.rawValue, 1, 3) | Bits.put(UInt64(s1Format), 4, 2)
            | (contextPointer & 0x000F_FFFF_FFFF_FFC0) | Bits.put(UInt64(s1CDMax), 59, 5)
        let w1 = Bits.put(UInt64(s1DSS), 0, 2) | Bits.put(ats ? 1 : 0, 28, 2)
        return [w0, w1]
    }
}
