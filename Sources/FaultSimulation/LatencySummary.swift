import Histogram

/// Percentiles of a latency sample, ns.
public struct LatencySummary: Codable, Sendable, Hashable {
    /// Samples.
    public var count: Int
    /// Median.
    public var p50: UInt64
    /// 99th percentile.
    public var p99: UInt64
    /// 99.9th percentile.
    public var p999: UInt64
    /// Largest.
    public var max: UInt64

    /// The summary of `histogram` (its percentiles, to its precision); zeros if empty.
    public init(_ histogram: Histogram<UInt64>) {
        count = Int(histogram.totalCount)
        let empty = count == 0
        p50 = empty ? 0 : histogram.valueAtPercentile(50)
        p99 = empty ? 0 : histogram.valueAtPercentile(99)
        p999 = empty ? 0 : histogram.valueAtPercentile(99.9)
        max = empty ? 0 : histogram.max
    }

    /// The summary of `samples` (nearest-rank percentiles); zeros if empty.
    public init(_ samples: [UInt64]) {
        let sorted = samples.sorted()
        func rank(_ q: Double) -> UInt64 {
            sorted.isEmpty ? 0 : sorted[Swift.min(sorted.count - 1, Int((q * Double(sorted.count)).rounded(.up)) - 1)]
        }
        count = sorted.count
        p50 = rank(0.5)
        p99 = rank(0.99)
        p999 = rank(0.999)
        max = sorted.last ?? 0
    }
}
