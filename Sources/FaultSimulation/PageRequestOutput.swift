import FaultABI
import PageRequests

/// Where a simulated device appends the requests of a group it raises: an
/// array (a caller's buffer), or a `PlainTable` (the devices' own burst).
///
/// Why a table: appending to an array checks the array is not shared on
/// every append, a call a page; a table is unshared once per burst
/// (`PlainTable.makeUnique`, which its owner calls before handing it
/// over, as for any store into one) and appending is a store.
public protocol PageRequestOutput {
    /// Adds `request` at the end.
    mutating func append(_ request: PageRequest)
    /// Adds `count` requests at the end, the `i`-th being `page(i)`: a
    /// group's pages, of a device whose groups have up to `largest`.
    mutating func append(pages count: Int, largest: Int, _ page: (Int) -> PageRequest)
}

extension PageRequestOutput {
    /// One `append` per page (`appendEach`).
    @inline(__always)
    public mutating func append(pages count: Int, largest: Int, _ page: (Int) -> PageRequest) {
        appendEach(pages: count, page)
    }

    /// Adds `count` requests at the end, the `i`-th being `page(i)`, one `append` each.
    @inline(__always)
    public mutating func appendEach(pages count: Int, _ page: (Int) -> PageRequest) {
        for index in 0..<count { append(page(index)) }
    }
}

extension Array: PageRequestOutput where Element == PageRequest {}

extension PlainTable: PageRequestOutput where Element == PageRequest {
    /// Where groups vary between 1 and 4 pages, a group is written as four,
    /// straight, and counted as `count`: a loop over the pages would guess
    /// its exit wrong about once a group, which costs more than building
    /// the pages past the end that are never counted. Where every group has
    /// one page, or may have more than four, the loop.
    @inline(__always)
    public mutating func append(pages count: Int, largest: Int, _ page: (Int) -> PageRequest) {
        guard largest > 1 && largest <= 4 && count <= 4 else {
            appendEach(pages: count, page)
            return
        }
        let end = uncounted(4)
        end.initialize(to: page(0))
        (end + 1).initialize(to: page(1))
        (end + 2).initialize(to: page(2))
        (end + 3).initialize(to: page(3))
        countUncounted(Swift.max(count, 0))
    }
}
