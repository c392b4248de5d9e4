/// The service's own counts at the end of a storm.
public struct StormTotals: Codable, Sendable, Hashable {
    /// Records lost because a fault ring was full.
    public var lostRecords: UInt64 = 0
    /// Groups answered INVALID at once because they did not fit whole.
    public var overflowedGroups: UInt64 = 0
    /// Groups answered on timeout.
    public var timeouts: UInt64 = 0
    /// Automatic answers by cause (timeout, overflow, detach, …).
    public var autoResponses: [String: UInt64] = [:]
    /// Consumer answers refused, by reason.
    public var rejections: [String: UInt64] = [:]
    /// Unrecoverable faults delivered into a ring.
    public var eventsDelivered: UInt64 = 0
    /// Unrecoverable faults lost before the service (sequence gaps, LOST_EVENTS).
    public var eventsLost: UInt64 = 0
    /// No counts yet.
    public init() {}
}
