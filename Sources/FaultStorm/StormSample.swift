/// One 100 ms sample of a running storm: the devices' tick and the
/// service's STATS taken right after it. Rates are over the interval since
/// the previous sample; losses and refusals are running totals (so a chart
/// of them only rises, and a flat line means nothing new went wrong).
public struct StormSample: Codable, Sendable, Hashable {
    /// Seconds since the schedule started.
    public var t: Double
    /// The phase at `t` (index into the profile's phases).
    public var phase: Int
    /// Arrivals the schedule offered per second over the interval.
    public var offeredPerSecond: Double
    /// Groups answered (reaching the device) per second over the interval.
    public var answeredPerSecond: Double
    /// Groups raised and not answered yet.
    public var outstanding: Int
    /// Arrivals waiting on their device for a PRG index or allocation.
    public var backlog: Int
    /// Records waiting in the consumers' fault rings, together.
    public var ringOccupancy: UInt64
    /// The consumers' fault rings' sizes, together.
    public var ringCapacity: UInt64
    /// Latency of the groups answered in the interval, µs (nil: none answered).
    public var p50Microseconds: Double?
    /// 99th percentile of the interval, µs.
    public var p99Microseconds: Double?
    /// 99.9th percentile of the interval, µs.
    public var p999Microseconds: Double?
    /// Records lost because a fault ring was full, so far (LOST records stand for them).
    public var lostRecords: UInt64
    /// Groups that did not fit whole in a ring and were answered INVALID, so far.
    public var overflowedGroups: UInt64
    /// Groups the service answered on timeout, so far.
    public var timeouts: UInt64
    /// Consumer answers the service refused, so far, by reason.
    public var rejections: [String: UInt64]
    /// Groups each consumer (by name) completed per second over the interval.
    public var consumerAnsweredPerSecond: [String: Double]

    /// Every refusal, whatever its reason.
    public var rejected: UInt64 { rejections.values.reduce(0, &+) }
}
