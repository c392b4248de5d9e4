/// What simulated devices raising a storm report at each progress tick
/// (`RemoteDevices.Options.progressEveryNS`): cumulative counts since the
/// first arrival, and the latency of the groups answered since the last tick.
///
/// Times are `CLOCK_MONOTONIC` ns, which every process on the machine
/// shares, so a storm runner lines device ticks up with its own samples of
/// the service without any clock exchange.
public struct DeviceProgress: Codable, Sendable, Hashable {
    /// When the tick was taken, monotonic ns.
    public var atNS: UInt64
    /// When the schedule started (its arrival times count from here), monotonic ns.
    public var startNS: UInt64
    /// The schedule's phase at `atNS` (index into the profile's phases).
    public var phase: Int
    /// Arrivals the schedule has offered so far.
    public var offered: UInt64
    /// Groups sent to the service so far.
    public var raised: UInt64
    /// Groups the service has answered so far.
    public var answered: UInt64
    /// Groups sent and not yet answered.
    public var pending: Int
    /// Arrivals offered but not yet raised: each waits for a PRG index or
    /// allocation on its device (its wait counts as latency).
    public var backlog: Int
    /// Latency of the groups answered since the previous tick, from each
    /// group's scheduled time, ns.
    public var interval: LatencySummary
    /// The 99th percentile of every group answered so far, ns (0: none yet).
    public var p99SoFar: UInt64

    /// A tick with these values.
    public init(atNS: UInt64, startNS: UInt64, phase: Int, offered: UInt64, raised: UInt64, answered: UInt64,
                pending: Int, backlog: Int, interval: LatencySummary, p99SoFar: UInt64) {
        self.atNS = atNS
        self.startNS = startNS
        self.phase = phase
        self.offered = offered
        self.raised = raised
        self.answered = answered
        self.pending = pending
        self.backlog = backlog
        self.interval = interval
        self.p99SoFar = p99SoFar
    }
}
