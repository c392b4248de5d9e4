/// One address stream a DMA device runs in one PASID: where its next
/// access goes, and whether it writes.
public struct DMAStream: Sendable, Hashable, Codable {
    /// How addresses follow each other.
    public enum Pattern: Sendable, Hashable, Codable {
        /// Page after page through the window, then from the start again.
        case sequential
        /// Any page of the window, uniformly.
        case random
        /// Every `stride`-th page of the window.
        case strided(Int)
        /// A working set of `pages` pages that slides forward by one page
        /// every `churnEvery` accesses: old pages fall out, new ones come in
        /// (what makes a guest with a page budget evict and invalidate).
        case workingSet(pages: Int, churnEvery: Int)
    }

    /// The PASID the stream's accesses carry.
    public var pasid: UInt32
    /// The first address of the window (4 KiB aligned).
    public var base: UInt64
    /// The window's size in 4 KiB pages.
    public var pages: Int
    /// The pattern.
    public var pattern: Pattern
    /// One access in this many writes (0: all reads).
    public var writeEvery: Int

    /// A stream.
    public init(pasid: UInt32, base: UInt64, pages: Int, pattern: Pattern, writeEvery: Int = 2) {
        precondition(pages > 0 && base % 4096 == 0, "a stream covers whole pages")
        self.pasid = pasid
        self.base = base
        self.pages = pages
        self.pattern = pattern
        self.writeEvery = writeEvery
    }

    /// The address of access number `n` (an offset inside the page varies
    /// with `n`, so accesses are not all page-aligned).
    public func address(_ n: UInt64, random: inout SplitMix64) -> UInt64 {
        let count = UInt64(max(pages, 1))   // a decoded stream is validated, but never divides by zero
        let page: UInt64
        switch pattern {
        case .sequential: page = n % count
        case .random: page = random.next() % count
        case .strided(let stride): page = (n &* UInt64(max(stride, 1))) % count
        case .workingSet(let size, let churn):
            let start = n / UInt64(max(churn, 1))
            page = (start &+ random.next() % UInt64(max(size, 1))) % count
        }
        return base &+ page &* 4096 &+ (n % 64) &* 64
    }

    /// Whether access number `n` writes.
    public func writes(_ n: UInt64) -> Bool { writeEvery > 0 && n % UInt64(writeEvery) == 0 }
}
