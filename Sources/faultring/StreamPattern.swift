import CFaultRingABI
import FaultABI

/// The records `faultring stream` writes and its consumer checks: record n
/// is an unrecoverable fault whose address encodes n, so order and content
/// are verifiable on the far side of the ring without shared state.
enum StreamPattern {
    /// The n-th record of a stream.
    static func event(_ n: UInt64) -> FaultEvent {
        .unrecoverable(UnrecoverableFault(
            deviceID: UInt32(truncatingIfNeeded: n % 7 + 1), reason: FAULTRING_REASON_PTE_FETCH,
            pasid: UInt32(truncatingIfNeeded: n & 0xFFFFF), permissions: .read, address: n << 12,
            timestampNS: n))
    }

    /// What the consumer learned from one record.
    enum Check {
        /// Record `n` arrived intact.
        case record(UInt64)
        /// ABI 1 only: record `n` arrived intact after `skipped` records
        /// vanished; ABI 1 has no LOST record, only the header counter.
        case recordAfterGap(UInt64, skipped: UInt64)
        /// ABI 2 says `count` records were dropped before this point.
        case lost(UInt64)
        /// The record is not the one expected, or is malformed.
        case wrong(String)
    }

    /// Checks a decoded record against the expected index `n`.
    ///
    /// In ABI 2 every record the producer meant to write took a sequence
    /// number, and so did each LOST record; after `lostRecordsSeen` LOST
    /// records, record n therefore carries sequence n + lostRecordsSeen.
    static func check(_ record: DecodedRecord, expected n: UInt64, lostRecordsSeen: UInt64, abi: ABIVersion) -> Check {
        switch record {
        case .lost(let lost):
            return .lost(lost.lostRecords)
        case .event(.unrecoverable(let fault), let sequence):
            let index = (fault.address ?? 0) >> 12
            let skipped = abi == .v1 && index > n ? index - n : 0
            guard index == n + skipped else { return .wrong("record \(index) where \(n) was expected") }
            var want = event(index)
            if abi == .v1, case .unrecoverable(var plain) = want {
                plain.deviceID = 0  // ABI 1 carries neither device id nor timestamp
                plain.timestampNS = 0
                want = .unrecoverable(plain)
            }
            guard record == .event(want, sequence: sequence) else { return .wrong("record \(n) content differs") }
            if abi == .v2, sequence != UInt32(truncatingIfNeeded: n &+ lostRecordsSeen) {
                return .wrong("record \(n) has sequence \(sequence.map(String.init) ?? "none")")
            }
            return skipped > 0 ? .recordAfterGap(index, skipped: skipped) : .record(index)
        case .event:
            return .wrong("record \(n) is a page request")
        }
    }
}

