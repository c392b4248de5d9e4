/// A growable table of plain values that its owner writes through a
/// pointer: a store is a store, with no copy-on-write check of its own.
///
/// An array held by a value checks that its buffer is not shared on every
/// store: a call, on the tracker's per-group path several times a group.
/// A `PlainTable` is checked once per operation instead: its owner calls
/// `makeUnique()` at the top of each mutating operation (a copy of the owner
/// then writes its own table), and every store after that is unchecked.
///
/// Contract: store (`subscript`'s setter, `append`, `append(repeating:)`,
/// `mutableBuffer`, `uncounted`) only after `makeUnique()` in the same operation. A copy
/// shares storage with its original until then, as an array's does, but
/// here nothing stops a store into shared storage: that is the owner's
/// to prevent. (`removeLast` and `removeAll` store nothing.) Growing
/// reallocates, and so also unshares. Out-of-range indices are caught by
/// assertions in debug builds only: the owner keeps its indices in range.
///
/// Public, with its hot members inlinable, so that other modules'
/// tables (the simulated devices') are specialised for their element type:
/// unspecialised, each access looked up generic metadata.
public struct PlainTable<Element: BitwiseCopyable> {
    @usableFromInline
    final class Storage {
        @usableFromInline let base: UnsafeMutablePointer<Element>
        @usableFromInline let capacity: Int

        @usableFromInline
        init(capacity: Int) {
            self.capacity = capacity
            base = .allocate(capacity: capacity)
        }

        deinit { base.deallocate() }  // plain values: nothing to deinitialise
    }

    @usableFromInline var storage: Storage
    @usableFromInline var used = 0
    /// Elements in the table.
    @inlinable public var count: Int { used }

    /// An empty table.
    @inlinable public init() { storage = Storage(capacity: 0) }

    /// A table of `count` copies of `element`.
    public init(repeating element: Element, count: Int) {
        storage = Storage(capacity: count)
        storage.base.initialize(repeating: element, count: count)
        used = count
    }

    /// Whether the table holds no element.
    @inlinable public var isEmpty: Bool { count == 0 }

    /// Copies the storage if another value shares it.
    @inlinable @inline(__always) public mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { reallocate(capacity: storage.capacity) }
    }

    /// Element `index` (`< count`, checked only in debug builds).
    @inlinable
    public subscript(index: Int) -> Element {
        @inline(__always) get {
            assert(index >= 0 && index < count, "PlainTable index out of range")
            return storage.base[index]
        }
        @inline(__always) nonmutating set {
            assert(index >= 0 && index < count, "PlainTable index out of range")
            storage.base[index] = newValue
        }
    }

    /// The elements, to read for the length of an operation (not to keep).
    @inlinable public var buffer: UnsafeBufferPointer<Element> {
        UnsafeBufferPointer(start: storage.base, count: used)
    }

    /// The elements, to write for the length of an operation, after `makeUnique()`.
    @inlinable public var mutableBuffer: UnsafeMutableBufferPointer<Element> {
        UnsafeMutableBufferPointer(start: storage.base, count: used)
    }

    /// Adds `element` at the end, growing as needed.
    @inlinable @inline(__always) public mutating func append(_ element: Element) {
        if used == storage.capacity { grow() }
        (storage.base + used).initialize(to: element)
        used += 1
    }

    /// Doubles the capacity (out of line: `append` stays small).
    @usableFromInline @inline(never)
    mutating func grow() { reallocate(capacity: Swift.max(16, storage.capacity * 2)) }

    /// Room for `added` more elements past the end, grown as needed, to
    /// write before counting them in (`countUncounted`); what is written there
    /// and not counted is left as it is (plain values).
    @inlinable @inline(__always) public mutating func uncounted(_ added: Int) -> UnsafeMutablePointer<Element> {
        if used + added > storage.capacity { reallocate(capacity: Swift.max(used + added, storage.capacity * 2)) }
        return storage.base + used
    }

    /// Counts in `added` elements written past the end (at most as many as
    /// the last `uncounted` made room for).
    @inlinable @inline(__always) public mutating func countUncounted(_ added: Int) {
        assert(added >= 0 && used + added <= storage.capacity, "countUncounted past the room made")
        used += added
    }

    /// Adds `count` copies of `element` at the end.
    public mutating func append(repeating element: Element, count added: Int) {
        uncounted(added).initialize(repeating: element, count: added)
        countUncounted(added)
    }

    /// Removes and returns the last element (the table must not be empty).
    @inlinable
    public mutating func removeLast() -> Element {
        precondition(count > 0, "removeLast on an empty PlainTable")
        used -= 1
        return storage.base[used]
    }

    /// Empties the table, keeping its capacity.
    @inlinable
    public mutating func removeAll() { used = 0 }

    @usableFromInline
    mutating func reallocate(capacity: Int) {
        let larger = Storage(capacity: capacity)
        larger.base.initialize(from: storage.base, count: count)
        storage = larger
    }
}

/// Read as a collection (iteration, slices); writes go through the table.
extension PlainTable: RandomAccessCollection {
    /// 0.
    @inlinable public var startIndex: Int { 0 }
    /// `count`.
    @inlinable public var endIndex: Int { count }
}

extension PlainTable.Storage: @unchecked Sendable {}  // shared only until written: `makeUnique`
extension PlainTable: Sendable where Element: Sendable {}
