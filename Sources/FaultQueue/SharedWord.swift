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

    @inlinable
    func add(_ offset: Int, _ amount: UInt64 = 1) {
        let atomic = UnsafeAtomic<UInt64>(
            at: (base + offset).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
        atomic.store(atomic.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }

    @inlinable
    func load(_ offset: Int) -> UInt64 {
        UnsafeAtomic<UInt64>(at: (base + offset).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
            .load(ordering: .relaxed)
    }
}
