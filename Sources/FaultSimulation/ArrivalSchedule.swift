import Glibc

/// One phase of a storm's offered load: how many page-request groups per
/// second arrive, over how long, in what shape. Rates are for all devices
/// together; a storm spreads arrivals over its devices.
public struct ArrivalPhase: Sendable, Hashable, Codable {
    /// The arrival process.
    public enum Shape: Sendable, Hashable, Codable {
        /// Evenly spaced arrivals at `rate` groups/s.
        case steady(rate: Double)
        /// The rate moves linearly from `from` to `to` over the phase.
        case ramp(from: Double, to: Double)
        /// Evenly spaced arrivals at a (usually far higher) `rate`: a steady
        /// phase that the report marks as a burst.
        case burst(rate: Double)
        /// A square wave: `high` groups/s for `duty` of each period, `low` for the rest.
        case square(high: Double, low: Double, periodNS: UInt64, duty: Double)
        /// Poisson arrivals (exponential gaps) at mean `rate` groups/s, from the storm's seed.
        case poisson(rate: Double)
    }

    /// The phase's name in reports.
    public var name: String
    /// How long the phase lasts, ns (> 0).
    public var durationNS: UInt64
    /// The arrival process.
    public var shape: Shape

    /// A phase; `durationNS` must be positive and rates finite and ≥ 0
    /// (the profile reader checks, naming the field).
    public init(name: String, durationNS: UInt64, shape: Shape) {
        self.name = name
        self.durationNS = durationNS
        self.shape = shape
    }

    /// The highest rate the phase offers, groups/s.
    public var peakRate: Double {
        switch shape {
        case .steady(let r), .burst(let r), .poisson(let r): return r
        case .ramp(let a, let b): return Swift.max(a, b)
        case .square(let h, let l, _, _): return Swift.max(h, l)
        }
    }

    /// The arrivals the phase offers on average: the integral of its rate.
    public var expectedArrivals: Double {
        let seconds = Double(durationNS) / 1e9
        switch shape {
        case .steady(let rate), .burst(let rate), .poisson(let rate): return rate * seconds
        case .ramp(let from, let to): return (from + to) / 2 * seconds
        case .square(let high, let low, let period, let duty):
            let p = Double(period) / 1e9
            let whole = (seconds / p).rounded(.down)
            let rest = seconds - whole * p
            return whole * (high * duty + low * (1 - duty)) * p + high * min(rest, duty * p)
                + low * max(0, rest - duty * p)
        }
    }

    /// When, in seconds into the phase, the `k`-th arrival (from 0) of a
    /// deterministic shape falls: where the integral of the rate reaches
    /// `k`. Nil if it never does. Poisson arrivals are drawn, not computed.
    func deterministicOffset(_ k: Double) -> Double? {
        switch shape {
        case .steady(let rate), .burst(let rate):
            return rate > 0 ? k / rate : nil
        case .ramp(let from, let to):
            let t = Double(durationNS) / 1e9
            let c = (to - from) / (2 * t)
            if abs(c) < 1e-12 { return from > 0 ? k / from : nil }
            let discriminant = from * from + 4 * c * k
            guard discriminant >= 0 else { return nil }  // a ramp down that ends before k
            return (-from + discriminant.squareRoot()) / (2 * c)
        case .square(let high, let low, let periodNS, let duty):
            let p = Double(periodNS) / 1e9
            let highShare = high * duty * p
            let perPeriod = highShare + low * (1 - duty) * p
            guard perPeriod > 0 else { return nil }
            let period = (k / perPeriod).rounded(.down)
            let rest = k - period * perPeriod
            if rest < highShare { return period * p + rest / high }
            return period * p + duty * p + (rest - highShare) / low
        case .poisson:
            return nil
        }
    }
}

/// The arrival times of a storm: each phase's arrivals in order, as ns
/// from the storm's start. Open loop by construction: a time is where the
/// schedule puts a group, whatever happened to the ones before it, so a
/// stalled path is charged for the wait (no coordinated omission).
///
/// Deterministic: the same phases and seed give the same times, on every
/// machine (Poisson gaps come from `SplitMix64`).
public struct ArrivalSchedule: Sendable, IteratorProtocol, Sequence {
    /// The phases, in order.
    public let phases: [ArrivalPhase]
    var rng: SplitMix64
    var phase = 0
    var phaseStartNS: UInt64 = 0
    var k: Double = 0
    var poissonOffset: Double = 0

    /// The schedule of `phases`, with Poisson gaps drawn from `seed`.
    public init(phases: [ArrivalPhase], seed: UInt64) {
        self.phases = phases
        rng = SplitMix64(seed: seed)
    }

    /// Every phase's length together, ns.
    public var totalNS: UInt64 { Self.totalNS(of: phases) }

    /// The length of `phases` together, ns.
    public static func totalNS(of phases: [ArrivalPhase]) -> UInt64 { phases.reduce(0) { $0 &+ $1.durationNS } }

    /// The index of the phase `offsetNS` from the start falls in (the last
    /// phase for times past the end).
    public func phaseIndex(atNS offsetNS: UInt64) -> Int {
        var start: UInt64 = 0
        for (i, p) in phases.enumerated() {
            start &+= p.durationNS
            if offsetNS < start { return i }
        }
        return Swift.max(0, phases.count - 1)
    }

    /// The next arrival: its time from the start and its phase, or nil after the last phase.
    public mutating func next() -> (atNS: UInt64, phase: Int)? {
        while phase < phases.count {
            let current = phases[phase]
            let offset: Double?
            if case .poisson(let rate) = current.shape {
                if rate > 0 {
                    // Exponential gap: -ln(U) / rate, U in (0, 1].
                    poissonOffset += -Glibc.log(rng.nextUnitInterval()) / rate
                    offset = poissonOffset
                } else {
                    offset = nil
                }
            } else {
                offset = current.deterministicOffset(k)
            }
            k += 1
            if let offset, offset.isFinite, offset >= 0, offset * 1e9 < Double(current.durationNS) {
                return (phaseStartNS &+ UInt64(offset * 1e9), phase)
            }
            phaseStartNS &+= current.durationNS
            phase += 1
            k = 0
            poissonOffset = 0
        }
        return nil
    }
}
