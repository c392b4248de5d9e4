import FaultFixtures
import FaultPipeline
import FaultSimulation
import FaultStorm
import Foundation
import Testing

/// The verdict on runs made up for the purpose: every kind of failure sets
/// its own exit bit and says why, and a run that did not happen fails as a
/// run, not also as every SLO.
@Suite struct StormVerdictTests {
    static func profile(p99Us: Double? = nil, answeredByConsumerMin: Double? = nil) throws -> StormProfile {
        var p = try StormProfileReader.read(path: StormTests.storms.appendingPathComponent("steady.json").path)
        p.slo = StormProfile.SLO(p99Microseconds: p99Us, answeredByConsumerMin: answeredByConsumerMin, zeroUnanswered: true)
        return p
    }

    /// A run of two devices, `issued` groups each; device 2 with `unanswered`, `twice` and `wrong` of its own,
    /// `byService` of the answered groups answered by the service (timeout), p99 of `p99NS`.
    static func run(issued: UInt64 = 100, unanswered: Int = 0, twice: UInt64 = 0, wrong: UInt64 = 0,
                    byService: UInt64 = 0, p99NS: UInt64 = 1000) -> StormRun {
        var run = StormRun(mode: .service)
        let answered2 = issued - UInt64(unanswered)
        run.ledgers = [
            StormLedger(DeviceBooks(id: 1, issued: issued, answered: issued, outstanding: 0, unexpected: 0, wrong: 0,
                                    answersBySource: [:]), answeredBy: ["consumer": issued]),
            StormLedger(DeviceBooks(id: 2, issued: issued, answered: answered2, outstanding: unanswered, unexpected: twice,
                                    wrong: wrong, answersBySource: [:]),
                        answeredBy: ["consumer": answered2 - byService, "timeout": byService]),
        ]
        var h = NamedLatency.emptyHistogram()
        for _ in 0..<100 { _ = h.record(p99NS) }
        run.overall = NamedLatency(name: "all", histogram: h)
        run.offered = 2 * issued
        return run
    }

    @Test func aBalancedRunWithinItsSLOsPasses() throws {
        let v = StormVerdict(profile: try Self.profile(p99Us: 10, answeredByConsumerMin: 0.99), runs: [Self.run()])
        #expect(v.passed && v.exitStatus == 0 && v.checks.count == 5)
    }

    @Test func eachFailureSetsItsOwnBitAndSaysWhy() throws {
        let ledger = StormVerdict(profile: try Self.profile(), runs: [Self.run(twice: 2)])
        #expect(ledger.exitStatus == StormVerdict.Kind.ledger.bit)
        #expect(ledger.failures.first?.detail.contains("2 answered twice") == true)
        #expect(ledger.failures.first?.detail.contains("devices 2") == true)

        let wrong = StormVerdict(profile: try Self.profile(), runs: [Self.run(wrong: 1)])
        #expect(wrong.exitStatus == StormVerdict.Kind.ledger.bit)

        let unanswered = StormVerdict(profile: try Self.profile(), runs: [Self.run(unanswered: 3)])
        #expect(unanswered.exitStatus == StormVerdict.Kind.ledger.bit | StormVerdict.Kind.unanswered.bit)
        #expect(unanswered.failures.contains { $0.kind == .unanswered && $0.detail.hasPrefix("3 groups unanswered") })

        let slow = StormVerdict(profile: try Self.profile(p99Us: 10), runs: [Self.run(p99NS: 50_000)])
        #expect(slow.exitStatus == StormVerdict.Kind.latency.bit)
        #expect(slow.failures.first?.detail.contains("against a limit of 10 µs") == true)

        let share = StormVerdict(profile: try Self.profile(answeredByConsumerMin: 0.99), runs: [Self.run(byService: 20)])
        #expect(share.exitStatus == StormVerdict.Kind.answeredByConsumer.bit)
        #expect(share.failures.first?.detail.contains("180 of 200") == true)
    }

    @Test func aRunThatDidNotHappenFailsAsARunNotAsEverySLO() throws {
        var run = StormRun(mode: .service)
        run.problems = ["the device process ended without a report"]
        let v = StormVerdict(profile: try Self.profile(p99Us: 10, answeredByConsumerMin: 0.99), runs: [run])
        #expect(v.exitStatus == StormVerdict.Kind.ledger.bit | StormVerdict.Kind.run.bit)
        #expect(v.failures.contains { $0.kind == .run && $0.detail.contains("without a report") })
    }

    @Test func slosAreJudgedForTheServiceRunOnly() throws {
        var direct = Self.run(p99NS: 50_000)
        direct.mode = .direct
        let v = StormVerdict(profile: try Self.profile(p99Us: 10), runs: [Self.run(), direct])
        #expect(v.passed)
        #expect(v.checks.filter { $0.run == "direct" }.map(\.kind) == [.ledger, .run])
    }
}
