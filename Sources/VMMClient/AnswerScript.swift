import FaultABI

/// Turns a `ConsumerBehaviour` into the answers for each page-request
/// group, in order, counting every injection.
///
/// Stateful (the group count, the cookies answered, for stale re-sends);
/// one script per consumer. The caller sends what `answer(…)` returns:
/// `responses` now, in order; `withheld` after the group's timeout; and
/// `foreign` on another queue.
public struct AnswerScript: Sendable {
    /// The behaviour being played.
    public let behaviour: ConsumerBehaviour
    /// The ABI in force: ABI 1 answers name (PASID, PRGI), so there is no
    /// unknown, stale, foreign or late cookie to send, and those injections
    /// are skipped (a late ABI 1 answer could name a PRGI since reused).
    public let abi: ABIVersion
    /// Groups answered more than this many groups ago have a stale cookie:
    /// the service's cookie table size plus one.
    public let staleDistance: Int
    /// Page-request groups seen.
    public var groups: UInt64 { groupsSeen }
    @usableFromInline var groupsSeen: UInt64 = 0
    /// What was injected so far.
    public var injected = InjectedCounts()
    /// Cookies answered, oldest first (at most `staleDistance`).
    @usableFromInline var answered: [UInt64] = []
    @usableFromInline var answeredHead = 0

    /// A script for `behaviour` on an `abi` queue of a service whose cookie
    /// table has `cookieTable` slots.
    public init(_ behaviour: ConsumerBehaviour, abi: ABIVersion, cookieTable: Int) {
        self.behaviour = behaviour
        self.abi = abi
        staleDistance = cookieTable + 1
    }

    /// The answers to one group.
    public struct Answers: Sendable {
        /// Send now, in this order (wrong ones first, then the right one).
        public var responses = Responses()
        /// Send after the group's timeout (late).
        public var withheld: PageResponse?
        /// Send on another queue (foreign), in addition.
        public var foreign: PageResponse?

        /// No answers yet.
        @inlinable public init() {}
    }

    /// The answers to send now for one group: at most five (a mismatch, an
    /// unknown cookie, a stale cookie, the right answer, its duplicate), held
    /// inline so that answering a group allocates nothing.
    public struct Responses: RandomAccessCollection, Sendable {
        /// The most a script sends now for one group.
        public static let capacity = 5
        @usableFromInline var storage: (PageResponse, PageResponse, PageResponse, PageResponse, PageResponse)
        /// How many are held.
        @usableFromInline var held = 0

        /// How many are held.
        @inlinable public var endIndex: Int { held }

        /// None.
        @inlinable public init() {
            let none = PageResponse(code: .success, cookie: 0)
            storage = (none, none, none, none, none)
        }

        /// Always 0.
        @inlinable public var startIndex: Int { 0 }

        /// The `i`th answer, in sending order.
        @inlinable public subscript(i: Int) -> PageResponse {
            precondition(i >= 0 && i < endIndex, "answer \(i) of \(endIndex)")
            return withUnsafeBytes(of: storage) { $0.load(fromByteOffset: i * MemoryLayout<PageResponse>.stride, as: PageResponse.self) }
        }

        /// Adds one; a script never adds more than `capacity`.
        @inlinable mutating func append(_ response: PageResponse) {
            precondition(held < Self.capacity, "more than \(Self.capacity) answers to one group")
            let offset = held * MemoryLayout<PageResponse>.stride
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: response, toByteOffset: offset, as: PageResponse.self) }
            held += 1
        }
    }

    /// The answers to the next group, whose LAST_PAGE request is `request`.
    /// The policy picks the code (`rng` serves the random policy); `right`
    /// builds the correct answer with that code in the consumer's own terms
    /// (its cookie, and its PASID when the device needs it back), or returns
    /// nil when the consumer cannot answer the group.
    /// Inlinable, so that a caller's optimiser keeps the answers in
    /// registers instead of copying a few hundred bytes per group.
    @inlinable
    public mutating func answer(_ request: PageRequest, using rng: inout some RandomNumberGenerator,
                                right: (ResponseCode) -> PageResponse?) -> Answers {
        groupsSeen += 1
        let n = groupsSeen
        let b = behaviour
        let cookies = abi == .v2
        var out = Answers()
        guard let code = code(using: &rng), var right = right(code) else { return out }
        if cookies && ConsumerBehaviour.hits(b.lateEvery, n) {
            out.withheld = right
            injected.late += 1
            return out
        }
        if cookies && ConsumerBehaviour.hits(b.foreignEvery, n) {
            out.foreign = right
            injected.foreign += 1
        }
        // A wrong PASID is a mismatch in ABI 2 (checked when flagged valid), and
        // in ABI 1 only for a group that needs its PASID back (the kernel
        // ignores the PASID of any other answer).
        if ConsumerBehaviour.hits(b.mismatchEvery, n) && (cookies || request.needsPASID) {
            var wrong = right
            wrong.pasid = request.needsPASID ? (request.pasid ?? 0) ^ 0x55 : 7
            out.responses.append(wrong)
            injected.mismatch += 1
        }
        if cookies && ConsumerBehaviour.hits(b.unknownEvery, n) {
            out.responses.append(PageResponse(code: .success, cookie: GroupCookie.neverIssued(n).rawValue))
            injected.unknown += 1
        }
        if cookies && ConsumerBehaviour.hits(b.staleEvery, n), answered.count - answeredHead >= staleDistance {
            out.responses.append(PageResponse(code: .success, cookie: answered[answeredHead]))
            injected.stale += 1
        }
        if ConsumerBehaviour.hits(b.failureEvery, n) {
            right.code = .failure
            injected.failure += 1
        }
        out.responses.append(right)
        if ConsumerBehaviour.hits(b.duplicateEvery, n) {
            out.responses.append(right)
            injected.duplicate += 1
        }
        remember(request.cookie)
        return out
    }

    /// The policy's code, or nil for `never`.
    @inlinable
    func code(using rng: inout some RandomNumberGenerator) -> ResponseCode? {
        switch behaviour.policy {
        case .success: return .success
        case .invalid: return .invalid
        case .failure: return .failure
        case .never: return nil
        case .random:
            let pick = rng.next() % 10
            return pick < 7 ? .success : pick < 9 ? .invalid : .failure
        }
    }

    @inlinable
    mutating func remember(_ cookie: UInt64) {
        answered.append(cookie)
        if answered.count - answeredHead > staleDistance { answeredHead += 1 }
        if answeredHead > 4096 && answeredHead * 2 > answered.count {
            answered.removeFirst(answeredHead)
            answeredHead = 0
        }
    }
}
