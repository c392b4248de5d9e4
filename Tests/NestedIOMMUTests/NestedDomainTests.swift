import IOMMUFormats
import NestedIOMMU
import SystemPackage
import Testing

/// The rules of binding, unbinding, invalidating and revoking, one test per
/// rule, on a domain over real shared guest memory.
@Suite struct NestedDomainTests {
    struct Guest {
        let ram: GuestRAM
        let memory: GuestMemory
        let tables: GuestPageTables
        let domain: NestedDomain
    }

    static func guest(_ style: NestedDomain.Style = .vtd, devices: [UInt32] = [1, 2, 3, 4], ats: Bool = true,
                      quota: Int = 8) throws -> Guest {
        let ram = try GuestRAM(gpa: 1 << 30, size: 4 << 20)
        let memory = GuestMemory()
        try memory.add(fd: ram.fd.descriptor, gpa: ram.gpa, size: ram.size)
        let tables = try GuestPageTables(style == .vtd ? .x86(.fourLevel) : .arm(inputBits: 48), in: ram)
        let domain = NestedDomain(style: style, memory: memory, pasidQuota: quota)
        for d in devices { domain.attach(device: d, ats: ats) }
        return Guest(ram: ram, memory: memory, tables: tables, domain: domain)
    }

    static func entry(_ root: UInt64, did: UInt16 = 1) -> VTdPASIDEntry {
        var e = VTdPASIDEntry()
        e.present = true
        e.translationType = .nested
        e.firstStageRoot = root
        e.domainID = did
        return e
    }

    /// The errno `body` failed with (nil if it did not; EFAULT for an error
    /// that is not a NestedError, which fails the comparison).
    static func errno(_ body: () throws -> Void) -> Errno? {
        do { try body(); return nil } catch let error as NestedError { return error.errno } catch { return .badAddress }
    }

    /// Inject a failure at each device of the set in turn: the bind fails
    /// with EIO and no device keeps it; then, without injection, all take it.
    @Test func bindIsAllOrNothingUnderAFailureAtEachDevice() throws {
        let g = try Self.guest()
        let set: [UInt32] = [1, 2, 3, 4]
        for failing in 0..<set.count {
            g.domain.failBindAtDevice = failing
            #expect(Self.errno { try g.domain.bind(devices: set, pasid: 5, entry: Self.entry(g.tables.root)) } == .ioError)
            for d in set { #expect(g.domain.boundPASIDs(d).isEmpty, "device \(d) half-bound after a failure at \(failing)") }
        }
        #expect(g.domain.counters.bindsRolledBack == 4 && g.domain.counters.binds == 0)
        g.domain.failBindAtDevice = nil
        try g.domain.bind(devices: set, pasid: 5, entry: Self.entry(g.tables.root))
        for d in set { #expect(g.domain.boundPASIDs(d) == [5]) }
    }

    @Test func smmuTableBindIsAllOrNothingToo() throws {
        let g = try Self.guest(.smmuv3)
        let cds = g.ram.allocate()!
        let ste = try SMMUv3NestedSTE(words: SMMUv3NestedSTE.words(config: .stage1, contextPointer: cds, s1CDMax: 3))
        for failing in 0..<4 {
            g.domain.failBindAtDevice = failing
            #expect(Self.errno { try g.domain.bind(devices: [1, 2, 3, 4], table: ste) } == .ioError)
            #expect([1, 2, 3, 4].allSatisfy { g.domain.boundTable($0) == nil })
        }
        g.domain.failBindAtDevice = nil
        try g.domain.bind(devices: [1, 2], table: ste)
        #expect(g.domain.boundTable(2) == ste && g.domain.boundTable(3) == nil)
    }

    @Test func bindRefusalsChangeNothing() throws {
        let g = try Self.guest(quota: 2)
        let root = g.tables.root
        #expect(Self.errno { try g.domain.bind(devices: [1, 9], pasid: 1, entry: Self.entry(root)) } == .notPermitted)
        #expect(Self.errno { try g.domain.bind(devices: [1, 1], pasid: 1, entry: Self.entry(root)) } == .invalidArgument)
        #expect(Self.errno { try g.domain.bind(devices: [], pasid: 1, entry: Self.entry(root)) } == .invalidArgument)
        #expect(Self.errno { try g.domain.bind(devices: [1], pasid: 0, entry: Self.entry(root)) } == .invalidArgument)
        #expect(Self.errno { try g.domain.bind(devices: [1], pasid: 1 << 20, entry: Self.entry(root)) } == .invalidArgument)
        #expect(Self.errno { try g.domain.bind(devices: [1], pasid: 1, entry: Self.entry(0x1000)) } == .invalidArgument)
        var passThrough = Self.entry(root)
        passThrough.translationType = .passThrough
        #expect(Self.errno { try g.domain.bind(devices: [1], pasid: 1, entry: passThrough) } == .invalidArgument)
        let ste = try SMMUv3NestedSTE(words: SMMUv3NestedSTE.words(config: .stage1, contextPointer: root, s1CDMax: 1))
        #expect(Self.errno { try g.domain.bind(devices: [1], table: ste) } == .invalidArgument)   // a VT-d domain
        #expect(g.domain.heldDevices.allSatisfy { g.domain.boundPASIDs($0).isEmpty })
        // Busy, then the quota of 2 PASIDs.
        try g.domain.bind(devices: [1, 2], pasid: 1, entry: Self.entry(root))
        #expect(Self.errno { try g.domain.bind(devices: [2, 3], pasid: 1, entry: Self.entry(root)) } == .resourceBusy)
        #expect(g.domain.boundPASIDs(3).isEmpty)
        try g.domain.bind(devices: [3], pasid: 1, entry: Self.entry(root))       // the same PASID: no new quota
        try g.domain.bind(devices: [1], pasid: 2, entry: Self.entry(root))
        #expect(Self.errno { try g.domain.bind(devices: [1], pasid: 3, entry: Self.entry(root)) } == .noSpace)
        #expect(g.domain.counters.bindsRefused == 10)
    }

    @Test func unbindCannotFail() throws {
        let g = try Self.guest()
        try g.tables.map(0x1000, to: g.ram.allocate()!, writable: true)
        try g.domain.bind(devices: [1, 2], pasid: 7, entry: Self.entry(g.tables.root))
        g.domain.unbind(devices: [1, 2, 3, 99], pasid: 7)   // 3 has nothing bound, 99 is not held
        g.domain.unbind(devices: [1], pasid: 7)             // twice
        #expect(g.domain.boundPASIDs(1).isEmpty && g.domain.boundPASIDs(2).isEmpty)
        #expect(g.domain.counters.unbinds == 2)
        if case .fault(let f) = g.domain.translate(device: 1, pasid: 7, iova: 0x1000, access: .read) {
            #expect(f.kind == .badContext)
        } else {
            Issue.record("an unbound PASID translated")
        }
    }

    /// A guest that changes a mapping without invalidating: the DMA uses the
    /// cached translation, and once the grace period passes with no
    /// invalidation for it, the uses count as the guest's bug. IOTLB
    /// invalidation alone leaves the ATC stale; device-TLB invalidation
    /// clears it. An invalidation that arrives within the grace period
    /// forgives the uses before it (hardware allows that window).
    @Test func staleTranslationsAreJudgedAfterTheGracePeriod() throws {
        let g = try Self.guest()
        g.domain.staleGraceNS = 100
        let first = g.ram.allocate()!, second = g.ram.allocate()!
        try g.tables.map(0x40_0000, to: first, writable: true)
        try g.domain.bind(devices: [1], pasid: 3, entry: Self.entry(g.tables.root))
        func gpa(at now: UInt64, _ expectSource: NestedDomain.Source, stale: Bool) -> UInt64? {
            guard case .translated(let t, let source, let wasStale) = g.domain.translate(
                device: 1, pasid: 3, iova: 0x40_0010, access: .write, now: now) else { return nil }
            #expect(source == expectSource && wasStale == stale)
            return t.translate(0x40_0010)
        }
        #expect(gpa(at: 1, .walk, stale: false) == first + 0x10)
        #expect(gpa(at: 2, .atc, stale: false) == first + 0x10)
        try g.tables.map(0x40_0000, to: second, writable: true)   // remapped, no invalidation
        #expect(gpa(at: 10, .atc, stale: true) == first + 0x10)
        try g.domain.invalidate(.range(pasid: 3, address: 0x40_0000, size: 4096, leafOnly: true))
        #expect(gpa(at: 20, .atc, stale: true) == first + 0x10)   // the ATC still has it
        #expect(g.domain.counters.staleTranslations == 0 && g.domain.counters.staleUsesPending == 2)
        g.domain.settleStale(now: 500)                             // no device-TLB invalidation in time
        #expect(g.domain.counters.staleTranslations == 2)
        try g.domain.invalidate(.deviceTLB(device: 1, pasid: 3, range: .init(address: 0x40_0000, size: 4096)))
        #expect(gpa(at: 600, .walk, stale: false) == second + 0x10)
        // Unmapped, used in the window, then invalidated within the grace period: forgiven.
        g.tables.unmap(0x40_0000)
        #expect(gpa(at: 700, .atc, stale: true) == second + 0x10)
        try g.domain.invalidate(.pasid(3))
        try g.domain.invalidate(.deviceTLB(device: 1, pasid: nil, range: nil))
        g.domain.settleStale(now: .max)
        #expect(g.domain.counters.staleTranslations == 2 && g.domain.counters.staleUsesForgiven == 1)
        if case .fault(let f) = g.domain.translate(device: 1, pasid: 3, iova: 0x40_0010, access: .read, now: 800) {
            #expect(f.kind == .notPresent && f.isPageRequestable)
        } else {
            Issue.record("an unmapped page translated after invalidation")
        }
    }

    /// Forgiveness is decided when the invalidation arrives, so an entry a
    /// DMA refills after it is not held against a correct guest; and an
    /// entry the cache merely forgot is no invalidation.
    @Test func onlyAnInvalidationForgivesAStaleUse() throws {
        let g = try Self.guest()
        g.domain.staleGraceNS = 100
        let a = g.ram.allocate()!, b = g.ram.allocate()!
        try g.tables.map(0x1000, to: a, writable: true)
        try g.domain.bind(devices: [1], pasid: 2, entry: Self.entry(g.tables.root))
        _ = g.domain.translate(device: 1, pasid: 2, iova: 0x1000, access: .read, now: 1)
        try g.tables.map(0x1000, to: b, writable: true)                       // changed...
        _ = g.domain.translate(device: 1, pasid: 2, iova: 0x1000, access: .read, now: 10)   // ...used stale
        try g.domain.invalidate(.range(pasid: 2, address: 0x1000, size: 4096, leafOnly: true))
        try g.domain.invalidate(.deviceTLB(device: 1, pasid: 2, range: nil))  // ...invalidated in time
        _ = g.domain.translate(device: 1, pasid: 2, iova: 0x1000, access: .read, now: 13)   // refilled
        g.domain.settleStale(now: 200)
        #expect(g.domain.counters.staleTranslations == 0 && g.domain.counters.staleUsesForgiven == 1)
        // Changed again and never invalidated: counted, however the entry leaves the cache.
        try g.tables.map(0x1000, to: a, writable: true)
        _ = g.domain.translate(device: 1, pasid: 2, iova: 0x1000, access: .read, now: 300)
        g.domain.settleStale(now: 500)
        #expect(g.domain.counters.staleTranslations == 1)
    }

    /// A privileged access's permissions are not cached for a user one.
    @Test func privilegedAccessesBypassTheCaches() throws {
        let g = try Self.guest()
        try g.tables.map(0x1000, to: g.ram.allocate()!, writable: true, user: false)
        var e = Self.entry(g.tables.root)
        e.supervisorRequests = true
        try g.domain.bind(devices: [1], pasid: 2, entry: e)
        guard case .translated = g.domain.translate(device: 1, pasid: 2, iova: 0x1000,
                                                    access: DMAAccess(write: false, privileged: true)) else {
            Issue.record("a privileged read of a supervisor page faulted")
            return
        }
        #expect(g.domain.cachedTranslations.atc == 0 && g.domain.cachedTranslations.iotlb == 0)
        guard case .fault(let f) = g.domain.translate(device: 1, pasid: 2, iova: 0x1000, access: .read) else {
            Issue.record("a user read of a supervisor page translated")
            return
        }
        #expect(f.kind == .permission)
    }

    @Test func invalidationsAreCheckedForWhatTheyName() throws {
        let g = try Self.guest(devices: [1, 2])
        g.domain.attach(device: 3, ats: false)
        try g.domain.bind(devices: [1], pasid: 4, entry: Self.entry(g.tables.root))
        let cases: [(Invalidation, Errno)] = [
            (.pasid(5), .noSuchFileOrDirectory),                                   // not bound
            (.pasid(1 << 20), .invalidArgument),                                   // 21 bits
            (.range(pasid: 4, address: 0x1000, size: 8192, leafOnly: false), .invalidArgument),   // misaligned
            (.range(pasid: 4, address: 0, size: 3 << 12, leafOnly: false), .invalidArgument),     // not a power of two
            (.range(pasid: 4, address: 0, size: 2048, leafOnly: false), .invalidArgument),        // below 4 KiB
            (.range(pasid: 4, address: 0xFFFF_FFFF_FFFF_F000, size: 1 << 13, leafOnly: false), .invalidArgument),
            (.deviceTLB(device: 9, pasid: nil, range: nil), .notPermitted),        // not held
            (.deviceTLB(device: 3, pasid: nil, range: nil), .invalidArgument),     // no ATC
            (.deviceTLB(device: 2, pasid: 4, range: nil), .noSuchFileOrDirectory), // bound on 1, not on 2
            (.context(device: 9, pasid: nil), .notPermitted),
        ]
        for (invalidation, errno) in cases {
            #expect(Self.errno { try g.domain.invalidate(invalidation) } == errno, "\(invalidation)")
        }
        for ok: Invalidation in [.global, .pasid(4), .range(pasid: 4, address: 0x2000, size: 4096, leafOnly: true),
                                 .deviceTLB(device: 1, pasid: 4, range: nil), .context(device: 1, pasid: nil)] {
            #expect(Self.errno { try g.domain.invalidate(ok) } == nil, "\(ok)")
        }
        #expect(g.domain.counters.invalidationsRefused == UInt64(cases.count))
        #expect(g.domain.counters.invalidations.values.reduce(0, +) == 5)
    }

    /// Detaching a device revokes what came from it: bindings, cached
    /// translations, and the right to bind or invalidate; a client holding
    /// no device can do nothing.
    @Test func detachRevokesEverythingThatCameFromTheDevice() throws {
        let g = try Self.guest(devices: [1, 2])
        try g.tables.map(0x1000, to: g.ram.allocate()!, writable: true)
        try g.domain.bind(devices: [1, 2], pasid: 6, entry: Self.entry(g.tables.root))
        _ = g.domain.translate(device: 1, pasid: 6, iova: 0x1000, access: .read)
        #expect(g.domain.cachedTranslations.atc == 1)
        #expect(g.domain.detach(device: 1) == [6])
        #expect(g.domain.cachedTranslations.atc == 0 && g.domain.heldDevices == [2])
        #expect(Self.errno { try g.domain.invalidate(.deviceTLB(device: 1, pasid: nil, range: nil)) } == .notPermitted)
        #expect(Self.errno { try g.domain.bind(devices: [1], pasid: 7, entry: Self.entry(g.tables.root)) } == .notPermitted)
        if case .fault(let f) = g.domain.translate(device: 1, pasid: 6, iova: 0x1000, access: .read) {
            #expect(f.kind == .badContext)
        }
        #expect(g.domain.detach(device: 2) == [6])
        #expect(g.domain.detach(device: 2) == [])   // twice: nothing, no failure
        #expect(Self.errno { try g.domain.invalidate(.global) } == .notPermitted)
        #expect(g.domain.counters.revocations == 2)
    }

    /// The IOTLB entries a detached device alone used go with it; those
    /// another device's binding shares stay (a device without ATS fills the IOTLB).
    @Test func detachDropsTheIOTLBEntriesOnlyThatDeviceUsed() throws {
        let g = try Self.guest(devices: [1, 2], ats: false)
        try g.tables.map(0x1000, to: g.ram.allocate()!, writable: true)
        try g.domain.bind(devices: [1], pasid: 6, entry: Self.entry(g.tables.root, did: 1))
        try g.domain.bind(devices: [2], pasid: 7, entry: Self.entry(g.tables.root, did: 2))
        _ = g.domain.translate(device: 1, pasid: 6, iova: 0x1000, access: .read)
        _ = g.domain.translate(device: 2, pasid: 7, iova: 0x1000, access: .read)
        #expect(g.domain.cachedTranslations.iotlb == 2 && g.domain.cachedTranslations.atc == 0)
        if case .translated(_, let source, _) = g.domain.translate(device: 1, pasid: 6, iova: 0x1000, access: .read) {
            #expect(source == .iotlb)
        } else {
            Issue.record("a cached translation was not served from the IOTLB")
        }
        g.domain.detach(device: 1)
        #expect(g.domain.cachedTranslations.iotlb == 1, "device 2's entry stays, device 1's goes")
        g.domain.detach(device: 2)
        #expect(g.domain.cachedTranslations.iotlb == 0)
    }

    /// SMMUv3: the CD is read from the guest's table and cached; a CD the
    /// guest rewrites without CFGI_CD is counted stale; after CFGI_CD the
    /// new one is used. A two-level table resolves through its L1 descriptor.
    @Test func smmuContextDescriptorsAreCachedUntilCFGI_CD() throws {
        let g = try Self.guest(.smmuv3, devices: [1], quota: 4096)
        let cdTable = g.ram.allocate()!
        let other = try GuestPageTables(.arm(inputBits: 48), in: g.ram)
        let pageA = g.ram.allocate()!, pageB = g.ram.allocate()!
        try g.tables.map(0x1000, to: pageA, writable: true)
        try other.map(0x1000, to: pageB, writable: true)
        func writeCD(_ ssid: UInt64, _ cd: SMMUv3ContextDescriptor, base: UInt64) {
            for (i, w) in cd.words.enumerated() { g.ram.store64(w, at: base + ssid * 64 + UInt64(i) * 8) }
        }
        writeCD(2, .stage1(ttb0: g.tables.root, asid: 9), base: cdTable)
        try g.domain.bind(devices: [1], table: SMMUv3NestedSTE(
            words: SMMUv3NestedSTE.words(config: .stage1, contextPointer: cdTable, s1CDMax: 2)))
        func gpa() -> UInt64? {
            guard case .translated(let t, _, _) = g.domain.translate(device: 1, pasid: 2, iova: 0x1000, access: .read) else {
                return nil
            }
            return t.gpa
        }
        #expect(gpa() == pageA)
        writeCD(2, .stage1(ttb0: other.root, asid: 10), base: cdTable)   // no CFGI_CD
        #expect(gpa() == pageA && g.domain.counters.staleContextUsesPending == 1)
        g.domain.settleStale(now: .max)                                  // and none came in time
        #expect(g.domain.counters.staleContexts == 1)
        // A correct guest: CFGI_CD for the descriptor, ATC_INV for what the device cached through it.
        try g.domain.invalidate(.context(device: 1, pasid: 2))
        try g.domain.invalidate(.deviceTLB(device: 1, pasid: 2, range: nil))
        #expect(gpa() == pageB)
        // SSID 4 is above S1CDMax 2 (four CDs): a bad context.
        if case .fault(let f) = g.domain.translate(device: 1, pasid: 4, iova: 0x1000, access: .read) {
            #expect(f.kind == .badContext && f.detail.contains("S1CDMax"))
        }
        // A two-level table: SSID 1030 is L1 index 1, L2 index 6.
        g.domain.unbind(devices: [1], pasid: nil)
        let l1 = g.ram.allocate()!, l2 = g.ram.allocate(pages: 16)!
        g.ram.store64(SMMUv3CDLevel1Descriptor(table: l2).raw, at: l1 + 8)
        writeCD(6, .stage1(ttb0: other.root, asid: 11), base: l2)
        try g.domain.bind(devices: [1], table: SMMUv3NestedSTE(
            words: SMMUv3NestedSTE.words(config: .stage1, contextPointer: l1, s1CDMax: 11, s1Format: 2)))
        guard case .translated(let t, _, _) = g.domain.translate(device: 1, pasid: 1030, iova: 0x1000, access: .read) else {
            Issue.record("two-level CD table did not translate")
            return
        }
        #expect(t.gpa == pageB)
        if case .fault(let f) = g.domain.translate(device: 1, pasid: 5, iova: 0x1000, access: .read) {
            #expect(f.kind == .badContext && f.detail.contains("L1"))   // L1 index 0 not valid
        }
    }
}
