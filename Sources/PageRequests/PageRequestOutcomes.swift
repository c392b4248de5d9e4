import FaultABI

/// Why the service, not the consumer, answered a group.
public enum AutoResponseCause: String, Sendable, Hashable, CaseIterable, Codable {
    /// No response within `PageRequestPolicy.timeoutNS`.
    case timeout
    /// The group did not fit whole in the fault ring.
    case overflow
    /// The consumer detached (or its connection died).
    case detach
    /// The device was removed.
    case deviceRemoved = "device_removed"
    /// The service is shutting down.
    case shutdown
    /// The cookie table was full.
    case tableFull = "table_full"
    /// The device is attached to no queue: nobody could answer.
    case noConsumer = "no_consumer"
}

/// How a group ended, as the device is told.
public enum CompletionSource: Sendable, Hashable {
    /// The consumer answered.
    case consumer
    /// The service answered INVALID itself.
    case automatic(AutoResponseCause)

    /// Every source's label, in a fixed order: `consumer`, then the causes.
    public static let labels = ["consumer"] + AutoResponseCause.allCases.map(\.rawValue)

    /// The source as books, fixtures and metrics name it: `consumer`, or the
    /// cause's raw value (`timeout`, `detach`, …).
    public var label: String {
        switch self {
        case .consumer: return "consumer"
        case .automatic(let cause): return cause.rawValue
        }
    }

    /// Position in `labels`, for fixed-size tallies.
    public var ordinal: Int {
        switch self {
        case .consumer: return 0
        case .automatic(let cause): return 1 + cause.ordinal
        }
    }
}

/// The one response a device gets for a page-request group.
public struct DeviceCompletion: Sendable, Hashable {
    /// The device the group came from.
    public var deviceID: UInt32
    /// The group's PASID, echoed when the device set NEEDS_PASID (PCIe "PRG
    /// Response PASID Required"); `nil` otherwise.
    public var pasid: UInt32?
    /// The group's PRG index.
    public var prgi: UInt32
    /// The code the device receives (FAILURE only under `passFailure`).
    public var code: ResponseCode
    /// The private data the device supplied, echoed verbatim.
    public var privateData: PrivateData?
    /// The cookie the group had.
    public var cookie: UInt64
    /// Who answered.
    public var source: CompletionSource
    /// When the group's LAST_PAGE request was raised (its `timestampNS`), so
    /// a service can measure request-to-answer latency.
    public var requestedAtNS: UInt64

    /// A completion of the group named by `deviceID`, `pasid` and `prgi`;
    /// `requestedAtNS` 0 when the request time is unknown.
    public init(deviceID: UInt32, pasid: UInt32?, prgi: UInt32, code: ResponseCode, privateData: PrivateData?,
                cookie: UInt64, source: CompletionSource, requestedAtNS: UInt64 = 0) {
        self.requestedAtNS = requestedAtNS
        self.deviceID = deviceID
        self.pasid = pasid
        self.prgi = prgi
        self.code = code
        self.privateData = privateData
        self.cookie = cookie
        self.source = source
    }
}

/// Why a consumer's response completed nothing.
public enum ResponseRejectionReason: String, Error, Sendable, Hashable, CaseIterable, Codable {
    /// The cookie (or PASID and PRGI, in ABI 1) names no group ever issued here.
    case unknown
    /// The group was already answered by a consumer.
    case duplicate
    /// The group was answered automatically after its timeout.
    case late
    /// The group was answered automatically for another reason (overflow,
    /// detach, removal), or so long ago that the engine no longer knows.
    case stale
    /// The group belongs to a device attached to another queue.
    case foreignDevice = "foreign_device"
    /// ABI 2: a PASID or PRGI the response flags valid is not the group's.
    /// ABI 1: a NEEDS_PASID group's answer lacks its PASID or carries another.
    case mismatch
    /// The response slot itself was malformed (see `ResponseRejection`).
    case malformed
}

/// The verdict on one response.
public enum ResponseVerdict: Sendable, Hashable {
    /// The response completed this group.
    case completed(cookie: UInt64)
    /// The response completed nothing.
    case rejected(ResponseRejectionReason)
}
