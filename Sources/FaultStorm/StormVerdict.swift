import FaultFixtures

/// Whether a storm passed, and if not, why, in words and as an exit status.
///
/// A storm passes when every run's ledgers balance (no group unanswered,
/// none answered twice, none answered wrongly), the run itself went as
/// planned, and every SLO of the profile holds for the service run. The
/// exit status has one bit per kind of failure, so a script can tell them
/// apart: `ledger` 1, `latency` 2, `answeredByConsumer` 4, `unanswered` 8,
/// `run` 16, `chaos` 32, `memory` 128 (0: passed; 64 is left to the usage error of a malformed profile).
public struct StormVerdict: Codable, Sendable, Hashable {
    /// What a check is about.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// A device's ledger does not balance.
        case ledger
        /// The p99 SLO.
        case latency
        /// The answered-by-consumer SLO.
        case answeredByConsumer
        /// The zero-unanswered SLO.
        case unanswered
        /// A process would not start, died, or the storm did not finish.
        case run
        /// With chaos: a kill or restart not made, a tenant not served by the
        /// final incarnation, a descriptor not returned. (A tenant unserved for
        /// longer than the timeout is a `latency` failure.)
        case chaos
        /// With chaos: the final incarnation's resident memory grew by more
        /// than `StormChaosReport.residentGrowthAllowed`, or could not be read.
        /// A kind of its own: under AddressSanitizer, whose quarantine keeps
        /// freed memory resident, a caller masks it.
        case memory
        /// A vSVA storm: a correct guest charged with a bug, or a faulty
        /// guest whose bug went unfound. Bit 2, which only arrival storms'
        /// latency SLO uses otherwise: exit statuses have seven bits to give.
        case guest

        /// Its bit in the exit status.
        public var bit: Int32 {
            switch self {
            case .ledger: return 1
            case .latency: return 2
            case .answeredByConsumer: return 4
            case .unanswered: return 8
            case .run: return 16
            case .chaos: return 32
            case .memory: return 128
            case .guest: return 2
            }
        }
    }

    /// One check and its outcome.
    public struct Check: Codable, Sendable, Hashable {
        /// What it is about.
        public var kind: Kind
        /// Which run (`service` or `direct`).
        public var run: String
        /// Whether it held.
        public var passed: Bool
        /// What was required and what was measured, in words.
        public var detail: String
    }

    /// Every check made, passed or not.
    public var checks: [Check]

    /// A verdict of these checks.
    public init(checks: [Check]) { self.checks = checks }

    /// Whether every check held.
    public var passed: Bool { checks.allSatisfy(\.passed) }
    /// The checks that failed.
    public var failures: [Check] { checks.filter { !$0.passed } }
    /// The exit status: one bit per kind that failed (0: passed).
    public var exitStatus: Int32 { failures.reduce(0) { $0 | $1.kind.bit } }

    /// Judges `runs` (the first is the one SLOs apply to) against `profile`:
    /// a ledger and a run check per run, then one check per SLO the profile sets.
    public init(profile: StormProfile, runs: [StormRun]) {
        var checks: [Check] = []
        for run in runs {
            let name = run.mode.rawValue
            let bad = run.ledgers.filter { !$0.balances }
            checks.append(Check(
                kind: .ledger, run: name, passed: bad.isEmpty && !run.ledgers.isEmpty,
                detail: run.ledgers.isEmpty
                    ? "no ledger came back from the devices"
                    : bad.isEmpty
                    ? "all \(run.ledgers.count) device ledgers balance: \(run.answered) groups, each answered exactly once"
                    : "\(bad.count) of \(run.ledgers.count) device ledgers do not balance (devices "
                        + bad.map { String($0.device) }.joined(separator: ", ")
                        + "): \(run.unanswered) unanswered, \(run.answeredTwice) answered twice, \(run.wrong) answered wrongly"))
            checks.append(Check(
                kind: .run, run: name, passed: run.problems.isEmpty,
                detail: run.problems.isEmpty ? "every process started and ended as planned" : run.problems.joined(separator: "; ")))
            if let chaos = run.chaos { checks += Self.checks(chaos, run: name) }
            // SLOs are judged for the first run, and only when it produced ledgers: a run that did
            // not happen fails as a run (and a ledger), not also as every threshold.
            guard run.mode == runs.first?.mode, !run.ledgers.isEmpty else { continue }
            let slo = profile.slo
            if let limit = slo.p99Microseconds {
                let p99 = Double(run.overall?.latency.p99 ?? 0) / 1000
                checks.append(Check(
                    kind: .latency, run: name, passed: run.overall != nil && p99 <= limit,
                    detail: "p99 latency \(Self.format(p99)) µs against a limit of \(Self.format(limit)) µs"))
            }
            if let least = slo.answeredByConsumerMin {
                let share = run.answered == 0 ? 0 : Double(run.answeredByConsumer) / Double(run.answered)
                checks.append(Check(
                    kind: .answeredByConsumer, run: name, passed: share >= least,
                    detail: "\(Self.format(share * 100)) % of groups answered by a consumer (\(run.answeredByConsumer) of "
                        + "\(run.answered)) against a least of \(Self.format(least * 100)) %"))
            }
            if slo.zeroUnanswered {
                checks.append(Check(
                    kind: .unanswered, run: name, passed: run.unanswered == 0,
                    detail: "\(run.unanswered) groups unanswered at the end (required: 0)"))
            }
        }
        self.checks = checks
    }

    /// The chaos checks: every planned kill and restart made; every judged
    /// tenant served by the final incarnation, and none unserved for longer
    /// than the timeout (a `latency` check); the final incarnation's
    /// descriptors back to the first's at start; its memory grown at most
    /// `StormChaosReport.residentGrowthAllowed` from a quarter into its life.
    static func checks(_ chaos: StormChaosReport, run name: String) -> [Check] {
        var checks: [Check] = []
        let planned = chaos.consumerKills == chaos.consumerKillsPlanned && chaos.restarts.count == chaos.serviceRestartsPlanned
        checks.append(Check(
            kind: .chaos, run: name, passed: planned,
            detail: "\(chaos.consumerKills) of \(chaos.consumerKillsPlanned) consumer kills and \(chaos.restarts.count) of "
                + "\(chaos.serviceRestartsPlanned) service restarts made"))
        let judged = chaos.gaps.filter(\.judged)
        let limitNS = chaos.timeoutMilliseconds &* 1_000_000
        let late = judged.filter { $0.longestServedNS > limitNS }
        let longest = judged.max { $0.longestServedNS < $1.longestServedNS }
        // A bound on time, so a latency check: tests that may not depend on the machine's speed mask it.
        checks.append(Check(
            kind: .latency, run: name, passed: late.isEmpty && !judged.isEmpty,
            detail: late.isEmpty
                ? "no tenant went unserved longer than the \(chaos.timeoutMilliseconds) ms timeout (longest wait for a "
                    + "SUCCESS: \(longest.map { "\($0.name), \(format(Double($0.longestServedNS) / 1e6)) ms" } ?? "none"))"
                : "tenants went unserved longer than the \(chaos.timeoutMilliseconds) ms timeout: "
                    + late.map { "\($0.name) \(format(Double($0.longestServedNS) / 1e6)) ms, until "
                        + "\(format($0.servedEndedAtSeconds)) s" }.joined(separator: ", ")))
        let unserved = judged.filter { chaos.servedByFinalIncarnation[$0.name, default: 0] == 0 }
        checks.append(Check(
            kind: .chaos, run: name, passed: unserved.isEmpty && !judged.isEmpty,
            detail: unserved.isEmpty
                ? "every tenant was served by the final service incarnation (\(judged.count) tenants)"
                : "not served by the final service incarnation: " + unserved.map(\.name).joined(separator: ", ")))
        checks.append(descriptors(start: chaos.descriptorsAtStart, end: chaos.descriptorsAtEnd, run: name))
        checks.append(memory(quarter: chaos.residentAtQuarterKiB, end: chaos.residentAtEndKiB, run: name))
        return checks
    }

    /// The service's descriptors with only the observer connected, at the
    /// start and after everyone left, must be the same (`chaos`).
    static func descriptors(start: Int?, end: Int?, run name: String) -> Check {
        Check(kind: .chaos, run: name, passed: start != nil && start == end,
              detail: "service descriptors with only the observer connected: \(start.map(String.init) ?? "?") "
                + "at the first start, \(end.map(String.init) ?? "?") at the end")
    }

    /// The service's resident memory at the end within
    /// `StormChaosReport.residentGrowthAllowed` of a quarter into its life (`memory`).
    static func memory(quarter: UInt64?, end: UInt64?, run name: String) -> Check {
        guard let quarter, let end else {
            return Check(kind: .memory, run: name, passed: false, detail: "the final service incarnation's memory could not be read")
        }
        let allowed = Double(quarter) * (1 + StormChaosReport.residentGrowthAllowed)
        return Check(kind: .memory, run: name, passed: Double(end) <= allowed,
                     detail: "final service incarnation's resident memory \(quarter) KiB a quarter into its life, \(end) KiB at "
                        + "the end (allowed: \(Int(allowed)) KiB)")
    }

    static func format(_ x: Double) -> String {
        let tenth = (x * 10).rounded() / 10
        return x >= 100 || tenth == tenth.rounded() ? String(Int(x.rounded())) : String(tenth)
    }
}
