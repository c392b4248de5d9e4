import CZlib
import Foundation
import Histogram

/// HdrHistogram's standard interchange form: the V2 encoding, compressed
/// with zlib, in base64 — what `HistogramLogWriter` writes and what
/// HdrHistogram's Java, C, Go, Rust and Python ports decode
/// (`Histogram.decodeFromCompressedByteBuffer`, `hdr_log_decode`,
/// `HdrHistogram.decode`).
///
/// Layout, all integers big-endian:
/// - compressed wrapper: cookie `0x1c849314`, compressed length (int32), zlib stream;
/// - inside it, the V2 header (40 bytes): cookie `0x1c849313`, payload length,
///   normalizing index offset (0), significant digits, lowest discernible
///   value (int64), highest trackable value (int64), integer-to-double ratio
///   (float64, 1.0);
/// - the payload: the counts array in index order up to the last non-zero
///   count, each a ZigZag LEB128 varint, a run of two or more zeros written
///   as one negative count (as Java's `encodeIntoByteBuffer` does).
///
/// Counts are those of the histogram's own index layout, which the Swift
/// port shares with Java's, so a decoder rebuilds the same buckets.
public enum HistogramV2 {
    /// The V2 encoding's cookie (word-size nibble 0x10: LEB128 counts).
    public static let cookie: UInt32 = 0x1c84_9313
    /// The compressed V2 encoding's cookie.
    public static let compressedCookie: UInt32 = 0x1c84_9314

    /// Why an encoded histogram could not be read.
    public struct DecodeError: Error, CustomStringConvertible, Equatable {
        /// What was wrong, and at which byte.
        public var description: String
    }

    /// `histogram` in the compressed V2 encoding, base64.
    public static func encode(_ histogram: Histogram<UInt64>) -> String {
        var counts: [UInt64] = []
        var lastNonZero = -1
        for (i, step) in histogram.allValues().enumerated() {
            counts.append(step.count)
            if step.count != 0 { lastNonZero = i }
        }
        var payload: [UInt8] = []
        var i = 0
        while i <= lastNonZero {
            if counts[i] == 0 {
                var zeros = 1
                while i + zeros <= lastNonZero && counts[i + zeros] == 0 { zeros += 1 }
                i += zeros
                appendZigZag(zeros > 1 ? -Int64(zeros) : 0, to: &payload)
            } else {
                appendZigZag(Int64(clamping: counts[i]), to: &payload)
                i += 1
            }
        }
        var plain: [UInt8] = []
        appendBE(cookie, to: &plain)
        appendBE(UInt32(payload.count), to: &plain)
        appendBE(UInt32(0), to: &plain)  // normalizing index offset
        appendBE(UInt32(histogram.numberOfSignificantValueDigits.rawValue), to: &plain)
        appendBE(histogram.lowestDiscernibleValue, to: &plain)
        appendBE(histogram.highestTrackableValue, to: &plain)
        appendBE(Double(1).bitPattern, to: &plain)
        plain += payload

        var compressedLength = compressBound(uLong(plain.count))
        var compressed = [UInt8](repeating: 0, count: Int(compressedLength))
        let rc = compress2(&compressed, &compressedLength, plain, uLong(plain.count), Z_BEST_COMPRESSION)
        precondition(rc == Z_OK, "compress2 into compressBound bytes cannot fail (rc \(rc))")
        var wrapped: [UInt8] = []
        appendBE(compressedCookie, to: &wrapped)
        appendBE(UInt32(compressedLength), to: &wrapped)
        wrapped += compressed[0..<Int(compressedLength)]
        return Data(wrapped).base64EncodedString()
    }

    /// The histogram a compressed V2 encoding (base64) holds, with its
    /// recorded range and precision. Refuses, naming the byte, anything that
    /// is not that encoding: a wrong cookie, a length past the end, a
    /// corrupt zlib stream, precision other than 0–5 digits, a count past
    /// the counts array.
    public static func decode(_ base64: String) throws(DecodeError) -> Histogram<UInt64> {
        guard let data = Data(base64Encoded: base64) else { throw DecodeError(description: "not base64") }
        let wrapped = [UInt8](data)
        guard wrapped.count >= 8, readBE32(wrapped, 0) == compressedCookie else {
            throw DecodeError(description: "byte 0: not a compressed V2 cookie (0x1c849314)")
        }
        let length = Int(readBE32(wrapped, 4))
        guard length <= wrapped.count - 8 else {
            throw DecodeError(description: "byte 4: compressed length \(length) runs past the end (\(wrapped.count - 8) bytes)")
        }
        // The header says how long the payload is; inflate in steps until it fits.
        var plainLength = uLong(4096)
        var plain: [UInt8] = []
        while true {
            plain = [UInt8](repeating: 0, count: Int(plainLength))
            var produced = plainLength
            let rc = wrapped.withUnsafeBufferPointer { b in
                uncompress(&plain, &produced, b.baseAddress! + 8, uLong(length))
            }
            if rc == Z_OK {
                plain.removeLast(plain.count - Int(produced))
                break
            }
            guard rc == Z_BUF_ERROR, plainLength < 1 << 26 else {
                throw DecodeError(description: "byte 8: zlib stream does not inflate (rc \(rc))")
            }
            plainLength *= 4
        }
        guard plain.count >= 40, readBE32(plain, 0) == cookie else {
            throw DecodeError(description: "inflated byte 0: not a V2 cookie (0x1c849313)")
        }
        let payloadLength = Int(readBE32(plain, 4))
        guard payloadLength <= plain.count - 40 else {
            throw DecodeError(description: "inflated byte 4: payload length \(payloadLength) runs past the end")
        }
        let digits = readBE32(plain, 12)
        guard let precision = SignificantDigits(rawValue: Int8(clamping: digits)), digits <= 5 else {
            throw DecodeError(description: "inflated byte 12: \(digits) significant digits (0–5)")
        }
        let lowest = readBE64(plain, 16)
        let highest = readBE64(plain, 24)
        guard lowest >= 1, highest / 2 >= lowest else {
            throw DecodeError(description: "inflated byte 16: range \(lowest)...\(highest) is not a histogram's")
        }
        let layout = Layout(digits: Int(digits), lowest: lowest)
        guard layout.unitMagnitude + layout.subBucketHalfCountMagnitude <= 61 else {
            // The histogram's own precondition: a unit this large leaves no room for the sub-buckets.
            throw DecodeError(description: "inflated byte 16: lowest value \(lowest) with \(digits) digits does not fit 64 bits")
        }
        var histogram = Histogram<UInt64>(lowestDiscernibleValue: lowest, highestTrackableValue: highest,
                                          numberOfSignificantValueDigits: precision)
        var index = 0
        var offset = 40
        let end = 40 + payloadLength
        while offset < end {
            let at = offset
            guard let value = readZigZag(plain, &offset, end: end) else {
                throw DecodeError(description: "inflated byte \(at): truncated varint")
            }
            if value < 0 {
                // A run can only skip buckets the histogram has: anything longer is not an encoding.
                guard value > -Int64(layout.maxIndex), index + Int(-value) <= layout.maxIndex else {
                    throw DecodeError(description: "inflated byte \(at): a run of \(value == .min ? "2^63" : String(-value)) "
                                      + "zero counts past the last bucket")
                }
                index += Int(-value)
                continue
            }
            guard index <= layout.maxIndex else {
                throw DecodeError(description: "inflated byte \(at): count at index \(index) is past the last bucket")
            }
            let bucketValue = layout.value(atIndex: index)
            guard bucketValue <= highest else {
                throw DecodeError(description: "inflated byte \(at): count at index \(index) is past the highest trackable value")
            }
            if value > 0 { _ = histogram.record(bucketValue, count: UInt64(value)) }
            index += 1
        }
        return histogram
    }

    /// The index-to-value map of HdrHistogram's counts array.
    struct Layout {
        let subBucketHalfCountMagnitude: Int
        let unitMagnitude: Int
        /// Above any index of a histogram with 64-bit values (64 buckets of a half sub-bucket each, and one more).
        var maxIndex: Int { (64 + 1) << subBucketHalfCountMagnitude }

        init(digits: Int, lowest: UInt64) {
            var largest = 2
            for _ in 0..<digits { largest *= 10 }
            var magnitude = 0
            while (1 << magnitude) < largest { magnitude += 1 }
            subBucketHalfCountMagnitude = max(magnitude, 1) - 1
            unitMagnitude = 63 - lowest.leadingZeroBitCount
        }

        /// The lowest value counted at `index` (Java's `valueFromIndex`).
        func value(atIndex index: Int) -> UInt64 {
            let halfCount = 1 << subBucketHalfCountMagnitude
            var bucket = (index >> subBucketHalfCountMagnitude) - 1
            var subBucket = (index & (halfCount - 1)) + halfCount
            if bucket < 0 {
                subBucket -= halfCount
                bucket = 0
            }
            let shift = bucket + unitMagnitude
            return shift >= 64 ? .max : UInt64(subBucket) << UInt64(shift)
        }
    }

    static func appendBE<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { bytes += $0 }
    }

    static func readBE32(_ b: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 << 8 | UInt32(b[at + $1]) }
    }

    static func readBE64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 << 8 | UInt64(b[at + $1]) }
    }

    /// ZigZag, then LEB128 (7 bits a byte; Java's 9th byte carries 8 bits).
    static func appendZigZag(_ value: Int64, to bytes: inout [UInt8]) {
        var v = UInt64(bitPattern: (value << 1) ^ (value >> 63))
        for _ in 0..<8 {
            if v < 0x80 {
                bytes.append(UInt8(v))
                return
            }
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    static func readZigZag(_ b: [UInt8], _ offset: inout Int, end: Int) -> Int64? {
        var v: UInt64 = 0
        for k in 0..<9 {
            guard offset < end else { return nil }
            let byte = b[offset]
            offset += 1
            if k == 8 {
                v |= UInt64(byte) << 56
                break
            }
            v |= UInt64(byte & 0x7f) << UInt64(7 * k)
            if byte & 0x80 == 0 { break }
        }
        return Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1)
    }
}
