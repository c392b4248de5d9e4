import CFaultRingABI

/// An ABI 2 LOST record: how many records the producer dropped because the
/// ring was full, written in the first slot that freed afterwards.
///
/// Sequence numbers agree with it: the dropped records consumed
/// `firstLostSequence ..< firstLostSequence + lostRecords`, and the LOST
/// record itself carries the next number.
public struct LostRecord: Sendable, Hashable {
    /// Records dropped since the previous LOST record.
    public var lostRecords: UInt64
    /// Sequence number of the first dropped record.
    public var firstLostSequence: UInt32
    /// All records lost on this queue so far.
    public var totalLost: UInt64
    /// CLOCK_MONOTONIC nanoseconds when the LOST record was written.
    public var timestampNS: UInt64

    /// A LOST record from its fields; its own `sequence` follows from them.
    public init(lostRecords: UInt64, firstLostSequence: UInt32, totalLost: UInt64, timestampNS: UInt64) {
        self.lostRecords = lostRecords
        self.firstLostSequence = firstLostSequence
        self.totalLost = totalLost
        self.timestampNS = timestampNS
    }

    /// The sequence number the LOST record itself carries.
    public var sequence: UInt32 { firstLostSequence &+ UInt32(truncatingIfNeeded: lostRecords) }

    /// Writes the record at `slot` (all 64 bytes).
    public func encode(into slot: UnsafeMutableRawPointer) {
        var record = faultring_v2_lost()
        record.type = FAULTRING_FAULT_LOST
        record.sequence = sequence
        record.lost_records = lostRecords
        record.first_lost_sequence = firstLostSequence
        record.total_lost = totalLost
        record.timestamp_ns = timestampNS
        slot.storeBytes(of: record, as: faultring_v2_lost.self)
    }
}
