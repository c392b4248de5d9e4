import FaultABI
import FaultPipeline
import NestedIOMMU
import PageRequests

/// DMA devices behind a nested IOMMU, as a `FaultSource`: every `stepNS`
/// each attached, ready device whose VM has a domain runs a step of its
/// streams through that domain; its page requests and unrecoverable faults
/// go to the pipeline, and each group's answer comes back through
/// `complete` (SUCCESS: the device retries).
///
/// In one process (the harness) every device is in one domain; in the
/// service each device is in the domain of the connection that holds it,
/// found through `domainOf` at every step (none: the device does nothing).
public final class NestedDevices: FaultSource {
    /// The domain a device's DMA goes through now, if any.
    public let domainOf: (UInt32) -> NestedDomain?
    /// The devices.
    public let units: [DMADevice]
    /// Time between steps (ns: virtual in the harness, monotonic in the service).
    public let stepNS: UInt64
    private var nextStep: UInt64 = 0
    private var stopped = false
    private var index: [UInt32: Int] = [:]

    /// Devices `configs` whose DMA goes through `domainOf(id)`; one step
    /// every `stepNS`.
    public init(devices configs: [DMADevice.Config], stepNS: UInt64 = 1_000, seed: UInt64 = 1,
                domainOf: @escaping (UInt32) -> NestedDomain?) {
        self.domainOf = domainOf
        self.stepNS = stepNS
        units = configs.map { DMADevice($0, seed: seed) }
        for (i, c) in configs.enumerated() { index[c.id] = i }
    }

    /// Devices `configs` all in `domain`, which holds them from now on (their
    /// ATS as configured).
    public convenience init(domain: NestedDomain, devices configs: [DMADevice.Config], stepNS: UInt64 = 1_000,
                            seed: UInt64 = 1) {
        for c in configs { domain.attach(device: c.id, ats: c.ats) }
        self.init(devices: configs, stepNS: stepNS, seed: seed, domainOf: { _ in domain })
    }

    /// Each device's id and PRI allocation.
    public var devices: [SourceDevice] { units.map { SourceDevice(id: $0.config.id, allocation: $0.config.outstanding) } }

    /// Runs a step if one is due (once stopped, only the retries that
    /// answers already asked for).
    public func raise(now: UInt64, into intake: any FaultIntake) {
        guard now >= nextStep else { return }
        nextStep = now &+ stepNS
        for unit in units {
            // Detached, or its VM gone: the next holder owes its retries nothing.
            guard intake.isReady(unit.config.id), let domain = domainOf(unit.config.id) else {
                unit.dropRetries()
                continue
            }
            unit.step(now: now, domain: domain, newAccesses: !stopped) { event in
                switch event {
                case .pageRequest(let request): intake.receive(request, now: now)
                case .unrecoverable(let fault): _ = intake.deliver(fault)
                }
            }
        }
    }

    /// The next step.
    public func nextDeadline(after now: UInt64, intake: any FaultIntake) -> UInt64? { nextStep }

    /// Hands the answer to its device (which retries on SUCCESS).
    public func complete(_ completion: DeviceCompletion) {
        guard let i = index[completion.deviceID] else { return }
        units[i].complete(prgi: completion.prgi, code: completion.code, byGuest: completion.source == .consumer)
    }

    /// Start no new access (retries the answers ask for still run).
    public func stopRaising() { stopped = true }

    /// Each device's books: its page requests as groups, and its DMA and
    /// guest-bug counters (Docs/NESTED.md) for STATS.
    public func books() -> [DeviceBooks] {
        units.map { u in
            let c = u.counters
            var books = DeviceBooks(id: u.config.id, issued: c.pageRequests, answered: c.answeredSuccess &+ c.answeredOther,
                                    outstanding: u.outstanding, unexpected: c.unexpectedAnswers, wrong: 0,
                                    answersBySource: ["success": c.answeredSuccess, "other": c.answeredOther])
            var counters = c.dictionary
            counters["retriesOwed"] = UInt64(u.retriesOwed)
            books.counters = counters
            return books
        }
    }

    /// The devices' counters summed.
    public var totals: DMADevice.Counters {
        var sum = DMADevice.Counters()
        for u in units { sum.add(u.counters) }
        return sum
    }
}
