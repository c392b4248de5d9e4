import Foundation
import VMMClient

/// `report.html` of a vSVA storm: the verdict, three charts (DMAs per
/// second, page requests per second, guest bugs found so far, one line per
/// guest process), the guests' and the devices' tables, and the profile.
/// Well-formed XHTML with inline SVG, like an arrival storm's (`StormHTML`).
public struct VSVAStormHTML {
    let report: VSVAStormReport

    /// The page for `report`.
    public init(_ report: VSVAStormReport) { self.report = report }

    /// The charts' titles, in order.
    public static let chartTitles = ["DMAs per second, by guest", "Page requests per second, by guest",
                                     "Guest bugs found so far, by guest"]

    /// The whole document.
    public func render() -> String {
        let e = StormHTML.e
        let names = report.guests.map(\.name)
        func series(_ value: (VSVAStormReport.Sample, String) -> Double?) -> [SVGChart.Series] {
            names.enumerated().map { i, name in
                SVGChart.Series(name: name, color: SVGChart.palette[i % SVGChart.palette.count],
                                points: report.samples.map { ($0.t, value($0, name)) })
            }
        }
        let x = "time since the guests started (s)"
        let charts = [
            SVGChart(title: Self.chartTitles[0], xLabel: x, yLabel: "DMAs per second", series: series { $0.dmasPerSecond[$1] }),
            SVGChart(title: Self.chartTitles[1], xLabel: x, yLabel: "page requests per second",
                     series: series { $0.pageRequestsPerSecond[$1] }),
            SVGChart(title: Self.chartTitles[2], xLabel: x, yLabel: "bugs (cumulative)", series: series { $0.bugs[$1].map(Double.init) }),
        ]
        let p = report.profile
        var body = "<h1>faultring vSVA storm: \(e(p.name))</h1>\n<p class=\"description\">\(e(p.description))</p>\n"
            + "<p class=\"meta\">started \(e(report.started)) · \(String(format: "%.1f", report.seconds)) s · "
            + "\(p.deviceCount) DMA devices · \(report.guests.count) guest processes · step \(p.stepMicroseconds) µs · "
            + "PASIDs \(p.pasids.map(String.init).joined(separator: " ")) · \(report.kills.count) kills</p>\n"
        body += StormHTML.verdict(report.verdict, passed: "every device's books balance, every guest's bugs are as its behaviour says, "
                                  + "and the service kept nothing.")
        for chart in charts { body += "<section class=\"chart\">\n\(chart.render())\n</section>\n" }
        body += "<section class=\"table\"><h2>Guests</h2>\n<table>\n<tr><th>guest</th><th>style</th><th>behaviour</th>"
            + "<th>devices</th><th>pids (exit)</th><th>page requests</th><th>pages mapped</th><th>invalidations sent</th>"
            + "<th>retries translated</th><th>stale uses forgiven</th><th>bugs found</th></tr>\n"
        for g in report.guests {
            let pids = zip(g.pids, g.exitStatuses).map { "\($0) (\($1))" }.joined(separator: ", ")
            let bugs = g.bugs.isEmpty ? "–" : GuestBug.list(g.bugs)
            body += "<tr><td>\(e(g.name))</td><td>\(g.style.rawValue)</td><td>\(g.behaviour.rawValue)</td>"
                + "<td>\(g.devices.map(String.init).joined(separator: " "))</td><td>\(pids)</td><td>\(g.dma.pageRequests)</td>"
                + "<td>\(g.guest.pagesMapped)</td><td>\(g.guest.invalidationsSent)</td><td>\(g.dma.retriesTranslated)</td>"
                + "<td>\(g.iommu.staleUsesForgiven)</td><td>\(e(bugs))</td></tr>\n"
        }
        body += "</table></section>\n<section class=\"table\"><h2>Device books (service)</h2>\n<table>\n<tr><th>device</th>"
            + "<th>guest</th><th>DMAs</th><th>translated</th><th>page requests</th><th>answered</th><th>SUCCESS</th>"
            + "<th>retried</th><th>missed</th><th>dropped</th><th>outstanding</th><th>twice or unknown</th></tr>\n"
        for d in report.devices {
            body += "<tr><td>\(d.id)</td><td>\(e(d.guest))</td><td>\(d.dma.dmas)</td><td>\(d.dma.translated)</td>"
                + "<td>\(d.issued)</td><td>\(d.answered)</td><td>\(d.dma.answeredSuccess)</td><td>\(d.dma.retriesTranslated)</td>"
                + "<td>\(d.dma.successNotMapped)</td><td>\(d.dma.retriesDropped)</td><td>\(d.outstanding)</td>"
                + "<td>\(d.answeredTwiceOrUnknown)</td></tr>\n"
        }
        body += "</table></section>\n"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let profileJSON = (try? encoder.encode(p)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        body += "<section class=\"table\"><h2>The profile, as run</h2>\n<pre>\(e(profileJSON))</pre></section>\n"
        return StormHTML.document(title: "faultring vSVA storm \(p.name)", body: body)
    }
}
