import FaultABI

/// Groups of one function (device, endpoint) waiting for an answer that
/// names them the way PCIe does — by PRG index, with the PASID and private
/// data echoed — rather than by cookie.
///
/// The one place that rule lives: a device's ledger checking what it got,
/// a fixture's books recording who answered, and a VMM turning its guest's
/// CMD_PRI_RESP or page group response back into a cookie all match here.
///
/// Matching: a well-behaved device has one group per PRG index, and the
/// answer is for it. A misbehaving device may reuse an index while a group
/// is outstanding; then the answer is for the oldest group whose PASID and
/// private data equal the answer's, else the oldest the answer is
/// compatible with (an answer without PASID or private data names any),
/// else the oldest. Groups are kept per index in arrival order.
///
/// Its methods are `@inlinable` so that they specialise for `Value` in the
/// caller's module: unspecialised, every call looked up generic metadata at
/// run time, a tenth of the whole loop's profile.
///
/// `Value` is plain data, so that the per-index table is a `PlainTable`:
/// a caller that records or takes many groups in one operation unshares
/// it once (`makeUnique`, then the `…Unshared` forms) rather than once a
/// group.
public struct AnswerMatcher<Value: BitwiseCopyable> {
    @usableFromInline
    struct Entry: BitwiseCopyable {
        @usableFromInline var pasid: UInt32?
        @usableFromInline var privateData: PrivateData?
        @usableFromInline var value: Value

        @inlinable
        init(pasid: UInt32?, privateData: PrivateData?, value: Value) {
            self.pasid = pasid
            self.privateData = privateData
            self.value = value
        }
    }

    /// The oldest waiting group of each PRG index (`PRILimits.slot`), or
    /// nil: one flat table, so the common case (one group per index) is a
    /// store and a load, with no inner array to check for uniqueness (and
    /// the table itself is checked by `makeUnique`, once an operation).
    @usableFromInline var oldest = PlainTable<Entry?>(repeating: nil, count: PRILimits.prgiCount)
    /// Later groups on an index whose oldest is still waiting, in arrival
    /// order, by PRG index: only a misbehaving device has any.
    @usableFromInline var later: [Int: [Entry]] = [:]
    @usableFromInline var waitingCount = 0
    /// Groups waiting.
    @inlinable public var count: Int { waitingCount }

    /// An empty table.
    @inlinable
    public init() {}

    /// Records a group that will be answered by (`prgi`, `pasid`,
    /// `privateData`): what the answer must echo, not the request's raw
    /// PASID when the device does not want it back.
    @inlinable
    @inline(__always)
    public mutating func expect(prgi: UInt32, pasid: UInt32?, privateData: PrivateData?, _ value: Value) {
        makeUnique()
        expectUnshared(prgi: prgi, pasid: pasid, privateData: privateData, value)
    }

    /// Copies the table if a copy of this matcher shares it.
    @inlinable
    @inline(__always)
    public mutating func makeUnique() { oldest.makeUnique() }

    /// `expect`, for a caller that called `makeUnique()` since this matcher
    /// was last copied.
    @inlinable
    @inline(__always)
    public mutating func expectUnshared(prgi: UInt32, pasid: UInt32?, privateData: PrivateData?, _ value: Value) {
        let slot = PRILimits.slot(prgi)
        let entry = Entry(pasid: pasid, privateData: privateData, value: value)
        if oldest[slot] == nil {
            oldest[slot] = entry
        } else {
            expectLater(entry, slot: slot)
        }
        waitingCount += 1
    }

    /// Whether any group waits on `prgi`.
    @inlinable
    public func isWaiting(prgi: UInt32) -> Bool { oldest[PRILimits.slot(prgi)] != nil }

    /// Removes and returns the group an answer names (see the type's rule),
    /// or nil if none waits on `prgi`.
    @inlinable
    public mutating func take(prgi: UInt32, pasid: UInt32?, privateData: PrivateData?) -> Value? {
        takeEntry(prgi: prgi, pasid: pasid, privateData: privateData)?.value
    }

    /// `take`, with what the chosen group's answer must echo (the PASID and
    /// private data it was expected with): a caller that checks the answer
    /// against them need not keep a second copy in `Value`.
    ///
    /// The common case (the index's one group) is inlined at the call site;
    /// a reused index is chosen among in `takeAmongReused`.
    @inlinable
    @inline(__always)
    public mutating func takeEntry(prgi: UInt32, pasid: UInt32?, privateData: PrivateData?)
        -> (pasid: UInt32?, privateData: PrivateData?, value: Value)?
    {
        makeUnique()
        return takeEntryUnshared(prgi: prgi, pasid: pasid, privateData: privateData)
    }

    /// `takeEntry`, for a caller that called `makeUnique()` since this
    /// matcher was last copied.
    @inlinable
    @inline(__always)
    public mutating func takeEntryUnshared(prgi: UInt32, pasid: UInt32?, privateData: PrivateData?)
        -> (pasid: UInt32?, privateData: PrivateData?, value: Value)?
    {
        let slot = PRILimits.slot(prgi)
        guard let first = oldest[slot] else { return nil }
        waitingCount -= 1
        guard later.isEmpty else { return takeAmongReused(first, slot: slot, pasid: pasid, privateData: privateData) }
        oldest[slot] = nil
        return (first.pasid, first.privateData, first.value)
    }

    /// A later group on an index whose oldest still waits (a misbehaving device).
    @inlinable
    mutating func expectLater(_ entry: Entry, slot: Int) {
        later[slot, default: []].append(entry)
    }

    /// `takeEntry` when some index has more than one group waiting:
    /// `first` is `slot`'s oldest, already counted out of `waitingCount`.
    @inlinable
    mutating func takeAmongReused(_ first: Entry, slot: Int, pasid: UInt32?, privateData: PrivateData?)
        -> (pasid: UInt32?, privateData: PrivateData?, value: Value)
    {
        guard var rest = later.removeValue(forKey: slot) else {
            oldest[slot] = nil  // this index's one group
            return (first.pasid, first.privateData, first.value)
        }
        // A reused index: choose among all its groups, oldest first.
        let all = [first] + rest
        let index: Int
        if let exact = all.firstIndex(where: { $0.pasid == pasid && $0.privateData == privateData }) {
            index = exact
        } else {
            index = all.firstIndex {
                (pasid == nil || $0.pasid == pasid) && (privateData == nil || $0.privateData == privateData)
            } ?? 0
        }
        let taken: Entry
        if index == 0 {
            taken = first
            oldest[slot] = rest.removeFirst()
        } else {
            taken = rest.remove(at: index - 1)
        }
        if !rest.isEmpty { later[slot] = rest }
        return (taken.pasid, taken.privateData, taken.value)
    }
}

extension AnswerMatcher: Sendable where Value: Sendable {}
extension AnswerMatcher.Entry: Sendable where Value: Sendable {}
