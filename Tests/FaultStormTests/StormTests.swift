import FaultFixtures
import FaultStorm
import FaultSys
import Foundation
import Glibc
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif

/// `faultring storm` run as a user runs it: a separate process that starts
/// the service, the device process and the consumers, then writes its
/// report. Short and light (seconds, a fraction of the rates, debug
/// build); what is checked is behaviour — ledgers, verdicts, exit status,
/// the report's shape — never speed.
@Suite(.serialized) struct StormTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let storms = root.appendingPathComponent("Fixtures/storms")
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("faultring").path
    }

    /// Runs `faultring storm` with `arguments` into a fresh directory; (exit status, report, html, stderr).
    static func storm(_ arguments: [String]) throws -> (Int32, StormReport?, String?, String) {
        try storm(arguments, reading: StormReport.self)
    }

    /// Runs `faultring storm` with `arguments`; its report read as `R` (an arrival or a vSVA storm's).
    static func storm<R: Decodable>(_ arguments: [String], reading _: R.Type) throws -> (Int32, R?, String?, String) {
        let directory = NSTemporaryDirectory() + "storm-test-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let child = try ChildProcess.spawn(binary, ["storm"] + arguments + ["-o", directory, "--json"],
                                           stdout: .capture, stderr: .capture)
        var errors: [UInt8] = []
        var output: [UInt8] = []
        // Both pipes drained while it runs (a full pipe must not stall it); bounded: a hang fails, it does not wedge the suite.
        let deadline = Date().addingTimeInterval(180)
        while child.isRunning && Date() < deadline {
            output += child.readAvailableOutput() ?? []
            errors += child.readAvailableErrors() ?? []
            usleep(20_000)
        }
        if child.isRunning {
            child.signal(SIGTERM)  // the runner stops its own processes on SIGTERM
            Issue.record("faultring storm \(arguments) did not end within 180 s")
        }
        output += child.readOutput().utf8
        errors += child.readErrors().utf8
        let status = child.wait()
        let report = try? JSONDecoder().decode(R.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/report.json")))
        let html = try? String(contentsOfFile: directory + "/report.html", encoding: .utf8)
        return (status, report, html, String(decoding: errors, as: UTF8.self))
    }

    static let profiles = ["steady", "migration-first-touch", "sva-many-pasids", "prgi-exhaustion", "slow-guest",
                           "consumer-crash-and-reconnect", "mixed-tenants", "soak"]

    @Test(arguments: profiles)
    func everyBuiltInProfileBalancesItsLedgers(_ name: String) throws {
        let path = Self.storms.appendingPathComponent(name + ".json").path
        let (status, report, html, errors) = try Self.storm([path, "--seconds", "1.5", "--rate-scale", "0.25"])
        let r = try #require(report, "\(name): no report (status \(status)): \(errors)")
        let run = try #require(r.runs.first)
        // Ledgers and the run itself must hold whatever the machine's speed; latency SLOs are not judged here.
        let mustHold: Int32 = StormVerdict.Kind.ledger.bit | StormVerdict.Kind.run.bit | StormVerdict.Kind.unanswered.bit
        #expect(status & mustHold == 0, "\(name): \(r.verdict.failures.map(\.detail))")
        #expect(status == r.verdict.exitStatus)
        #expect(run.offered > 0 && run.answered == run.offered, "\(name): offered \(run.offered), answered \(run.answered)")
        #expect(run.ledgers.count == r.profile.devices.count && run.ledgers.allSatisfy { $0.balances })
        #expect(run.consumers.map(\.name) == r.profile.consumerProcessNames)
        #expect(!run.samples.isEmpty && run.phases.count == r.profile.phases.count)
        // Every group reached its device through the service: by a consumer or by one of the service's own answers.
        let bySource = run.ledgers.reduce(0) { $0 + $1.answeredBy.values.reduce(0, +) }
        #expect(bySource == run.answered, "\(name)")
        let page = try #require(html)
        #expect(page.contains("Device ledgers (service)") && page.contains(r.profile.name))
        for c in run.consumers { #expect(page.contains(c.name)) }
    }

    @Test func aCrashedConsumerIsRestartedAndTheServiceAnswersWhatItOwed() throws {
        let path = Self.storms.appendingPathComponent("consumer-crash-and-reconnect.json").path
        let (_, report, _, errors) = try Self.storm([path, "--seconds", "2", "--rate-scale", "0.25"])
        let run = try #require(report?.runs.first, "\(errors)")
        let vmm = try #require(run.consumers.first)
        #expect(vmm.pids.count == 2, "killed once, restarted once")
        #expect(vmm.exitStatuses.first == 128 + SIGKILL && vmm.exitStatuses.last == 0)
        #expect(run.ledgers.allSatisfy { $0.balances })
        // While it was dead its devices were answered by the service, and after the restart by the new process.
        let service = run.ledgers.reduce(0) { $0 + $1.answeredBy.filter { $0.key != "consumer" }.values.reduce(0, +) }
        #expect(service > 0 && vmm.completed > 0)
    }

    /// The chaos profile, shortened: 8 kills and 3 restarts (SIGTERM, SIGKILL, SIGTERM) in 8 s, a scribbler throughout.
    @Test func underChaosEveryLedgerBalancesAndTheServiceKeepsNothing() throws {
        var object = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: Self.storms.appendingPathComponent("chaos.json"))) as? [String: Any])
        object["phases"] = [["kind": "poisson", "name": "chaos", "seconds": 8, "rate": 2000] as [String: Any]]
        object["chaos"] = ["consumerKills": 8, "killAmong": ["legacy", "victim", "wrong"], "serviceRestarts": 3,
                           "restartsWithin": 0.6] as [String: Any]
        let path = NSTemporaryDirectory() + "chaos-\(UUID().uuidString).json"
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let (status, report, _, errors) = try Self.storm([path])
        let r = try #require(report, "no report (status \(status)): \(errors)")
        let run = try #require(r.runs.first)
        let chaos = try #require(run.chaos)
        // Everything but the time bound (a latency check) must hold whatever the machine's speed.
        // Memory too, except under AddressSanitizer, whose quarantine keeps freed memory resident
        // (scripts/sanitize.sh says which sanitizer the spawned binaries carry).
        let underASan = ProcessInfo.processInfo.environment["FAULTRING_SANITIZER"] == "address"
        let mustHold: Int32 = StormVerdict.Kind.ledger.bit | StormVerdict.Kind.run.bit | StormVerdict.Kind.unanswered.bit
            | StormVerdict.Kind.chaos.bit | (underASan ? 0 : StormVerdict.Kind.memory.bit)
        #expect(status & mustHold == 0, "\(r.verdict.failures.map(\.detail))")
        #expect(run.ledgers.count == 10 && run.ledgers.allSatisfy { $0.balances })
        #expect(chaos.consumerKills == 8 && chaos.restarts.map(\.signal) == ["SIGTERM", "SIGKILL", "SIGTERM"])
        // Every kill left a dead incarnation behind (exit 128 + SIGKILL), and its successor was started.
        let killed = run.consumers.reduce(0) { $0 + $1.exitStatuses.filter { $0 == 128 + SIGKILL }.count }
        #expect(killed == 8)
        #expect(chaos.descriptorsAtStart != nil && chaos.descriptorsAtStart == chaos.descriptorsAtEnd)
        // Every tenant but the scribbler reconnected to the final incarnation and was served by it.
        for gap in chaos.gaps where gap.judged {
            #expect(chaos.servedByFinalIncarnation[gap.name, default: 0] > 0, "\(gap.name): \(chaos.servedByFinalIncarnation)")
        }
        #expect(chaos.gaps.filter { !$0.judged }.map(\.name) == ["scribbler-1"])
        // The scribbler did attack, and its read-only region stayed read-only.
        #expect(chaos.scribbles["attached", default: 0] > 0 && chaos.scribbles["wordsScribbled", default: 0] > 0)
        #expect(chaos.scribbles["reopenedWritable"] == 0)
    }

    @Test func aHostileTenantIsRefusedAndTheOthersAreServed() throws {
        let path = Self.storms.appendingPathComponent("mixed-tenants.json").path
        let (_, report, _, errors) = try Self.storm([path, "--seconds", "2", "--rate-scale", "0.25"])
        let run = try #require(report?.runs.first, "\(errors)")
        let hostile = try #require(run.consumers.first { $0.name == "hostile-1" })
        #expect((hostile.rejected["mismatch"] ?? 0) > 0, "its wrong answers are refused as mismatches")
        for good in run.consumers where good.name.hasPrefix("good") || good.name.hasPrefix("legacy") {
            // Only the hostile tenant sends wrong answers (a good one may still be late on a loaded machine).
            #expect(good.completed > 0 && good.rejected["mismatch"] == nil, "\(good.name): \(good.rejected)")
        }
        #expect(run.ledgers.allSatisfy { $0.wrong == 0 && $0.balances }, "no wrong answer reaches a device")
    }

    @Test func anSLOThatCannotHoldFailsWithItsExitBitAndReason() throws {
        var object = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Self.storms.appendingPathComponent("steady.json"))) as! [String: Any]
        object["slo"] = ["p99Us": 1, "zeroUnanswered": true] as [String: Any]  // 1 µs from scheduled arrival to answer: impossible
        let path = NSTemporaryDirectory() + "storm-slo-\(UUID().uuidString).json"
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let (status, report, html, errors) = try Self.storm([path, "--seconds", "1", "--rate-scale", "0.25"])
        #expect(status == StormVerdict.Kind.latency.bit, "\(errors)")
        let failure = try #require(report?.verdict.failures.first)
        #expect(failure.kind == .latency && failure.detail.contains("against a limit of 1 µs"), "\(failure.detail)")
        #expect(html?.contains("FAIL") == true)
    }

    @Test func aMalformedProfileIsAUsageErrorNamingFileAndField() throws {
        let path = NSTemporaryDirectory() + "storm-bad-\(UUID().uuidString).json"
        try Data(#"{"name": "t", "phases": [{"kind": "steady", "seconds": 1, "rate": -1}], "devices": {"count": 1}, "consumers": [{"name": "c"}]}"#.utf8)
            .write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let (status, report, _, errors) = try Self.storm([path])
        #expect(status == 64 && report == nil)
        #expect(errors.contains(path) && errors.contains("phases.0.rate"), "\(errors)")
    }

    @Test func compareDirectPutsBothRunsInOneReport() throws {
        let path = Self.storms.appendingPathComponent("steady.json").path
        let (status, report, html, errors) = try Self.storm([path, "--seconds", "1", "--rate-scale", "0.25", "--compare", "direct"])
        let r = try #require(report, "\(errors)")
        #expect(r.runs.map(\.mode) == [.service, .direct])
        let direct = r.runs[1]
        #expect(direct.offered == r.runs[0].offered && direct.ledgers.allSatisfy { $0.balances }, "\(direct.problems)")
        #expect(status & (StormVerdict.Kind.ledger.bit | StormVerdict.Kind.run.bit) == 0, "\(r.verdict.failures)")
        #expect(!direct.samples.isEmpty && direct.consumers.first?.groups == direct.offered)
        let page = try #require(html)
        let sections = try Self.chartSections(page)
        #expect(sections == StormHTML.chartTitles(compare: true).map { _ in 1 })
        #expect(page.contains("Device ledgers (direct)") && page.contains("Consumers (direct)"))
    }

    /// Parses `html` as XML (it must be well-formed) and returns, for each
    /// `<section class="chart">`, how many `<svg>` elements it holds.
    static func chartSections(_ html: String) throws -> [Int] {
        final class Counter: NSObject, XMLParserDelegate {
            var sections: [Int] = []
            var inChart = false
            var error: Error?
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                        attributes: [String: String] = [:]) {
                if name == "section" && attributes["class"] == "chart" {
                    inChart = true
                    sections.append(0)
                } else if name == "svg" && inChart {
                    sections[sections.count - 1] += 1
                }
            }
            func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
                if name == "section" { inChart = false }
            }
            func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { error = parseError }
        }
        // The HTML5 doctype has no DTD an XML parser could fetch; everything else is parsed as written.
        let xml = html.replacingOccurrences(of: "<!DOCTYPE html>", with: "")
        let parser = XMLParser(data: Data(xml.utf8))
        let counter = Counter()
        parser.delegate = counter
        let ok = parser.parse()
        if let error = counter.error ?? (ok ? nil : parser.parserError) { throw error }
        return counter.sections
    }

    @Test func theReportIsWellFormedWithOneChartPerSection() throws {
        let path = Self.storms.appendingPathComponent("slow-guest.json").path
        let (_, _, html, errors) = try Self.storm([path, "--seconds", "1", "--rate-scale", "0.25"])
        let page = try #require(html, "\(errors)")
        #expect(try Self.chartSections(page) == StormHTML.chartTitles(compare: false).map { _ in 1 })
        for title in StormHTML.chartTitles(compare: false) { #expect(page.contains(title)) }
        // Self-contained: nothing is fetched.
        #expect(!page.contains("<script"))
        #expect(!page.contains("src=") && !page.contains("<link") && !page.contains("@import") && !page.contains("url("))
    }

    /// `placement: "service"`: the service's own simulated devices raise the
    /// schedule (`serve --storm`), with the same tenants, behaviours and books.
    @Test func devicesCanRunInsideTheService() throws {
        var object = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Self.storms.appendingPathComponent("mixed-tenants.json"))) as! [String: Any]
        var devices = object["devices"] as! [String: Any]
        devices["placement"] = "service"
        object["devices"] = devices
        object["name"] = "mixed-tenants-in-service"
        let path = NSTemporaryDirectory() + "storm-in-service-\(UUID().uuidString).json"
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let (status, report, _, errors) = try Self.storm([path, "--seconds", "1.5", "--rate-scale", "0.25"])
        let run = try #require(report?.runs.first, "\(errors)")
        #expect(status & (StormVerdict.Kind.ledger.bit | StormVerdict.Kind.run.bit) == 0, "\(run.problems)")
        #expect(run.offered > 0 && run.answered == run.offered && run.ledgers.count == 10)
        #expect(run.ledgers.allSatisfy { $0.balances })
        #expect(run.consumers.map(\.name) == report?.profile.consumerProcessNames)
        #expect(run.eventsSent > 0, "the unrecoverable share is raised in the service too")
        #expect(!run.samples.isEmpty && run.tenants.count == 5)
    }
}
