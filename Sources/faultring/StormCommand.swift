import ArgumentParser
import FaultFixtures
import FaultStorm
import FaultSys
import Foundation
import Glibc
import VMMClient

/// Runs a synthetic fault storm end to end and writes its report: the
/// runner (`StormRunner`) starts every process; this command only
/// configures it, shows progress and prints the summary.
struct StormCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storm",
        abstract: "Run a storm profile (Docs/STORMS.md) through the service and write DIR/report.html and report.json.",
        discussion: """
            Starts `faultring serve`, a `faultring device` process raising the profile's arrival schedule open-loop, \
            and one `faultring consume` per consumer process, plays each consumer's behaviour, and samples everything \
            every 100 ms. Exit status 0 when every ledger balances and every SLO holds; otherwise one bit per kind of \
            failure: 1 ledger, 2 p99 latency, 4 answered-by-consumer share, 8 unanswered groups, 16 the run itself \
            (a process that would not start, died or hung), 32 chaos (a planned kill or restart not made, a tenant not \
            served at the end, a descriptor not given back), 128 memory growth (with chaos). A malformed profile exits \
            64 (EX_USAGE), naming file and field.
            """)

    /// `--compare`: the second path a storm can run through.
    enum Compare: String, ExpressibleByArgument, CaseIterable {
        case direct
    }

    @Argument(help: "The storm profile (e.g. Fixtures/storms/steady.json).") var profile: String
    @Option(name: .shortAndLong, help: "Write report.html and report.json into this directory (default: storm-NAME).")
    var output: String?
    @Option(help: "Scale the storm to last this many seconds (phases, stalls and crash times alike).")
    var seconds: Double?
    @Option(help: "Multiply every phase's rate by this (a lighter or heavier storm of the same shape).")
    var rateScale: Double?
    @Option(help: "Also run the same schedule through this path and put both side by side: direct (no service).")
    var compare: Compare?
    @Flag(help: "Print the report as JSON on stdout (progress goes to stderr).") var json = false

    func run() throws {
        do {
            try storm()
        } catch let error as ExitCode {
            throw error
        } catch let error as ValidationError {
            throw error
        } catch {
            // Not a verdict: the storm could not be set up or its report not written (the run bit).
            FileHandle.standardError.write(Data("faultring storm: \(error)\n".utf8))
            throw ExitCode(StormVerdict.Kind.run.bit)
        }
    }

    func storm() throws {
        let plan: StormPlan
        do {
            plan = try StormPlanCommand.loadAny(profile, seconds: seconds, rateScale: rateScale, option: "--seconds")
        } catch let error as FixtureError {
            throw ValidationError("\(error)")
        }
        let directory = output ?? "storm-\(plan.name)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        // SIGTERM or SIGINT ends the storm early, every process stopped, with a report saying so.
        let signals = try Sys.signalfd([SIGTERM, SIGINT]).release().rawValue
        let interrupted: @Sendable () -> Bool = {
            var pfd = pollfd(fd: signals, events: Int16(POLLIN), revents: 0)
            return poll(&pfd, 1, 0) > 0
        }
        let storm: StormProfile
        switch plan {
        case .arrivals(let arrivals): storm = arrivals
        case .vsva(let vsva):
            if compare != nil { throw ValidationError("--compare: a vSVA storm has one path, through the service") }
            try vsvaStorm(vsva, executable: executable, directory: directory, interrupted: interrupted)
            return
        }
        var options = StormRunner.Options(executable: executable, profilePath: profile, seconds: seconds, rateScale: rateScale)
        options.interrupted = interrupted
        let runner = StormRunner(profile: storm, options: options)
        let started = Date()
        var progress = StormProgressLine(terminal: !json && isatty(STDOUT_FILENO) == 1, toStandardError: json)
        var runs = [runner.run(.service) { progress.show($0, run: "service") }]
        progress.end()
        if compare == .direct {
            runs.append(runner.run(.direct) { progress.show($0, run: "direct") })
            progress.end()
        }
        let report = StormReport(profile: storm, profilePath: profile, started: started, runs: runs)
        try publish(json: report.json(), html: StormHTML(report).render(), summary: Self.summary(report),
                    figures: "figures and histograms", exitStatus: report.verdict.exitStatus, in: directory)
    }

    /// Writes DIR/report.json and DIR/report.html, prints the JSON (`--json`)
    /// or the summary and where the report is, and exits with the verdict's
    /// status: the end of every kind of storm.
    func publish(json report: Data, html: String, summary: @autoclosure () -> String, figures: String,
                 exitStatus: Int32, in directory: String) throws {
        let jsonPath = directory + "/report.json"
        let htmlPath = directory + "/report.html"
        try report.write(to: URL(fileURLWithPath: jsonPath))
        try Data(html.utf8).write(to: URL(fileURLWithPath: htmlPath))
        if json {
            FileHandle.standardOutput.write(report + Data("\n".utf8))
        } else {
            print(summary())
            print("report: \(htmlPath) (\(figures): \(jsonPath))")
        }
        if exitStatus != 0 { throw ExitCode(exitStatus) }
    }

    /// Runs a vSVA storm and writes its report (`VSVAStormReport`, `VSVAStormHTML`).
    func vsvaStorm(_ storm: VSVAStormProfile, executable: String, directory: String,
                   interrupted: @escaping @Sendable () -> Bool) throws {
        var options = VSVAStormRunner.Options(executable: executable)
        options.interrupted = interrupted
        let terminal = !json && isatty(STDOUT_FILENO) == 1
        let report = VSVAStormRunner(profile: storm, profilePath: profile, options: options).run { sample in
            guard terminal else { return }
            let dmas = sample.dmasPerSecond.values.reduce(0, +), prs = sample.pageRequestsPerSecond.values.reduce(0, +)
            let line = String(format: "\r%5.1f s  %9.0f DMAs/s  %7.0f page requests/s  %llu bugs so far ", sample.t, dmas, prs,
                              sample.bugs.values.reduce(0, +))
            FileHandle.standardOutput.write(Data(line.utf8))
        }
        if terminal { print() }
        try publish(json: report.json(), html: VSVAStormHTML(report).render(), summary: Self.summary(report),
                    figures: "figures", exitStatus: report.verdict.exitStatus, in: directory)
    }

    /// A vSVA storm's summary: per guest, its work and bugs; the devices' books; the verdict.
    static func summary(_ report: VSVAStormReport) -> String {
        var out = ["vSVA storm \(report.profile.name): \(report.guests.count) guests, \(report.devices.count) DMA devices, "
                   + String(format: "%.1f s", report.seconds) + ", \(report.kills.count) kills"]
        var guests = TextTable("guest", "behaviour", "page requests", "mapped", "invalidations", "retries translated",
                               "forgiven", "bugs found")
        for g in report.guests {
            guests.add(g.name, "\(g.style.rawValue) \(g.behaviour.rawValue)", String(g.dma.pageRequests), String(g.guest.pagesMapped),
                       String(g.guest.invalidationsSent), "\(g.dma.retriesTranslated)/\(g.dma.answeredSuccess)",
                       String(g.iommu.staleUsesForgiven),
                       g.bugs.isEmpty ? "none" : GuestBug.list(g.bugs))
        }
        out.append(guests.render())
        let d = report.devices
        out.append("  devices: \(d.reduce(0) { $0 &+ $1.dma.dmas }) DMAs, \(d.reduce(0) { $0 &+ $1.issued }) page requests, "
                   + "\(d.reduce(0) { $0 &+ $1.answered }) answered, \(d.reduce(0) { $0 + $1.outstanding }) outstanding, "
                   + "\(d.reduce(0) { $0 &+ $1.answeredTwiceOrUnknown }) answered twice or unknown, "
                   + "\(d.reduce(0) { $0 &+ $1.dma.retriesDropped }) retries dropped with their VM")
        let v = report.verdict
        out.append(v.passed ? "PASS" : "FAIL (exit status \(v.exitStatus))")
        for check in v.checks { out.append("  \(check.passed ? "ok  " : "FAIL") \(check.kind.rawValue): \(check.detail)") }
        return out.joined(separator: "\n")
    }

    /// The summary printed at the end: per run, the load, the latency per
    /// phase, the service's losses, the ledger, and the verdict in words.
    static func summary(_ report: StormReport) -> String {
        var out: [String] = []
        for run in report.runs {
            let us = { (ns: UInt64) in String(format: "%.1f", Double(ns) / 1e3) }
            out.append("storm \(report.profile.name) (\(run.mode.rawValue)): \(run.offered) arrivals offered, "
                       + "\(run.answered) groups answered (\(run.answeredByConsumer) by a consumer) in "
                       + String(format: "%.1f s", run.seconds))
            var phases = TextTable("phase", "answered", "p50 µs", "p99 µs", "p99.9 µs", "max µs")
            for p in run.phases + (run.overall.map { [$0] } ?? []) {
                phases.add(p.name, String(p.latency.count), us(p.latency.p50), us(p.latency.p99), us(p.latency.p999),
                           us(p.latency.max))
            }
            out.append(phases.render())
            if run.mode == .service {
                let t = run.totals
                out.append("  lost records \(t.lostRecords), overflowed groups \(t.overflowedGroups), timeouts \(t.timeouts), "
                           + "refused answers (\(Tally(t.rejections))), automatic answers (\(Tally(t.autoResponses))), "
                           + "events sent \(run.eventsSent) delivered \(t.eventsDelivered)")
            }
            out.append("  ledger: \(run.issued) issued, \(run.answered) answered, \(run.unanswered) unanswered, "
                       + "\(run.answeredTwice) answered twice, \(run.wrong) wrong")
        }
        let v = report.verdict
        out.append(v.passed ? "PASS" : "FAIL (exit status \(v.exitStatus))")
        for check in v.checks { out.append("  \(check.passed ? "ok  " : "FAIL") \(check.kind.rawValue) [\(check.run)]: \(check.detail)") }
        return out.joined(separator: "\n")
    }
}
