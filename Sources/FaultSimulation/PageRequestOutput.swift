import FaultABI
import PageRequests

/// Where a simulated device appends the requests of a group it raises: an
/// array (a caller's buffer), or a `PlainTable` (the devices' own burst).
///
/// Why a table: appending to an array checks the array is not shared on
/// every append, a call a page; a table is unshared once per burst
/// (`PlainTable.makeUnique`) and appending is a store.
public protocol PageRequestOutput {
    /// Adds `request` at the end.
    mutating func append(_ request: PageRequest)
}

extension Array: PageRequestOutput where Element == PageRequest {}
extension PlainTable: PageRequestOutput where Element == PageRequest {}
