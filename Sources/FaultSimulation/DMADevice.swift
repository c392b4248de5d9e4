import CFaultRingABI
import FaultABI
import NestedIOMMU
import PageRequests

/// A simulated device that does DMA through a nested IOMMU: it runs its
/// address streams, translates each access (its ATC, the IOTLB, a walk of
/// the guest's tables, stage 2), and on a stage-1 miss raises a page
/// request (PRI) with the real address and permissions, or reports an
/// unrecoverable fault (no PRI). A stage-2 miss is the host's fault: it is
/// counted and never reaches the guest.
///
/// After a SUCCESS the device retries the access. A retry that still does
/// not translate is the guest's bug, *answered SUCCESS but not mapped*,
/// counted here; a DMA through a translation the guest had changed without
/// invalidating is the IOMMU's to judge (`NestedDomain`).
public final class DMADevice: @unchecked Sendable {
    /// What one device does.
    public struct Config: Sendable, Hashable, Codable {
        /// Service-wide device id.
        public var id: UInt32
        /// PCIe PRI: faults become page requests; otherwise unrecoverable events.
        public var pri = true
        /// PCIe ATS: the device has an ATC.
        public var ats = true
        /// Its address streams, one per PASID (or more).
        public var streams: [DMAStream]
        /// Page requests in flight at most (the PRI allocation).
        public var outstanding = 32
        /// Accesses per step.
        public var accessesPerStep = 8
        /// Its interrupts: an MSI write to its doorbell every so many steps (nil: none).
        public var msi: MSIWrites? = nil

        /// A PRI and ATS device running `streams`.
        public init(id: UInt32, streams: [DMAStream]) {
            self.id = id
            self.streams = streams
        }
    }

    /// A device's completion interrupts: a 4-byte posted write to the MSI
    /// doorbell at `iova`, without a PASID, after every `every` answered
    /// page requests (at the device's next step). A VM that bound the
    /// doorbell (BIND_MSI) receives it past stage 1; otherwise the write
    /// faults, and an unrecoverable fault is reported (MSI writes are posted:
    /// no page request can fix one).
    ///
    /// Tied to answers, not to time: the first answer comes from a guest
    /// whose driver finished its set-up (tables, then doorbell), so a fault
    /// is the guest's bug, never a race with its set-up.
    public struct MSIWrites: Sendable, Hashable, Codable {
        /// The doorbell's input address (x86: 0xFEE0_0000).
        public var iova: UInt64
        /// Answered page requests per interrupt, at least 1.
        public var every: Int
        /// Writes to `iova` after every `every` answers.
        public init(iova: UInt64 = 0xFEE0_0000, every: Int) {
            self.iova = iova
            self.every = max(1, every)
        }
    }

    /// What the device saw.
    public struct Counters: Sendable, Hashable, Codable {
        /// Accesses issued (retries included).
        public var dmas: UInt64 = 0
        /// Accesses that translated.
        public var translated: UInt64 = 0
        /// Page requests raised.
        public var pageRequests: UInt64 = 0
        /// Unrecoverable faults reported (a non-PRI device, or a fault no page request can fix).
        public var unrecoverable: UInt64 = 0
        /// Stage-2 misses: the host's faults.
        public var stage2Misses: UInt64 = 0
        /// Page requests answered SUCCESS.
        public var answeredSuccess: UInt64 = 0
        /// Page requests answered otherwise (INVALID, FAILURE, timeouts, detach).
        public var answeredOther: UInt64 = 0
        /// Retries after SUCCESS that translated.
        public var retriesTranslated: UInt64 = 0
        /// **Guest bug**: a retry after SUCCESS that still did not translate.
        public var successNotMapped: UInt64 = 0
        /// Accesses that used a cached translation the guest's tables no
        /// longer gave: a guest bug unless its invalidation was on the way
        /// (the IOMMU judges; `NestedCounters.staleTranslations`).
        public var staleUses: UInt64 = 0
        /// Accesses not issued because every PRI slot was in use.
        public var stalls: UInt64 = 0
        /// Retries after SUCCESS that missed in stage 2: the host's fault, not the guest's.
        public var retriesStage2Missed: UInt64 = 0
        /// Retries owed after SUCCESS and never made: the VM that answered
        /// was gone (detached, killed), or had unbound the PASID, by the
        /// device's next step.
        public var retriesDropped: UInt64 = 0
        /// Answers for a PRGI not in flight: a second answer to one group,
        /// or one for a group never raised. The pipeline answers each group
        /// once, so anything here is a bug of the service, not the guest.
        public var unexpectedAnswers: UInt64 = 0
        /// MSI writes that reached a bound doorbell.
        public var msisDelivered: UInt64 = 0
        /// **Guest bug**: MSI writes that faulted: no doorbell bound at the
        /// device's MSI address (the guest never bound it, or unbound it).
        public var msiFaults: UInt64 = 0

        /// All zero.
        public init() {}

        /// Every counter with its name in STATS: the one list that
        /// `dictionary` and `add` both read, so neither can miss a field.
        public static var fields: [(name: String, path: WritableKeyPath<Counters, UInt64>)] { [
            ("dmas", \.dmas), ("translated", \.translated), ("pageRequests", \.pageRequests),
            ("unrecoverable", \.unrecoverable), ("stage2Misses", \.stage2Misses),
            ("answeredSuccess", \.answeredSuccess), ("answeredOther", \.answeredOther),
            ("retriesTranslated", \.retriesTranslated), ("successNotMapped", \.successNotMapped),
            ("staleUses", \.staleUses), ("stalls", \.stalls), ("retriesDropped", \.retriesDropped),
            ("retriesStage2Missed", \.retriesStage2Missed),
            ("unexpectedAnswers", \.unexpectedAnswers), ("msisDelivered", \.msisDelivered), ("msiFaults", \.msiFaults),
        ] }

        /// By name, as STATS lists them.
        public var dictionary: [String: UInt64] {
            Dictionary(uniqueKeysWithValues: Self.fields.map { ($0.name, self[keyPath: $0.path]) })
        }

        /// The counters named in `dictionary` (STATS), missing names as zero.
        public init(_ dictionary: [String: UInt64]) {
            for field in Self.fields { self[keyPath: field.path] = dictionary[field.name] ?? 0 }
        }

        /// Adds `other`'s counts to these (wrapping: counters never trap).
        public mutating func add(_ other: Counters) {
            for field in Self.fields { self[keyPath: field.path] &+= other[keyPath: field.path] }
        }

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        /// Reads the counters by name; a counter a file predates (written
        /// before it existed) reads as zero, so older captures stay readable.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            for field in Self.fields {
                self[keyPath: field.path] = try container.decodeIfPresent(UInt64.self, forKey: Key(stringValue: field.name)) ?? 0
            }
        }

        /// Writes every counter by its name in `fields`.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            for field in Self.fields { try container.encode(self[keyPath: field.path], forKey: Key(stringValue: field.name)) }
        }

        /// Whether every SUCCESS is accounted for: each answered SUCCESS was
        /// retried (translated, missed in stage 1, or missed in stage 2) or
        /// its retry dropped with its VM. Judged once no retry is owed.
        public func retriesBalance() -> Bool {
            answeredSuccess == retriesTranslated &+ successNotMapped &+ retriesStage2Missed &+ retriesDropped
        }
    }

    struct Access {
        var stream: Int
        var iova: UInt64
        var access: DMAAccess
    }

    /// The configuration.
    public let config: Config
    /// The counters.
    public private(set) var counters = Counters()
    private var issued: [UInt64]
    private var waiting: [UInt32: Access] = [:]
    private var freePRGIs: [UInt32]
    private var retries: [Access] = []
    /// The domain the owed retries were answered through. Weak, so a VM's
    /// domain (and its guest-RAM descriptors) is never kept alive by a
    /// device, and a domain freed and another allocated at its address
    /// cannot be mistaken for it.
    private weak var retryDomain: NestedDomain?
    private var blocked: Set<Int> = []
    private var random: SplitMix64
    /// Interrupts owed for answers received, written at the next step
    /// (dropped, like retries, if that step goes through another VM).
    private var interruptsOwed = 0
    /// Answers the guest gave (its interrupts count these).
    private var guestAnswers: UInt64 = 0
    private var turn = 0

    /// A device with `config`; `seed` fixes its random choices.
    public init(_ config: Config, seed: UInt64) {
        self.config = config
        issued = Array(repeating: 0, count: config.streams.count)
        freePRGIs = (0..<UInt32(min(config.outstanding, 512))).reversed()
        random = SplitMix64(seed: seed ^ UInt64(config.id) &* 0x9E37_79B9)
    }

    /// Page requests waiting for an answer.
    public var outstanding: Int { waiting.count }

    /// Retries owed after SUCCESS and not yet made (made at the next step).
    public var retriesOwed: Int { retries.count }

    /// One step at `now`: the retries owed, then (with `newAccesses`)
    /// `accessesPerStep` new accesses, round-robin over the streams not
    /// waiting for an answer. Page requests and unrecoverable faults go to
    /// `raise`.
    public func step(now: UInt64, domain: NestedDomain, newAccesses: Bool = true, raise: (FaultEvent) -> Void) {
        // Retries are owed to the VM that answered: through another domain
        // (the device was detached and attached again) they would walk the
        // new guest's tables for the old guest's page.
        if retryDomain !== domain { dropRetries() }   // retries and interrupts alike
        retryDomain = domain   // what this step raises is answered through it
        let owed = retries
        retries.removeAll(keepingCapacity: true)
        for access in owed {
            blocked.remove(access.stream)
            // The guest unbound the PASID after answering (as a driver tearing a context down does):
            // the retry's context is gone, which is no mapping bug of the guest's.
            guard domain.isBound(device: config.id, pasid: config.streams[access.stream].pasid) else {
                counters.retriesDropped &+= 1
                continue
            }
            if perform(access, now: now, domain: domain, raise: raise, retry: true) {
                counters.retriesTranslated &+= 1
            }
        }
        if let msi = config.msi {
            for _ in 0..<interruptsOwed { interrupt(msi, now: now, domain: domain, raise: raise) }
        }
        interruptsOwed = 0
        guard newAccesses, !config.streams.isEmpty else { return }
        for _ in 0..<config.accessesPerStep {
            // A stream runs once its PASID has a stage 1 (the guest bound it).
            let s = nextStream { domain.isBound(device: config.id, pasid: config.streams[$0].pasid) }
            guard let s else { break }
            let stream = config.streams[s]
            let n = issued[s]
            issued[s] &+= 1
            let access = Access(stream: s, iova: stream.address(n, random: &random),
                                access: DMAAccess(write: stream.writes(n)))
            _ = perform(access, now: now, domain: domain, raise: raise, retry: false)
        }
    }

    private func nextStream(_ runnable: (Int) -> Bool) -> Int? {
        for _ in 0..<config.streams.count {
            let s = turn % config.streams.count
            turn &+= 1
            if !blocked.contains(s) && runnable(s) { return s }
        }
        return nil
    }

    /// Translates one access; true if it translated. A fault raises a page
    /// request (PRI, a fault the guest can fix, a free PRGI) or an
    /// unrecoverable fault.
    private func perform(_ a: Access, now: UInt64, domain: NestedDomain, raise: (FaultEvent) -> Void, retry: Bool) -> Bool {
        counters.dmas &+= 1
        let pasid = config.streams[a.stream].pasid
        switch domain.translate(device: config.id, pasid: pasid, iova: a.iova, access: a.access, now: now) {
        case .translated(_, _, let stale):
            counters.translated &+= 1
            if stale { counters.staleUses &+= 1 }
            return true
        case .fault(let fault):
            // A stage-2 miss is the host's fault, on a retry too: never charged to the guest.
            if fault.kind == .stage2Miss {
                counters.stage2Misses &+= 1
                if retry { counters.retriesStage2Missed &+= 1 }
                return false
            }
            if retry { counters.successNotMapped &+= 1 }
            // A retry that missed is not asked again: the guest said SUCCESS.
            if !retry, config.pri, fault.isPageRequestable {
                guard let prgi = freePRGIs.popLast() else {
                    counters.stalls &+= 1
                    return false
                }
                waiting[prgi] = a
                blocked.insert(a.stream)
                counters.pageRequests &+= 1
                let perms: Permissions = a.access.write ? [.read, .write] : .read
                raise(.pageRequest(PageRequest(
                    deviceID: config.id, pasid: pasid, prgi: prgi, permissions: perms, address: a.iova & ~0xFFF,
                    isLastPage: true, needsPASID: true, timestampNS: now)))
            } else if !retry {
                counters.unrecoverable &+= 1
                raise(.unrecoverable(UnrecoverableFault(
                    deviceID: config.id, reason: Self.reason(fault.kind), pasid: pasid,
                    permissions: a.access.write ? .write : .read, address: a.iova, timestampNS: now)))
            }
            return false
        }
    }

    /// One MSI write: delivered through a bound doorbell, or a fault reported.
    /// Looked up among the doorbells only (`NestedDomain.doorbell`): an
    /// interrupt walks no table and touches no cache or translation counter.
    private func interrupt(_ msi: MSIWrites, now: UInt64, domain: NestedDomain, raise: (FaultEvent) -> Void) {
        if domain.doorbell(device: config.id, iova: msi.iova) != nil {
            counters.msisDelivered &+= 1
        } else {
            counters.msiFaults &+= 1
            raise(.unrecoverable(UnrecoverableFault(
                deviceID: config.id, reason: FAULTRING_REASON_PTE_FETCH, pasid: nil, permissions: .write,
                address: msi.iova, timestampNS: now)))
        }
    }

    /// Forgets the retries owed (the VM that answered is gone).
    public func dropRetries() {
        interruptsOwed = 0   // owed to the same VM as the retries
        for access in retries { blocked.remove(access.stream) }
        counters.retriesDropped &+= UInt64(retries.count)
        retries.removeAll()
    }

    /// The kernel's `enum iommu_fault_reason` for a walk fault.
    static func reason(_ kind: WalkFault.Kind) -> UInt32 {
        switch kind {
        case .notPresent, .reservedBits: FAULTRING_REASON_PTE_FETCH
        case .permission: FAULTRING_REASON_PERMISSION
        case .accessFlag: FAULTRING_REASON_ACCESS
        case .addressSize: FAULTRING_REASON_OOR_ADDRESS
        case .badContext: FAULTRING_REASON_BAD_PASID_ENTRY
        case .stage2Miss: FAULTRING_REASON_WALK_EABT
        }
    }

    /// The answer to the page request `prgi`: SUCCESS schedules a retry of
    /// the access at the next step; anything else drops it. An answer for a
    /// PRGI not in flight is counted (`unexpectedAnswers`) and otherwise ignored.
    /// `byGuest`: the guest answered (not the service, on a timeout,
    /// overflow or detach); only its answers count towards an interrupt, so
    /// a service answer before the guest bound its doorbell charges it nothing.
    public func complete(prgi: UInt32, code: ResponseCode, byGuest: Bool = true) {
        guard let access = waiting.removeValue(forKey: prgi) else {
            counters.unexpectedAnswers &+= 1
            return
        }
        freePRGIs.append(prgi)
        if let msi = config.msi, byGuest {
            guestAnswers &+= 1
            if guestAnswers % UInt64(msi.every) == 0 { interruptsOwed += 1 }
        }
        if code == .success {
            counters.answeredSuccess &+= 1
            retries.append(access)
        } else {
            counters.answeredOther &+= 1
            blocked.remove(access.stream)
        }
    }
}
