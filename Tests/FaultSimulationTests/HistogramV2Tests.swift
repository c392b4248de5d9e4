import FaultSimulation
import Foundation
import Histogram
import Testing

@Suite struct HistogramV2Tests {
    static let values: [UInt64] = [1, 2, 3, 1000, 1000, 123_456, 5_000_000, 2_000_000_000]

    /// The same values, encoded by an independent implementation: Python's
    /// `hdrhistogram` 0.10 (`HdrHistogram(1, 3600 * 10**9, 3)`, `record_value`
    /// for each of `values`, then `encode()`).
    static let pythonEncoded = "HISTFAAAADF4nJNpmSzMwMAgyAABzFCaEch0M9ixgMH+A1SAiYnpOD/L/jymzyFMt7sYmQC/BQkd"

    static func recorded() -> Histogram<UInt64> {
        var h = NamedLatency.emptyHistogram()
        for v in values { _ = h.record(v) }
        return h
    }

    static func buckets(_ h: Histogram<UInt64>) -> [UInt64] { h.allValues().map(\.count) }

    @Test func decodesWhatAnotherImplementationEncoded() throws {
        let decoded = try HistogramV2.decode(Self.pythonEncoded)
        let mine = Self.recorded()
        #expect(decoded.totalCount == 8)
        #expect(decoded.lowestDiscernibleValue == 1 && decoded.highestTrackableValue == 3_600_000_000_000)
        #expect(Self.buckets(decoded) == Self.buckets(mine))
        // The same buckets; a percentile's value agrees to the histogram's precision
        // (the original also knows the exact largest value recorded).
        for p in [50.0, 90, 99, 99.9, 100] {
            #expect(decoded.valuesAreEquivalent(decoded.valueAtPercentile(p), mine.valueAtPercentile(p)))
        }
    }

    @Test func roundTripsEveryBucket() throws {
        var h = NamedLatency.emptyHistogram()
        var rng = SplitMix64(seed: 9)
        for _ in 0..<20_000 { _ = h.record(1 + rng.next() % 10_000_000_000) }
        _ = h.record(3_600_000_000_000)  // the very top bucket
        let encoded = HistogramV2.encode(h)
        #expect(encoded.hasPrefix("HISTF"))  // the compressed cookie's base64, as every HdrHistogram log shows it
        let decoded = try HistogramV2.decode(encoded)
        #expect(Self.buckets(decoded) == Self.buckets(h))
        #expect(decoded.totalCount == h.totalCount)
    }

    @Test func emptyHistogramRoundTrips() throws {
        let decoded = try HistogramV2.decode(HistogramV2.encode(NamedLatency.emptyHistogram()))
        #expect(decoded.totalCount == 0)
    }

    @Test func refusesWhatIsNotTheEncoding() throws {
        #expect(throws: HistogramV2.DecodeError.self) { try HistogramV2.decode("not base64!") }
        #expect(throws: HistogramV2.DecodeError.self) { try HistogramV2.decode(Data([1, 2, 3, 4, 0, 0, 0, 0]).base64EncodedString()) }
        var bytes = [UInt8](Data(base64Encoded: Self.pythonEncoded)!)
        let truncated = Data(bytes.prefix(bytes.count - 5)).base64EncodedString()
        #expect(throws: HistogramV2.DecodeError.self) { try HistogramV2.decode(truncated) }
        bytes[20] ^= 0xff  // inside the zlib stream
        #expect(throws: HistogramV2.DecodeError.self) { try HistogramV2.decode(Data(bytes).base64EncodedString()) }
    }
}
