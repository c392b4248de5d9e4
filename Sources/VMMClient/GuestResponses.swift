import FaultABI
import IOMMUFormats
import PageRequests

/// The page-request groups a VMM has shown its guest and not yet answered,
/// so that the guest's answer — which names (endpoint, PASID, PRGI), not a
/// cookie — can be turned back into a page response for the queue.
///
/// Matching follows `AnswerMatcher`, the same rule the devices use.
public struct GuestPendingGroups: Sendable {
    struct Pending: Sendable {
        var cookie: UInt64
        var pasid: UInt32?
        var needsPASID: Bool
    }
    var byEndpoint: [UInt32: AnswerMatcher<Pending>] = [:]

    /// No group pending.
    public init() {}

    /// Groups awaiting the guest's answer.
    public var count: Int { byEndpoint.values.reduce(0) { $0 + $1.count } }

    /// Remembers a LAST_PAGE request shown to the guest as `endpoint`.
    public mutating func note(_ request: PageRequest, endpoint: UInt32) {
        byEndpoint[endpoint, default: AnswerMatcher()].expect(
            prgi: request.prgi, pasid: request.pasid, privateData: nil,
            Pending(cookie: request.cookie, pasid: request.pasid, needsPASID: request.needsPASID))
    }

    /// The page response for a guest's CMD_PRI_RESP or CMD_RESUME (16
    /// bytes). A CMD_RESUME answers a stalled fault, whose STAG was shown to
    /// the guest as the group index (RETRY → SUCCESS, TERM/ABORT → INVALID).
    /// - Throws: `.malformed` naming the field if the command is not a valid
    ///   CMD_PRI_RESP / CMD_RESUME; `.noPendingGroup` if it names no group
    ///   shown to the guest (twice, or never).
    public mutating func decodeSMMUv3(_ dw0: UInt64, _ dw1: UInt64) throws(GuestAnswerError) -> PageResponse {
        let command: SMMUv3Command
        do {
            command = try SMMUv3Command(words: dw0, dw1)
        } catch {
            throw .malformed(error)
        }
        switch command {
        case .priResponse(let sid, let ssid, let prgi, _):
            return try take(endpoint: sid, pasid: ssid, prgi: prgi, code: command.code)
        case .resume(let sid, let stag, _):
            return try take(endpoint: sid, pasid: nil, prgi: UInt32(stag), code: command.code)
        }
    }

    /// The page response for a guest's VT-d page group response descriptor,
    /// read as `dialect` says (by default as from a current Linux guest:
    /// response code 2 is its FAILURE, reserved bits are ignored).
    /// - Throws: `.malformed` naming the field, or `.noPendingGroup`.
    public mutating func decodeVTd(_ qw0: UInt64, _ qw1: UInt64, _ qw2: UInt64, _ qw3: UInt64,
                                   dialect: HardwareDialect = .linux) throws(GuestAnswerError) -> PageResponse
    {
        let descriptor: VTdPageGroupResponse
        do {
            descriptor = try VTdPageGroupResponse(words: qw0, qw1, qw2, qw3, dialect: dialect)
        } catch {
            throw .malformed(error)
        }
        return try take(endpoint: UInt32(descriptor.requesterID), pasid: descriptor.pasid, prgi: descriptor.prgIndex,
                    code: descriptor.code)
    }

    /// The pending group of (endpoint, PRGI, PASID) as a response: its
    /// cookie, and the PASID when the request needed it.
    mutating func take(endpoint: UInt32, pasid: UInt32?, prgi: UInt32, code: ResponseCode)
        throws(GuestAnswerError) -> PageResponse
    {
        guard let entry = byEndpoint[endpoint]?.take(prgi: prgi, pasid: pasid, privateData: nil) else {
            throw .noPendingGroup(endpoint: endpoint, prgi: prgi, pasid: pasid)
        }
        return PageResponse(code: code, cookie: entry.cookie, pasid: entry.needsPASID ? entry.pasid : nil, prgi: prgi)
    }
}

/// Why a guest's answer could not be turned into a page response.
public enum GuestAnswerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The command or descriptor is not a valid answer (the field is named).
    case malformed(HardwareRecordError)
    /// It names no group the VMM showed the guest: answered twice, or never asked.
    case noPendingGroup(endpoint: UInt32, prgi: UInt32, pasid: UInt32?)

    /// What was wrong, in words.
    public var description: String {
        switch self {
        case .malformed(let error): return "guest answer malformed: \(error)"
        case .noPendingGroup(let endpoint, let prgi, let pasid):
            return "guest answer for endpoint \(endpoint) PRGI \(prgi) PASID \(pasid.map(String.init) ?? "none"): no such group pending"
        }
    }
}
