import Histogram

/// Answer latency of one slice of a storm — a phase, a tenant, or all of
/// it — from each group's scheduled time, ns.
public struct NamedLatency: Codable, Sendable {
    /// The slice's name (a phase's, a consumer process's, or `all`).
    public var name: String
    /// Groups answered in the slice, and their percentiles (HdrHistogram, 3 significant digits).
    public var latency: LatencySummary
    /// The histogram itself, for merging in process. Its JSON form is
    /// `hdr`, the standard encoding (the Codable form would be every bucket).
    public var histogram: Histogram<UInt64>
    /// `histogram` in HdrHistogram's compressed V2 encoding, base64
    /// (`HistogramV2`): what JSON carries, readable by any HdrHistogram port.
    public var hdr: String

    enum CodingKeys: String, CodingKey { case name, latency, hdr }

    /// An empty histogram of the range every phase uses: 1 ns to an hour.
    public static func emptyHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000_000,
                          numberOfSignificantValueDigits: .three)
    }

    /// Decodes the summary and the histogram from its `hdr` encoding.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        latency = try c.decode(LatencySummary.self, forKey: .latency)
        hdr = try c.decode(String.self, forKey: .hdr)
        do {
            histogram = try HistogramV2.decode(hdr)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .hdr, in: c, debugDescription: "\(error)")
        }
    }

    /// The summary of `histogram`.
    public init(name: String, histogram: Histogram<UInt64>) {
        self.name = name
        self.histogram = histogram
        latency = LatencySummary(histogram)
        hdr = HistogramV2.encode(histogram)
    }
}
