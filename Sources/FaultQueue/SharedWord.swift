import Atomics

/// Atomic access to a 32-bit word of shared memory (an index or a flag).
///
/// The word is initialised (zeroed by ftruncate or memfd creation) before
/// either side touches it, as `UnsafeAtomic` requires. Which side may store
/// and with which ordering is documented per field in `faultring_abi.h`.
@usableFromInline
struct SharedWord: @unchecked Sendable {
    @usableFromInline let atomic: UnsafeAtomic<UInt32>

    @inlinable
    init(_ pointer: UnsafeMutableRawPointer) {
        atomic = UnsafeAtomic(at: pointer.assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }

    @inlinable func loadAcquire() -> UInt32 { atomic.load(ordering: .acquiring) }
    @inlinable func loadRelaxed() -> UInt32 { atomic.load(ordering: .relaxed) }
    @inlinable func storeRelease(_ value: UInt32) { atomic.store(value, ordering: .releasing) }
    @inlinable func storeRelaxed(_ value: UInt32) { atomic.store(value, ordering: .relaxed) }
    /// A store in the single total order of sequentially consistent
    /// operations (x86: `xchg`, a store and a full barrier in one).
    @inlinable func storeSeqCst(_ value: UInt32) { atomic.store(value, ordering: .sequentiallyConsistent) }
    @inlinable func loadSeqCst() -> UInt32 { atomic.load(ordering: .sequentiallyConsistent) }
}

/// The statistics block of a producer header, written by the producer only.
///
/// Stores are relaxed atomics: the values are for operators and tests, never
/// used to synchronise, but a concurrent reader must not see torn words.
@usableFromInline
struct SharedCounters: @unchecked Sendable {
    @usableFromInline let base: UnsafeMutableRawPointer
    /// The two counters a publish and a response read touch, located once:
    /// a `static let` offset is a lazily initialised global, and reading one
    /// from another module's inlined code goes through `swift_once` every
    /// time (2.5 % of the single-record publish's samples).
    @usableFromInline let recordsPublished: UnsafeMutableRawPointer
    @usableFromInline let responsesValid: UnsafeMutableRawPointer

    init(base: UnsafeMutableRawPointer) {
        self.base = base
        recordsPublished = base + QueueCounters.Offset.recordsPublished
        responsesValid = base + QueueCounters.Offset.responsesValid
    }

    /// Adds `amount` to the counter at `counter` (one of the located ones).
    @inlinable
    func add(at counter: UnsafeMutableRawPointer, _ amount: UInt64 = 1) {
        let atomic = UnsafeAtomic<UInt64>(at: counter.assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
        atomic.store(atomic.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }

    @inlinable
    func add(_ offset: Int, _ amount: UInt64 = 1) { add(at: base + offset, amount) }

    @inlinable
    func load(_ offset: Int) -> UInt64 {
        UnsafeAtomic<UInt64>(at: (base + offset).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
            .load(ordering: .relaxed)
    }
}

/// The nine shared words of a queue pair, located once from the two
/// regions' bases (offsets from the C structs). Producer and consumer both
/// hold one; which side may store to which word is in `faultring_abi.h`.
@usableFromInline
struct QueueWords: @unchecked Sendable {
    // Producer region.
    @usableFromInline let prodIndex: SharedWord
    @usableFromInline let respConsIndex: SharedWord
    @usableFromInline let producerSleeping: SharedWord
    @usableFromInline let abi: SharedWord
    @usableFromInline let state: SharedWord
    // Consumer region.
    @usableFromInline let consIndex: SharedWord
    @usableFromInline let respProdIndex: SharedWord
    @usableFromInline let consumerSleeping: SharedWord
    @usableFromInline let requestedABI: SharedWord

    init(producer p: UnsafeMutableRawPointer, consumer c: UnsafeMutableRawPointer) {
        prodIndex = SharedWord(p + ProducerOffsets.faultProd)
        respConsIndex = SharedWord(p + ProducerOffsets.respCons)
        producerSleeping = SharedWord(p + ProducerOffsets.producerSleeping)
        abi = SharedWord(p + ProducerOffsets.abi)
        state = SharedWord(p + ProducerOffsets.state)
        consIndex = SharedWord(c + ConsumerOffsets.faultCons)
        respProdIndex = SharedWord(c + ConsumerOffsets.respProd)
        consumerSleeping = SharedWord(c + ConsumerOffsets.consumerSleeping)
        requestedABI = SharedWord(c + ConsumerOffsets.requestedABI)
    }
}
