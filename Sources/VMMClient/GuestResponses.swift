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
    /// bytes), or nil if it is malformed or names no pending group. A
    /// CMD_RESUME answers a stalled fault, whose STAG was shown to the guest
    /// as the group index (RETRY → SUCCESS, TERM/ABORT → INVALID).
    public mutating func decodeSMMUv3(_ dw0: UInt64, _ dw1: UInt64) -> PageResponse? {
        guard let command = try? SMMUv3Command(words: dw0, dw1) else { return nil }
        switch command {
        case .priResponse(let sid, let ssid, let prgi, _):
            return take(endpoint: sid, pasid: ssid, prgi: prgi, code: command.code)
        case .resume(let sid, let stag, _):
            return take(endpoint: sid, pasid: nil, prgi: UInt32(stag), code: command.code)
        }
    }

    /// The page response for a guest's VT-d page group response descriptor,
    /// or nil if it is malformed or names no pending group.
    public mutating func decodeVTd(_ qw0: UInt64, _ qw1: UInt64, _ qw2: UInt64, _ qw3: UInt64) -> PageResponse? {
        guard let descriptor = try? VTdPageGroupResponse(words: qw0, qw1, qw2, qw3) else { return nil }
        return take(endpoint: UInt32(descriptor.requesterID), pasid: descriptor.pasid, prgi: descriptor.prgIndex,
                    code: descriptor.code)
    }

    /// The pending group of (endpoint, PRGI, PASID) as a response: its
    /// cookie, and the PASID when the request needed it.
    mutating func take(endpoint: UInt32, pasid: UInt32?, prgi: UInt32, code: ResponseCode) -> PageResponse? {
        guard let entry = byEndpoint[endpoint]?.take(prgi: prgi, pasid: pasid, privateData: nil) else { return nil }
        return PageResponse(code: code, cookie: entry.cookie, pasid: entry.needsPASID ? entry.pasid : nil, prgi: prgi)
    }
}
