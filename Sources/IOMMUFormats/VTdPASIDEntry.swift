/// A VT-d scalable-mode PASID-table entry (512 bits, `u64 val[8]`): how one
/// PASID of a device translates. In a nested set-up the guest's vIOMMU
/// holds these in guest memory; the VMM reads the guest's entry and binds
/// its first-stage table (FLPTR, FLPM, SRE, WPE, EAFE) per PASID.
///
/// Bit positions: VT-d spec §9.6, checked against Linux
/// `drivers/iommu/intel/pasid.h` (`pasid_set_*` helpers): P 0, FPD 1, AW
/// 4:2, PGTT 8:6, SSADE 9, SLPTPTR 63:12; DID 79:64, PWSNP 87, PGSNP 88;
/// SRE 128, FLPM 131:130, WPE 132, NXE 133, EAFE 135, FLPTR 191:140.
/// Bits the kernel does not define are decoded as reserved: a guest that
/// sets one gets a clear error naming the bits, not a silent guess.
public struct VTdPASIDEntry: Hashable, Sendable {
    /// Translation type (PGTT, bits 8:6).
    public enum TranslationType: UInt64, Hashable, Sendable {
        /// 1: first stage only (the guest's tables are the whole walk).
        case firstStageOnly = 1
        /// 2: second stage only.
        case secondStageOnly = 2
        /// 3: nested: first stage (guest), then second stage (host).
        case nested = 3
        /// 4: pass-through.
        case passThrough = 4
    }

    /// P (bit 0).
    public var present = false
    /// FPD (bit 1): faults are not reported.
    public var faultProcessingDisabled = false
    /// AW (bits 4:2): second-stage address width (AGAW).
    public var addressWidth: UInt8 = 0
    /// PGTT (bits 8:6).
    public var translationType = TranslationType.firstStageOnly
    /// SSADE (bit 9): second-stage A/D enable.
    public var secondStageADEnable = false
    /// SLPTPTR (bits 63:12): the second-stage root (host-owned).
    public var secondStageRoot: UInt64 = 0
    /// DID (bits 79:64).
    public var domainID: UInt16 = 0
    /// PWSNP (bit 87): page-walk snoop.
    public var pageWalkSnoop = false
    /// PGSNP (bit 88): page snoop.
    public var pageSnoop = false
    /// SRE (bit 128): supervisor (privileged) requests allowed.
    public var supervisorRequests = false
    /// FLPM (bits 131:130): 0 4-level, 1 5-level.
    public var firstStageMode = X86PagingMode.fourLevel
    /// WPE (bit 132): supervisor writes honour R/W.
    public var writeProtect = false
    /// NXE (bit 133): set by Linux ≤ 6.x with XD leaves; accepted, not used.
    public var noExecuteEnable = false
    /// EAFE (bit 135): extended-accessed flag enable.
    public var extendedAccessed = false
    /// FLPTR (bits 191:140): the first-stage root, a guest-physical address.
    public var firstStageRoot: UInt64 = 0

    /// Bits of val[0], val[1] and val[2] that carry a field; the rest, and
    /// all of val[3..7], are reserved.
    static let known: [UInt64] = [0xFFFF_FFFF_FFFF_F3DF, 0x0180_FFFF, 0xFFFF_FFFF_FFFF_F0BD]

    /// An empty (not present) entry.
    public init() {}

    /// Decodes the 8 little-endian words of an entry.
    /// - Throws: `HardwareRecordError` naming a reserved bit set, PGTT 0 or
    ///   5–7, or FLPM 2–3, on a present entry. A not-present entry decodes
    ///   whatever else it holds (hardware ignores it).
    public init(words: [UInt64]) throws(HardwareRecordError) {
        guard words.count == 8 else {
            throw HardwareRecordError(format: "VT-d PASID entry", field: "size", value: UInt64(words.count * 8),
                                      problem: "an entry is 64 bytes")
        }
        present = Bits.flag(words[0], 0)
        guard present else { return }
        for (i, word) in words.enumerated() {
            let stray = word & ~(i < 3 ? Self.known[i] : 0)
            guard stray == 0 else {
                throw HardwareRecordError(format: "VT-d PASID entry", field: "val[\(i)]", value: stray,
                                          problem: "reserved bits set")
            }
        }
        faultProcessingDisabled = Bits.flag(words[0], 1)
        addressWidth = UInt8(Bits.get(words[0], 2, 3))
        let pgtt = Bits.get(words[0], 6, 3)
        guard let type = TranslationType(rawValue: pgtt) else {
            throw HardwareRecordError(format: "VT-d PASID entry", field: "PGTT", value: pgtt,
                                      problem: "not 1 (first stage), 2, 3 (nested) or 4 (pass-through)")
        }
        translationType = type
        secondStageADEnable = Bits.flag(words[0], 9)
        secondStageRoot = words[0] & 0xFFFF_FFFF_FFFF_F000
        domainID = UInt16(Bits.get(words[1], 0, 16))
        pageWalkSnoop = Bits.flag(words[1], 23)
        pageSnoop = Bits.flag(words[1], 24)
        supervisorRequests = Bits.flag(words[2], 0)
        let flpm = Bits.get(words[2], 2, 2)
        guard flpm < 2 else {
            throw HardwareRecordError(format: "VT-d PASID entry", field: "FLPM", value: flpm,
                                      problem: "not 0 (4-level) or 1 (5-level)")
        }
        firstStageMode = flpm == 0 ? .fourLevel : .fiveLevel
        writeProtect = Bits.flag(words[2], 4)
        noExecuteEnable = Bits.flag(words[2], 5)
        extendedAccessed = Bits.flag(words[2], 7)
        firstStageRoot = words[2] & 0xFFFF_FFFF_FFFF_F000
    }

    /// The 8 words of this entry (val[3..7] zero).
    public var words: [UInt64] {
        let w0 = Bits.flag(present, 0) | Bits.flag(faultProcessingDisabled, 1) | Bits.put(UInt64(addressWidth), 2, 3)
            | Bits.put(translationType.rawValue, 6, 3) | Bits.flag(secondStageADEnable, 9)
            | (secondStageRoot & 0xFFFF_FFFF_FFFF_F000)
        let w1 = UInt64(domainID) | Bits.flag(pageWalkSnoop, 23) | Bits.flag(pageSnoop, 24)
        let w2 = Bits.flag(supervisorRequests, 0) | Bits.put(firstStageMode == .fiveLevel ? 1 : 0, 2, 2)
            | Bits.flag(writeProtect, 4) | Bits.flag(noExecuteEnable, 5) | Bits.flag(extendedAccessed, 7)
            | (firstStageRoot & 0xFFFF_FFFF_FFFF_F000)
        return [w0, w1, w2, 0, 0, 0, 0, 0]
    }

    /// The PASID directory index of `pasid`: bits 19:6 (Linux
    /// `PASID_PDE_SHIFT` 6).
    public static func directoryIndex(of pasid: UInt32) -> Int { Int(pasid >> 6) }
    /// The index in its PASID table: bits 5:0 (`PASID_PTE_MASK` 0x3F); a
    /// table holds 64 entries, one 4 KiB page.
    public static func tableIndex(of pasid: UInt32) -> Int { Int(pasid & 0x3F) }
}

/// A VT-d scalable-mode PASID-directory entry (64 bits): P (bit 0), FPD
/// (bit 1), and the 4 KiB-aligned PASID table's address (63:12); Linux
/// `struct pasid_dir_entry`, `PASID_PTE_PRESENT`, `PDE_PFN_MASK`.
public struct VTdPASIDDirectoryEntry: Hashable, Sendable {
    /// The raw entry.
    public var raw: UInt64
    /// The entry with these bits.
    public init(raw: UInt64) { self.raw = raw }
    /// A present entry pointing at `table`.
    public init(table: UInt64) { raw = (table & 0xFFFF_FFFF_FFFF_F000) | 1 }
    /// P (bit 0).
    public var isPresent: Bool { Bits.flag(raw, 0) }
    /// FPD (bit 1).
    public var faultProcessingDisabled: Bool { Bits.flag(raw, 1) }
    /// The PASID table's guest-physical address (bits 63:12).
    public var table: UInt64 { raw & 0xFFFF_FFFF_FFFF_F000 }
    /// Bits 11:2, reserved, as set in this entry.
    public var reservedBitsSet: UInt64 { raw & 0xFFC }
}
