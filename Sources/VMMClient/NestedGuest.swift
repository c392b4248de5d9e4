import FaultABI
import IOMMUFormats
import NestedIOMMU

/// The guest's IOMMU driver in a vSVA set-up, modelled on the VMM side: it
/// owns stage 1. It receives each page request as its driver reads it from
/// the vIOMMU queue (`GuestFormatPath.Seen`), maps the page in its own
/// tables in guest RAM, issues the invalidations a change needs, and says
/// what to answer.
///
/// Pages are budgeted per PASID: past `budget` resident pages the oldest is
/// evicted (unmapped, its frame reused), which a correct driver follows with
/// an IOTLB range invalidation and a device-TLB invalidation on every
/// device. The behaviours are the guest bugs the tool exists to find.
public final class NestedGuest: @unchecked Sendable {
    /// How the guest's driver behaves.
    public enum Behaviour: String, CaseIterable, Sendable, Codable {
        /// Maps, invalidates what it changes, answers SUCCESS.
        case correct
        /// Never invalidates: devices keep using evicted pages (stale translations).
        case forgetsInvalidate = "forgets-invalidate"
        /// Answers SUCCESS without mapping: every retry misses.
        case successWithoutMapping = "success-without-mapping"
        /// Maps read-only whatever was asked: retried writes miss.
        case wrongPermissions = "wrong-permissions"
        /// Correct, but answers after the service's timeout.
        case slow
        /// Correct, but never binds its MSI doorbell: every device interrupt faults.
        case forgetsMSI = "forgets-msi"
    }

    /// What the driver did.
    public struct Counters: Sendable, Hashable, Codable {
        /// Page requests handled.
        public var requests: UInt64 = 0
        /// Pages mapped (or remapped with more permissions).
        public var pagesMapped: UInt64 = 0
        /// Pages evicted for the budget.
        public var pagesEvicted: UInt64 = 0
        /// Invalidations issued.
        public var invalidationsSent: UInt64 = 0
        /// Invalidations a change needed and the guest did not issue.
        public var invalidationsOmitted: UInt64 = 0
        /// Invalidations the IOMMU refused (a bug in the model, or revoked rights).
        public var invalidationsRefused: UInt64 = 0
        /// Answers SUCCESS.
        public var answeredSuccess: UInt64 = 0
        /// Answers INVALID (no PASID, an unknown PASID, out of memory).
        public var answeredInvalid: UInt64 = 0

        /// All zero.
        public init() {}

        /// Adds `other`'s counts to these (a guest's incarnations summed).
        public mutating func add(_ other: Counters) {
            let paths: [WritableKeyPath<Counters, UInt64>] = [\.requests, \.pagesMapped, \.pagesEvicted, \.invalidationsSent,
                                                             \.invalidationsOmitted, \.invalidationsRefused, \.answeredSuccess,
                                                             \.answeredInvalid]
            for path in paths { self[keyPath: path] &+= other[keyPath: path] }
        }
    }

    /// One thing the driver did to its tables or its IOMMU: what a capture
    /// records and a replay does again.
    public enum Action: Codable, Hashable, Sendable {
        /// Mapped (or remapped) the 4 KiB page `iova` of `pasid` to `frame`.
        case map(pasid: UInt32, iova: UInt64, frame: UInt64, writable: Bool)
        /// Cleared the leaf that maps `iova` in `pasid`.
        case unmap(pasid: UInt32, iova: UInt64)
        /// Sent an invalidation.
        case invalidate(Invalidation)
    }

    /// Called with each action as the driver takes it (a capture).
    public var record: ((Action) -> Void)?

    /// The binding style (and so the table format).
    public let style: NestedDomain.Style
    /// The behaviour.
    public let behaviour: Behaviour
    /// Resident pages per PASID.
    public let budget: Int
    /// What the driver did.
    public private(set) var counters = Counters()

    private let ram: GuestRAM
    private let devices: [UInt32]
    private var tables: [UInt32: GuestPageTables] = [:]
    private var resident: [UInt32: [UInt64: Bool]] = [:]   // iova → writable
    private var order: [UInt32: [UInt64]] = [:]
    private var freeFrames: [UInt64] = []
    private let cdTable: UInt64
    /// The doorbell binding this guest asks for (nil: a `forgets-msi` guest
    /// asks for none): the devices' MSI address to the guest's doorbell page
    /// at the same guest-physical address (x86's interrupt window, outside
    /// RAM: binding it takes no guest page, so the RAM layout, and a captured
    /// session's frames, are those of a guest without interrupts).
    public var msiBinding: (iova: UInt64, gpa: UInt64, size: UInt64)? {
        behaviour == .forgetsMSI ? nil : (Self.msiDoorbell, Self.msiDoorbell, 4096)
    }
    /// The devices' MSI doorbell address (x86's 0xFEE0_0000; the simulated
    /// devices use it in both styles).
    public static let msiDoorbell: UInt64 = 0xFEE0_0000
    private let cdMax: Int
    private let invalidate: (Invalidation) throws(NestedError) -> Void

    /// A guest in `ram` using `pasids` on `devices`, with its tables written
    /// now (VT-d: one x86 table per PASID; SMMUv3: a CD table with one CD
    /// per PASID, ASID = PASID). `invalidate` sends an invalidation to the
    /// IOMMU (in process, or over the control socket).
    /// - Throws: `GuestPageTables.MapError.outOfMemory` if `ram` is too small.
    public init(style: NestedDomain.Style, ram: GuestRAM, pasids: [UInt32], devices: [UInt32], budget: Int,
                behaviour: Behaviour, invalidate: @escaping (Invalidation) throws(NestedError) -> Void)
        throws(GuestPageTables.MapError)
    {
        self.style = style
        self.ram = ram
        self.devices = devices
        self.budget = max(budget, 1)
        self.behaviour = behaviour
        self.invalidate = invalidate
        let highest = pasids.max() ?? 0
        var cdMax = 0
        while UInt64(1) << UInt64(cdMax) <= UInt64(highest) { cdMax += 1 }
        self.cdMax = cdMax
        if style == .smmuv3 {
            guard let table = ram.allocate(pages: max(1, ((1 << cdMax) * 64 + 4095) / 4096)) else { throw .outOfMemory }
            cdTable = table
        } else {
            cdTable = 0
        }
        for pasid in pasids {
            let t = try GuestPageTables(style == .vtd ? .x86(.fourLevel) : .arm(inputBits: 48), in: ram)
            tables[pasid] = t
            if style == .smmuv3 {
                let cd = SMMUv3ContextDescriptor.stage1(ttb0: t.root, asid: UInt16(truncatingIfNeeded: pasid))
                for (i, w) in cd.words.enumerated() { ram.store64(w, at: cdTable + UInt64(pasid) * 64 + UInt64(i) * 8) }
            }
        }
    }

    /// VT-d: the PASID entries to bind, one per PASID (nested, 4-level,
    /// DID 1, FLPTR = that PASID's table).
    public var pasidEntries: [(pasid: UInt32, entry: VTdPASIDEntry)] {
        tables.keys.sorted().map { pasid in
            var e = VTdPASIDEntry()
            e.present = true
            e.translationType = .nested
            e.domainID = 1
            e.firstStageRoot = tables[pasid]!.root
            return (pasid, e)
        }
    }

    /// SMMUv3: the nested STE words that bind the guest's CD table.
    public var tableSTE: [UInt64] {
        SMMUv3NestedSTE.words(config: .stage1, contextPointer: cdTable, s1CDMax: cdMax, ats: true)
    }

    /// Handles one page request as the driver read it; returns the code to
    /// answer (a `.slow` guest's caller holds the answer back).
    public func handle(_ seen: GuestFormatPath.Seen) -> ResponseCode {
        counters.requests &+= 1
        guard let pasid = seen.pasid, let table = tables[pasid] else {
            counters.answeredInvalid &+= 1
            return .invalid
        }
        if behaviour == .successWithoutMapping {
            counters.answeredSuccess &+= 1
            return .success
        }
        let page = seen.address & ~0xFFF
        let writable = behaviour != .wrongPermissions
        if let wasWritable = resident[pasid]?[page] {
            // Already mapped: a permission upgrade (or a request raced a mapping).
            if !wasWritable && writable {
                guard let frame = frame(of: page, table) else { return answerInvalid() }
                do { try table.map(page, to: frame, writable: true) } catch { return answerInvalid() }
                record?(.map(pasid: pasid, iova: page, frame: frame, writable: true))
                resident[pasid]![page] = true
                counters.pagesMapped &+= 1
                flush(pasid: pasid, page: page)
            }
            counters.answeredSuccess &+= 1
            return .success
        }
        if order[pasid, default: []].count >= budget { evict(pasid: pasid, table) }
        guard let frame = freeFrames.popLast() ?? ram.allocate() else { return answerInvalid() }
        do { try table.map(page, to: frame, writable: writable) } catch {
            freeFrames.append(frame)
            return answerInvalid()
        }
        record?(.map(pasid: pasid, iova: page, frame: frame, writable: writable))
        resident[pasid, default: [:]][page] = writable
        order[pasid, default: []].append(page)
        counters.pagesMapped &+= 1
        counters.answeredSuccess &+= 1
        return .success
    }

    /// Does a recorded action again (a replay): the same table writes and
    /// invalidations, in the same order, so the IOMMU and devices see the
    /// same session.
    /// - Throws: `NestedError` with EINVAL naming the action if it cannot be
    ///   done (an unknown PASID, a frame outside guest RAM or unaligned), or
    ///   the IOMMU's refusal of an invalidation.
    public func replay(_ action: Action) throws(NestedError) {
        switch action {
        case .map(let pasid, let iova, let frame, let writable):
            guard let table = tables[pasid] else { throw NestedError(.invalidArgument, "map: PASID \(pasid) has no tables") }
            guard frame & 0xFFF == 0, iova & 0xFFF == 0, ram.contains(frame), ram.contains(frame + 4095) else {
                throw NestedError(.invalidArgument, "map: iova 0x\(String(iova, radix: 16)) frame 0x\(String(frame, radix: 16)) "
                                  + "not a 4 KiB page of guest RAM")
            }
            do { try table.map(iova, to: frame, writable: writable) } catch {
                throw NestedError(.invalidArgument, "map 0x\(String(iova, radix: 16)): \(error)")
            }
        case .unmap(let pasid, let iova):
            guard let table = tables[pasid] else { throw NestedError(.invalidArgument, "unmap: PASID \(pasid) has no tables") }
            table.unmap(iova)
        case .invalidate(let inv):
            try invalidate(inv)
        }
    }

    private func answerInvalid() -> ResponseCode {
        counters.answeredInvalid &+= 1
        return .invalid
    }

    /// The frame `page` maps to now, read back from the guest's own tables.
    private func frame(of page: UInt64, _ table: GuestPageTables) -> UInt64? {
        let level = style == .vtd ? 0 : 3
        guard let at = table.entryAddress(page, level: level) else { return nil }
        let raw = ram.load64(at)
        return style == .vtd ? X86PagingEntry(raw: raw).address : ArmStage1Descriptor(raw: raw).address
    }

    /// Evicts the oldest resident page of `pasid`: unmap, reuse the frame,
    /// invalidate.
    private func evict(pasid: UInt32, _ table: GuestPageTables) {
        let victim = order[pasid]!.removeFirst()
        let frame = self.frame(of: victim, table)
        table.unmap(victim)
        record?(.unmap(pasid: pasid, iova: victim))
        resident[pasid]![victim] = nil
        if let frame { freeFrames.append(frame) }
        counters.pagesEvicted &+= 1
        flush(pasid: pasid, page: victim)
    }

    /// The invalidations a change to `page` needs: the IOTLB range (leaf),
    /// then every device's ATC. A forgetful guest skips them.
    private func flush(pasid: UInt32, page: UInt64) {
        var needed: [Invalidation] = [.range(pasid: pasid, address: page, size: 4096, leafOnly: true)]
        needed += devices.map { .deviceTLB(device: $0, pasid: pasid, range: .init(address: page, size: 4096)) }
        guard behaviour != .forgetsInvalidate else {
            counters.invalidationsOmitted &+= UInt64(needed.count)
            return
        }
        for inv in needed {
            do {
                try invalidate(inv)
                record?(.invalidate(inv))
                counters.invalidationsSent &+= 1
            } catch {
                counters.invalidationsRefused &+= 1
            }
        }
    }
}
