import FaultABI
import IOMMUFormats

/// One page request's round trip through the guest's own vIOMMU format:
/// the VMM writes it into the guest's queue (a vSMMUv3 PRI record or a VT-d
/// page request descriptor), the guest's driver reads it from there, and
/// the driver's answer (CMD_PRI_RESP, or a VT-d page group response) is
/// decoded back into a page response for the faultring queue.
///
/// The reference VMM and the nested guest model both go this way, so a
/// guest only ever sees what its hardware format can carry.
public struct GuestFormatPath: Sendable {
    /// What the guest's driver read from its queue.
    public struct Seen: Sendable, Hashable {
        /// The endpoint (vSID / requester id) the request came from.
        public var endpoint: UInt32
        /// Its PASID, if any.
        public var pasid: UInt32?
        /// The page.
        public var address: UInt64
        /// Write access requested.
        public var write: Bool
        /// Execute access requested.
        public var execute: Bool
        /// Privileged access requested.
        public var privileged: Bool
    }

    /// The guest's format.
    public let format: GuestFormat
    /// How the VT-d descriptors are read and written.
    public let dialect: HardwareDialect
    var pending = GuestPendingGroups()

    /// A path through `format` (`.virtio` and `.veventq` have no page-response
    /// format of their own: the VMM answers for the guest).
    public init(format: GuestFormat, dialect: HardwareDialect = .linux) {
        self.format = format
        self.dialect = dialect
    }

    /// An unrecoverable fault as the guest's driver reads it from its event
    /// queue: the vSMMUv3 event record's type (`F_TRANSLATION`,
    /// `F_PERMISSION`, `C_BAD_CD`, …), read back from the record's bytes.
    /// Nil when the guest's format has no event record for it: VT-d reports
    /// such faults through fault-recording registers, which are not
    /// modelled, so the VMM keeps the fault (and counts it).
    public func presentEvent(_ fault: UnrecoverableFault, endpoint: UInt32) -> String? {
        guard format == .smmuv3 else { return nil }
        var encoder = GuestEncoder(format: .smmuv3)
        guard let bytes = encoder.encode(.event(.unrecoverable(fault), sequence: nil), endpoint: endpoint),
              bytes.count == 32 else { return nil }
        let w = (0..<4).map { i in LittleEndian.uint64(bytes, at: i * 8) }
        guard let record = try? SMMUv3EventRecord(words: w[0], w[1], w[2], w[3], dialect: dialect) else { return nil }
        return SMMUv3EventRecord.name(of: record.eventID)
    }

    /// The request as the guest's driver reads it from its queue.
    /// - Throws: `HardwareRecordError` if the guest format cannot carry it.
    public func present(_ request: PageRequest, endpoint: UInt32) throws(HardwareRecordError) -> Seen {
        switch format {
        case .smmuv3:
            let (dw0, dw1) = SMMUv3PRIRecord(request, streamID: endpoint).words
            let r = try SMMUv3PRIRecord(words: dw0, dw1, dialect: dialect)
            return Seen(endpoint: r.streamID, pasid: r.substreamID, address: r.address, write: r.write,
                        execute: r.execute, privileged: r.privileged)
        case .vtd:
            let (a, b, c, d) = VTdPageRequest(request, requesterID: UInt16(truncatingIfNeeded: endpoint)).words(dialect.vtd)
            let r = try VTdPageRequest(words: a, b, c, d, dialect: dialect)
            return Seen(endpoint: UInt32(r.requesterID), pasid: r.pasid, address: r.address, write: r.write,
                        execute: r.execute, privileged: r.privileged)
        case .virtio, .veventq:
            return Seen(endpoint: endpoint, pasid: request.pasid, address: request.address,
                        write: request.permissions.contains(.write), execute: request.permissions.contains(.exec),
                        privileged: request.permissions.contains(.privileged))
        }
    }

    /// The guest answers `code` to `request` in its own format; the VMM
    /// decodes that answer back into a page response.
    /// - Throws: `GuestAnswerError` if the answer does not decode or names no
    ///   group shown to the guest.
    public mutating func answer(_ request: PageRequest, endpoint: UInt32, code: ResponseCode)
        throws(GuestAnswerError) -> PageResponse
    {
        let answer = GroupResponse(pasid: request.needsPASID ? request.pasid : nil, prgi: request.prgi, code: code)
        switch format {
        case .smmuv3:
            pending.note(request, endpoint: endpoint)
            let (dw0, dw1) = SMMUv3Command.priResponse(for: answer, streamID: endpoint).words
            return try pending.decodeSMMUv3(dw0, dw1)
        case .vtd:
            pending.note(request, endpoint: endpoint)
            let (a, b, c, d) = VTdPageGroupResponse(answer, requesterID: UInt16(truncatingIfNeeded: endpoint))
                .words(dialect.vtd)
            return try pending.decodeVTd(a, b, c, d, dialect: dialect)
        case .virtio, .veventq:
            return PageResponse(code: code, cookie: request.cookie, pasid: request.needsPASID ? request.pasid : nil,
                                prgi: request.prgi)
        }
    }
}
