import FaultSys
import IOMMUFormats
import NestedIOMMU
import Testing

/// Walks of guest tables in real shared memory: the guest writes through a
/// read-write mapping of its memfd (`GuestRAM`), the service walks a
/// read-only mapping of the same file (`GuestMemory`).
@Suite struct Stage1WalkerTests {
    /// 8 MiB of guest RAM at GPA 1 GiB, shared as the service would map it.
    static func shared() throws -> (GuestRAM, GuestMemory) {
        let ram = try GuestRAM(gpa: 1 << 30, size: 8 << 20)
        let memory = GuestMemory()
        try memory.add(fd: ram.fd.descriptor, gpa: ram.gpa, size: ram.size)
        return (ram, memory)
    }

    static func vtd(_ tables: GuestPageTables, mode: X86PagingMode = .fourLevel, sre: Bool = false,
                    wpe: Bool = false) -> Stage1Context {
        var e = VTdPASIDEntry()
        e.present = true
        e.translationType = .nested
        e.firstStageRoot = tables.root
        e.firstStageMode = mode
        e.supervisorRequests = sre
        e.writeProtect = wpe
        return .vtd(e)
    }

    static func translated(_ outcome: WalkOutcome) -> Translation? {
        if case .translated(let t) = outcome { return t }
        return nil
    }

    static func fault(_ outcome: WalkOutcome) -> WalkFault? {
        if case .fault(let f) = outcome { return f }
        return nil
    }

    /// Tables written entry by entry with literal values, as the SDM lays
    /// them out, and walked: the walker agrees with the specification, not
    /// only with the builder.
    @Test func x86WalkOfHandWrittenTables() throws {
        let (ram, memory) = try Self.shared()
        let pml4 = ram.allocate()!, pdpt = ram.allocate()!, pd = ram.allocate()!, pt = ram.allocate()!
        let page = ram.allocate()!
        let iova: UInt64 = 0x0000_7F80_4060_3123   // PML4 0xFF, PDPT 0x1, PD 0x3, PT 0x3
        ram.store64(pdpt | 0x27, at: pml4 + 0xFF * 8)            // P RW US A
        ram.store64(pd | 0x27, at: pdpt + 0x1 * 8)
        ram.store64(pt | 0x27, at: pd + 0x3 * 8)
        ram.store64(page | 0x65, at: pt + 0x3 * 8)               // P US A D, read-only
        var e = VTdPASIDEntry()
        e.present = true
        e.firstStageRoot = pml4
        let read = Self.translated(Stage1Walker.walk(iova, access: .read, context: .vtd(e), memory: memory))
        #expect(read == Translation(iova: iova & ~0xFFF, gpa: page, size: 4096, writable: false, executable: true))
        #expect(read?.translate(iova) == page + 0x123)
        let write = Self.fault(Stage1Walker.walk(iova, access: .write, context: .vtd(e), memory: memory))
        #expect(write?.kind == .permission && write?.level == 0 && write?.isPageRequestable == true)
    }

    @Test(arguments: [X86PagingMode.fourLevel, .fiveLevel])
    func x86LeavesOfEverySize(mode: X86PagingMode) throws {
        let (ram, memory) = try Self.shared()
        let tables = try GuestPageTables(.x86(mode), in: ram)
        let page = ram.allocate()!
        let big = ram.allocate(pages: 512, alignment: 2 << 20)!
        try tables.map(0x4000_1000, to: page, writable: true)
        try tables.map(0x8000_0000, to: big, size: 2 << 20, writable: false)
        try tables.map(0x40_0000_0000, to: 1 << 30, size: 1 << 30, writable: true)   // the GiB at 1 GiB: all of RAM
        let ctx = Self.vtd(tables, mode: mode)
        #expect(Self.translated(Stage1Walker.walk(0x4000_1ABC, access: .write, context: ctx, memory: memory))?.gpa == page)
        let twoMiB = Self.translated(Stage1Walker.walk(0x8012_3456, access: .read, context: ctx, memory: memory))
        #expect(twoMiB?.size == 2 << 20 && twoMiB?.translate(0x8012_3456) == big + 0x12_3456)
        let oneGiB = Self.translated(Stage1Walker.walk(0x40_0000_2000, access: .write, context: ctx, memory: memory))
        #expect(oneGiB?.size == 1 << 30 && oneGiB?.gpa == 1 << 30)
        // A GiB page past the end of RAM: the page itself is a stage-2 miss.
        let past = Self.fault(Stage1Walker.walk(0x40_0090_0000, access: .read, context: ctx, memory: memory))
        #expect(past?.kind == .stage2Miss && past?.isPageRequestable == false)
        // Not present, at each level on the way.
        let missing = Self.fault(Stage1Walker.walk(0x4000_2000, access: .read, context: ctx, memory: memory))
        #expect(missing?.kind == .notPresent && missing?.level == 0)
        let higher = Self.fault(Stage1Walker.walk(0x7000_0000_0000, access: .read, context: ctx, memory: memory))
        #expect(higher?.kind == .notPresent && higher?.level == 3)   // PML4 index 0xE0 (under PML5 index 0)
        // Unmapped, then not present.
        #expect(tables.unmap(0x4000_1000))
        #expect(Self.fault(Stage1Walker.walk(0x4000_1000, access: .read, context: ctx, memory: memory))?.kind == .notPresent)
    }

    @Test func x86PermissionsReservedBitsAndAddresses() throws {
        let (ram, memory) = try Self.shared()
        let tables = try GuestPageTables(.x86(.fourLevel), in: ram)
        let page = ram.allocate()!
        try tables.map(0x1000, to: page, writable: false, user: false, executable: false)
        func walk(_ access: DMAAccess, _ ctx: Stage1Context) -> WalkOutcome {
            Stage1Walker.walk(0x1000, access: access, context: ctx, memory: memory)
        }
        // A supervisor page: user requests fault; privileged ones need SRE.
        #expect(Self.fault(walk(.read, Self.vtd(tables)))?.detail.contains("supervisor") == true)
        #expect(Self.fault(walk(DMAAccess(write: false, privileged: true), Self.vtd(tables)))?.kind == .badContext)
        #expect(Self.translated(walk(DMAAccess(write: false, privileged: true), Self.vtd(tables, sre: true))) != nil)
        // Supervisor writes to a read-only page: allowed unless WPE.
        #expect(Self.translated(walk(DMAAccess(write: true, privileged: true), Self.vtd(tables, sre: true))) != nil)
        #expect(Self.fault(walk(DMAAccess(write: true, privileged: true), Self.vtd(tables, sre: true, wpe: true)))?.kind
                == .permission)
        // XD.
        #expect(Self.fault(walk(DMAAccess(write: false, execute: true, privileged: true), Self.vtd(tables, sre: true)))?
            .detail.contains("XD") == true)
        // A reserved bit (bit 13 of a 2 MiB leaf).
        tables.setEntry(0x20_0000, level: 1, raw: 0x4000_2000 | 0xA7)
        #expect(Self.fault(Stage1Walker.walk(0x20_0000, access: .read, context: Self.vtd(tables), memory: memory))?.kind
                == .reservedBits)
        // Non-canonical input; a table pointer outside guest RAM.
        #expect(Self.fault(Stage1Walker.walk(0x8000_0000_0000, access: .read, context: Self.vtd(tables), memory: memory))?
            .kind == .addressSize)
        tables.setEntry(0x40_0000, level: 1, raw: 0x10_0000 | 0x27)   // PD entry → PT at 1 MiB: unbacked
        let miss = Self.fault(Stage1Walker.walk(0x40_0000, access: .read, context: Self.vtd(tables), memory: memory))
        #expect(miss?.kind == .stage2Miss && miss?.gpa == 0x10_0000)
        // A PASID entry that is not present, or has no first stage.
        var e = VTdPASIDEntry()
        #expect(Self.fault(walk(.read, .vtd(e)))?.kind == .badContext)
        e.present = true
        e.translationType = .passThrough
        #expect(Self.fault(walk(.read, .vtd(e)))?.kind == .badContext)
    }

    /// VMSAv8-64 tables written with literal descriptors and walked.
    @Test func armWalkOfHandWrittenTables() throws {
        let (ram, memory) = try Self.shared()
        let l0 = ram.allocate()!, l1 = ram.allocate()!, l2 = ram.allocate()!, l3 = ram.allocate()!
        let page = ram.allocate()!
        let iova: UInt64 = 0x0000_8040_2010_5678   // L0 0x100, L1 0x100, L2 0x100, L3 0x105
        ram.store64(l1 | 3, at: l0 + 0x100 * 8)
        ram.store64(l2 | 3, at: l1 + 0x100 * 8)
        ram.store64(l3 | 3, at: l2 + 0x100 * 8)
        ram.store64(page | 0x0060_0000_0000_0F47, at: l3 + 0x105 * 8)   // RW, EL0, XN
        let cd = SMMUv3ContextDescriptor.stage1(ttb0: l0, asid: 7)
        let t = Self.translated(Stage1Walker.walk(iova, access: .write, context: .smmuv3(cd), memory: memory))
        #expect(t == Translation(iova: iova & ~0xFFF, gpa: page, size: 4096, writable: true, executable: false))
        #expect(Self.fault(Stage1Walker.walk(iova, access: DMAAccess(write: false, execute: true), context: .smmuv3(cd),
                                             memory: memory))?.kind == .permission)
        // AF clear: an access-flag fault, unless the CD disables it.
        ram.store64(page | 0x0060_0000_0000_0B47, at: l3 + 0x105 * 8)
        #expect(Self.fault(Stage1Walker.walk(iova, access: .read, context: .smmuv3(cd), memory: memory))?.kind == .accessFlag)
        var affd = cd.words
        affd[0] |= 1 << 35
        #expect(Self.translated(Stage1Walker.walk(iova, access: .read, context: .smmuv3(SMMUv3ContextDescriptor(words: affd)),
                                                  memory: memory)) != nil)
    }

    @Test(arguments: [48, 39, 30])
    func armGeometriesAndFaults(inputBits: Int) throws {
        let (ram, memory) = try Self.shared()
        let tables = try GuestPageTables(.arm(inputBits: inputBits), in: ram)
        let cd = SMMUv3ContextDescriptor.stage1(ttb0: tables.root, inputBits: inputBits, asid: 1)
        let page = ram.allocate()!
        let block = ram.allocate(pages: 512, alignment: 2 << 20)!
        try tables.map(0x3000, to: page, writable: false)
        try tables.map(0x20_0000, to: block, size: 2 << 20, writable: true, executable: true)
        func walk(_ iova: UInt64, _ access: DMAAccess, _ cd: SMMUv3ContextDescriptor = cd) -> WalkOutcome {
            Stage1Walker.walk(iova, access: access, context: .smmuv3(cd), memory: memory)
        }
        #expect(Self.translated(walk(0x3010, .read))?.translate(0x3010) == page + 0x10)
        #expect(Self.fault(walk(0x3010, .write))?.kind == .permission)
        #expect(Self.translated(walk(0x21_2345, DMAAccess(write: true, execute: true)))?.size == 2 << 20)
        #expect(Self.fault(walk(0x5000, .read))?.kind == .notPresent)
        // Above the input size: a translation fault (not-present), page-requestable as on the SMMU.
        #expect(Self.fault(walk(UInt64(1) << UInt64(inputBits), .read))?.kind == .notPresent)
        // EPD0, V clear, an unsupported granule.
        var words = cd.words
        words[0] |= 1 << 14
        #expect(Self.fault(walk(0x3000, .read, SMMUv3ContextDescriptor(words: words)))?.detail == "EPD0 set")
        words = cd.words
        words[0] &= ~(1 << 31)
        #expect(Self.fault(walk(0x3000, .read, SMMUv3ContextDescriptor(words: words)))?.kind == .badContext)
        words = cd.words
        words[0] |= 2 << 6
        #expect(Self.fault(walk(0x3000, .read, SMMUv3ContextDescriptor(words: words)))?.kind == .badContext)
    }

    @Test func armOutputAboveIPSIsAnAddressSizeFault() throws {
        let (ram, memory) = try Self.shared()
        let tables = try GuestPageTables(.arm(inputBits: 48), in: ram)
        try tables.map(0x1000, to: 0x10_0000_0000, writable: true)       // 36 bits needed + 1
        var words = SMMUv3ContextDescriptor.stage1(ttb0: tables.root, asid: 1).words
        words[0] = (words[0] & ~(7 << 32)) | (1 << 32)                   // IPS 36 bits
        let f = Self.fault(Stage1Walker.walk(0x1000, access: .read, context: .smmuv3(SMMUv3ContextDescriptor(words: words)),
                                             memory: memory))
        #expect(f?.kind == .addressSize)
    }

    @Test func guestMemoryRefusesWhatWouldHurtTheService() throws {
        let ram = try GuestRAM(gpa: 0, size: 64 << 10)
        let memory = GuestMemory()
        func code(_ gpa: UInt64, _ size: UInt64, _ offset: UInt64 = 0) -> GuestMemoryError.Code? {
            do { try memory.add(fd: ram.fd.descriptor, gpa: gpa, size: size, offset: offset); return nil } catch {
                return error.code
            }
        }
        #expect(code(0x1001, 4096) == .misaligned)
        #expect(code(0x1000, 0) == .misaligned)
        #expect(code(0x1000, 4096, 100) == .misaligned)
        #expect(code(0xFFFF_FFFF_FFFF_F000, 8192) == .outOfRange)
        #expect(code(1 << 52, 4096) == .outOfRange)
        #expect(code(0x1000, 128 << 10) == .beyondFile)
        #expect(code(0x1000, 32 << 10, 48 << 10) == .beyondFile)
        #expect(code(0x10_0000, 64 << 10) == nil)
        #expect(code(0x10_8000, 4096) == .overlap)
        #expect(code(0xF_F000, 8192) == .overlap)
        #expect(code(0x11_0000, 16 << 10, 16 << 10) == nil)     // adjacent, from an offset
        #expect(memory.regions.map(\.gpa) == [0x10_0000, 0x11_0000])
        // A memfd the VMM could shrink, and a descriptor that is no memfd.
        let unsealed = try Sys.memfd(name: "unsealed")
        try Sys.truncate(unsealed, to: 4096, name: "unsealed")
        #expect(throws: GuestMemoryError.self) { try memory.add(fd: unsealed.descriptor, gpa: 0x20_0000, size: 4096) }
        let pipe = try Sys.pipe()
        do { try memory.add(fd: pipe.read.descriptor, gpa: 0x20_0000, size: 4096) } catch {
            #expect(error.code == .notSealed && error.detail.contains("not a memfd"))
        }
        // Reads: backed, unbacked, unaligned.
        ram.store64(0x1122_3344_5566_7788, at: 0x10)
        #expect(memory.load64(0x10_0010) == 0x1122_3344_5566_7788)
        #expect(memory.load64(0x11_4000) == nil)               // just past the second region
        #expect(memory.load64(0x11_3FF8) == 0)
        #expect(memory.load64(0x10_0011) == nil)
    }
}
