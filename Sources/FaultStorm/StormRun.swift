import FaultSimulation

/// Everything one pass of a storm's schedule produced: the time series
/// behind the charts, latency per phase and tenant, the ledgers, the
/// consumers and the service's totals.
public struct StormRun: Codable, Sendable {
    /// How the faults travelled.
    public enum Mode: String, Codable, Sendable, CaseIterable {
        /// Device processes → the service → consumer processes through the ring.
        case service
        /// Straight from a device socket into one consumer that reads the
        /// kernel's fault-queue records itself (`faultring direct-vmm`): the
        /// path a VMM has without faultring.
        case direct
    }

    /// The path.
    public var mode: Mode
    /// A sample every 100 ms.
    public var samples: [StormSample] = []
    /// Arrivals the schedule offered.
    public var offered: UInt64 = 0
    /// Seconds from the first arrival to the last answer.
    public var seconds: Double = 0
    /// Latency per phase, from each group's scheduled arrival to its answer reaching the device.
    public var phases: [NamedLatency] = []
    /// Latency of every group.
    public var overall: NamedLatency?
    /// Latency per consumer process (the devices it attached).
    public var tenants: [NamedLatency] = []
    /// Per-device ledgers.
    public var ledgers: [StormLedger] = []
    /// Per-consumer rows.
    public var consumers: [StormConsumer] = []
    /// The service's totals at the end (zeros in a direct run).
    public var totals = StormTotals()
    /// Unrecoverable faults the devices sent as vEVENTQ events.
    public var eventsSent: UInt64 = 0
    /// With a profile's `chaos`: the kills and restarts, each tenant's longest wait, and what the service kept.
    public var chaos: StormChaosReport?
    /// What went wrong with the run itself (a process that would not start, died, or hung), in words.
    public var problems: [String] = []

    /// A run with nothing in it yet.
    public init(mode: Mode) { self.mode = mode }

    /// Every group answered, by anyone: the sum of the ledgers.
    public var answered: UInt64 { ledgers.reduce(0) { $0 + $1.answered } }
    /// Groups the devices raised.
    public var issued: UInt64 { ledgers.reduce(0) { $0 + $1.issued } }
    /// Groups never answered.
    public var unanswered: Int { ledgers.reduce(0) { $0 + $1.unanswered } }
    /// Unexpected answers (a second one, or one for a group never raised).
    public var answeredTwice: UInt64 { ledgers.reduce(0) { $0 + $1.answeredTwice } }
    /// Answers with the wrong PASID or PRGI.
    public var wrong: UInt64 { ledgers.reduce(0) { $0 + $1.wrong } }
    /// Groups answered by a consumer, by the service's books (a direct run: all).
    public var answeredByConsumer: UInt64 {
        mode == .direct ? answered : ledgers.reduce(0) { $0 + ($1.answeredBy["consumer"] ?? 0) }
    }
}
