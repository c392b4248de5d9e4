import ArgumentParser
import Foundation
import FaultFixtures
import FaultSys

/// Runs fixtures through the real path — the service process replays the
/// events from simulated devices, a consumer process behaves as the fixture
/// says, answers flow back to the devices — and compares the outcome with
/// the expectation.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay", abstract: "Replay fixtures through service and consumer processes; print a verdict per scenario.")

    @Argument(help: "Fixture files.") var files: [String]
    @Option(help: "fast (as fast as possible) or recorded (the events' own timing); default: the fixture's own choice, else fast.")
    var pace: ReplayPace?
    @Flag(help: "Print the verdicts as JSON.") var json = false

    struct Verdict: Codable {
        var file: String
        var name: String
        var events: Int
        var passed: Bool
        var differences: [String]
        var outcome: FixtureOutcome?
        var seconds: Double
    }

    func run() throws {
        var verdicts: [Verdict] = []
        for file in files {
            let start = Date()
            var verdict = Verdict(file: file, name: "", events: 0, passed: false, differences: [], outcome: nil, seconds: 0)
            do {
                // Validate the whole file first: nothing half-runs.
                let (fixture, count) = try FixtureValidation.validate(path: file)
                verdict.name = fixture.name
                verdict.events = count
                let outcome = try Self.runOnce(file, fixture: fixture, pace: pace ?? fixture.service.pace ?? .fast)
                verdict.outcome = outcome
                verdict.differences = fixture.expected.map(outcome.differences(from:))
                    ?? ["the fixture has no \"expected\" outcome to compare with"]
            } catch {
                verdict.differences = ["\(error)"]
            }
            verdict.passed = verdict.differences.isEmpty
            verdict.seconds = Date().timeIntervalSince(start)
            verdicts.append(verdict)
            if !json {
                print("\(verdict.passed ? "PASS" : "FAIL") \(file) (\(verdict.name), \(verdict.events) events, " +
                      "\(String(format: "%.2f", verdict.seconds)) s)")
                if let o = verdict.outcome {
                    print("  got: \(o.groups.count) groups answered, automatic answers (\(Tally(o.auto))), rejections (\(Tally(o.rejections))), " +
                          "lost \(o.lostRecords), faults delivered \(o.faultsDelivered)")
                }
                for difference in verdict.differences { print("  difference: \(difference)") }
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(verdicts), as: UTF8.self))
        }
        if verdicts.contains(where: { !$0.passed }) { throw ExitCode(1) }
    }

    /// One run: a service process replaying the fixture, a consumer process
    /// behaving as it says; the service writes the outcome and stops.
    static func runOnce(_ file: String, fixture: Fixture, pace: ReplayPace) throws -> FixtureOutcome {
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let socket = "/tmp/faultring-replay-\(tag).sock"
        let outcomePath = "/tmp/faultring-replay-\(tag).json"
        defer {
            unlink(socket)
            unlink(outcomePath)
        }
        let binary = "/proc/self/exe"
        let service = try ChildProcess.spawn(
            binary, ["serve", "--socket-path", socket, "--fixture", file, "--pace", pace.rawValue, "--outcome", outcomePath,
                     "--log-level", "error"])
        for _ in 0..<400 where access(socket, F_OK) != 0 && service.isRunning { usleep(10_000) }
        let consumer = try ChildProcess.spawn(
            binary, ["consume", "--socket-path", socket, "--fixture", file, "--format", "veventq", "--quiet"],
            stdout: .discard)
        // A bound, not a measurement: the fixture's span, its timeout, and slack.
        let span = Double(fixture.service.timeoutMicroseconds) / 1e6 * 2 + 30
        let deadline = Sys.monotonicNS + UInt64(span * 1e9)
        while service.isRunning && Sys.monotonicNS < deadline { usleep(10_000) }
        if service.isRunning {
            service.signal(SIGTERM)
            service.wait()
            consumer.signal(SIGTERM)
            throw ValidationError("the service did not finish the fixture within \(Int(span)) s")
        }
        // The closed queue ends the consumer; make sure.
        for _ in 0..<300 where consumer.isRunning { usleep(10_000) }
        consumer.signal(SIGTERM)
        consumer.wait()
        do {
            return try FixtureOutcome.read(from: outcomePath)
        } catch {
            throw ValidationError("the service exited (status \(service.wait())): \(error)")
        }
    }
}
