/// A small deterministic generator (SplitMix64), so simulated runs repeat
/// exactly; concrete, so device code specialises on it.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    /// A generator whose whole sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed }
    /// The next value of the sequence.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The next value scaled into `0 ..< n` by its high word (`n > 0`):
    /// one multiplication where `next() % n` is a 64-bit division. The
    /// bias, at most n / 2^64, is below anything a simulation can observe.
    @inline(__always) public mutating func next(below n: UInt64) -> UInt64 {
        next().multipliedFullWidth(by: n).high
    }

    /// A uniform double in (0, 1] from the next value's top 53 bits: never
    /// 0, so its logarithm (exponential and geometric draws) is finite.
    public mutating func nextUnitInterval() -> Double {
        (Double(next() >> 11) + 1) / Double(UInt64(1) << 53)
    }
}
