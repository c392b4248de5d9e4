import FaultSimulation

/// A synthetic fault storm, as a profile file under `Fixtures/storms/`
/// describes it (schema: Docs/STORMS.md): the offered load's phases, the
/// devices that raise it, the consumers that answer it, the rings between
/// them, and the thresholds the run is judged by.
///
/// Values are checked when read (`StormProfileReader`); a profile in hand
/// is consistent: every consumer process has at least one device, windows
/// and crash times fall inside the storm, and sizes are within the ABI's limits.
public struct StormProfile: Sendable, Hashable, Codable {
    /// Where the simulated devices run.
    public enum Placement: String, Sendable, Hashable, Codable, CaseIterable {
        /// Inside the service process (its own simulated devices).
        case service
        /// In `faultring device` processes, over device sockets (the iommufd record protocol).
        case process
    }

    /// How many pages a group has.
    public enum GroupSize: Sendable, Hashable, Codable {
        /// Always this many.
        case fixed(Int)
        /// Uniform in `min ... max`.
        case uniform(min: Int, max: Int)
        /// Geometric with this mean, capped at `max`: mostly small, a long tail.
        case geometric(mean: Double, max: Int)

        /// The largest group the distribution can draw.
        public var largest: Int {
            switch self {
            case .fixed(let n): return n
            case .uniform(_, let max), .geometric(_, let max): return max
            }
        }
    }

    /// The devices that raise the storm's page requests.
    public struct Devices: Sendable, Hashable, Codable {
        /// Devices (ids 1 ... count).
        public var count: Int
        /// Where they run.
        public var placement: Placement
        /// PASIDs each device uses, 1 ... 2^20 − 1 (the PCIe PASID width).
        public var pasidsPerDevice: UInt32
        /// Pages per group.
        public var groupSize: GroupSize
        /// PRG indices a device may have outstanding, 1 ... 512 (the 9-bit PRGI).
        public var prgiBudget: Int
        /// The device's outstanding page request allocation (pages in flight), as PRI capacity.
        public var allocation: Int
        /// A stop marker after every N groups (0: never).
        public var stopMarkerEvery: Int
        /// Share of arrivals that are unrecoverable faults sent as vEVENTQ-style events, 0 ... 1.
        public var unrecoverableShare: Double
    }

    /// How long a slow consumer takes to answer one group.
    public enum Delay: Sendable, Hashable, Codable {
        /// Always this many µs.
        case fixed(microseconds: Double)
        /// Uniform in `min ... max` µs.
        case uniform(minMicroseconds: Double, maxMicroseconds: Double)
        /// Exponential with this mean, µs.
        case exponential(meanMicroseconds: Double)
    }

    /// What a consumer process does.
    public enum Behaviour: Sendable, Hashable, Codable {
        /// Answers every group at once.
        case fast
        /// Answers each group after a delay drawn from `delay`.
        case slow(delay: Delay)
        /// Reads nothing from `atNS` for `forNS` (its ring fills; groups overflow and time out).
        case stalled(atNS: UInt64, forNS: UInt64)
        /// Sends a wrong answer (wrong PASID) before the right one for this share of groups.
        case wrong(share: Double)
        /// Killed with SIGKILL at `atNS`, restarted with `--reconnect` `restartAfterNS` later.
        case crash(atNS: UInt64, restartAfterNS: UInt64)
        /// A hostile tenant (`faultring scribble`): attaches its devices, then
        /// writes random bytes into its consumer region, its doorbells and its
        /// control socket, and hangs up and reconnects, for the whole storm. It
        /// answers nothing; the service answers its devices' groups.
        case scribble
    }

    /// The chaos a storm runner adds to the load: consumer processes killed
    /// at random, the service restarted, every consumer reconnecting.
    ///
    /// Kills are spread evenly over the storm, each at a consumer process of
    /// `killAmong` chosen with the profile's seed, which is started again at
    /// once with `--reconnect`. Restarts are spread evenly over the first
    /// `restartsWithin` of the storm (alternately SIGTERM and SIGKILL), so
    /// the last incarnation lives through the rest under the same load: its
    /// descriptors and memory are what the run judges.
    public struct Chaos: Sendable, Hashable, Codable {
        /// SIGKILLs of consumer processes, 0 ... 10,000.
        public var consumerKills: Int
        /// The consumer sets (by name) whose processes may be killed.
        public var killAmong: [String]
        /// Service restarts, 0 ... 1,000.
        public var serviceRestarts: Int
        /// The share of the storm the restarts fall in, (0, 1).
        public var restartsWithin: Double
    }

    /// A set of identical consumer processes.
    public struct Consumer: Sendable, Hashable, Codable {
        /// Name in reports (the processes are `name-1`, `name-2`, …).
        public var name: String
        /// Processes.
        public var count: Int
        /// Record ABI each negotiates (1 or 2).
        public var abi: UInt32
        /// What each does.
        public var behaviour: Behaviour
    }

    /// Queue sizes per consumer.
    public struct Rings: Sendable, Hashable, Codable {
        /// Fault ring entries (a power of two).
        public var entries: Int
        /// Response ring entries (a power of two).
        public var responses: Int
    }

    /// Thresholds the storm is judged by, beyond the ledgers (which always must balance).
    public struct SLO: Sendable, Hashable, Codable {
        /// Largest acceptable p99 latency over the whole storm, µs.
        public var p99Microseconds: Double?
        /// Smallest acceptable share of groups answered by a consumer (not by timeout, detach or overflow), 0 ... 1.
        public var answeredByConsumerMin: Double?
        /// No group may be left unanswered at the end (true unless a profile says otherwise).
        public var zeroUnanswered: Bool

        /// Thresholds with these values (nil: not judged).
        public init(p99Microseconds: Double?, answeredByConsumerMin: Double?, zeroUnanswered: Bool) {
            self.p99Microseconds = p99Microseconds
            self.answeredByConsumerMin = answeredByConsumerMin
            self.zeroUnanswered = zeroUnanswered
        }
    }

    /// The profile's name (lower-case letters, digits and dashes).
    public var name: String
    /// What the storm is for, in a sentence or two.
    public var description: String
    /// Seed of every random choice (Poisson gaps, group sizes, delays).
    public var seed: UInt64
    /// The offered load, in order.
    public var phases: [ArrivalPhase]
    /// The devices.
    public var devices: Devices
    /// The consumers; devices go to consumer processes round-robin.
    public var consumers: [Consumer]
    /// Queue sizes.
    public var rings: Rings
    /// The service's page-request timeout, ms.
    public var timeoutMilliseconds: UInt64
    /// Thresholds.
    public var slo: SLO
    /// Kills and restarts during the storm (nil: none).
    public var chaos: Chaos? = nil

    /// The storm's length: every phase together, ns.
    public var durationNS: UInt64 { ArrivalSchedule.totalNS(of: phases) }

    /// Consumer processes in all.
    public var consumerProcesses: Int { consumers.reduce(0) { $0 + $1.count } }

    /// Every consumer process's name, in profile order: `name-1`, `name-2`, … per consumer set.
    public var consumerProcessNames: [String] {
        consumers.flatMap { c in (1...max(1, c.count)).map { "\(c.name)-\($0)" } }
    }

    /// The device ids consumer process `index` (0-based, in profile order)
    /// attaches: devices go round-robin over the processes, except that an
    /// ABI 1 process takes exactly one (an ABI 1 queue serves one device)
    /// and is skipped once it has it.
    public func devices(ofConsumerProcess index: Int) -> [UInt32] {
        deviceAssignment.indices.contains(index) ? deviceAssignment[index] : []
    }

    /// Every consumer process's devices (`devices(ofConsumerProcess:)`);
    /// devices no process can take (every process ABI 1, and full) are left out.
    public var deviceAssignment: [[UInt32]] {
        let abis = consumers.flatMap { c in Array(repeating: c.abi, count: max(1, c.count)) }
        guard !abis.isEmpty else { return [] }
        var assignment = [[UInt32]](repeating: [], count: abis.count)
        var next = 0
        for device in 1...UInt32(max(1, devices.count)) {
            var tried = 0
            while abis[next] == 1 && !assignment[next].isEmpty && tried < abis.count {
                next = (next + 1) % abis.count
                tried += 1
            }
            guard tried < abis.count else { break }
            assignment[next].append(device)
            next = (next + 1) % abis.count
        }
        return assignment
    }

    /// The profile with every phase's rate multiplied by `factor` (`--rate-scale`):
    /// the same shape of load, lighter or heavier.
    public func scaled(rates factor: Double) -> StormProfile {
        var copy = self
        copy.phases = phases.map { phase in
            var p = phase
            switch phase.shape {
            case .steady(let r): p.shape = .steady(rate: r * factor)
            case .burst(let r): p.shape = .burst(rate: r * factor)
            case .poisson(let r): p.shape = .poisson(rate: r * factor)
            case .ramp(let a, let b): p.shape = .ramp(from: a * factor, to: b * factor)
            case .square(let h, let l, let period, let duty):
                p.shape = .square(high: h * factor, low: l * factor, periodNS: period, duty: duty)
            }
            return p
        }
        return copy
    }

    /// The profile with every phase scaled so the storm lasts `seconds` (`--seconds`),
    /// crash times and stall windows scaled alike.
    public func scaled(toSeconds seconds: Double) -> StormProfile {
        let factor = seconds * 1e9 / Double(max(1, durationNS))
        func scale(_ ns: UInt64) -> UInt64 { UInt64((Double(ns) * factor).rounded()) }
        var copy = self
        copy.phases = phases.map { phase in
            var p = phase
            p.durationNS = max(1, scale(phase.durationNS))
            if case .square(let high, let low, let period, let duty) = phase.shape {
                p.shape = .square(high: high, low: low, periodNS: max(1, scale(period)), duty: duty)
            }
            return p
        }
        copy.consumers = consumers.map { consumer in
            var c = consumer
            switch consumer.behaviour {
            case .stalled(let at, let length): c.behaviour = .stalled(atNS: scale(at), forNS: scale(length))
            case .crash(let at, let restart): c.behaviour = .crash(atNS: scale(at), restartAfterNS: scale(restart))
            default: break
            }
            return c
        }
        return copy
    }
}
