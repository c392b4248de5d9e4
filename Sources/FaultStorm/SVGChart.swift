import Foundation

/// A line chart as inline SVG: labelled axes with units, ticks, a legend,
/// optional shaded bands (a storm's phases), linear or logarithmic y.
///
/// The output is well-formed XML (every text escaped), so a report can be
/// parsed as XHTML and checked, and it needs nothing from the network.
struct SVGChart {
    enum Scale { case linear, log }

    struct Series {
        var name: String
        var color: String
        /// Points in data units; a nil y breaks the line (no data there).
        var points: [(x: Double, y: Double?)]
        var dashed = false
    }

    struct Band {
        var from: Double
        var to: Double
        var label: String
    }

    var title: String
    var xLabel: String
    var yLabel: String
    var yScale = Scale.linear
    var series: [Series] = []
    var bands: [Band] = []
    /// Custom x ticks (value, label); nil: evenly spaced round numbers.
    var xTicks: [(Double, String)]?
    var width = 920.0
    var height = 300.0

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A number for an axis: 1.2k, 35, 0.5, 2M.
    static func short(_ v: Double) -> String {
        let a = abs(v)
        if a >= 1e9 { return trim(v / 1e9) + "G" }
        if a >= 1e6 { return trim(v / 1e6) + "M" }
        if a >= 1e3 { return trim(v / 1e3) + "k" }
        return trim(v)
    }

    static func trim(_ v: Double) -> String {
        if v == v.rounded() { return String(Int(v)) }
        return String(format: abs(v) < 1 ? "%.2g" : "%.1f", v)
    }

    /// Round tick values covering `low...high`, about `count` of them.
    static func niceTicks(_ low: Double, _ high: Double, count: Int = 6) -> [Double] {
        guard high > low else { return [low] }
        let raw = (high - low) / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var ticks: [Double] = []
        var v = ceil(low / step) * step
        while v <= high + step * 1e-9 {
            ticks.append(v)
            v += step
        }
        return ticks
    }

    func render() -> String {
        let left = 78.0, right = 16.0, top = 34.0, bottom = 58.0
        let legendRows = Double((series.count + 2) / 3)
        let h = height + legendRows * 18
        let plotW = width - left - right, plotH = height - top - bottom
        let xs = series.flatMap { $0.points.map(\.x) } + bands.flatMap { [$0.from, $0.to] }
        let ys = series.flatMap { $0.points.compactMap(\.y) }.filter { yScale == .linear || $0 > 0 }
        let xMin = xTicks?.first?.0 ?? xs.min() ?? 0
        let xMax = max(xTicks?.last?.0 ?? xs.max() ?? 1, xMin + 1e-9)
        var yMin: Double, yMax: Double
        switch yScale {
        case .linear:
            yMin = 0
            yMax = max(ys.max() ?? 1, 1) * 1.08  // an all-zero series still gets a readable 0…1 axis
        case .log:
            yMin = pow(10, floor(log10(ys.min() ?? 1)))
            yMax = pow(10, ceil(log10(max(ys.max() ?? 10, yMin * 10))))
        }
        func px(_ x: Double) -> Double { left + (x - xMin) / (xMax - xMin) * plotW }
        func py(_ y: Double) -> Double {
            switch yScale {
            case .linear: return top + plotH - (y - yMin) / (yMax - yMin) * plotH
            case .log:
                let v = log10(max(y, yMin))
                return top + plotH - (v - log10(yMin)) / (log10(yMax) - log10(yMin)) * plotH
            }
        }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(h))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(h))\" role=\"img\" aria-label=\"\(Self.escape(title))\">\n"
        out += "<text x=\"\(f(left))\" y=\"20\" class=\"title\">\(Self.escape(title))</text>\n"
        // Phases, shaded alternately and named at the top of the plot.
        for (i, band) in bands.enumerated() {
            let x0 = px(max(band.from, xMin)), x1 = px(min(band.to, xMax))
            guard x1 > x0 else { continue }
            out += "<rect x=\"\(f(x0))\" y=\"\(f(top))\" width=\"\(f(x1 - x0))\" height=\"\(f(plotH))\" "
                + "fill=\"\(i % 2 == 0 ? "#eef2f7" : "#f8f9fb")\"/>\n"
            out += "<text x=\"\(f(x0 + 4))\" y=\"\(f(top + 12))\" class=\"band\">\(Self.escape(band.label))</text>\n"
        }
        // Axes, grid and ticks.
        var yTickValues: [Double]
        if yScale == .log {
            yTickValues = []
            var v = yMin
            while v <= yMax * 1.0001 {
                yTickValues.append(v)
                v *= 10
            }
        } else {
            yTickValues = Self.niceTicks(yMin, yMax)
        }
        for v in yTickValues {
            let y = py(v)
            out += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y))\" class=\"grid\"/>\n"
            out += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" class=\"tick\" text-anchor=\"end\">\(Self.short(v))</text>\n"
        }
        let xTickPairs = xTicks ?? Self.niceTicks(xMin, xMax, count: 10).map { ($0, Self.short($0)) }
        for (v, label) in xTickPairs where v >= xMin - 1e-9 && v <= xMax + 1e-9 {
            let x = px(v)
            out += "<line x1=\"\(f(x))\" y1=\"\(f(top + plotH))\" x2=\"\(f(x))\" y2=\"\(f(top + plotH + 5))\" class=\"axis\"/>\n"
            out += "<text x=\"\(f(x))\" y=\"\(f(top + plotH + 18))\" class=\"tick\" text-anchor=\"middle\">\(Self.escape(label))</text>\n"
        }
        out += "<line x1=\"\(f(left))\" y1=\"\(f(top + plotH))\" x2=\"\(f(left + plotW))\" y2=\"\(f(top + plotH))\" class=\"axis\"/>\n"
        out += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotH))\" class=\"axis\"/>\n"
        out += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(top + plotH + 38))\" class=\"label\" text-anchor=\"middle\">"
            + "\(Self.escape(xLabel))</text>\n"
        out += "<text transform=\"translate(18,\(f(top + plotH / 2))) rotate(-90)\" class=\"label\" text-anchor=\"middle\">"
            + "\(Self.escape(yLabel))\(yScale == .log ? " (log scale)" : "")</text>\n"
        // The lines, broken where there is no data.
        for s in series {
            var segments: [[String]] = [[]]
            for p in s.points {
                if let y = p.y, yScale == .linear || y > 0 {
                    segments[segments.count - 1].append("\(f(px(p.x))),\(f(py(y)))")
                } else if !segments[segments.count - 1].isEmpty {
                    segments.append([])
                }
            }
            for seg in segments where !seg.isEmpty {
                let shape = seg.count == 1
                    ? "<circle cx=\"\(seg[0].split(separator: ",")[0])\" cy=\"\(seg[0].split(separator: ",")[1])\" r=\"2\" fill=\"\(s.color)\"/>"
                    : "<polyline points=\"\(seg.joined(separator: " "))\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.8\""
                        + (s.dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>"
                out += shape + "\n"
            }
        }
        // Legend, three to a row, under the x label.
        for (i, s) in series.enumerated() {
            let x = left + Double(i % 3) * (plotW / 3), y = height - 6 + Double(i / 3) * 18
            out += "<line x1=\"\(f(x))\" y1=\"\(f(y - 4))\" x2=\"\(f(x + 22))\" y2=\"\(f(y - 4))\" stroke=\"\(s.color)\" "
                + "stroke-width=\"3\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "")/>\n"
            out += "<text x=\"\(f(x + 28))\" y=\"\(f(y))\" class=\"legend\">\(Self.escape(s.name))</text>\n"
        }
        return out + "</svg>"
    }
}
