import Foundation
import Testing

/// Every fixture in Fixtures/ replays through service and consumer
/// processes and matches its expected outcome; a wrong expectation fails
/// with a readable difference; kernel trace text imports.
@Suite(.serialized) struct ReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static var fixtures: [String] {
        let dir = root.appendingPathComponent("Fixtures")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map { dir.appendingPathComponent($0).path }
    }

    @Test func theLibraryHasEveryRequiredScenario() {
        let names = Set(Self.fixtures.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent })
        for required in ["steady-vsva", "multi-page-groups", "partial-groups-never-closed", "prgi-reuse",
                         "needs-pasid-mismatch", "private-data-echo", "stop-markers", "overflow-storm",
                         "stale-duplicate-unknown", "foreign-answers", "consumer-killed", "timeouts", "smmuv3-stall", "vtd-trace"] {
            #expect(names.contains(required), "\(required).json missing")
        }
    }

    @Test(arguments: ReplayTests.fixtures)
    func fixtureReplaysAsExpected(path: String) throws {
        let child = try Child(["replay", path])
        let (status, output) = child.finish()
        #expect(status == 0, "\(output)")
        #expect(output.hasPrefix("PASS"), "\(output)")
    }

    @Test func aWrongExpectationFailsWithAReadableDifference() throws {
        let source = try String(contentsOfFile: Self.root.appendingPathComponent("Fixtures/timeouts.json").path, encoding: .utf8)
        let wrong = source.replacingOccurrences(of: "\"timeout\": 6", with: "\"timeout\": 5")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("faultring-wrong-\(getpid()).json").path
        try wrong.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let (status, output) = try Child(["replay", path]).finish()
        #expect(status == 1)
        #expect(output.contains("FAIL"))
        #expect(output.contains("difference: automatic answers timeout: expected 5, got 6"), "\(output)")
    }

    @Test func malformedFixtureNeverRuns() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("faultring-bad-\(getpid()).json").path
        try #"{"faultringFixture": 1, "devices": [{"id": 1}], "events": [{"t": 0, "type": "page", "device": 1, "prgi": 1024, "perm": "r"}]}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let (status, output) = try Child(["replay", path]).finish()
        #expect(status == 1)
        #expect(output.contains("event 0: field \"prgi\""), "\(output)")
    }

    /// A live run captured once replays to the same outcome.
    @Test func aCaptureReplays() throws {
        let socket = socketPath("capture")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("faultring-capture-\(getpid()).json").path
        defer { unlink(output) }
        unlink(socket)
        // The devices raise exactly the 120 groups the consumer answers, so
        // none is left to a detach when it leaves.
        let service = try Child(["capture", "-o", output, "--socket-path", socket, "--devices", "2", "--rate", "1000",
                                 "--groups-per-device", "60", "--log-level", "error"])
        for _ in 0..<200 where access(socket, F_OK) != 0 { usleep(25_000) }
        let (consumed, _) = try Child(["consume", "--socket-path", socket, "--devices", "1", "2", "--groups", "120", "--quiet"]).finish()
        #expect(consumed == 0)
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
        let (status, replay) = try Child(["replay", output]).finish()
        #expect(status == 0, "\(replay)")
        #expect(replay.contains("PASS"))
        #expect(replay.contains("groups answered"))
    }

    @Test func traceImportReportsLinesItDoesNotUnderstand() throws {
        let trace = Self.root.appendingPathComponent("Fixtures/traces/vtd-prq.trace").path
        let text = try String(contentsOfFile: trace, encoding: .utf8) + "garbage that is no event\n"
            + "    irq/57-dmar1-412     [001] ..... 5102.000900: prq_report: dmar1/0000:00:02.0 seq# 8: rid=0x10 addr=0x1 qqqql pasid=0x1 index=0x3\n"
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("faultring-trace-\(getpid()).trace").path
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("faultring-trace-\(getpid()).json").path
        try text.write(toFile: input, atomically: true, encoding: .utf8)
        defer {
            unlink(input)
            unlink(output)
        }
        let child = try Child(["import-trace", input, "-o", output], stderr: true)
        let (status, errors) = child.finish()
        #expect(status == 2)
        #expect(errors.contains("line 15: not a prq_report or io_page_fault event"), "\(errors)")
        #expect(errors.contains("line 16:"), "\(errors)")
        // The understood lines still made a valid fixture, which replays.
        let (replayStatus, replay) = try Child(["replay", output]).finish()
        #expect(replayStatus == 0, "\(replay)")
    }
}
