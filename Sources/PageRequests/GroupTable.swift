extension PageRequestTracker {
    /// The cookie table and the records of live groups, in memory the
    /// tracker allocates once (`maxOutstandingGroups` of each) and reaches
    /// through pointers.
    ///
    /// Why not arrays: every store into an array held by a value is a call
    /// that checks the array's buffer is not shared (copy-on-write). The
    /// per-group path stored into these tables about ten times a group, and
    /// those checks were a sixth of the tracker's instructions. Here the
    /// tracker checks once per operation, before it writes any table
    /// (`PageRequestTracker.makeTablesUnique`, through its copy token), and
    /// every store after that is a plain store.
    ///
    /// Invariants:
    /// - `makeTablesUnique` runs before any write through `slot(_:)` or
    ///   `record(_:)` in an operation (a copied tracker then writes its own
    ///   copy: `makeUnique` here copies the storage if it is shared);
    /// - `freeSlots` holds each slot not live exactly once, in the order
    ///   freed (first in, first out: a retired cookie stays recognisable for
    ///   as long as possible);
    /// - `records` `0 ..< recordsUsed` are initialised; those not in use are
    ///   in `freeRecords` (last in, first out: the next group reuses the
    ///   warmest record).
    struct GroupTable {
        /// The allocations, shared between copies until one writes.
        final class Storage {
            let capacity: Int
            let slots: UnsafeMutablePointer<Slot>
            let records: UnsafeMutablePointer<Group>
            let freeRecords: UnsafeMutablePointer<UInt32>
            /// A ring of `ringSize` (a power of two ≥ `capacity`) slot indices.
            let freeSlots: UnsafeMutablePointer<UInt32>
            let ringSize: Int

            init(capacity: Int) {
                self.capacity = capacity
                var size = 1
                while size < capacity { size &*= 2 }
                ringSize = size
                slots = .allocate(capacity: capacity)
                slots.initialize(repeating: Slot(), count: capacity)
                records = .allocate(capacity: capacity)
                freeRecords = .allocate(capacity: capacity)
                freeSlots = .allocate(capacity: size)
                freeSlots.initialize(repeating: 0, count: size)  // all of it: `copy` copies the whole ring
            }

            /// A copy holding the same slots, free lists and `recordsUsed` records.
            func copy(recordsUsed: Int, freeRecordCount: Int) -> Storage {
                let other = Storage(capacity: capacity)
                other.slots.update(from: slots, count: capacity)
                other.records.initialize(from: records, count: recordsUsed)
                other.freeRecords.initialize(from: freeRecords, count: freeRecordCount)
                other.freeSlots.update(from: freeSlots, count: ringSize)
                return other
            }

            deinit {
                // Slot, Group and the indices are plain values: nothing to deinitialise.
                slots.deallocate()
                records.deallocate()
                freeRecords.deallocate()
                freeSlots.deallocate()
            }
        }

        private(set) var storage: Storage
        private(set) var recordsUsed = 0
        private var freeRecordCount = 0
        private var freeHead = 0
        /// Slots not live.
        private(set) var freeSlotCount: Int

        /// A table of `capacity` slots, all free, and no records yet.
        init(capacity: Int) {
            storage = Storage(capacity: capacity)
            for i in 0..<capacity { storage.freeSlots[i] = UInt32(i) }
            freeSlotCount = capacity
        }

        var capacity: Int { storage.capacity }

        /// Copies the storage if another tracker shares it.
        @inline(__always) mutating func makeUnique() {
            if !isKnownUniquelyReferenced(&storage) {
                storage = storage.copy(recordsUsed: recordsUsed, freeRecordCount: freeRecordCount)
            }
        }

        /// Slot `index` (`< capacity`). Write through it only after `makeUnique`.
        @inline(__always) func slot(_ index: Int) -> UnsafeMutablePointer<Slot> { storage.slots + index }

        /// Record `index` (`< recordsUsed`). Write through it only after `makeUnique`.
        @inline(__always) func record(_ index: Int) -> UnsafeMutablePointer<Group> { storage.records + index }

        /// The slot freed longest ago, now taken; nil if every slot is live.
        @inline(__always) mutating func takeSlot() -> UInt32? {
            guard freeSlotCount > 0 else { return nil }
            let index = storage.freeSlots[freeHead]
            freeHead = (freeHead &+ 1) & (storage.ringSize &- 1)
            freeSlotCount &-= 1
            return index
        }

        /// Frees slot `index` (it was live), behind every slot already free.
        @inline(__always) mutating func freeSlot(_ index: UInt32) {
            storage.freeSlots[(freeHead &+ freeSlotCount) & (storage.ringSize &- 1)] = index
            freeSlotCount &+= 1
        }

        /// Stores `group` in the most recently freed record, or a new one.
        /// - Returns: its index.
        @inline(__always) mutating func takeRecord(_ group: Group) -> UInt32 {
            if freeRecordCount > 0 {
                freeRecordCount &-= 1
                let index = storage.freeRecords[freeRecordCount]
                storage.records[Int(index)] = group
                return index
            }
            // Never more records than slots: each live group holds one of each.
            let index = recordsUsed
            (storage.records + index).initialize(to: group)
            recordsUsed &+= 1
            return UInt32(index)
        }

        /// Frees record `index`; the next group takes it first.
        @inline(__always) mutating func freeRecord(_ index: UInt32) {
            storage.freeRecords[freeRecordCount] = index
            freeRecordCount &+= 1
        }
    }
}
