import FaultABI
import Glibc

/// How a consumer answers page requests: a policy for the right answer and,
/// for testing the service, deliberate misbehaviour at fixed intervals.
///
/// The one description of consumer behaviour: the reference VMM
/// (`faultring consume`), the loopback's in-process responder and fixture
/// files all use it, and `AnswerScript` turns it into answers, so every
/// injected fault is counted the same way everywhere.
///
/// An interval `N` of 0 means never; otherwise the `N`-th, `2N`-th, …
/// page-request group (counted from 1) gets the injection.
public struct ConsumerBehaviour: Sendable, Hashable, Codable {
    /// The code of the right answer.
    public enum Policy: String, Sendable, Hashable, Codable, CaseIterable {
        /// SUCCESS: the page is mapped.
        case success
        /// INVALID: the address is bad.
        case invalid
        /// FAILURE (the service turns it into INVALID by default).
        case failure
        /// 70 % SUCCESS, 20 % INVALID, 10 % FAILURE.
        case random
        /// Never answer (the service answers on timeout or detach).
        case never
    }

    /// The right answer's code.
    public var policy = Policy.success
    /// Answer each group this long after reading it (real-time consumers);
    /// with `delaySpread`, the mean or least delay of a distribution.
    public var delayMicroseconds: UInt64 = 0
    /// How the delay varies from group to group (nil: always `delayMicroseconds`).
    public var delaySpread: DelaySpread?
    /// Wait this long after negotiating before reading anything (so a burst
    /// fills the ring deterministically).
    public var startDelayMicroseconds: UInt64 = 0
    /// Die (SIGKILL) after answering this many groups (real-time consumers).
    public var crashAfterGroups: UInt64?
    /// Answer a group twice (the second is a duplicate).
    public var duplicateEvery = 0
    /// Withhold the answer until after the timeout (the group times out;
    /// the answer, when sent, is late). ABI 2 only.
    public var lateEvery = 0
    /// Also send a cookie that was never issued. ABI 2 only.
    public var unknownEvery = 0
    /// Also re-send a cookie answered more than a cookie table ago (stale). ABI 2 only.
    public var staleEvery = 0
    /// Also answer the group on another queue (a foreign answer). ABI 2 only.
    public var foreignEvery = 0
    /// Send an answer with a wrong PASID before the right one (mismatch).
    public var mismatchEvery = 0
    /// Answer FAILURE instead of the policy's code.
    public var failureEvery = 0
    /// Stop reading the ring for `stallLength` steps every `stallEvery`
    /// steps (step-driven consumers), so the ring fills and groups overflow.
    public var stallEvery = 0
    /// Length of each stall, in steps.
    public var stallLength = 8

    /// A delay distribution. Each group's delay is drawn on its own (a guest
    /// whose vCPUs handle faults concurrently), so a long delay does not hold
    /// back shorter ones behind it.
    public enum DelaySpread: Sendable, Hashable, Codable {
        /// Uniform in `delayMicroseconds ... maxMicroseconds`.
        case uniform(maxMicroseconds: UInt64)
        /// Exponential with mean `delayMicroseconds`.
        case exponential
    }

    /// One group's delay, µs, drawn from `delayMicroseconds` and `delaySpread`.
    public func drawDelayMicroseconds(using rng: inout some RandomNumberGenerator) -> UInt64 {
        switch delaySpread {
        case nil: return delayMicroseconds
        case .uniform(let high): return high > delayMicroseconds ? UInt64.random(in: delayMicroseconds...high, using: &rng) : delayMicroseconds
        case .exponential:
            // Inverse CDF on (0, 1]: never log(0). Capped at 1000 means so one draw cannot stall a run.
            let u = Double.random(in: Double.ulpOfOne...1, using: &rng)
            return UInt64(min(-log(u), 1000) * Double(delayMicroseconds))
        }
    }

    /// A well-behaved consumer: SUCCESS at once, no injection.
    public init() {}

    /// A mix that exercises every rejection path (the loopback's default).
    public static var allInjections: ConsumerBehaviour {
        var b = ConsumerBehaviour()
        b.duplicateEvery = 97
        b.lateEvery = 211
        b.unknownEvery = 101
        b.staleEvery = 307
        b.foreignEvery = 149
        b.mismatchEvery = 173
        b.failureEvery = 89
        b.stallEvery = 53
        return b
    }

    /// Whether the `n`-th group gets the injection with interval `every`.
    @inlinable public static func hits(_ every: Int, _ n: UInt64) -> Bool { every > 0 && n % UInt64(every) == 0 }

    /// Whether any group's answers are tampered with (duplicate, late,
    /// unknown, stale, foreign, mismatch or FAILURE injections): without,
    /// each group gets its one right answer and nothing else.
    public var injectsPerGroup: Bool {
        duplicateEvery > 0 || lateEvery > 0 || unknownEvery > 0 || staleEvery > 0 || foreignEvery > 0
            || mismatchEvery > 0 || failureEvery > 0
    }
}

/// What a consumer injected, by the rejection each should cause.
public struct InjectedCounts: Sendable, Hashable, Codable {
    /// Second answers (rejected as duplicate).
    public var duplicate: UInt64 = 0
    /// Answers withheld past the timeout (the group times out; the answer is late).
    public var late: UInt64 = 0
    /// Never-issued cookies (unknown).
    public var unknown: UInt64 = 0
    /// Cookies answered a cookie table ago (stale).
    public var stale: UInt64 = 0
    /// Answers sent on another queue (foreign device).
    public var foreign: UInt64 = 0
    /// Answers with a wrong PASID (mismatch).
    public var mismatch: UInt64 = 0
    /// FAILURE answers (converted to INVALID by default).
    public var failure: UInt64 = 0
    /// Ring stalls.
    public var stalls: UInt64 = 0

    /// Nothing injected.
    public init() {}

    /// The counts of two consumers together.
    public static func + (a: InjectedCounts, b: InjectedCounts) -> InjectedCounts {
        var c = a
        c.duplicate += b.duplicate
        c.late += b.late
        c.unknown += b.unknown
        c.stale += b.stale
        c.foreign += b.foreign
        c.mismatch += b.mismatch
        c.failure += b.failure
        c.stalls += b.stalls
        return c
    }
}
