import FaultABI
import FaultPipeline
import NestedIOMMU
import PageRequests

/// DMA devices behind a nested IOMMU, as a `FaultSource`: every `stepNS`
/// each attached, ready device runs a step of its streams through the
/// domain; its page requests and unrecoverable faults go to the pipeline,
/// and each group's answer comes back through `complete` (SUCCESS: the
/// device retries).
public final class NestedDevices: FaultSource {
    /// The VM's nested IOMMU.
    public let domain: NestedDomain
    /// The devices.
    public let units: [DMADevice]
    /// Virtual time between steps.
    public let stepNS: UInt64
    private var nextStep: UInt64 = 0
    private var stopped = false
    private var index: [UInt32: Int] = [:]

    /// Devices `configs` in `domain`, which holds them from now on (their ATS
    /// as configured); one step every `stepNS`.
    public init(domain: NestedDomain, devices configs: [DMADevice.Config], stepNS: UInt64 = 1_000, seed: UInt64 = 1) {
        self.domain = domain
        self.stepNS = stepNS
        units = configs.map { DMADevice($0, seed: seed) }
        for (i, c) in configs.enumerated() {
            index[c.id] = i
            domain.attach(device: c.id, ats: c.ats)
        }
    }

    /// Each device's id and PRI allocation.
    public var devices: [SourceDevice] { units.map { SourceDevice(id: $0.config.id, allocation: $0.config.outstanding) } }

    /// Runs a step if one is due (once stopped, only the retries that
    /// answers already asked for).
    public func raise(now: UInt64, into intake: any FaultIntake) {
        guard now >= nextStep else { return }
        nextStep = now &+ stepNS
        for unit in units where intake.isReady(unit.config.id) {
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
        units[i].complete(prgi: completion.prgi, code: completion.code)
    }

    /// Start no new access (retries the answers ask for still run).
    public func stopRaising() { stopped = true }

    /// The devices' counters summed.
    public var totals: DMADevice.Counters {
        var sum = DMADevice.Counters()
        for u in units {
            let c = u.counters
            sum.dmas &+= c.dmas
            sum.translated &+= c.translated
            sum.pageRequests &+= c.pageRequests
            sum.unrecoverable &+= c.unrecoverable
            sum.stage2Misses &+= c.stage2Misses
            sum.answeredSuccess &+= c.answeredSuccess
            sum.answeredOther &+= c.answeredOther
            sum.retriesTranslated &+= c.retriesTranslated
            sum.successNotMapped &+= c.successNotMapped
            sum.staleTranslations &+= c.staleTranslations
            sum.stalls &+= c.stalls
        }
        return sum
    }
}
