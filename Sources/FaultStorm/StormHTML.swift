import FaultSimulation
import Foundation
import Histogram

/// `report.html`: one self-contained file (no scripts, fonts or anything
/// from the network), well-formed XHTML, with inline SVG charts. Each chart
/// is a `<section class="chart">` holding exactly one `<svg>`; the tables
/// and the profile follow; the verdict comes first, in words.
public struct StormHTML {
    let report: StormReport

    /// The renderer for `report`.
    public init(_ report: StormReport) { self.report = report }

    static func e(_ s: String) -> String { SVGChart.escape(s) }

    static func us(_ ns: UInt64) -> String {
        let v = Double(ns) / 1000
        return v >= 10_000 ? String(format: "%.1f ms", v / 1000) : String(format: "%.1f µs", v)
    }

    /// The charts' titles, in order, for a report with these runs (tests check one section per title).
    public static func chartTitles(compare: Bool) -> [String] {
        var titles = [
            "Offered vs answered page-request groups per second",
            "Latency over time (p50, p99, p99.9 of the groups answered in each 100 ms)",
            "Latency percentile spectrum per phase",
            "Outstanding groups and ring occupancy",
            "Losses, overflows, timeouts and refused answers by reason (running totals)",
            "Groups completed per consumer per second",
        ]
        if compare {
            titles += ["Service vs direct: answered groups per second", "Service vs direct: latency percentile spectrum"]
        }
        return titles
    }

    /// The whole document.
    public func render() -> String {
        let service = report.runs[0]
        let direct = report.runs.first { $0.mode == .direct }
        let titles = Self.chartTitles(compare: direct != nil)
        var charts: [String] = []
        let bands = phaseBands()
        charts.append(SVGChart(
            title: titles[0], xLabel: "time since the storm started (s)", yLabel: "groups per second",
            series: [
                .init(name: "offered", color: "#7f7f7f", points: service.samples.map { ($0.t, $0.offeredPerSecond) }, dashed: true),
                .init(name: "answered", color: "#1f77b4", points: service.samples.map { ($0.t, $0.answeredPerSecond) }),
            ], bands: bands).render())
        charts.append(SVGChart(
            title: titles[1], xLabel: "time since the storm started (s)", yLabel: "latency (µs)", yScale: .log,
            series: [
                .init(name: "p50", color: "#2ca02c", points: service.samples.map { ($0.t, $0.p50Microseconds) }),
                .init(name: "p99", color: "#ff7f0e", points: service.samples.map { ($0.t, $0.p99Microseconds) }),
                .init(name: "p99.9", color: "#d62728", points: service.samples.map { ($0.t, $0.p999Microseconds) }),
            ], bands: bands).render())
        charts.append(spectrum(titles[2], service.phases.map { ($0.name, $0.histogram) }))
        charts.append(SVGChart(
            title: titles[3], xLabel: "time since the storm started (s)", yLabel: "groups / records",
            series: [
                .init(name: "outstanding groups", color: "#1f77b4", points: service.samples.map { ($0.t, Double($0.outstanding)) }),
                .init(name: "arrivals waiting for a PRG index", color: "#9467bd",
                      points: service.samples.map { ($0.t, Double($0.backlog)) }),
                .init(name: "records in the fault rings", color: "#ff7f0e",
                      points: service.samples.map { ($0.t, Double($0.ringOccupancy)) }),
                .init(name: "fault ring capacity", color: "#7f7f7f",
                      points: service.samples.map { ($0.t, Double($0.ringCapacity)) }, dashed: true),
            ], bands: bands).render())
        charts.append(SVGChart(
            title: titles[4], xLabel: "time since the storm started (s)", yLabel: "count so far",
            series: [
                .init(name: "LOST records", color: "#d62728", points: service.samples.map { ($0.t, Double($0.lostRecords)) }),
                .init(name: "overflowed groups", color: "#ff7f0e", points: service.samples.map { ($0.t, Double($0.overflowedGroups)) }),
                .init(name: "timeouts", color: "#9467bd", points: service.samples.map { ($0.t, Double($0.timeouts)) }),
            ] + refusalSeries(service), bands: bands).render())
        let names = service.consumers.map(\.name)
        charts.append(SVGChart(
            title: titles[5], xLabel: "time since the storm started (s)", yLabel: "groups per second",
            series: names.enumerated().map { i, name in
                .init(name: name, color: SVGChart.palette[i % SVGChart.palette.count],
                      points: service.samples.map { ($0.t, $0.consumerAnsweredPerSecond[name] ?? 0) })
            }, bands: bands).render())
        if let direct {
            charts.append(SVGChart(
                title: titles[6], xLabel: "time since the storm started (s)", yLabel: "groups per second",
                series: [
                    .init(name: "offered", color: "#7f7f7f", points: service.samples.map { ($0.t, $0.offeredPerSecond) }, dashed: true),
                    .init(name: "answered through the service", color: "#1f77b4",
                          points: service.samples.map { ($0.t, $0.answeredPerSecond) }),
                    .init(name: "answered directly", color: "#d62728", points: direct.samples.map { ($0.t, $0.answeredPerSecond) }),
                ], bands: bands).render())
            charts.append(spectrum(titles[7], [service, direct].compactMap { run in
                run.overall.map { ("\(run.mode.rawValue): all groups", $0.histogram) }
            }))
        }
        var body = "<h1>Storm <code>\(Self.e(report.profile.name))</code></h1>\n"
        body += "<p class=\"description\">\(Self.e(report.profile.description))</p>\n"
        body += "<p class=\"meta\">Started \(Self.e(report.started)) · profile \(Self.e(report.profilePath)) · "
            + String(format: "%.1f", Double(report.profile.durationNS) / 1e9) + " s of schedule · "
            + "\(report.profile.devices.count) devices · \(report.profile.consumerProcesses) consumer processes</p>\n"
        body += verdict()
        body += summaryTable()
        for chart in charts {
            body += "<section class=\"chart\">\n\(chart)\n</section>\n"
        }
        for run in report.runs {
            body += ledgerTable(run)
            body += consumerTable(run)
        }
        let profileJSON: String = {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            return (try? encoder.encode(report.profile)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }()
        body += "<section class=\"table\"><h2>The profile, as run</h2>\n<pre>\(Self.e(profileJSON))</pre></section>\n"
        return Self.document(title: "faultring storm \(report.profile.name)", body: body)
    }

    /// A whole XHTML document (the reports' shared style) around `body`; `title` is escaped here.
    static func document(title: String, body: String) -> String {
        return """
            <?xml version="1.0" encoding="UTF-8"?>
            <!DOCTYPE html>
            <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
            <head>
            <meta charset="utf-8"/>
            <title>\(e(title))</title>
            <style>
            body { font-family: sans-serif; margin: 24px auto; max-width: 960px; color: #222; }
            h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
            .description { margin-top: 0; } .meta { color: #666; font-size: 13px; }
            .verdict { padding: 10px 14px; border-radius: 6px; margin: 14px 0; }
            .pass { background: #e6f4ea; border: 1px solid #2ca02c; } .fail { background: #fdecea; border: 1px solid #d62728; }
            .verdict ul { margin: 6px 0 0 0; padding-left: 20px; } .bad { color: #b00020; font-weight: bold; }
            table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
            th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
            th:first-child, td:first-child { text-align: left; }
            section.chart { margin: 18px 0; }
            svg text { font-family: sans-serif; } .title { font-size: 15px; font-weight: bold; }
            .tick { font-size: 11px; fill: #444; } .label { font-size: 12px; fill: #222; }
            .legend { font-size: 12px; fill: #222; } .band { font-size: 11px; fill: #556; }
            .grid { stroke: #e3e3e3; stroke-width: 1; } .axis { stroke: #444; stroke-width: 1; }
            pre { background: #f6f6f6; padding: 10px; font-size: 12px; overflow-x: auto; }
            </style>
            </head>
            <body>
            \(body)</body>
            </html>

            """
    }

    /// One line per refusal reason seen (`mismatch`, `duplicate`, `late`, …).
    func refusalSeries(_ run: StormRun) -> [SVGChart.Series] {
        let reasons = Set(run.samples.flatMap { $0.rejections.keys }).sorted()
        return reasons.enumerated().map { i, reason in
            SVGChart.Series(name: "refused: \(reason)", color: SVGChart.palette[(4 + i) % SVGChart.palette.count],
                            points: run.samples.map { ($0.t, Double($0.rejections[reason] ?? 0)) })
        }
    }

    /// The phases as shaded bands, in schedule seconds.
    func phaseBands() -> [SVGChart.Band] {
        var start = 0.0
        return report.profile.phases.map { p in
            let end = start + Double(p.durationNS) / 1e9
            defer { start = end }
            return SVGChart.Band(from: start, to: end, label: p.name)
        }
    }

    /// Latency against percentile, log-log: x is 1 / (1 − p), so 90 %, 99 %,
    /// 99.9 % … are evenly spaced and the tail gets the room it deserves.
    func spectrum(_ title: String, _ histograms: [(String, Histogram<UInt64>)]) -> String {
        let ticks: [(Double, String)] = [(0, "0%"), (1, "90%"), (2, "99%"), (3, "99.9%"), (4, "99.99%"), (5, "99.999%")]
        let series = histograms.enumerated().map { i, named -> SVGChart.Series in
            let (name, h) = named
            var points: [(x: Double, y: Double?)] = []
            if h.totalCount > 0 {
                for step in h.percentiles(ticksPerHalfDistance: 5) {
                    let p = min(step.percentileLevelIteratedTo, 99.999)
                    points.append((log10(100 / (100 - p)), Double(step.value) / 1000))
                    if p >= 99.999 { break }
                }
            }
            return SVGChart.Series(name: "\(name) (\(h.totalCount))", color: SVGChart.palette[i % SVGChart.palette.count],
                                   points: points)
        }
        return SVGChart(title: title, xLabel: "percentile", yLabel: "latency (µs)", yScale: .log, series: series,
                        xTicks: ticks).render()
    }

    func verdict() -> String { Self.verdict(report.verdict, passed: "every ledger balances and every SLO holds.") }

    /// The verdict box: PASS with `passed`, or FAIL with the exit status, then every check.
    static func verdict(_ v: StormVerdict, passed: String) -> String {
        var out = "<div class=\"verdict \(v.passed ? "pass" : "fail")\"><strong>\(v.passed ? "PASS" : "FAIL")</strong>"
        out += v.passed ? ": \(e(passed))" : " (exit status \(v.exitStatus)): "
            + v.failures.map { e("\($0.kind.rawValue) [\($0.run)]") }.joined(separator: ", ")
        out += "\n<ul>\n"
        for c in v.checks {
            out += "<li\(c.passed ? "" : " class=\"bad\"")>\(c.passed ? "✓" : "✗") \(e(c.kind.rawValue)) "
                + "[\(e(c.run))]: \(e(c.detail))</li>\n"
        }
        return out + "</ul></div>\n"
    }

    func summaryTable() -> String {
        var out = "<section class=\"table\"><h2>Summary</h2>\n<table>\n<tr><th>run</th><th>offered</th><th>answered</th>"
            + "<th>by a consumer</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th><th>LOST records</th>"
            + "<th>overflowed</th><th>timeouts</th><th>refused</th></tr>\n"
        for run in report.runs {
            let l = run.overall?.latency
            out += "<tr><td>\(run.mode.rawValue)</td><td>\(run.offered)</td><td>\(run.answered)</td><td>\(run.answeredByConsumer)</td>"
                + "<td>\(l.map { Self.us($0.p50) } ?? "–")</td><td>\(l.map { Self.us($0.p99) } ?? "–")</td>"
                + "<td>\(l.map { Self.us($0.p999) } ?? "–")</td><td>\(l.map { Self.us($0.max) } ?? "–")</td>"
                + "<td>\(run.totals.lostRecords)</td><td>\(run.totals.overflowedGroups)</td><td>\(run.totals.timeouts)</td>"
                + "<td>\(run.totals.rejections.values.reduce(0, +))</td></tr>\n"
        }
        out += "</table>\n<table>\n<tr><th>phase</th>"
        for run in report.runs { out += "<th>\(run.mode.rawValue): answered</th><th>p50</th><th>p99</th><th>p99.9</th>" }
        out += "</tr>\n"
        for (i, phase) in report.profile.phases.enumerated() {
            out += "<tr><td>\(Self.e(phase.name))</td>"
            for run in report.runs {
                if let l = run.phases.indices.contains(i) ? run.phases[i].latency : nil {
                    out += "<td>\(l.count)</td><td>\(Self.us(l.p50))</td><td>\(Self.us(l.p99))</td><td>\(Self.us(l.p999))</td>"
                } else {
                    out += "<td>–</td><td>–</td><td>–</td><td>–</td>"
                }
            }
            out += "</tr>\n"
        }
        return out + "</table></section>\n"
    }

    static func tally(_ counts: [String: UInt64]) -> String {
        let shown = counts.filter { $0.value > 0 }.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        return shown.isEmpty ? "–" : shown.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    func ledgerTable(_ run: StormRun) -> String {
        var out = "<section class=\"table\"><h2>Device ledgers (\(run.mode.rawValue))</h2>\n<table>\n<tr><th>device</th>"
            + "<th>issued</th><th>answered</th><th>answered by</th><th>unanswered</th><th>answered twice</th>"
            + "<th>wrong</th></tr>\n"
        for l in run.ledgers {
            let mark = { (n: UInt64) in n == 0 ? "0" : "<span class=\"bad\">\(n)</span>" }
            out += "<tr><td>\(l.device)</td><td>\(l.issued)</td><td>\(l.answered)</td><td>\(Self.e(Self.tally(l.answeredBy)))</td>"
                + "<td>\(mark(UInt64(l.unanswered)))</td><td>\(mark(l.answeredTwice))</td><td>\(mark(l.wrong))</td></tr>\n"
        }
        return out + "</table></section>\n"
    }

    func consumerTable(_ run: StormRun) -> String {
        var out = "<section class=\"table\"><h2>Consumers (\(run.mode.rawValue))</h2>\n<table>\n<tr><th>consumer</th>"
            + "<th>behaviour</th><th>ABI</th><th>devices</th><th>pids (exit)</th><th>groups read</th><th>answers sent</th>"
            + "<th>completed</th><th>refused</th><th>LOST seen</th><th>p50</th><th>p99</th></tr>\n"
        for c in run.consumers {
            let pids = zip(c.pids, c.exitStatuses).map { "\($0) (\($1))" }.joined(separator: ", ")
            out += "<tr><td>\(Self.e(c.name))</td><td>\(Self.e(c.behaviour))</td><td>\(c.abi == 0 ? "–" : String(c.abi))</td>"
                + "<td>\(c.devices.map(String.init).joined(separator: " "))</td><td>\(pids)</td><td>\(c.groups)</td>"
                + "<td>\(Self.e(Self.tally(c.answered)))</td><td>\(c.completed)</td><td>\(Self.e(Self.tally(c.rejected)))</td>"
                + "<td>\(c.lostReported)</td><td>\(c.latency.map { Self.us($0.p50) } ?? "–")</td>"
                + "<td>\(c.latency.map { Self.us($0.p99) } ?? "–")</td></tr>\n"
        }
        return out + "</table></section>\n"
    }
}
