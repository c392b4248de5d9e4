import FaultABI
import IOMMUFormats
import VMMClient

/// A replayable scenario (Docs/FIXTURES.md): devices, the consumer's
/// behaviour, timed fault events, and the expected outcome. Events are not
/// held here: `FixtureReader` streams them, so a capture of millions of
/// events never sits in memory at once.
public struct Fixture: Sendable, Hashable {
    /// Format version this build reads and writes.
    public static let formatVersion: UInt64 = 1

    /// The scenario's name.
    public var name = ""
    /// What the scenario exercises, in words.
    public var description = ""
    /// What the service must be set to.
    public var service = ServiceSettings()
    /// The devices events may name; they precede the events in the file.
    public var devices: [Device] = []
    /// The ABI the consumer negotiates and how it answers.
    public var consumer = Consumer()
    /// What must happen; `nil` if the file has none, which replay reports as a failure.
    public var expected: Expectation?

    /// An empty scenario: no devices, default service and consumer, no expectation.
    public init() {}

    /// Service settings the scenario needs.
    public struct ServiceSettings: Sendable, Hashable {
        /// Page-request timeout, µs (default 10 s).
        public var timeoutMicroseconds: UInt64 = 10_000_000
        /// Pass a consumer's FAILURE to the device instead of turning it into INVALID.
        public var passFailure = false
        /// Most groups outstanding at once (`PageRequestPolicy.maxOutstandingGroups`).
        public var cookieTable = 65_536
        /// Fault ring size, in records (a power of two).
        public var entries = 4096
        /// The pace the scenario needs, if it matters; `replay --pace` overrides it.
        public var pace: ReplayPace?
        /// How raw hardware records (`smmuv3-pri`, `smmuv3-event`, `vtd-prq`)
        /// are decoded: current Linux unless the capture came from elsewhere.
        public var decoding = HardwareDialect.linux
        /// The defaults: 10 s timeout, FAILURE converted, 65 536 cookies, 4096 entries, no pace, Linux decoding.
        public init() {}
    }

    /// A device: id, a name such as its PCI address, PASIDs, PRI allocation.
    public struct Device: Sendable, Hashable {
        /// Service-assigned device id (≥ 1), as events name it.
        public var id: UInt32
        /// A name for people, such as the PCI address.
        public var name: String
        /// PASIDs the device uses (each ≤ 20 bits).
        public var pasids: [UInt32]
        /// PRI outstanding page request allocation (pages in flight).
        public var allocation: Int
        /// Set NEEDS_PASID on the device's PASID requests.
        public var needsPASID: Bool
        /// Whether its page requests carry private data (echoed back).
        public var privateData: Bool
        /// A device; unless given: no PASIDs, allocation 256, no NEEDS_PASID, no private data.
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
        /// No groups checked, no automatic answers or rejections allowed,
        /// losses and deliveries not checked.
        public init() {}
    }

    /// One group's answer: the event that closed it, the code, who answered.
    public struct ExpectedGroup: Codable, Sendable, Hashable {
        /// Index of the event that closed the group (its LAST_PAGE request).
        public var event: Int
        /// The code the device got: `success`, `invalid` or `failure`.
        public var code: String
        /// Who answered: `consumer`, or an automatic cause (`timeout`, `overflow`, ...).
        public var source: String
        /// One group's answer.
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
    /// What the event raises.
    public enum Kind: Sendable, Hashable {
        /// A page request (stop markers are page requests with no R/W, last, with PASID).
        case pageRequest(PageRequest)
        /// An unrecoverable fault.
        case fault(UnrecoverableFault)
        /// A raw SMMUv3 PRI record (2 words), SMMUv3 event record or VT-d page request (4 words).
        case raw(RawFormat, device: UInt32, words: [UInt64])
    }

    /// A raw hardware record format, named by its fixture `type`.
    public enum RawFormat: String, Sendable, Hashable, CaseIterable {
        case smmuv3PRI = "smmuv3-pri"
        case smmuv3Event = "smmuv3-event"
        case vtdPageRequest = "vtd-prq"

        /// 64-bit words in one record: 2 for SMMUv3 PRI, 4 for the others.
        public var words: Int { self == .smmuv3PRI ? 2 : 4 }
    }

    /// Microseconds from the start; never decreasing within a fixture.
    public var t: UInt64
    /// What the event raises.
    public var kind: Kind

    /// An event raising `kind` at `t` µs.
    public init(t: UInt64, kind: Kind) {
        self.t = t
        self.kind = kind
    }
}

/// A fixture that is not valid, naming the file, the event and the field.
public struct FixtureError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The fixture file.
    public var file: String
    /// Index of the event at fault, if the error is in one.
    public var event: Int?
    /// The field at fault (e.g. `expected.groups`), if known.
    public var field: String?
    /// What is wrong.
    public var message: String

    /// An error in `file`, located by `event` and `field` when known.
    public init(file: String, event: Int? = nil, field: String? = nil, _ message: String) {
        self.file = file
        self.event = event
        self.field = field
        self.message = message
    }

    /// Prints `file: event N: field "f": message`, leaving out what is unknown.
    public var description: String {
        var where_ = file
        if let event { where_ += ": event \(event)" }
        if let field { where_ += ": field \"\(field)\"" }
        return "\(where_): \(message)"
    }
}
