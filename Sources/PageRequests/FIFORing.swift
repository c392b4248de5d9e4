/// A first-in first-out queue in one power-of-two array: the tracker's free
/// cookie slots and its deadlines.
///
/// Each append and each removal from the front is one store or load and a
/// masked index step, inlined at the call site. (A `Deque` did the same
/// work through closures the optimiser left out of line, twice per group.)
/// It grows by doubling when full; it never shrinks.
struct FIFORing<Element> {
    /// The elements, from `head`, wrapping; the rest hold `filler`.
    private var storage: [Element]
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
        storage = [Element](repeating: filler, count: size)
    }

    /// A ring holding `elements`, in order.
    init<S: Sequence>(_ elements: S, filler: Element) where S.Element == Element {
        let all = Array(elements)
        self.init(filler: filler, capacity: all.count)
        for element in all { append(element) }
    }

    var isEmpty: Bool { count == 0 }

    /// The oldest element, if any.
    @inline(__always) var first: Element? { count == 0 ? nil : storage[head] }

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
        var larger = [Element]()
        larger.reserveCapacity(storage.count * 2)
        for i in 0..<count { larger.append(storage[(head &+ i) & (storage.count &- 1)]) }
        larger.append(contentsOf: repeatElement(filler, count: storage.count * 2 - count))
        storage = larger
        head = 0
    }
}
