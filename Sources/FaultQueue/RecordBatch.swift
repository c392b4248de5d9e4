import FaultABI

/// A zero-copy view of records in the fault ring, from `FaultConsumer.peek`.
///
/// Elements are pointers to 64-byte slots inside the shared ring. They stay
/// valid until the consumer calls `release` for them; after that the
/// producer may overwrite the slots at any time.
public struct RecordBatch: RandomAccessCollection {
    @usableFromInline let ring: UnsafeRawPointer
    @usableFromInline let mask: UInt32
    /// Ring index of the first record.
    public let firstIndex: UInt32
    /// The ABI the records are encoded in.
    public let abi: ABIVersion
    /// Always 0: positions count from the batch's first record.
    public let startIndex = 0
    /// The number of records in the batch.
    public let endIndex: Int

    @usableFromInline
    init(ring: UnsafeRawPointer, mask: UInt32, firstIndex: UInt32, count: Int, abi: ABIVersion) {
        self.ring = ring
        self.mask = mask
        self.firstIndex = firstIndex
        self.endIndex = count
        self.abi = abi
    }

    /// The slot of the `position`-th record of the batch.
    @inlinable
    public subscript(position: Int) -> UnsafeRawPointer {
        ring + Int((firstIndex &+ UInt32(truncatingIfNeeded: position)) & mask) &* ABILayout.entrySize
    }

    /// Decodes and validates the `position`-th record (inlined into the
    /// reader's loop, as `DecodedRecord.decode` is).
    @inlinable
    @inline(__always)
    public func decode(_ position: Int) throws(RecordDecodeError) -> DecodedRecord {
        try DecodedRecord.decode(self[position], abi: abi)
    }
}
