import FaultFixtures
import FaultSimulation
import FaultSys
import Glibc

/// Plays a profile's `chaos` on the schedule's clock: SIGKILLs of consumer
/// processes (each started again at once, with `--reconnect`) and service
/// restarts, and samples the running service's memory.
///
/// The plan is fixed by the profile: kill k falls at (k + ½)/K of the
/// storm, its target drawn with the profile's seed among the live
/// processes of `killAmong`; restart r falls at (r + 1)/R of the first
/// `restartsWithin` of the storm, alternately by SIGTERM and SIGKILL. So
/// the final incarnation lives the rest of the storm, under kills and
/// scribbling, and its memory a quarter into that life is compared with
/// its memory at the end.
struct StormChaos {
    let plan: StormProfile.Chaos
    let durationNS: UInt64
    let timeoutSeconds: Double
    var rng: SplitMix64
    var report = StormChaosReport()
    /// When the final incarnation started, ns into the storm, and its memory samples (time, KiB).
    var finalStartNS: UInt64 = 0
    var finalSamples: [(atNS: UInt64, kib: UInt64)] = []
    var lastSampleNS: UInt64 = 0

    init(_ plan: StormProfile.Chaos, profile: StormProfile) {
        self.plan = plan
        durationNS = profile.durationNS
        timeoutSeconds = Double(profile.timeoutMilliseconds) / 1000
        rng = SplitMix64(seed: profile.seed ^ 0xC4A0_5C4A_05C4_A05C)
        report.consumerKillsPlanned = plan.consumerKills
        report.serviceRestartsPlanned = plan.serviceRestarts
        report.timeoutMilliseconds = profile.timeoutMilliseconds
    }

    func killDue(_ k: Int) -> UInt64 {
        UInt64((Double(k) + 0.5) / Double(plan.consumerKills) * Double(durationNS))
    }

    func restartDue(_ r: Int) -> UInt64 {
        UInt64(Double(r + 1) / Double(plan.serviceRestarts) * plan.restartsWithin * Double(durationNS))
    }

    /// Does whatever is due by `now` (ns into the storm). `beforeChange`
    /// runs before a kill or a restart, to read the books that die with it.
    mutating func play(atNS now: UInt64, service: StormService, tenants: inout StormTenants, into run: inout StormRun,
                       beforeChange: () -> Void) {
        while report.restarts.count < plan.serviceRestarts && now >= restartDue(report.restarts.count) {
            beforeChange()
            let kill = report.restarts.count % 2 == 1
            let started = Sys.monotonicNS
            if let problem = service.restart(kill: kill, within: 3 * timeoutSeconds + 5) { run.problems.append(problem) }
            report.restarts.append(StormChaosReport.Restart(
                atSeconds: Double(now) / 1e9, signal: kill ? "SIGKILL" : "SIGTERM",
                downMilliseconds: Double(Sys.monotonicNS &- started) / 1e6))
            finalStartNS = now
            finalSamples = []
        }
        while report.consumerKills < plan.consumerKills && now >= killDue(report.consumerKills) {
            let targets = tenants.list.indices.filter { plan.killAmong.contains(tenants.list[$0].consumer.name) }
            report.consumerKills += 1
            guard !targets.isEmpty else { continue }
            beforeChange()
            let target = targets[Int(rng.next() % UInt64(targets.count))]
            if let problem = tenants.killAndRestart(target) { run.problems.append(problem) }
        }
        if now &- lastSampleNS >= 100_000_000, let kib = service.residentKiB {
            lastSampleNS = now
            finalSamples.append((now, kib))
        }
    }

    /// The report, once the storm is over: memory of the final incarnation
    /// from its samples, each tenant's longest gap from the devices' report,
    /// and what the final incarnation completed for each tenant (`sampler`).
    func finished(gaps: [AnswerGap], tenants: StormTenants, sampler: StormSampler) -> StormChaosReport {
        var out = report
        out.servedByFinalIncarnation = sampler.completed(inIncarnation: sampler.incarnation)
        out.residentKiB = finalSamples.map(\.kib)
        let life = finalSamples.last.map { $0.atNS &- finalStartNS } ?? 0
        out.residentAtQuarterKiB = finalSamples.first { $0.atNS &- finalStartNS >= life / 4 }?.kib
        out.residentAtEndKiB = finalSamples.last?.kib
        let byDevice = Dictionary(gaps.map { ($0.device, $0) }, uniquingKeysWith: { a, _ in a })
        out.gaps = tenants.list.map { t in
            let mine = t.devices.compactMap { byDevice[$0] }
            let longest = mine.max { $0.longestNS < $1.longestNS }
            let served = mine.max { $0.longestServedNS < $1.longestServedNS }
            return StormChaosReport.TenantGap(
                name: t.name, longestNS: longest?.longestNS ?? 0, endedAtSeconds: Double(longest?.endedAtNS ?? 0) / 1e9,
                longestServedNS: served?.longestServedNS ?? 0,
                servedEndedAtSeconds: Double(served?.servedEndedAtNS ?? 0) / 1e9,
                judged: t.consumer.behaviour != .scribble)
        }
        out.scribbles = tenants.scribbleCounts
        return out
    }
}
