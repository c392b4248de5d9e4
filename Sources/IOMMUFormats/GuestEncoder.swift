import CFaultRingABI
import FaultABI

/// The form in which a VMM reinjects a fault into its guest.
public enum GuestFormat: String, Sendable, Hashable, CaseIterable {
    /// virtio-iommu fault report (24 bytes). Informational: it has no page
    /// request or response path, so the VMM answers page requests itself.
    case virtio
    /// vSMMUv3: PRI queue records (16 B) for page requests, event records
    /// (32 B) for other faults; the guest answers with CMD_PRI_RESP.
    case smmuv3
    /// Virtual VT-d: page request descriptors (32 B, in the encoder's VT-d
    /// revision); the guest answers with page group response descriptors.
    /// Unrecoverable faults have no queue format on VT-d (they go to fault
    /// recording registers) and are skipped.
    case vtd
    /// iommufd vEVENTQ style: an 8-byte header {flags, sequence} before each
    /// payload (a vSMMUv3 event record, or an `iommu_hwpt_pgfault` for page
    /// requests); a header alone with LOST_EVENTS marks loss.
    case veventq
}

/// Turns records from the queue into the bytes a guest sees.
public struct GuestEncoder: Sendable {
    /// The guest-visible format this encoder produces.
    public let format: GuestFormat
    /// The VT-d revision of `.vtd` descriptors (VT-d 4, no private data, unless told).
    public let vtdRevision: VTdRevision
    /// vEVENTQ sequence (0 ... Int32.max, then wraps to 0).
    public private(set) var sequence: UInt32 = 0

    /// An encoder for `format`, with the vEVENTQ sequence starting at 0.
    public init(format: GuestFormat, vtdRevision: VTdRevision = .v4) {
        self.format = format
        self.vtdRevision = vtdRevision
    }

    /// virtio-iommu reasons and flags (virtio spec / Linux `virtio_iommu.h`).
    public enum Virtio {
        /// `VIRTIO_IOMMU_FAULT_R_UNKNOWN` (0): an internal error or other cause.
        public static let reasonUnknown: UInt8 = 0
        /// `VIRTIO_IOMMU_FAULT_R_DOMAIN` (1): the endpoint is not attached to a domain.
        public static let reasonDomain: UInt8 = 1
        /// `VIRTIO_IOMMU_FAULT_R_MAPPING` (2): the address is unmapped or the protection is wrong.
        public static let reasonMapping: UInt8 = 2
        /// `VIRTIO_IOMMU_FAULT_F_READ` (bit 0): the access was a read.
        public static let flagRead: UInt32 = 1 << 0
        /// `VIRTIO_IOMMU_FAULT_F_WRITE` (bit 1): the access was a write.
        public static let flagWrite: UInt32 = 1 << 1
        /// `VIRTIO_IOMMU_FAULT_F_EXEC` (bit 2): an instruction fetch (Linux header only, not in the spec).
        public static let flagExec: UInt32 = 1 << 2
        /// `VIRTIO_IOMMU_FAULT_F_ADDRESS` (bit 8): the `address` field is valid.
        public static let flagAddress: UInt32 = 1 << 8
    }

    /// `IOMMU_VEVENTQ_FLAG_LOST_EVENTS`.
    public static let veventqLostEvents: UInt32 = FAULTRING_IOMMU_VEVENTQ_FLAG_LOST_EVENTS

    /// The guest's bytes for one record, or nil if the format cannot carry it.
    /// `endpoint` is the guest-visible id of the record's device (RID / vSID).
    public mutating func encode(_ record: DecodedRecord, endpoint: UInt32) -> [UInt8]? {
        switch (format, record) {
        case (.virtio, .event(let event, _)):
            return Self.virtioFault(event, endpoint: endpoint)
        case (.virtio, .lost):
            return nil
        case (.smmuv3, .event(.pageRequest(let r), _)):
            let (dw0, dw1) = SMMUv3PRIRecord(r, streamID: endpoint).words
            return bytes(dw0, dw1)
        case (.smmuv3, .event(.unrecoverable(let f), _)):
            let (a, b, c, d) = Self.smmuEvent(f, streamID: endpoint).words
            return bytes(a, b, c, d)
        case (.smmuv3, .lost):
            return nil
        case (.vtd, .event(.pageRequest(let r), _)):
            let (a, b, c, d) = VTdPageRequest(r, requesterID: UInt16(truncatingIfNeeded: endpoint)).words(vtdRevision)
            return bytes(a, b, c, d)
        case (.vtd, _):
            return nil
        case (.veventq, .lost):
            return header(flags: FAULTRING_IOMMU_VEVENTQ_FLAG_LOST_EVENTS)
        case (.veventq, .event(.unrecoverable(let f), _)):
            let (a, b, c, d) = Self.smmuEvent(f, streamID: endpoint).words
            return header(flags: 0) + bytes(a, b, c, d)
        case (.veventq, .event(.pageRequest(let r), _)):
            return header(flags: 0) + Self.hwptPgfault(r, deviceID: endpoint)
        }
    }

    mutating func header(flags: UInt32) -> [UInt8] {
        defer { sequence = VEventHeader.next(sequence) }
        return VEventHeader(flags: flags, sequence: sequence).bytes
    }

    /// `struct virtio_iommu_fault` (24 bytes).
    static func virtioFault(_ event: FaultEvent, endpoint: UInt32) -> [UInt8] {
        var reason = Virtio.reasonMapping
        var permissions: Permissions
        var address: UInt64?
        switch event {
        case .pageRequest(let r):
            permissions = r.permissions
            address = r.address
        case .unrecoverable(let f):
            permissions = f.permissions
            address = f.address
            switch f.reason {
            case FAULTRING_REASON_PASID_FETCH, FAULTRING_REASON_BAD_PASID_ENTRY, FAULTRING_REASON_PASID_INVALID:
                reason = Virtio.reasonDomain
            case FAULTRING_REASON_UNKNOWN, FAULTRING_REASON_WALK_EABT:
                reason = Virtio.reasonUnknown
            default:
                reason = Virtio.reasonMapping
            }
        }
        var flags: UInt32 = 0
        if permissions.contains(.read) { flags |= Virtio.flagRead }
        if permissions.contains(.write) { flags |= Virtio.flagWrite }
        if permissions.contains(.exec) { flags |= Virtio.flagExec }
        if address != nil { flags |= Virtio.flagAddress }
        return [reason, 0, 0, 0] + le32(flags) + le32(endpoint) + le32(0) + le64(address ?? 0)
    }

    /// A vSMMUv3 event record for an unrecoverable fault.
    static func smmuEvent(_ f: UnrecoverableFault, streamID: UInt32) -> SMMUv3EventRecord {
        let id: UInt8
        switch f.reason {
        case FAULTRING_REASON_OOR_ADDRESS: id = SMMUv3EventRecord.addressSize
        case FAULTRING_REASON_ACCESS: id = SMMUv3EventRecord.access
        case FAULTRING_REASON_PERMISSION: id = SMMUv3EventRecord.permission
        // A context-descriptor fetch or entry the IOMMU could not use: the configuration errors.
        case FAULTRING_REASON_PASID_FETCH, FAULTRING_REASON_BAD_PASID_ENTRY: id = SMMUv3EventRecord.badCD
        case FAULTRING_REASON_PASID_INVALID: id = SMMUv3EventRecord.badSubstreamID
        default: id = SMMUv3EventRecord.translation
        }
        return SMMUv3EventRecord(eventID: id, substreamID: f.pasid, streamID: streamID,
                                 privileged: f.permissions.contains(.privileged), instruction: f.permissions.contains(.exec),
                                 read: !f.permissions.contains(.write), inputAddress: f.address ?? 0,
                                 fetchAddress: f.fetchAddress ?? 0)
    }

    /// `struct iommu_hwpt_pgfault` (40 bytes; the iommufd fault-queue
    /// record), with the low 32 bits of the faultring cookie as its cookie.
    static func hwptPgfault(_ r: PageRequest, deviceID: UInt32) -> [UInt8] {
        var request = r
        request.deviceID = deviceID
        var record = HWPTPageFault(request, cookie: UInt32(truncatingIfNeeded: r.cookie))
        record.flags &= ~FAULTRING_IOMMU_PGFAULT_FLAGS_NEEDS_PASID  // kernel-internal: not in the uAPI a guest sees
        return record.bytes
    }

    func bytes(_ words: UInt64...) -> [UInt8] { words.flatMap(le64) }
}

func le32(_ v: UInt32) -> [UInt8] { LittleEndian.bytes(v) }
func le64(_ v: UInt64) -> [UInt8] { LittleEndian.bytes(v) }
