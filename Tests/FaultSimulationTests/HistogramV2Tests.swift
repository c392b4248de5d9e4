import CZlib
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
        // A hostile payload: a valid header, then zero runs long enough to overflow an index.
        var plain: [UInt8] = [0x1c, 0x84, 0x93, 0x13]
        var payload: [UInt8] = []
        for _ in 0..<3 { payload += [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f] }  // ZigZag of about −2^62, thrice
        func be<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
        plain += be(UInt32(payload.count)) + be(UInt32(0)) + be(UInt32(3)) + be(UInt64(1)) + be(UInt64(3_600_000_000_000))
            + be(Double(1).bitPattern) + payload
        var deflated = [UInt8](repeating: 0, count: 256)
        var length = uLong(deflated.count)
        #expect(compress2(&deflated, &length, plain, uLong(plain.count), 6) == Z_OK)
        let hostile = [0x1c, 0x84, 0x93, 0x14] + be(UInt32(length)) + deflated.prefix(Int(length))
        #expect(throws: HistogramV2.DecodeError.self) { try HistogramV2.decode(Data(hostile).base64EncodedString()) }
        bytes[20] ^= 0xff  // inside the zlib stream
        #expect(throws: HistogramV2.DecodeError.self) { try HistogramV2.decode(Data(bytes).base64EncodedString()) }
    }
}
