import FaultSimulation

extension StormProfile {
    /// The consumer processes as latency tenants: each one's name and the devices it attaches.
    public var tenants: [RemoteDevices.Tenant] {
        consumerProcessNames.enumerated().map { RemoteDevices.Tenant(name: $1, devices: devices(ofConsumerProcess: $0)) }
    }

    /// A phase's shape in words: `ramp 2000→50000/s`.
    public static func describe(_ shape: ArrivalPhase.Shape) -> String {
        switch shape {
        case .steady(let r): return "steady \(Int(r))/s"
        case .burst(let r): return "burst \(Int(r))/s"
        case .poisson(let r): return "poisson \(Int(r))/s"
        case .ramp(let a, let b): return "ramp \(Int(a))→\(Int(b))/s"
        case .square(let h, let l, let p, let d):
            return "square \(Int(h))/\(Int(l))/s, period \(Double(p) / 1e9) s, duty \(d)"
        }
    }

    /// A consumer behaviour in words: `SIGKILL at 3.0 s, restart 0.5 s later`.
    public static func describe(_ b: StormProfile.Behaviour) -> String {
        switch b {
        case .fast: return "fast"
        case .slow(let d):
            switch d {
            case .fixed(let us): return "slow, \(us) µs"
            case .uniform(let a, let z): return "slow, uniform \(a)–\(z) µs"
            case .exponential(let m): return "slow, exponential mean \(m) µs"
            }
        case .stalled(let at, let length): return "stalls at \(Double(at) / 1e9) s for \(Double(length) / 1e9) s"
        case .wrong(let share): return "wrong answer first for \(share * 100) % of groups"
        case .crash(let at, let after): return "SIGKILL at \(Double(at) / 1e9) s, restart \(Double(after) / 1e9) s later"
        case .scribble: return "hostile: scribbles its region, doorbells and socket"
        }
    }
}
