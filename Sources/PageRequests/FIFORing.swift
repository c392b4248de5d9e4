/// A first-in first-out queue in one power-of-two table: the tracker's
/// deadlines.
///
/// Each append and each removal from the front is one store or load and a
/// masked index step, inlined at the call site (a `Deque`'s went through
/// closures the optimiser left out of line). It grows by doubling when
/// full; it never shrinks. Its storage is a `PlainTable`, with that type's
/// contract: the owner calls `makeUnique()` before writing in an operation.
struct FIFORing<Element: BitwiseCopyable> {
    /// The elements, from `head`, wrapping; positions outside them hold
    /// `filler` or stale elements, never read.
    private var storage: PlainTable<Element>
    private var head = 0
    /// Elements queued.
    private(set) var count = 0
    /// What unused positions hold (a ring of plain values needs no optionals).
    private let filler: Element

    /// An empty ring with room for `capacity` elements before it grows.
    init(filler: Element, capacity: Int = 16) {
        self.filler = filler
        var size = 16
        while size < capacity { size &*= 2 }
        storage = PlainTable(repeating: filler, count: size)
    }

    var isEmpty: Bool { count == 0 }

    /// The oldest element, if any.
    @inline(__always) var first: Element? { count == 0 ? nil : storage[head] }

    /// Unshares the storage if a copy of the owner shares it.
    @inline(__always) mutating func makeUnique() { storage.makeUnique() }

    @inline(__always) mutating func append(_ element: Element) {
        if count == storage.count { grow() }
        storage[(head &+ count) & (storage.count &- 1)] = element
        count &+= 1
    }

    /// Removes and returns the oldest element, if any.
    @inline(__always) mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        head = (head &+ 1) & (storage.count &- 1)
        count &-= 1
        return element
    }

    /// Twice the room, the elements moved to the front in order.
    private mutating func grow() {
        let larger = PlainTable(repeating: filler, count: storage.count * 2)
        for i in 0..<count { larger[i] = storage[(head &+ i) & (storage.count &- 1)] }
        storage = larger
        head = 0
    }
}
