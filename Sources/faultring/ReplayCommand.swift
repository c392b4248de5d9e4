import ArgumentParser
import Foundation
import Workloads

/// Runs fixtures through the real path — the service process replays the
/// events from simulated devices, a consumer process behaves as the fixture
/// says, answers flow back to the devices — and compares the outcome with
/// the expectation.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay", abstract: "Replay fixtures through service and consumer processes; print a verdict per scenario.")

    @Argument(help: "Fixture files.") var files: [String]
    @Option(help: "fast (as fast as possible) or recorded (the events' own timing); default: the fixture's own choice, else fast.")
    var pace: String?
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
        if let pace, !["fast", "recorded"].contains(pace) { throw ValidationError("--pace must be fast or recorded") }
        var verdicts: [Verdict] = []
        for file in files {
            let start = Date()
            var verdict = Verdict(file: file, name: "", events: 0, passed: false, differences: [], outcome: nil, seconds: 0)
            do {
                // Validate the whole file first: nothing half-runs.
                let (fixture, count) = try FixtureValidation.validate(path: file)
                verdict.name = fixture.name
                verdict.events = count
                let outcome = try Self.runOnce(file, fixture: fixture, pace: pace ?? fixture.service.pace ?? "fast")
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
                    print("  got: \(o.groups.count) groups answered, auto \(o.auto), rejections \(o.rejections), " +
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
    static func runOnce(_ file: String, fixture: Fixture, pace: String) throws -> FixtureOutcome {
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let socket = "/tmp/faultring-replay-\(tag).sock"
        let outcomePath = "/tmp/faultring-replay-\(tag).json"
        defer {
            unlink(socket)
            unlink(outcomePath)
        }
        let binary = "/proc/self/exe"
        let service = Process()
        service.executableURL = URL(fileURLWithPath: binary)
        service.arguments = ["serve", "--socket-path", socket, "--fixture", file, "--pace", pace, "--outcome", outcomePath,
                             "--log-level", "error"]
        try service.run()
        for _ in 0..<400 where access(socket, F_OK) != 0 && service.isRunning { usleep(10_000) }
        let consumer = Process()
        consumer.executableURL = URL(fileURLWithPath: binary)
        consumer.arguments = ["consume", "--socket-path", socket, "--fixture", file, "--format", "veventq", "--quiet"]
        consumer.standardOutput = FileHandle.nullDevice
        try consumer.run()
        // A bound, not a measurement: the fixture's span, its timeout, and slack.
        let span = Double(fixture.service.timeoutMicroseconds) / 1e6 * 2 + 30
        let deadline = Date().addingTimeInterval(span)
        while service.isRunning && Date() < deadline { usleep(10_000) }
        if service.isRunning {
            service.terminate()
            service.waitUntilExit()
            if consumer.isRunning { consumer.terminate() }
            throw ValidationError("the service did not finish the fixture within \(Int(span)) s")
        }
        // The closed queue ends the consumer; make sure.
        for _ in 0..<300 where consumer.isRunning { usleep(10_000) }
        if consumer.isRunning { consumer.terminate() }
        consumer.waitUntilExit()
        guard let data = FileManager.default.contents(atPath: outcomePath) else {
            throw ValidationError("the service exited (status \(service.terminationStatus)) without writing an outcome")
        }
        return try JSONDecoder().decode(FixtureOutcome.self, from: data)
    }
}
