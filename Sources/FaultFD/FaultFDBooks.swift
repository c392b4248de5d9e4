/// What a fault-descriptor source saw and did: the service side of the
/// kernel's (or a device's) books.
public struct FaultFDBooks: Codable, Sendable, Hashable {
    /// Page-request records read.
    public var requests: UInt64 = 0
    /// Groups read (LAST_PAGE records).
    public var groups: UInt64 = 0
    /// Answers written, by who answered (`consumer`, `timeout`, `detach`, …).
    public var answersBySource: [String: UInt64] = [:]
    /// Answers written to the descriptor (accepted by the kernel, or queued
    /// on the device's socket).
    public var answersWritten: UInt64 = 0
    /// Answers batched and not written yet (a device's socket was full).
    public var answersPending: UInt64 = 0
    /// Groups read and not answered yet (kernel cookies held).
    public var groupsOutstanding: UInt64 = 0
    /// Answers the kernel refused (`write` EINVAL: unknown cookie) or the
    /// device reported back, by errno name.
    public var answersRefused: [String: UInt64] = [:]
    /// Answers not written: the descriptor had closed, a write failed, or a
    /// write came back short; by reason.
    public var answersNotWritten: [String: UInt64] = [:]
    /// Records that did not decode (reserved bits, unknown flags, a PRGI
    /// above 511, a packet of the wrong size), answered INVALID if they
    /// closed a group.
    public var malformed: UInt64 = 0
    /// Records for a device this source was not given, answered INVALID if
    /// they closed a group.
    public var foreignDevice: UInt64 = 0
    /// Unrecoverable faults read (vEVENTQ).
    public var events: UInt64 = 0
    /// Unrecoverable faults written into a fault ring.
    public var eventsDelivered: UInt64 = 0
    /// Events lost before the service (LOST_EVENTS headers and sequence gaps).
    public var eventsLost: UInt64 = 0
    /// Read or receive errors, by errno name.
    public var readErrors: [String: UInt64] = [:]
    /// Whether the descriptor was closed (the peer hung up, or the source was removed).
    public var closed = false

    /// Empty books.
    public init() {}
}
