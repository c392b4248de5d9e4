import IOMMUFormats
import SystemPackage

/// The simulated nested IOMMU of one VM: the devices its VMM holds, the
/// guest's stage-1 bindings, the caches (IOTLB, each device's ATC, cached
/// context descriptors), and translation for devices' DMA.
///
/// Rights come from devices (the KVM-VFIO rule): a client may bind,
/// invalidate or answer only for devices it holds, and a client holding
/// none can do nothing. Detaching a device revokes everything that came
/// from it (`detach(device:)`).
///
/// Invariants kept here:
/// * a bind is all-or-nothing across its device set: it is validated whole
///   first, then applied device by device; if one device fails, the ones
///   already done are rolled back by removing exactly what was added (a
///   dictionary removal, which cannot fail);
/// * an unbind cannot fail: unbinding what is not bound does nothing;
/// * a cache never serves a translation the tables did not give at some
///   point; when a cached one differs from a fresh walk, the DMA still uses
///   it (as hardware would). That is allowed for as long as the guest's
///   invalidation may be in flight: the use is held for `staleGraceNS`, and
///   only if no invalidation has dropped the cached entry by then is it
///   the guest's bug, a stale translation.
public final class NestedDomain: @unchecked Sendable {
    /// How the guest binds its tables.
    public enum Style: String, Hashable, Sendable, Codable {
        /// VT-d: a first-stage table per PASID (the guest's PASID entry).
        case vtd
        /// SMMUv3: the guest's whole CD table, through a nested STE.
        case smmuv3
    }

    /// Where a translation came from.
    public enum Source: String, Hashable, Sendable {
        /// The device's ATC.
        case atc
        /// The domain's IOTLB.
        case iotlb
        /// A stage-1 walk of the guest's tables.
        case walk
        /// A bound MSI doorbell (stage 1 bypassed).
        case msi
    }

    /// A guest MSI doorbell bound to its guest-physical page.
    public struct MSIBinding: Hashable, Sendable {
        /// The doorbell's input address, aligned to `size`.
        public var iova: UInt64
        /// Its guest-physical address.
        public var gpa: UInt64
        /// A power of two, 4 KiB to 1 MiB.
        public var size: UInt64
    }

    /// At most this many MSI doorbells per VM.
    public static let maxMSIBindings = 16

    /// The result of one DMA's translation.
    public enum Result: Hashable, Sendable {
        /// Translated; `stale` if the translation came from a cache and the
        /// guest's tables no longer give it.
        case translated(Translation, source: Source, stale: Bool)
        /// Not translated.
        case fault(WalkFault)
    }

    struct Device {
        var ats: Bool
        var pasids: [UInt32: VTdPASIDEntry] = [:]
        var table: SMMUv3NestedSTE?
    }

    struct ContextKey: Hashable {
        var device: UInt32
        var pasid: UInt32
    }

    /// The largest PASID: 20 bits.
    public static let maxPASID: UInt32 = 0xFFFFF

    /// The binding style.
    public let style: Style
    /// Guest RAM, read-only: stage 2.
    public let memory: GuestMemory
    /// At most this many PASIDs bound at once (VT-d: distinct PASIDs; SMMUv3:
    /// CDs a bound table may hold, 2^S1CDMax).
    public let pasidQuota: Int
    /// The vIOMMU's guest-physical address width.
    public var addressWidth = 48
    /// How long a DMA may use a cached translation the guest's tables no
    /// longer give before it counts as the guest's bug: the time its
    /// invalidation may take to arrive (0: in one process, where the guest's
    /// invalidations are synchronous).
    public var staleGraceNS: UInt64 = 0
    /// Test hook for the rollback sweep: the bind fails with EIO on the
    /// device at this index of the set, after the ones before it took it.
    public var failBindAtDevice: Int?
    /// What happened.
    public private(set) var counters = NestedCounters()

    private var devices: [UInt32: Device] = [:]
    private var iotlb = TranslationCache()
    private var atc = TranslationCache()
    private var contexts: [ContextKey: SMMUv3ContextDescriptor] = [:]

    /// A cached thing a DMA used after the guest changed it: a translation
    /// in the ATC or IOTLB, or a context descriptor.
    enum PendingKey: Hashable {
        case atc(TranslationCache.Key)
        case iotlb(TranslationCache.Key)
        case context(ContextKey)
    }

    /// Uses of cached translations (and context descriptors) the guest's
    /// memory no longer gives, waiting for an invalidation that drops the
    /// entry (then forgiven) or for the grace period to end (then counted;
    /// an entry the cache merely forgot, for room, is not an invalidation).
    private var pendingStale: [PendingKey: (since: UInt64, uses: UInt64)] = [:]
    /// When `translate` next judges the held uses: a quarter of the grace
    /// period apart, so a guest that never invalidates (thousands held)
    /// does not cost a scan per DMA.
    private var nextSettle: UInt64 = 0
    /// The bound MSI doorbells.
    public private(set) var msiBindings: [MSIBinding] = []

    /// A domain over `memory` binding in `style`.
    public init(style: Style, memory: GuestMemory, pasidQuota: Int = 1024) {
        self.style = style
        self.memory = memory
        self.pasidQuota = pasidQuota
    }

    /// The devices this client holds.
    public var heldDevices: [UInt32] { devices.keys.sorted() }

    /// PASIDs bound on `device` (VT-d) or the CDs its table may hold (SMMUv3).
    public func boundPASIDs(_ device: UInt32) -> [UInt32] { devices[device]?.pasids.keys.sorted() ?? [] }

    /// The table bound on `device` (SMMUv3).
    public func boundTable(_ device: UInt32) -> SMMUv3NestedSTE? { devices[device]?.table }

    /// Whether `device` has a stage 1 for `pasid`: a VT-d bind of that
    /// PASID, or a CD table that can hold it.
    public func isBound(device: UInt32, pasid: UInt32) -> Bool {
        guard let state = devices[device] else { return false }
        return state.pasids[pasid] != nil || state.table.map { UInt64(pasid) < UInt64(1) << UInt64($0.s1CDMax) } == true
    }

    /// Entries cached in the IOTLB and in all ATCs.
    public var cachedTranslations: (iotlb: Int, atc: Int) { (iotlb.count, atc.count) }

    // MARK: Devices and revocation

    /// The client now holds `device` (it attached it); `ats` if the device
    /// has an ATC.
    public func attach(device: UInt32, ats: Bool) {
        if devices[device] == nil { devices[device] = Device(ats: ats) }
    }

    /// Revokes `device`: its bindings, its ATC, the cached contexts and the
    /// IOTLB entries only it used go, and the client's rights that came
    /// from it end. Returns the PASIDs (VT-d) that were bound, for the
    /// caller to answer their outstanding page requests. Cannot fail.
    @discardableResult
    public func detach(device: UInt32) -> [UInt32] {
        guard let state = devices.removeValue(forKey: device) else { return [] }
        atc.invalidate(tag: device)
        contexts = contexts.filter { $0.key.device != device }
        // Tags shared with another device's binding stay; the rest go.
        for (pasid, entry) in state.pasids where !devices.values.contains(where: { $0.pasids[pasid] != nil }) {
            iotlb.invalidate(tag: UInt32(entry.domainID), pasid: pasid)
        }
        if state.table != nil { iotlb.invalidate() }   // ASIDs come from the guest's CDs: drop all, safely
        if devices.isEmpty { msiBindings.removeAll() }   // doorbells serve devices; with none left, none remain
        forgiveDropped()
        counters.revocations &+= 1
        return state.pasids.keys.sorted()
    }

    // MARK: Binds

    private func requireHeld(_ set: [UInt32], _ what: String) throws(NestedError) {
        guard !set.isEmpty else { throw NestedError(.invalidArgument, "\(what): no devices named") }
        guard Set(set).count == set.count else { throw NestedError(.invalidArgument, "\(what): a device named twice") }
        for d in set where devices[d] == nil {
            throw NestedError(.notPermitted, "\(what): device \(d) is not held by this client")
        }
    }

    /// Applies `apply` to each device of `set` in order, rolling back with
    /// `undo` on every device already done if one fails (the injected
    /// failure, `failBindAtDevice`). `undo` only removes what `apply` added.
    private func allOrNothing(_ set: [UInt32], _ what: String, apply: (UInt32) -> Void,
                              undo: (UInt32) -> Void) throws(NestedError) {
        for (i, d) in set.enumerated() {
            if failBindAtDevice == i {
                for done in set[..<i] { undo(done) }
                counters.bindsRolledBack &+= 1
                throw NestedError(.ioError, "\(what): device \(d) failed to take the bind; \(i) rolled back")
            }
            apply(d)
        }
        counters.binds &+= UInt64(set.count)
    }

    /// VT-d: binds the guest's first-stage table for `pasid` on every device
    /// of `set` (`entry` is the guest's PASID entry: FLPTR, FLPM, SRE, WPE).
    /// - Throws: EPERM (a device not held), EINVAL (PASID out of range, an
    ///   entry without a first stage, a root outside guest RAM, the wrong
    ///   style), EBUSY (already bound on a device), ENOSPC (over the quota),
    ///   EIO (a device failed; everything rolled back).
    public func bind(devices set: [UInt32], pasid: UInt32, entry: VTdPASIDEntry) throws(NestedError) {
        do throws(NestedError) {
            guard style == .vtd else { throw NestedError(.invalidArgument, "bind: an SMMUv3 domain binds CD tables") }
            try requireHeld(set, "bind")
            guard pasid > 0, pasid <= Self.maxPASID else {
                throw NestedError(.invalidArgument, "bind: PASID \(pasid) outside 1…\(Self.maxPASID)")
            }
            guard entry.present, entry.translationType == .firstStageOnly || entry.translationType == .nested else {
                throw NestedError(.invalidArgument, "bind: the PASID entry is not present or has no first stage")
            }
            guard entry.firstStageRoot >> UInt64(addressWidth) == 0, memory.contains(entry.firstStageRoot) else {
                throw NestedError(.invalidArgument, "bind: FLPTR 0x\(String(entry.firstStageRoot, radix: 16)) is not in guest RAM")
            }
            for d in set where devices[d]!.pasids[pasid] != nil {
                throw NestedError(.resourceBusy, "bind: PASID \(pasid) is already bound on device \(d)")
            }
            let bound = Set(devices.values.flatMap { $0.pasids.keys })
            guard bound.contains(pasid) || bound.count < pasidQuota else {
                throw NestedError(.noSpace, "bind: \(bound.count) PASIDs bound, the quota is \(pasidQuota)")
            }
        } catch {
            counters.bindsRefused &+= 1
            throw error
        }
        try allOrNothing(set, "bind PASID \(pasid)", apply: { devices[$0]!.pasids[pasid] = entry },
                         undo: { devices[$0]!.pasids[pasid] = nil })
    }

    /// SMMUv3: binds the guest's CD table (`ste`: S1ContextPtr, S1CDMax,
    /// S1Fmt) on every device of `set`; an abort or bypass STE unbinds.
    /// - Throws: as the VT-d bind; ENOSPC if 2^S1CDMax exceeds the quota.
    public func bind(devices set: [UInt32], table ste: SMMUv3NestedSTE) throws(NestedError) {
        do throws(NestedError) {
            guard style == .smmuv3 else { throw NestedError(.invalidArgument, "bind: a VT-d domain binds per PASID") }
            try requireHeld(set, "bind")
            guard ste.config == .stage1 else {
                unbind(devices: set, pasid: nil)
                return
            }
            guard memory.contains(ste.contextPointer) else {
                throw NestedError(.invalidArgument, "bind: S1ContextPtr 0x\(String(ste.contextPointer, radix: 16)) is not in guest RAM")
            }
            guard 1 << ste.s1CDMax <= pasidQuota else {
                throw NestedError(.noSpace, "bind: S1CDMax \(ste.s1CDMax) allows \(1 << ste.s1CDMax) PASIDs, the quota is \(pasidQuota)")
            }
            for d in set where devices[d]!.table != nil {
                throw NestedError(.resourceBusy, "bind: device \(d) already has a CD table bound")
            }
        } catch {
            counters.bindsRefused &+= 1
            throw error
        }
        try allOrNothing(set, "bind CD table", apply: { devices[$0]!.table = ste }, undo: { devices[$0]!.table = nil })
    }

    /// Unbinds `pasid` (VT-d) or the CD table (SMMUv3, `pasid` nil) from
    /// every device of `set` the client holds, dropping what was cached
    /// from it. Cannot fail: what is not bound is skipped.
    public func unbind(devices set: [UInt32], pasid: UInt32?) {
        for d in set {
            guard var state = devices[d] else { continue }
            if let pasid, let entry = state.pasids.removeValue(forKey: pasid) {
                iotlb.invalidate(tag: UInt32(entry.domainID), pasid: pasid)
                atc.invalidate(tag: d, pasid: pasid)
                counters.unbinds &+= 1
            } else if pasid == nil, state.table != nil {
                state.table = nil
                atc.invalidate(tag: d)
                contexts = contexts.filter { $0.key.device != d }
                iotlb.invalidate()
                counters.unbinds &+= 1
            }
            devices[d] = state
        }
        forgiveDropped()
    }

    // MARK: MSI doorbells

    /// Binds the guest's MSI doorbell at `iova` to `gpa` (the
    /// `VFIO_IOMMU_BIND_MSI` model): DMA writes there bypass stage 1.
    /// - Throws: EPERM (the client holds no device), EINVAL (size not a
    ///   power of two from 4 KiB to 1 MiB, an address not aligned to it),
    ///   EBUSY (overlaps a binding), ENOSPC (16 bound already).
    public func bindMSI(iova: UInt64, gpa: UInt64, size: UInt64) throws(NestedError) {
        guard !devices.isEmpty else { throw NestedError(.notPermitted, "bind MSI: the client holds no device") }
        guard size >= 4096, size <= 1 << 20, size & (size - 1) == 0, iova & (size - 1) == 0, gpa & (size - 1) == 0 else {
            throw NestedError(.invalidArgument, "bind MSI: iova 0x\(String(iova, radix: 16)) gpa 0x\(String(gpa, radix: 16)) "
                              + "size 0x\(String(size, radix: 16)): a power of two from 4 KiB to 1 MiB, both aligned to it")
        }
        guard iova <= UInt64.max - (size - 1) else {
            throw NestedError(.invalidArgument, "bind MSI: iova 0x\(String(iova, radix: 16)) + size wraps")
        }
        guard !msiBindings.contains(where: { $0.iova <= iova + (size - 1) && iova <= $0.iova + ($0.size - 1) }) else {
            throw NestedError(.resourceBusy, "bind MSI: iova 0x\(String(iova, radix: 16)) overlaps a bound doorbell")
        }
        guard msiBindings.count < Self.maxMSIBindings else {
            throw NestedError(.noSpace, "bind MSI: \(Self.maxMSIBindings) doorbells bound already")
        }
        msiBindings.append(MSIBinding(iova: iova, gpa: gpa, size: size))
    }

    /// The doorbell binding that a write by `device` (held) to `iova` hits,
    /// if any: what a device's MSI write looks up. Pure: no walk, no cache,
    /// no counter.
    public func doorbell(device: UInt32, iova: UInt64) -> MSIBinding? {
        guard devices[device] != nil else { return nil }
        return msiBindings.first { iova >= $0.iova && iova - $0.iova < $0.size }
    }

    /// Removes the doorbell binding at `iova`. Cannot fail: nothing bound there is nothing to do.
    public func unbindMSI(iova: UInt64) {
        msiBindings.removeAll { $0.iova == iova }
    }

    // MARK: Invalidation

    /// Carries out `invalidation` after checking what it may name: a PASID
    /// that is bound here, a device the client holds (with an ATC, for a
    /// device-TLB invalidation), a well-formed range.
    /// - Throws: EINVAL (malformed; a device without ATS), EPERM (a device
    ///   not held, or a client holding none), ENOENT (a PASID not bound).
    public func invalidate(_ invalidation: Invalidation) throws(NestedError) {
        do throws(NestedError) {
            guard !devices.isEmpty else {
                throw NestedError(.notPermitted, "invalidate \(invalidation.kind): the client holds no device")
            }
            switch invalidation {
            case .global:
                iotlb.invalidate()
            case .pasid(let pasid):
                try requireBound(pasid)
                iotlb.invalidate(pasid: pasid)
            case .range(let pasid, let address, let size, _):
                try requireBound(pasid)
                let range = Invalidation.AddressRange(address: address, size: size)
                if let problem = range.problem() { throw NestedError(.invalidArgument, "invalidate range: \(problem)") }
                iotlb.invalidate(pasid: pasid, range: range.closed)
            case .deviceTLB(let device, let pasid, let range):
                guard let state = devices[device] else {
                    throw NestedError(.notPermitted, "invalidate device-tlb: device \(device) is not held by this client")
                }
                guard state.ats else { throw NestedError(.invalidArgument, "invalidate device-tlb: device \(device) has no ATC") }
                if let pasid { try requireBound(pasid, on: device) }
                if let problem = range?.problem() { throw NestedError(.invalidArgument, "invalidate device-tlb: \(problem)") }
                atc.invalidate(tag: device, pasid: pasid, range: range?.closed)
            case .context(let device, let pasid):
                guard devices[device] != nil else {
                    throw NestedError(.notPermitted, "invalidate context: device \(device) is not held by this client")
                }
                if let pasid { try requireBound(pasid, on: device) }
                contexts = contexts.filter { $0.key.device != device || (pasid != nil && $0.key.pasid != pasid) }
            }
        } catch {
            counters.invalidationsRefused &+= 1
            throw error
        }
        counters.invalidations[invalidation.kind, default: 0] &+= 1
        forgiveDropped()
    }

    private func requireBound(_ pasid: UInt32, on device: UInt32? = nil) throws(NestedError) {
        guard pasid <= Self.maxPASID else {
            throw NestedError(.invalidArgument, "PASID \(pasid) is wider than 20 bits")
        }
        let candidates = device.map { [devices[$0]].compactMap { $0 } } ?? Array(devices.values)
        let bound = candidates.contains { state in
            state.pasids[pasid] != nil || state.table.map { pasid < 1 << $0.s1CDMax } == true
        }
        guard bound else {
            throw NestedError(.noSuchFileOrDirectory, "PASID \(pasid) is not bound" + (device.map { " on device \($0)" } ?? ""))
        }
    }

    // MARK: Translation

    /// The stage-1 context of `device`'s `pasid` as the guest's memory has
    /// it now (fresh), or why there is none.
    private func freshContext(device: UInt32, pasid: UInt32, iova: UInt64) -> Swift.Result<Stage1Context, WalkFault> {
        guard let state = devices[device] else {
            return .failure(WalkFault(.badContext, level: -1, iova: iova, detail: "device \(device) not attached"))
        }
        switch style {
        case .vtd:
            guard let entry = state.pasids[pasid] else {
                return .failure(WalkFault(.badContext, level: -1, iova: iova, detail: "PASID \(pasid) not bound"))
            }
            return .success(.vtd(entry))
        case .smmuv3:
            guard let ste = state.table else {
                return .failure(WalkFault(.badContext, level: -1, iova: iova, detail: "no CD table bound"))
            }
            return readCD(ste, ssid: pasid, iova: iova).map { .smmuv3($0) }
        }
    }

    /// Reads the CD of `ssid` from the guest's table (linear, or two-level
    /// with 1024-entry leaves), as the SMMU's CD fetch does.
    private func readCD(_ ste: SMMUv3NestedSTE, ssid: UInt32, iova: UInt64) -> Swift.Result<SMMUv3ContextDescriptor, WalkFault> {
        func bad(_ detail: String, unbacked gpa: UInt64? = nil) -> Swift.Result<SMMUv3ContextDescriptor, WalkFault> {
            .failure(WalkFault(gpa == nil ? .badContext : .stage2Miss, level: -1, iova: iova, gpa: gpa ?? 0, detail: detail))
        }
        guard UInt64(ssid) < UInt64(1) << UInt64(ste.s1CDMax) else { return bad("SSID \(ssid) above S1CDMax \(ste.s1CDMax)") }
        var address = ste.contextPointer + UInt64(ssid) * 64
        if ste.s1Format == 2 {
            let l1 = ste.contextPointer + UInt64(Int(ssid) / SMMUv3ContextDescriptor.level2Entries) * 8
            guard let raw = memory.load64(l1) else { return bad("L1 CD descriptor unbacked", unbacked: l1) }
            let desc = SMMUv3CDLevel1Descriptor(raw: raw)
            guard desc.isValid else { return bad("L1 CD descriptor for SSID \(ssid) not valid") }
            address = desc.table + UInt64(Int(ssid) % SMMUv3ContextDescriptor.level2Entries) * 64
        }
        var words: [UInt64] = []
        for i in 0..<8 {
            guard let w = memory.load64(address + UInt64(i) * 8) else { return bad("CD unbacked", unbacked: address) }
            words.append(w)
        }
        return .success(SMMUv3ContextDescriptor(words: words))
    }

    /// Translates one DMA of `device` for `pasid`: ATC (if the device has
    /// one), then IOTLB, then a walk of the guest's tables; fills the caches
    /// on a successful walk. A cached hit is checked against a fresh walk:
    /// a difference is the guest's stale translation, counted, and the DMA
    /// uses the cached one, as hardware would.
    public func translate(device: UInt32, pasid: UInt32, iova: UInt64, access: DMAAccess, now: UInt64 = 0) -> Result {
        counters.translations &+= 1
        if !pendingStale.isEmpty && now >= nextSettle {
            settleStale(now: now)
            nextSettle = now &+ max(staleGraceNS / 4, 1)
        }
        if access.write, let m = doorbell(device: device, iova: iova) {
            return .translated(Translation(iova: m.iova, gpa: m.gpa, size: m.size, writable: true, executable: false),
                               source: .msi, stale: false)
        }
        // The context, as cached (SMMUv3 CDs are cached until CFGI_CD).
        let context: Stage1Context
        switch cachedContext(device: device, pasid: pasid, iova: iova, now: now) {
        case .success(let c): context = c
        case .failure(let f): return record(f)
        }
        let tag = UInt32(context.tag)
        let ats = devices[device]?.ats == true
        // Cached translations carry one privilege's permissions: a privileged
        // access walks every time, and neither reads nor fills the caches.
        let cached = !access.privileged
        if cached, ats, let hit = atc.lookup(tag: device, pasid: pasid, iova: iova), hit.permits(access) {
            counters.atcHits &+= 1
            let stale = isStale(hit, device: device, pasid: pasid, iova: iova, access: access)
            if stale { hold(.atc(.init(tag: device, pasid: pasid, page: hit.iova)), now: now) }
            return .translated(hit, source: .atc, stale: stale)
        }
        if cached, let hit = iotlb.lookup(tag: tag, pasid: pasid, iova: iova), hit.permits(access) {
            counters.iotlbHits &+= 1
            if ats { atc.insert(hit, tag: device, pasid: pasid) }
            let stale = isStale(hit, device: device, pasid: pasid, iova: iova, access: access)
            if stale { hold(.iotlb(.init(tag: tag, pasid: pasid, page: hit.iova)), now: now) }
            return .translated(hit, source: .iotlb, stale: stale)
        }
        counters.walks &+= 1
        switch Stage1Walker.walk(iova, access: access, context: context, memory: memory, addressWidth: addressWidth) {
        case .translated(let t):
            // A large leaf is cached only if stage 2 backs all of it: an offset
            // served from the cache is not walked again.
            if cached && memory.contains(t.gpa, size: t.size) {
                iotlb.insert(t, tag: tag, pasid: pasid)
                if ats { atc.insert(t, tag: device, pasid: pasid) }
            }
            return .translated(t, source: .walk, stale: false)
        case .fault(let f):
            return record(f)
        }
    }

    private func record(_ fault: WalkFault) -> Result {
        counters.faults[fault.kind.rawValue, default: 0] &+= 1
        return .fault(fault)
    }

    private func cachedContext(device: UInt32, pasid: UInt32, iova: UInt64, now: UInt64)
        -> Swift.Result<Stage1Context, WalkFault>
    {
        guard style == .smmuv3 else { return freshContext(device: device, pasid: pasid, iova: iova) }
        let key = ContextKey(device: device, pasid: pasid)
        if let cd = contexts[key] {
            if case .success(.smmuv3(let fresh)) = freshContext(device: device, pasid: pasid, iova: iova), fresh != cd {
                hold(.context(key), now: now)
            }
            return .success(.smmuv3(cd))
        }
        let fresh = freshContext(device: device, pasid: pasid, iova: iova)
        if case .success(.smmuv3(let cd)) = fresh, cd.isValid { contexts[key] = cd }
        return fresh
    }

    /// Whether the guest's tables, walked now, no longer give `cached` for
    /// this access (the truth a DMA should have used).
    private func isStale(_ cached: Translation, device: UInt32, pasid: UInt32, iova: UInt64, access: DMAAccess) -> Bool {
        guard case .success(let context) = freshContext(device: device, pasid: pasid, iova: iova) else { return true }
        switch Stage1Walker.walk(iova, access: access, context: context, memory: memory, addressWidth: addressWidth) {
        case .translated(let now): return now.translate(iova) != cached.translate(iova)
        case .fault: return true
        }
    }

    private func hold(_ key: PendingKey, now: UInt64) {
        if case .context = key { counters.staleContextUsesPending &+= 1 } else { counters.staleUsesPending &+= 1 }
        if let held = pendingStale[key] {
            pendingStale[key] = (held.since, held.uses &+ 1)
        } else {
            pendingStale[key] = (now, 1)
        }
    }

    /// Counts as the guest's bug the held uses whose grace period ended
    /// with no invalidation of their entry. `now` UInt64.max settles
    /// everything (the end of a run).
    public func settleStale(now: UInt64) {
        guard !pendingStale.isEmpty else { return }
        for (key, held) in pendingStale where now == .max || now &- held.since > staleGraceNS {
            pendingStale.removeValue(forKey: key)
            if case .context = key {
                counters.staleContexts &+= held.uses
            } else {
                counters.staleTranslations &+= held.uses
            }
        }
    }

    /// Right after an invalidation (or unbind, or revocation): the held uses
    /// whose entry it dropped are forgiven, the guest having invalidated in
    /// time. Checked now, before any DMA can refill the entry.
    private func forgiveDropped() {
        guard !pendingStale.isEmpty else { return }
        for (key, held) in pendingStale {
            let cached: Bool
            switch key {
            case .atc(let k): cached = atc.contains(k)
            case .iotlb(let k): cached = iotlb.contains(k)
            case .context(let k): cached = contexts[k] != nil
            }
            guard !cached else { continue }
            pendingStale.removeValue(forKey: key)
            if case .context = key {
                counters.staleContextUsesForgiven &+= held.uses
            } else {
                counters.staleUsesForgiven &+= held.uses
            }
        }
    }
}
