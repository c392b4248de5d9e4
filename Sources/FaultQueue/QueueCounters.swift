import CFaultRingABI
import FaultABI

/// A snapshot of `struct faultring_counters`: what the producer saw.
public struct QueueCounters: Sendable, Hashable, Codable {
    /// Records written into the fault ring, LOST records included.
    public var recordsPublished: UInt64 = 0
    /// Records dropped because the ring was full.
    public var recordsLost: UInt64 = 0
    /// Page-request groups that did not fit whole and were answered INVALID at once.
    public var groupsOverflowed: UInt64 = 0
    /// Eventfd writes to a sleeping consumer.
    public var doorbellsRung: UInt64 = 0
    /// Response slots that passed slot validation (matching is `responsesMatched`).
    public var responsesValid: UInt64 = 0
    /// Publish attempts before negotiation (nothing was written).
    public var publishRefused: UInt64 = 0
    /// Times the fault-ring consumer index moved backwards or past the producer index (ignored).
    public var badConsumerIndex: UInt64 = 0
    /// Times the response-ring producer index moved backwards or more than a ring ahead (ignored).
    public var badResponseIndex: UInt64 = 0
    /// Requests for a second, different ABI (ignored).
    public var renegotiations: UInt64 = 0
    /// Requested ABIs outside 1...max_abi (ignored).
    public var badABIRequests: UInt64 = 0
    /// Feature requests with unknown bits (those bits are not granted).
    public var badFeatureRequests: UInt64 = 0
    /// Rejected response slots by reason (`ResponseRejection.Reason.rawValue`).
    public var responsesRejected: [String: UInt64] = [:]
    /// What the valid responses did, by `ResponseMatch.rawValue`: completed
    /// their group, or were rejected as unknown, duplicate, late, stale,
    /// foreign_device or mismatch.
    public var responsesMatched: [String: UInt64] = [:]

    /// All counters zero.
    public init() {}

    /// Byte offsets of each counter in `faultring_counters`, computed from
    /// the C struct so the Swift side cannot disagree with the header.
    @usableFromInline
    enum Offset {
        @usableFromInline static let recordsPublished = MemoryLayout<faultring_counters>.offset(of: \.records_published)!
        @usableFromInline static let recordsLost = MemoryLayout<faultring_counters>.offset(of: \.records_lost)!
        @usableFromInline static let groupsOverflowed = MemoryLayout<faultring_counters>.offset(of: \.groups_overflowed)!
        @usableFromInline static let doorbellsRung = MemoryLayout<faultring_counters>.offset(of: \.doorbells_rung)!
        @usableFromInline static let responsesValid = MemoryLayout<faultring_counters>.offset(of: \.responses_valid)!
        @usableFromInline static let publishRefused = MemoryLayout<faultring_counters>.offset(of: \.publish_refused)!
        @usableFromInline static let badConsumerIndex = MemoryLayout<faultring_counters>.offset(of: \.bad_consumer_index)!
        @usableFromInline static let badResponseIndex = MemoryLayout<faultring_counters>.offset(of: \.bad_response_index)!
        @usableFromInline static let renegotiations = MemoryLayout<faultring_counters>.offset(of: \.renegotiations)!
        @usableFromInline static let badABIRequests = MemoryLayout<faultring_counters>.offset(of: \.bad_abi_requests)!
        @usableFromInline static let badFeatureRequests = MemoryLayout<faultring_counters>.offset(of: \.bad_feature_requests)!

        @usableFromInline static func match(_ outcome: ResponseMatch) -> Int {
            switch outcome {
            case .completed: return MemoryLayout<faultring_counters>.offset(of: \.match_completed)!
            case .unknown: return MemoryLayout<faultring_counters>.offset(of: \.match_unknown)!
            case .duplicate: return MemoryLayout<faultring_counters>.offset(of: \.match_duplicate)!
            case .late: return MemoryLayout<faultring_counters>.offset(of: \.match_late)!
            case .stale: return MemoryLayout<faultring_counters>.offset(of: \.match_stale)!
            case .foreignDevice: return MemoryLayout<faultring_counters>.offset(of: \.match_foreign_device)!
            case .mismatch: return MemoryLayout<faultring_counters>.offset(of: \.match_mismatch)!
            }
        }

        @usableFromInline static func rejection(_ reason: ResponseRejection.Reason) -> Int {
            switch reason {
            case .badArgsz: return MemoryLayout<faultring_counters>.offset(of: \.resp_bad_argsz)!
            case .trailingNonZero: return MemoryLayout<faultring_counters>.offset(of: \.resp_trailing_nonzero)!
            case .badVersion: return MemoryLayout<faultring_counters>.offset(of: \.resp_bad_version)!
            case .unknownFlags: return MemoryLayout<faultring_counters>.offset(of: \.resp_unknown_flags)!
            case .reservedNonZero: return MemoryLayout<faultring_counters>.offset(of: \.resp_reserved_nonzero)!
            case .badCode: return MemoryLayout<faultring_counters>.offset(of: \.resp_bad_code)!
            case .outOfRange: return MemoryLayout<faultring_counters>.offset(of: \.resp_out_of_range)!
            }
        }
    }

    init(_ shared: SharedCounters) {
        recordsPublished = shared.load(Offset.recordsPublished)
        recordsLost = shared.load(Offset.recordsLost)
        groupsOverflowed = shared.load(Offset.groupsOverflowed)
        doorbellsRung = shared.load(Offset.doorbellsRung)
        responsesValid = shared.load(Offset.responsesValid)
        publishRefused = shared.load(Offset.publishRefused)
        badConsumerIndex = shared.load(Offset.badConsumerIndex)
        badResponseIndex = shared.load(Offset.badResponseIndex)
        renegotiations = shared.load(Offset.renegotiations)
        badABIRequests = shared.load(Offset.badABIRequests)
        badFeatureRequests = shared.load(Offset.badFeatureRequests)
        for reason in ResponseRejection.Reason.allCases {
            responsesRejected[reason.rawValue] = shared.load(Offset.rejection(reason))
        }
        for outcome in ResponseMatch.allCases {
            responsesMatched[outcome.rawValue] = shared.load(Offset.match(outcome))
        }
    }

    /// Rejected response slots of one reason.
    public func rejected(_ reason: ResponseRejection.Reason) -> UInt64 { responsesRejected[reason.rawValue] ?? 0 }

    /// Every answer refused, by reason: rejected before matching (a
    /// malformed slot, by its rejection) and matched to no live group
    /// (`late`, `duplicate`, `unknown`, `mismatch`, …); `completed` is not a
    /// refusal. Zero counts are left out.
    public var refusals: [String: UInt64] {
        var out = responsesRejected
        for (reason, n) in responsesMatched where reason != "completed" { out[reason, default: 0] &+= n }
        return out.filter { $0.value > 0 }
    }

    /// All response slots rejected, whatever the reason.
    public var responsesRejectedTotal: UInt64 { responsesRejected.values.reduce(0, &+) }  // read from shared memory: wraps, never traps
}

/// What a valid response did when the service matched it, as the queue's
/// shared counters report it to the consumer (`match_*`).
public enum ResponseMatch: String, Sendable, Hashable, CaseIterable, Codable {
    /// It completed its group.
    case completed
    /// It named no group ever issued here.
    case unknown
    /// Its group had already been answered by a consumer.
    case duplicate
    /// Its group had been answered INVALID at its timeout.
    case late
    /// Its group had been answered otherwise, or too long ago to tell.
    case stale
    /// Its group belongs to a device on another queue.
    case foreignDevice = "foreign_device"
    /// Its flagged PASID or PRGI is not the group's.
    case mismatch
}
