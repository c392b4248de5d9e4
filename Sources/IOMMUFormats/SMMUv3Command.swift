import FaultABI

/// The SMMUv3 commands that answer faults (16 bytes, 2 × LE u64).
///
/// CMD_PRI_RESP (0x41): dw0 [7:0] opcode, 11 SSV, [31:12] SSID, [63:32] SID;
/// dw1 [8:0] PRG index, [13:12] Resp (0 DENY, 1 FAIL, 2 SUCC).
/// CMD_RESUME (0x44): dw0 [7:0] opcode, [13:12] action (0 TERM, 1 RETRY,
/// 2 ABORT), [63:32] SID; dw1 [15:0] STAG.
public enum SMMUv3Command: Sendable, Hashable {
    /// CMD_PRI_RESP: SID in dw0 [63:32], SSID in dw0 [31:12] with SSV (bit 11)
    /// set when `substreamID` is non-nil, PRG index in dw1 [8:0], Resp in dw1 [13:12].
    case priResponse(streamID: UInt32, substreamID: UInt32?, prgIndex: UInt32, response: PRIResponse)
    /// CMD_RESUME: SID in dw0 [63:32], action in dw0 [13:12], STAG in dw1 [15:0].
    case resume(streamID: UInt32, stallTag: UInt16, action: ResumeAction)

    /// The Resp field of CMD_PRI_RESP (dw1 [13:12]), Linux's `PRI_RESP_*` values.
    public enum PRIResponse: UInt64, Sendable, Hashable {
        /// DENY (0), FAIL (1), SUCC (2); 3 is not a valid Resp.
        case deny = 0, fail = 1, success = 2
    }

    /// The action field of CMD_RESUME (dw0 [13:12]), Linux's `CMDQ_RESUME_0_RESP_*` values.
    public enum ResumeAction: UInt64, Sendable, Hashable {
        /// TERM (0), RETRY (1), ABORT (2); 3 is not a valid action.
        case terminate = 0, retry = 1, abort = 2
    }

    /// Opcode of CMD_PRI_RESP (dw0 [7:0]).
    public static let opPRIResponse: UInt64 = 0x41
    /// Opcode of CMD_RESUME (dw0 [7:0]).
    public static let opResume: UInt64 = 0x44
    static let format = "SMMUv3 command"

    /// CMD_PRI_RESP for a response: SUCCESS → SUCC, INVALID → DENY,
    /// FAILURE → FAIL; SSV/SSID only when the answer echoes a PASID.
    public static func priResponse(for answer: GroupResponse, streamID: UInt32) -> SMMUv3Command {
        let response: PRIResponse = answer.code == .success ? .success : answer.code == .failure ? .fail : .deny
        return .priResponse(streamID: streamID, substreamID: answer.pasid, prgIndex: answer.prgi, response: response)
    }

    /// CMD_RESUME for a stalled transaction: SUCCESS retries, anything else
    /// aborts (as Linux's `arm_smmu_page_response` does).
    public static func resume(for answer: GroupResponse, streamID: UInt32, stallTag: UInt16) -> SMMUv3Command {
        .resume(streamID: streamID, stallTag: stallTag, action: answer.code == .success ? .retry : .abort)
    }

    /// The two words written to the command queue.
    public var words: (UInt64, UInt64) {
        switch self {
        case .priResponse(let sid, let ssid, let prgi, let response):
            let dw0 = Self.opPRIResponse | Bits.flag(ssid != nil, 11) | Bits.put(UInt64(ssid ?? 0), 12, 20)
                | Bits.put(UInt64(sid), 32, 32)
            return (dw0, Bits.put(UInt64(prgi), 0, 9) | Bits.put(response.rawValue, 12, 2))
        case .resume(let sid, let stag, let action):
            return (Self.opResume | Bits.put(action.rawValue, 12, 2) | Bits.put(UInt64(sid), 32, 32), UInt64(stag))
        }
    }

    /// Decodes a command of one of the two kinds.
    public init(words dw0: UInt64, _ dw1: UInt64) throws(HardwareRecordError) {
        func bad(_ field: String, _ value: UInt64, _ problem: String) -> HardwareRecordError {
            HardwareRecordError(format: Self.format, field: field, value: value, problem: problem)
        }
        switch Bits.get(dw0, 0, 8) {
        case Self.opPRIResponse:
            guard let response = PRIResponse(rawValue: Bits.get(dw1, 12, 2)) else {
                throw bad("Resp", Bits.get(dw1, 12, 2), "not DENY, FAIL or SUCC")
            }
            let ssv = Bits.flag(dw0, 11)
            self = .priResponse(streamID: UInt32(Bits.get(dw0, 32, 32)), substreamID: ssv ? UInt32(Bits.get(dw0, 12, 20)) : nil,
                                prgIndex: UInt32(Bits.get(dw1, 0, 9)), response: response)
        case Self.opResume:
            guard let action = ResumeAction(rawValue: Bits.get(dw0, 12, 2)) else {
                throw bad("Action", Bits.get(dw0, 12, 2), "not TERM, RETRY or ABORT")
            }
            self = .resume(streamID: UInt32(Bits.get(dw0, 32, 32)), stallTag: UInt16(truncatingIfNeeded: dw1),
                           action: action)
        default:
            throw bad("opcode", Bits.get(dw0, 0, 8), "not CMD_PRI_RESP (0x41) or CMD_RESUME (0x44)")
        }
    }

    /// The response code a device sees.
    public var code: ResponseCode {
        switch self {
        case .priResponse(_, _, _, let r): return r == .success ? .success : r == .fail ? .failure : .invalid
        case .resume(_, _, let a): return a == .retry ? .success : .invalid
        }
    }
}
