import IOMMUFormats
import Testing

/// Golden values for the guest stage-1 formats, each computed by hand from
/// the bit positions the architecture specifications give (and Linux's
/// macros repeat; the sources are named in each type's documentation).
@Suite struct GuestTableFormatTests {
    // MARK: x86-64 first stage (VT-d)

    @Test func x86EntriesEncodeAsLinuxWritesThem() {
        // Non-leaf: P | R/W | U/S | A (x86_64_pt_install_table) = 0x27.
        #expect(X86PagingEntry.table(at: 0x1234_5000).raw == 0x0000_0000_1234_5027)
        // 4 KiB writable leaf: P | R/W | U/S | A | D = 0x67.
        #expect(X86PagingEntry.leaf(0x8_0000_0000, level: 0, writable: true).raw == 0x0000_0008_0000_0067)
        // 2 MiB read-only, no-execute leaf: P | U/S | A | PS | XD.
        #expect(X86PagingEntry.leaf(0x4000_0000, level: 1, writable: false, executable: false).raw
                == 0x8000_0000_4000_00A5)
        let entry = X86PagingEntry(raw: 0x8000_0000_4000_00A5)
        #expect(entry.isPresent && !entry.isWritable && entry.isUser && entry.isExecuteDisabled)
        #expect(entry.isLeaf(level: 1) && !entry.isLeaf(level: 3))
        #expect(entry.frame(level: 1) == 0x4000_0000)
    }

    @Test func x86IndicesAndCanonicalAddresses() {
        let va: UInt64 = 0x0000_7FFF_C020_3456
        // 47:39, 38:30, 29:21, 20:12.
        #expect(X86PagingMode.index(of: va, level: 3) == 0xFF)
        #expect(X86PagingMode.index(of: va, level: 2) == 0x1FF)
        #expect(X86PagingMode.index(of: va, level: 1) == 0x001)
        #expect(X86PagingMode.index(of: va, level: 0) == 0x003)
        #expect(X86PagingMode.index(of: 0x00FF_0000_0000_0000, level: 4) == 0xFF)
        #expect(X86PagingMode.fourLevel.isCanonical(0x0000_7FFF_FFFF_F000))
        #expect(X86PagingMode.fourLevel.isCanonical(0xFFFF_8000_0000_0000))
        #expect(!X86PagingMode.fourLevel.isCanonical(0x0000_8000_0000_0000))
        #expect(X86PagingMode.fiveLevel.isCanonical(0x0000_8000_0000_0000))
        #expect(!X86PagingMode.fiveLevel.isCanonical(0x0100_0000_0000_0000))
        #expect(X86PagingMode.fiveLevel.isCanonical(0xFF00_0000_0000_0000))
    }

    @Test func x86ReservedBits() {
        // A 2 MiB leaf with bit 13 set; a PML4E with PS; an address above a 39-bit guest.
        #expect(X86PagingEntry(raw: 0x4000_2000 | 0x87).reservedBitsSet(level: 1, addressWidth: 48) == 0x2000)
        #expect(X86PagingEntry(raw: 0x1000 | 0x83).reservedBitsSet(level: 3, addressWidth: 48) == 0x80)
        #expect(X86PagingEntry(raw: 0x80_0000_1000 | 0x3).reservedBitsSet(level: 0, addressWidth: 39)
                == 0x80_0000_0000)
        // Bit 12 of a 2 MiB leaf is PAT, and bits 62:52 are ignored: not reserved.
        #expect(X86PagingEntry(raw: 0x7FF0_0000_4000_1087).reservedBitsSet(level: 1, addressWidth: 48) == 0)
    }

    // MARK: VT-d PASID directory and table

    @Test func vtdPASIDEntryRoundTripsAtLinuxBitPositions() throws {
        var e = VTdPASIDEntry()
        e.present = true
        e.translationType = .nested        // PGTT 3 << 6 = 0xC0
        e.addressWidth = 2                  // AW 2 << 2 = 0x8
        e.secondStageRoot = 0x7_0000_0000
        e.domainID = 0x42
        e.pageWalkSnoop = true              // bit 87 = val[1] bit 23
        e.supervisorRequests = true         // bit 128 = val[2] bit 0
        e.firstStageMode = .fiveLevel       // FLPM 1 = val[2] bit 2
        e.writeProtect = true               // bit 132 = val[2] bit 4
        e.firstStageRoot = 0x1234_5000      // bits 191:140 = val[2] 63:12
        #expect(e.words == [0x0000_0007_0000_00C9, 0x0080_0042, 0x0000_0000_1234_5015, 0, 0, 0, 0, 0])
        #expect(try VTdPASIDEntry(words: e.words) == e)
        #expect(VTdPASIDEntry.directoryIndex(of: 0xABCDE) == 0x2AF3)
        #expect(VTdPASIDEntry.tableIndex(of: 0xABCDE) == 0x1E)
    }

    @Test func vtdPASIDEntryRefusesReservedValues() {
        let good = [UInt64(0x41), 0, 0x1000, 0, 0, 0, 0, 0]   // P, PGTT 1 (first stage only)
        #expect((try? VTdPASIDEntry(words: good))?.translationType == .firstStageOnly)
        var words = good
        words[0] |= 1 << 5                                    // reserved between AW and PGTT
        #expect(throws: HardwareRecordError.self) { try VTdPASIDEntry(words: words) }
        words = good
        words[0] = 0x1 | (5 << 6)                             // PGTT 5
        #expect(throws: HardwareRecordError.self) { try VTdPASIDEntry(words: words) }
        words = good
        words[2] |= 2 << 2                                    // FLPM 2
        #expect(throws: HardwareRecordError.self) { try VTdPASIDEntry(words: words) }
        words = good
        words[5] = 1                                          // val[5]
        #expect(throws: HardwareRecordError.self) { try VTdPASIDEntry(words: words) }
        // Not present: the rest is not looked at.
        #expect((try? VTdPASIDEntry(words: [0xFFFF_FFFF_FFFF_FFFE, 0, 0, 0, 0, 0, 0, 9]))?.present == false)
        let dir = VTdPASIDDirectoryEntry(table: 0x5000)
        #expect(dir.raw == 0x5001 && dir.isPresent && dir.table == 0x5000 && dir.reservedBitsSet == 0)
    }

    // MARK: Arm VMSAv8-64 stage 1 (SMMUv3)

    @Test func armDescriptorsEncodeAsLinuxWritesThem() {
        // Page, AttrIndx 1, AP[1], SH inner, AF, nG, XN: 0x3 | 0x4 | 0x40 | 0x300 | 0x400 | 0x800 | 3 << 53.
        #expect(ArmStage1Descriptor.leaf(0x8000_0000, level: 3, writable: true).raw == 0x0060_0000_8000_0F47)
        // Read-only 2 MiB block (type 0b01), executable, privileged only.
        #expect(ArmStage1Descriptor.leaf(0x4020_0000, level: 2, writable: false, unprivileged: false, executable: true).raw
                == 0x0000_0000_4020_0F85)
        #expect(ArmStage1Descriptor.table(at: 0x9_0000_1000).raw == 0x0000_0009_0000_1003)
        let page = ArmStage1Descriptor(raw: 0x0060_0000_8000_0F47)
        #expect(page.isLeaf(level: 3) && !page.isTable(level: 3) && page.hasAccessFlag && page.attributeIndex == 1)
        #expect(page.permits(write: true, execute: false, privileged: false))
        #expect(!page.permits(write: false, execute: true, privileged: true))
        let block = ArmStage1Descriptor(raw: 0x0000_0000_4020_0F85)
        #expect(block.isLeaf(level: 2) && !block.isLeaf(level: 3) && !block.isLeaf(level: 0))
        #expect(!block.permits(write: false, execute: false, privileged: false))   // AP[1] clear
        #expect(!block.permits(write: true, execute: false, privileged: true))     // AP[2] set
        #expect(block.permits(write: false, execute: true, privileged: true))
    }

    @Test func armGeometryFollowsT0SZ() throws {
        let g48 = try #require(ArmStage1Geometry(t0sz: 16))
        #expect(g48.startLevel == 0 && g48.inputBits == 48)
        let va: UInt64 = 0x0000_8040_2010_0000 + 0x1000 * 5
        #expect(g48.index(of: va, level: 0) == 0x100)
        #expect(g48.index(of: va, level: 1) == 0x100)
        #expect(g48.index(of: va, level: 2) == 0x100)
        #expect(g48.index(of: va, level: 3) == 0x105)
        let g39 = try #require(ArmStage1Geometry(t0sz: 25))
        #expect(g39.startLevel == 1)
        let g40 = try #require(ArmStage1Geometry(t0sz: 24))
        #expect(g40.startLevel == 0 && g40.index(of: 0xFF_FFFF_FFFF, level: 0) == 1)   // 2 entries
        #expect(try #require(ArmStage1Geometry(t0sz: 34)).startLevel == 2)
        #expect(ArmStage1Geometry(t0sz: 15) == nil && ArmStage1Geometry(t0sz: 52) == nil)
        #expect(!g39.fits(0x80_0000_0000) && g39.fits(0x7F_FFFF_FFFF))
    }

    @Test func smmuContextDescriptorAsLinuxBuildsIt() {
        let cd = SMMUv3ContextDescriptor.stage1(ttb0: 0x8_0000_0000, asid: 5)
        // T0SZ 16 | IRGN0 1 << 8 | ORGN0 1 << 10 | SH0 3 << 12 | EPD1 | V | IPS 5 << 32 | AA64 | R | A | ASET | ASID 5 << 48.
        #expect(cd.words[0] == 0x0005_E205_C000_3510)
        #expect(cd.words[1] == 0x8_0000_0000 && cd.words[3] == 0xF404_FF44)
        #expect(cd.isValid && cd.t0sz == 16 && cd.asid == 5 && cd.outputBits == 48 && cd.badDescriptorReason == nil)
        var words = cd.words
        words[0] |= 1 << 15                                     // ENDI
        #expect(SMMUv3ContextDescriptor(words: words).badDescriptorReason?.contains("ENDI") == true)
        words = cd.words
        words[0] = (words[0] & ~0xC0) | (1 << 6)                // TG0 64 KiB
        #expect(SMMUv3ContextDescriptor(words: words).badDescriptorReason?.contains("TG0") == true)
        words = cd.words
        words[1] = 1 << 49                                      // TTB0 above 48 bits
        #expect(SMMUv3ContextDescriptor(words: words).badDescriptorReason?.contains("output size") == true)
        #expect(SMMUv3CDLevel1Descriptor(table: 0x12_0000).raw == 0x12_0001)
    }

    @Test func nestedSTEIsValidatedAsTheKernelDoes() throws {
        let words = SMMUv3NestedSTE.words(config: .stage1, contextPointer: 0x4_0000_0040, s1CDMax: 10, ats: true)
        // V | Config 5 << 1 | S1ContextPtr | S1CDMax 10 << 59; EATS 1 << 28.
        #expect(words == [0x5000_0004_0000_004B, 0x1000_0000])
        let ste = try SMMUv3NestedSTE(words: words)
        #expect(ste.config == .stage1 && ste.contextPointer == 0x4_0000_0040 && ste.s1CDMax == 10 && ste.ats)
        #expect(throws: HardwareRecordError.self) { try SMMUv3NestedSTE(words: [words[0] | 1 << 55, words[1]]) }
        #expect(throws: HardwareRecordError.self) { try SMMUv3NestedSTE(words: [words[0], words[1] | 1 << 19]) }
        #expect(throws: HardwareRecordError.self) { try SMMUv3NestedSTE(words: [0x1 | 6 << 1, 0]) }   // S2 translate
        #expect(throws: HardwareRecordError.self) { try SMMUv3NestedSTE(words: [0x1 | 5 << 1 | 1 << 4, 0]) } // S1Fmt 1
        #expect(throws: HardwareRecordError.self) { try SMMUv3NestedSTE(words: [words[0], 2 << 28]) }  // EATS 2
        #expect(try SMMUv3NestedSTE(words: [0xFFFF_FFFF_FFFF_FFFE, ~0]).config == .abort)         // V clear
    }
}
