/// What the page-request layer saw, for operators and tests.
public struct PageRequestCounters: Sendable, Hashable, Codable {
    /// Page requests received from devices (stop markers included).
    public var requests: UInt64 = 0
    /// Groups closed by a LAST_PAGE request.
    public var groupsClosed: UInt64 = 0
    /// Groups written into a fault ring.
    public var groupsDelivered: UInt64 = 0
    /// Groups completed by a consumer's response.
    public var completedByConsumer: UInt64 = 0
    /// Groups the service answered itself, by cause (`AutoResponseCause.rawValue`).
    public var autoResponses: [String: UInt64] = [:]
    /// Responses that completed nothing, by reason (`ResponseRejectionReason.rawValue`).
    public var rejections: [String: UInt64] = [:]
    /// FAILURE responses turned into INVALID (the default policy).
    public var failureConverted: UInt64 = 0
    /// FAILURE responses passed to the device (`passFailure`).
    public var failurePassed: UInt64 = 0
    /// A device reused a PRG index while a group with it was outstanding.
    public var prgiReused: UInt64 = 0
    /// A device exceeded its outstanding page request allocation.
    public var allocationExceeded: UInt64 = 0
    /// Page requests of never-closed groups discarded at the partial cap.
    public var partialsDiscarded: UInt64 = 0
    /// Stop markers (last, no read/write, with PASID): no response is owed.
    public var stopMarkers: UInt64 = 0
    /// Requests from devices the tracker does not know.
    public var unknownDevice: UInt64 = 0

    /// All counters zero.
    public init() {}

    /// Groups completed automatically for `cause`.
    public func auto(_ cause: AutoResponseCause) -> UInt64 { autoResponses[cause.rawValue] ?? 0 }
    /// Responses rejected for `reason`.
    public func rejected(_ reason: ResponseRejectionReason) -> UInt64 { rejections[reason.rawValue] ?? 0 }
    /// All groups completed, whoever answered.
    public var completed: UInt64 { completedByConsumer + autoResponses.values.reduce(0, +) }
    /// All rejected responses.
    public var rejectedTotal: UInt64 { rejections.values.reduce(0, +) }
}
