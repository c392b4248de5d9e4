import FaultABI
import IOMMUFormats
import PageRequests

/// How a simulated device's traffic reaches the service: as generic
/// structures, or as raw hardware records that go through the decoders
/// (and its answers as raw response commands/descriptors, decoded back).
public enum HardwareWire: String, Sendable, Hashable, Codable, CaseIterable {
    /// Generic `PageRequest` / `DeviceCompletion`.
    case direct
    /// SMMUv3 PRI queue records in, CMD_PRI_RESP out (no private data on SMMUv3).
    case smmuv3
    /// VT-d 4 page request descriptors in, page group response descriptors
    /// out, as current Linux (≥ 6.10) reads them: no private data.
    case vtd
    /// VT-d 3.x descriptors as Linux ≤ 6.9 read them: private data in the
    /// request (PDP) and echoed in the response.
    case vtd3

    /// The VT-d revision the descriptors follow, for the two VT-d wires.
    public var vtdRevision: VTdRevision? {
        switch self {
        case .direct, .smmuv3: return nil
        case .vtd: return .v4
        case .vtd3: return .v3
        }
    }

    /// Whether a device's private data reaches the service and comes back:
    /// SMMUv3 PRI records and VT-d 4 descriptors have no field for it.
    public var carriesPrivateData: Bool { self == .direct || self == .vtd3 }

    /// The request as the service sees it after the raw record was decoded.
    /// StreamID / RID equal the device id in the simulation. Records are
    /// decoded strictly (`HardwareDialect.strict`), so that every run also
    /// shows the encoders set no reserved bit.
    public func carry(_ request: PageRequest, needsPASID: Bool) throws(HardwareRecordError) -> PageRequest {
        switch self {
        case .direct:
            return request
        case .smmuv3:
            let (dw0, dw1) = SMMUv3PRIRecord(request, streamID: request.deviceID).words
            let record = try SMMUv3PRIRecord(words: dw0, dw1, dialect: .spec)
            return record.pageRequest(deviceID: record.streamID, needsPASID: needsPASID,
                                      timestampNS: request.timestampNS)
        case .vtd, .vtd3:
            let revision = vtdRevision ?? .v4
            let (q0, q1, q2, q3) = VTdPageRequest(request, requesterID: UInt16(truncatingIfNeeded: request.deviceID))
                .words(revision)
            let descriptor = try VTdPageRequest(words: q0, q1, q2, q3, dialect: HardwareDialect(vtd: revision, strict: true))
            return descriptor.pageRequest(deviceID: UInt32(descriptor.requesterID), timestampNS: request.timestampNS)
        }
    }

    /// The completion as the device sees it after the raw response was decoded.
    public func carry(_ completion: DeviceCompletion) throws(HardwareRecordError) -> DeviceCompletion {
        var seen = completion
        let answer = GroupResponse(pasid: completion.pasid, prgi: completion.prgi, code: completion.code,
                                   privateData: completion.privateData)
        switch self {
        case .direct:
            return completion
        case .smmuv3:
            let (dw0, dw1) = SMMUv3Command.priResponse(for: answer, streamID: completion.deviceID).words
            let command = try SMMUv3Command(words: dw0, dw1)
            guard case .priResponse(let sid, let ssid, let prgi, _) = command else {
                throw HardwareRecordError(format: "SMMUv3 command", field: "opcode", value: dw0 & 0xFF,
                                          problem: "expected CMD_PRI_RESP")
            }
            seen.deviceID = sid
            seen.pasid = ssid
            seen.prgi = prgi
            seen.code = command.code
            seen.privateData = nil
        case .vtd, .vtd3:
            let revision = vtdRevision ?? .v4
            let (q0, q1, q2, q3) = VTdPageGroupResponse(answer, requesterID: UInt16(truncatingIfNeeded: completion.deviceID))
                .words(revision)
            let descriptor = try VTdPageGroupResponse(words: q0, q1, q2, q3, dialect: HardwareDialect(vtd: revision, strict: true))
            seen.deviceID = UInt32(descriptor.requesterID)
            seen.pasid = descriptor.pasid
            seen.prgi = descriptor.prgIndex
            seen.code = descriptor.code
            seen.privateData = descriptor.privateData
        }
        return seen
    }
}
