import FaultABI
import VMMClient

/// A replayable scenario (Docs/FIXTURES.md): devices, the consumer's
/// behaviour, timed fault events, and the expected outcome. Events are not
/// held here: `FixtureReader` streams them, so a capture of millions of
/// events never sits in memory at once.
public struct Fixture: Sendable, Hashable {
    /// Format version this build reads and writes.
    public static let formatVersion: UInt64 = 1

    public var name = ""
    public var description = ""
    public var service = ServiceSettings()
    public var devices: [Device] = []
    public var consumer = Consumer()
    public var expected: Expectation?

    public init() {}

    /// Service settings the scenario needs.
    public struct ServiceSettings: Sendable, Hashable {
        public var timeoutMicroseconds: UInt64 = 10_000_000
        public var passFailure = false
        public var cookieTable = 65_536
        public var entries = 4096
        /// The pace the scenario needs, if it matters; `replay --pace` overrides it.
        public var pace: ReplayPace?
        public init() {}
    }

    /// A device: id, a name such as its PCI address, PASIDs, PRI allocation.
    public struct Device: Sendable, Hashable {
        public var id: UInt32
        public var name: String
        public var pasids: [UInt32]
        public var allocation: Int
        public var needsPASID: Bool
        /// Whether its page requests carry private data (echoed back).
        public var privateData: Bool
        public init(id: UInt32, name: String, pasids: [UInt32] = [], allocation: Int = 256, needsPASID: Bool = false,
                    privateData: Bool = false) {
            self.id = id
            self.name = name
            self.pasids = pasids
            self.allocation = allocation
            self.needsPASID = needsPASID
            self.privateData = privateData
        }
    }

    /// The consumer the scenario needs: the ABI it negotiates, and how it
    /// answers (the same `ConsumerBehaviour` the reference VMM and the
    /// loopback play).
    public struct Consumer: Sendable, Hashable {
        /// Record ABI the consumer requests (1 or 2).
        public var abi: UInt32 = 2
        /// How it answers.
        public var behaviour = ConsumerBehaviour()
        /// ABI 2, a well-behaved consumer.
        public init() {}

        /// The misbehaviour intervals a fixture may set, by JSON key.
        public static var intervals: [(StaticString, WritableKeyPath<ConsumerBehaviour, Int>)] { [
            ("duplicateEvery", \.duplicateEvery), ("unknownEvery", \.unknownEvery), ("mismatchEvery", \.mismatchEvery),
            ("staleEvery", \.staleEvery), ("foreignEvery", \.foreignEvery),
        ] }
    }

    /// What must happen.
    public struct Expectation: Sendable, Hashable {
        /// Per group, by the index of its LAST_PAGE event: the code the device
        /// got and who answered (`consumer` or an automatic cause).
        public var groups: [ExpectedGroup] = []
        /// Automatic answers by cause.
        public var auto: [String: UInt64] = [:]
        /// Rejected responses by reason.
        public var rejections: [String: UInt64] = [:]
        /// Records dropped for a full ring, if the scenario says.
        public var lostRecords: UInt64?
        /// Unrecoverable faults delivered to the consumer, if the scenario says.
        public var faultsDelivered: UInt64?
        public init() {}
    }

    /// One group's answer: the event that closed it, the code, who answered.
    public struct ExpectedGroup: Codable, Sendable, Hashable {
        public var event: Int
        public var code: String
        public var source: String
        public init(event: Int, code: String, source: String) {
            self.event = event
            self.code = code
            self.source = source
        }
    }
}

/// How fast a fixture's events are replayed.
public enum ReplayPace: String, Sendable, Hashable, CaseIterable {
    /// As fast as possible (in batches of at most 4096 events per step).
    case fast
    /// At the events' own times (`t`, from the start).
    case recorded
}

/// One timed event of a fixture; `t` is microseconds from the start.
public struct FixtureEvent: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// A page request (stop markers are page requests with no R/W, last, with PASID).
        case pageRequest(PageRequest)
        /// An unrecoverable fault.
        case fault(UnrecoverableFault)
        /// A raw SMMUv3 PRI record (2 words), SMMUv3 event record or VT-d page request (4 words).
        case raw(RawFormat, device: UInt32, words: [UInt64])
    }

    public enum RawFormat: String, Sendable, Hashable, CaseIterable {
        case smmuv3PRI = "smmuv3-pri"
        case smmuv3Event = "smmuv3-event"
        case vtdPageRequest = "vtd-prq"

        public var words: Int { self == .smmuv3PRI ? 2 : 4 }
    }

    public var t: UInt64
    public var kind: Kind

    public init(t: UInt64, kind: Kind) {
        self.t = t
        self.kind = kind
    }
}

/// A fixture that is not valid, naming the file, the event and the field.
public struct FixtureError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var event: Int?
    public var field: String?
    public var message: String

    public init(file: String, event: Int? = nil, field: String? = nil, _ message: String) {
        self.file = file
        self.event = event
        self.field = field
        self.message = message
    }

    public var description: String {
        var where_ = file
        if let event { where_ += ": event \(event)" }
        if let field { where_ += ": field \"\(field)\"" }
        return "\(where_): \(message)"
    }
}
