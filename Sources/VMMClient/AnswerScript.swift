import FaultABI

/// Turns a `ConsumerBehaviour` into the answers for each page-request
/// group, in order, counting every injection.
///
/// Stateful (the group count, the cookies answered, for stale re-sends);
/// one script per consumer. `answer(…)` appends the answers to send now to
/// the caller's outbox, in order; the caller sends `withheld` after the
/// group's timeout, and `foreign` on another queue.
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
    /// `behaviour.injectsPerGroup`, read once: a script that injects
    /// nothing answers each group without looking at any injection.
    @usableFromInline let injects: Bool

    /// A script for `behaviour` on an `abi` queue of a service whose cookie
    /// table has `cookieTable` slots.
    public init(_ behaviour: ConsumerBehaviour, abi: ABIVersion, cookieTable: Int) {
        self.behaviour = behaviour
        self.abi = abi
        staleDistance = cookieTable + 1
        injects = behaviour.injectsPerGroup
    }

    /// What became of one group, beyond the answers `answer` sent now.
    public struct Answers: Sendable {
        /// The right answer, if it was sent now (the last one sent, or the
        /// one before its duplicate).
        public var right: PageResponse?
        /// How many answers were sent now.
        public var sent = 0
        /// Send after the group's timeout (late).
        public var withheld: PageResponse?
        /// Send on another queue (foreign), in addition.
        public var foreign: PageResponse?

        /// Nothing sent.
        @inlinable public init() {}
    }

    /// Answers the next group, whose LAST_PAGE request is `request`: appends
    /// what is to be sent now to `outbox`, in order (wrong ones first, then
    /// the right one, then its duplicate), and returns the rest.
    /// The policy picks the code (`rng` serves the random policy); `right`
    /// builds the correct answer with that code in the consumer's own terms
    /// (its cookie, and its PASID when the device needs it back), or returns
    /// nil when the consumer cannot answer the group.
    ///
    /// Answers go straight into the caller's outbox (no collection returned,
    /// no closure called per answer), and the function is inlinable: a
    /// group's answers cost no allocation and no copy of a few hundred bytes.
    ///
    /// A script that injects nothing takes a short path, inlined at the call
    /// site; injections are in `answerInjecting`.
    @inlinable @inline(__always) public mutating func answer(
        _ request: PageRequest, using rng: inout some RandomNumberGenerator, right: (ResponseCode) -> PageResponse?,
        into outbox: inout [PageResponse]
    ) -> Answers {
        groupsSeen += 1
        var out = Answers()
        guard let code = Self.code(behaviour.policy, using: &rng), let right = right(code) else { return out }
        guard injects else {
            outbox.append(right)
            out.sent = 1
            out.right = right
            return out
        }
        return answerInjecting(request, right: right, into: &outbox)
    }

    /// `answer(_:using:right:into:)`, handing each answer to `send` instead
    /// of appending it to an outbox (the form before the outbox existed).
    @available(*, deprecated, renamed: "answer(_:using:right:into:)")
    public mutating func answer(_ request: PageRequest, using rng: inout some RandomNumberGenerator,
                                right: (ResponseCode) -> PageResponse?, send: (PageResponse) -> Void) -> Answers {
        var outbox: [PageResponse] = []
        let answers = answer(request, using: &rng, right: right, into: &outbox)
        for response in outbox { send(response) }
        return answers
    }

    /// `answer` once the right answer is known, for a script that injects.
    @inlinable
    mutating func answerInjecting(_ request: PageRequest, right: PageResponse,
                                  into outbox: inout [PageResponse]) -> Answers {
        let n = groupsSeen
        var right = right
        // Fields of `behaviour` are read one by one, not through a copy of
        // it: the copy was a memmove of the whole behaviour for every group.
        let cookies = abi == .v2
        var out = Answers()
        if cookies && ConsumerBehaviour.hits(behaviour.lateEvery, n) {
            out.withheld = right
            injected.late += 1
            return out
        }
        if cookies && ConsumerBehaviour.hits(behaviour.foreignEvery, n) {
            out.foreign = right
            injected.foreign += 1
        }
        // A wrong PASID is a mismatch in ABI 2 (checked when flagged valid), and
        // in ABI 1 only for a group that needs its PASID back (the kernel
        // ignores the PASID of any other answer).
        if ConsumerBehaviour.hits(behaviour.mismatchEvery, n) && (cookies || request.needsPASID) {
            var wrong = right
            wrong.pasid = request.needsPASID ? (request.pasid ?? 0) ^ 0x55 : 7
            outbox.append(wrong)
            out.sent += 1
            injected.mismatch += 1
        }
        if cookies && ConsumerBehaviour.hits(behaviour.unknownEvery, n) {
            outbox.append(PageResponse(code: .success, cookie: GroupCookie.neverIssued(n).rawValue))
            out.sent += 1
            injected.unknown += 1
        }
        if cookies && ConsumerBehaviour.hits(behaviour.staleEvery, n), answered.count - answeredHead >= staleDistance {
            outbox.append(PageResponse(code: .success, cookie: answered[answeredHead]))
            out.sent += 1
            injected.stale += 1
        }
        if ConsumerBehaviour.hits(behaviour.failureEvery, n) {
            right.code = .failure
            injected.failure += 1
        }
        outbox.append(right)
        out.sent += 1
        out.right = right
        if ConsumerBehaviour.hits(behaviour.duplicateEvery, n) {
            outbox.append(right)
            out.sent += 1
            injected.duplicate += 1
        }
        // Only stale re-sends read the history.
        if behaviour.staleEvery > 0 { remember(request.cookie) }
        return out
    }

    /// The policy's code, or nil for `never`. Static: as a method it made
    /// `answer` copy the whole script (232 bytes) for every group.
    @inlinable
    static func code(_ policy: ConsumerBehaviour.Policy, using rng: inout some RandomNumberGenerator) -> ResponseCode? {
        switch policy {
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
