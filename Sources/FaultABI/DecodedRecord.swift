import CFaultRingABI

/// Why a 64-byte slot is not a valid record of the ABI it was read as.
public struct RecordDecodeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The offending field, named as in `faultring_abi.h`.
    public let field: String
    /// The value found there.
    public let value: UInt64
    /// What was wrong with it.
    public let problem: String

    /// Prints `record field <field> = 0x<value>: <problem>`.
    public var description: String { "record field \(field) = 0x\(String(value, radix: 16)): \(problem)" }

    @usableFromInline
    init(field: String, value: UInt64, problem: String) {
        self.field = field
        self.value = value
        self.problem = problem
    }
}

/// A record as a consumer reads it: an event (with its ABI 2 sequence number)
/// or, in ABI 2, a LOST marker.
public enum DecodedRecord: Sendable, Hashable {
    /// A fault; `sequence` is `nil` on ABI 1 queues, which have none.
    case event(FaultEvent, sequence: UInt32?)
    /// ABI 2: records were dropped before this point.
    case lost(LostRecord)

    /// The ABI 2 sequence number, or `nil` on ABI 1.
    public var sequence: UInt32? {
        switch self {
        case .event(_, let sequence): return sequence
        case .lost(let lost): return lost.sequence
        }
    }

    /// Decodes and validates the record at `slot`.
    ///
    /// The slot is copied once before it is examined, so a concurrent writer
    /// cannot make validation and use see different bytes.
    ///
    /// Inlinable, down to its checks: in a consumer's read loop the record
    /// is then decoded in registers, with no call and no enum in memory.
    /// - Throws: `RecordDecodeError` naming the first field that is not valid
    ///   for `abi` (unknown type or flags, non-zero padding or reserved bytes).
    @inlinable
    @inline(__always)
    public static func decode(_ slot: UnsafeRawPointer, abi: ABIVersion) throws(RecordDecodeError) -> DecodedRecord {
        if abi == .v1 {
            return try decodeV1(slot.load(as: faultring_v1_fault.self))
        }
        let record = slot.load(as: faultring_v2_fault.self)
        if record.type == FAULTRING_FAULT_LOST {
            return try decodeLost(slot.load(as: faultring_v2_lost.self))
        }
        return try decodeV2(record)
    }

    @inlinable
    static func check(_ ok: Bool, _ field: String, _ value: some BinaryInteger, _ problem: String)
        throws(RecordDecodeError)
    {
        if !ok { throw RecordDecodeError(field: field, value: UInt64(truncatingIfNeeded: value), problem: problem) }
    }

    @inlinable
    @inline(__always)  // the record is then built in registers, not returned through memory
    static func decodeV1(_ record: faultring_v1_fault) throws(RecordDecodeError) -> DecodedRecord {
        try check(record.padding == 0, "padding", record.padding, "must be zero")
        switch record.type {
        case FAULTRING_FAULT_PAGE_REQ:
            let prm = record.prm
            let known = FAULTRING_V1_PRQ_PASID_VALID | FAULTRING_V1_PRQ_LAST_PAGE | FAULTRING_V1_PRQ_PRIV_DATA
                | FAULTRING_V1_PRQ_NEEDS_PASID
            try check(prm.flags & ~known == 0, "prm.flags", prm.flags, "unknown flag bits")
            try check(prm.grpid <= FAULTRING_PRGI_MAX, "prm.grpid", prm.grpid, "PRGI is 9 bits")
            let hasPASID = prm.flags & FAULTRING_V1_PRQ_PASID_VALID != 0
            let hasData = prm.flags & FAULTRING_V1_PRQ_PRIV_DATA != 0
            let request = PageRequest(
                pasid: hasPASID ? prm.pasid : nil, prgi: prm.grpid, permissions: Permissions(rawValue: prm.perm),
                address: prm.addr, isLastPage: prm.flags & FAULTRING_V1_PRQ_LAST_PAGE != 0,
                needsPASID: prm.flags & FAULTRING_V1_PRQ_NEEDS_PASID != 0,
                privateData: hasData ? PrivateData(low: prm.private_data.0, high: prm.private_data.1) : nil)
            return .event(.pageRequest(request), sequence: nil)
        case FAULTRING_FAULT_DMA_UNRECOV:
            let event = record.event
            let known = FAULTRING_V1_UNRECOV_PASID_VALID | FAULTRING_V1_UNRECOV_ADDR_VALID
                | FAULTRING_V1_UNRECOV_FETCH_ADDR_VALID
            try check(event.flags & ~known == 0, "event.flags", event.flags, "unknown flag bits")
            let fault = UnrecoverableFault(
                reason: event.reason,
                pasid: event.flags & FAULTRING_V1_UNRECOV_PASID_VALID != 0 ? event.pasid : nil,
                permissions: Permissions(rawValue: event.perm),
                address: event.flags & FAULTRING_V1_UNRECOV_ADDR_VALID != 0 ? event.addr : nil,
                fetchAddress: event.flags & FAULTRING_V1_UNRECOV_FETCH_ADDR_VALID != 0 ? event.fetch_addr : nil)
            return .event(.unrecoverable(fault), sequence: nil)
        default:
            throw RecordDecodeError(field: "type", value: UInt64(record.type), problem: "not an ABI 1 fault type")
        }
    }

    @inlinable
    @inline(__always)  // the record is then built in registers, not returned through memory
    static func decodeV2(_ record: faultring_v2_fault) throws(RecordDecodeError) -> DecodedRecord {
        try check(record.flags & ~FAULTRING_V2_FLAGS_KNOWN == 0, "flags", record.flags, "unknown flag bits")
        let hasPASID = record.flags & FAULTRING_V2_PASID_VALID != 0
        switch record.type {
        case FAULTRING_FAULT_PAGE_REQ:
            try check(record.grpid <= FAULTRING_PRGI_MAX, "grpid", record.grpid, "PRGI is 9 bits")
            try check(record.reason == 0, "reason", record.reason, "must be zero in a page request")
            try check(record.fetch_addr == 0, "fetch_addr", record.fetch_addr, "must be zero in a page request")
            let request = PageRequest(
                deviceID: record.device_id, pasid: hasPASID ? record.pasid : nil, prgi: record.grpid,
                permissions: Permissions(rawValue: record.perm), address: record.addr,
                isLastPage: record.flags & FAULTRING_V2_LAST_PAGE != 0,
                needsPASID: record.flags & FAULTRING_V2_NEEDS_PASID != 0, cookie: record.cookie,
                timestampNS: record.timestamp_ns)
            return .event(.pageRequest(request), sequence: record.sequence)
        case FAULTRING_FAULT_DMA_UNRECOV:
            try check(record.grpid == 0, "grpid", record.grpid, "must be zero in an unrecoverable fault")
            try check(record.cookie == 0, "cookie", record.cookie, "must be zero in an unrecoverable fault")
            let fault = UnrecoverableFault(
                deviceID: record.device_id, reason: record.reason, pasid: hasPASID ? record.pasid : nil,
                permissions: Permissions(rawValue: record.perm),
                address: record.flags & FAULTRING_V2_ADDR_VALID != 0 ? record.addr : nil,
                fetchAddress: record.flags & FAULTRING_V2_FETCH_ADDR_VALID != 0 ? record.fetch_addr : nil,
                timestampNS: record.timestamp_ns)
            return .event(.unrecoverable(fault), sequence: record.sequence)
        default:
            throw RecordDecodeError(field: "type", value: UInt64(record.type), problem: "not an ABI 2 record type")
        }
    }

    @inlinable
    static func decodeLost(_ record: faultring_v2_lost) throws(RecordDecodeError) -> DecodedRecord {
        try check(record.flags == 0, "flags", record.flags, "must be zero in a LOST record")
        try check(record.reserved0 == 0 && record.reserved1 == 0, "reserved", record.reserved0 | record.reserved1,
                  "must be zero")
        try check(record.reserved2.0 == 0 && record.reserved2.1 == 0, "reserved2", record.reserved2.0 | record.reserved2.1,
                  "must be zero")
        let lost = LostRecord(
            lostRecords: record.lost_records, firstLostSequence: record.first_lost_sequence,
            totalLost: record.total_lost, timestampNS: record.timestamp_ns)
        try check(lost.sequence == record.sequence, "sequence", record.sequence,
                  "must equal first_lost_sequence + lost_records")
        return .lost(lost)
    }
}
