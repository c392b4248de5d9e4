import CFaultRingABI
import FaultABI

/// An Arm SMMUv3 event queue record (32 bytes, 4 × LE u64; Linux `EVTQ_*`):
///
/// ```
/// dw0 [7:0] EventID  11 SSV  [31:12] SubstreamID  [63:32] StreamID
/// dw1 [15:0] STAG  31 Stall  33 PnU  34 InD  35 RnW  39 S2  [41:40] CLASS  44 TTRnW (TT_READ)
/// dw2 InputAddr      dw3 [51:3] FetchAddr / [51:12] IPA
/// ```
///
/// A stalled fault (Stall = 1) is a recoverable page request answered with
/// CMD_RESUME; other faults are unrecoverable. Fields and IDs checked against
/// `EVTQ_*` / `EVT_ID_*` in Linux `arm-smmu-v3.h` and `arm_smmu_decode_event`.
public struct SMMUv3EventRecord: Sendable, Hashable {
    /// EventID, dw0 [7:0] (e.g. 0x10 F_TRANSLATION).
    public var eventID: UInt8
    /// SubstreamID, dw0 [31:12] (20 bits); nil when SSV (dw0 bit 11) is clear.
    public var substreamID: UInt32?
    /// StreamID, dw0 [63:32].
    public var streamID: UInt32
    /// STAG, dw1 [15:0]: the stall tag CMD_RESUME echoes (meaningful only when `stall`).
    public var stallTag: UInt16
    /// Stall, dw1 bit 31: the transaction is held until CMD_RESUME.
    public var stall: Bool
    /// PnU, dw1 bit 33: the access was privileged.
    public var privileged: Bool
    /// InD, dw1 bit 34: the access was an instruction fetch.
    public var instruction: Bool
    /// RnW, dw1 bit 35: true for a read, false for a write.
    public var read: Bool
    /// S2, dw1 bit 39: the fault occurred at stage 2.
    public var stage2: Bool
    /// CLASS, dw1 [41:40]: 0 CD fetch, 1 stage-1 table walk, 2 input address.
    public var eventClass: UInt8
    /// TTRnW, dw1 bit 44 (Linux `EVTQ_1_TT_READ`): with CLASS = 1, the table
    /// walk that faulted was a read (1) or a write (0, a hardware update of
    /// the access or dirty flag). Linux reads it for F_PERMISSION.
    public var tableWalkRead: Bool
    /// InputAddr, dw2 [63:0]: the faulting input address.
    public var inputAddress: UInt64
    /// FetchAddr, dw3 [51:3] (address bits 51:3, low 3 bits zero); 0 when absent.
    public var fetchAddress: UInt64

    /// C_BAD_STE (0x04).
    public static let badSTE: UInt8 = 0x04
    /// F_STREAM_DISABLED (0x06).
    public static let streamDisabled: UInt8 = 0x06
    /// C_BAD_SUBSTREAMID (0x08).
    public static let badSubstreamID: UInt8 = 0x08
    /// C_BAD_CD (0x0a).
    public static let badCD: UInt8 = 0x0A
    /// F_TRANSLATION (0x10).
    public static let translation: UInt8 = 0x10
    /// F_ADDR_SIZE (0x11).
    public static let addressSize: UInt8 = 0x11
    /// F_ACCESS (0x12).
    public static let access: UInt8 = 0x12
    /// F_PERMISSION (0x13).
    public static let permission: UInt8 = 0x13
    static let format = "SMMUv3 event record"

    /// The architecture's name of event `id` (`F_TRANSLATION`), or its number in hex.
    public static func name(of id: UInt8) -> String {
        switch id {
        case badSTE: "C_BAD_STE"
        case streamDisabled: "F_STREAM_DISABLED"
        case badSubstreamID: "C_BAD_SUBSTREAMID"
        case badCD: "C_BAD_CD"
        case translation: "F_TRANSLATION"
        case addressSize: "F_ADDR_SIZE"
        case access: "F_ACCESS"
        case permission: "F_PERMISSION"
        default: "event 0x" + String(id, radix: 16)
        }
    }

    /// The events that may stall by the architecture: F_TRANSLATION,
    /// F_ADDR_SIZE, F_ACCESS, F_PERMISSION.
    public static let stallable: ClosedRange<UInt8> = translation...permission
    /// The events Linux's `arm_smmu_handle_event` handles, and so reports as a
    /// page request when stalled: the four above and the four configuration
    /// errors C_BAD_STE, F_STREAM_DISABLED, C_BAD_SUBSTREAMID, C_BAD_CD.
    public static let linuxHandled: Set<UInt8> = [badSTE, streamDisabled, badSubstreamID, badCD, translation,
                                                  addressSize, access, permission]

    /// A record from its fields; the defaults describe a non-stalled stage-1 fault.
    /// Nothing is checked here: `words` keeps only each field's width.
    public init(eventID: UInt8, substreamID: UInt32?, streamID: UInt32, stallTag: UInt16 = 0, stall: Bool = false,
                privileged: Bool = false, instruction: Bool = false, read: Bool, stage2: Bool = false,
                eventClass: UInt8 = 0, tableWalkRead: Bool = false, inputAddress: UInt64, fetchAddress: UInt64 = 0) {
        self.eventID = eventID
        self.substreamID = substreamID
        self.streamID = streamID
        self.stallTag = stallTag
        self.stall = stall
        self.privileged = privileged
        self.instruction = instruction
        self.read = read
        self.stage2 = stage2
        self.eventClass = eventClass
        self.tableWalkRead = tableWalkRead
        self.inputAddress = inputAddress
        self.fetchAddress = fetchAddress
    }

    /// The four words the SMMU writes.
    public var words: (UInt64, UInt64, UInt64, UInt64) {
        let dw0 = UInt64(eventID) | Bits.flag(substreamID != nil, 11) | Bits.put(UInt64(substreamID ?? 0), 12, 20)
            | Bits.put(UInt64(streamID), 32, 32)
        let dw1 = UInt64(stallTag) | Bits.flag(stall, 31) | Bits.flag(privileged, 33) | Bits.flag(instruction, 34)
            | Bits.flag(read, 35) | Bits.flag(stage2, 39) | Bits.put(UInt64(eventClass), 40, 2)
            | Bits.flag(tableWalkRead, 44)
        return (dw0, dw1, inputAddress, fetchAddress & 0x000F_FFFF_FFFF_FFF8)
    }

    /// Decodes a record as `dialect` reads it. An unknown event ID is accepted
    /// as an unrecoverable fault of reason UNKNOWN.
    /// - Throws: `HardwareRecordError` for a stall on an event Linux does not
    ///   handle (`linuxHandled`: Linux would never report it, and the stalled
    ///   transaction would wait forever; here it is named instead); with
    ///   `dialect.strict`, for a stall on any event outside `stallable`.
    public init(words dw0: UInt64, _ dw1: UInt64, _ dw2: UInt64, _ dw3: UInt64,
                dialect: HardwareDialect = .linux) throws(HardwareRecordError) {
        eventID = UInt8(truncatingIfNeeded: dw0)
        substreamID = Bits.flag(dw0, 11) ? UInt32(Bits.get(dw0, 12, 20)) : nil
        streamID = UInt32(Bits.get(dw0, 32, 32))
        stallTag = UInt16(truncatingIfNeeded: dw1)
        stall = Bits.flag(dw1, 31)
        privileged = Bits.flag(dw1, 33)
        instruction = Bits.flag(dw1, 34)
        read = Bits.flag(dw1, 35)
        stage2 = Bits.flag(dw1, 39)
        eventClass = UInt8(Bits.get(dw1, 40, 2))
        tableWalkRead = Bits.flag(dw1, 44)
        inputAddress = dw2
        fetchAddress = Bits.get(dw3, 3, 49) << 3
        guard !stall || (dialect.strict ? Self.stallable.contains(eventID) : Self.linuxHandled.contains(eventID)) else {
            throw HardwareRecordError(format: Self.format, field: "Stall", value: UInt64(eventID),
                                      problem: dialect.strict ? "event ID cannot stall (only 0x10 to 0x13 may)"
                                          : "stall on an event ID Linux does not handle")
        }
    }

    /// What the record reports: a page request (stalled faults, answered by
    /// CMD_RESUME with this STAG as the group index) or an unrecoverable fault.
    ///
    /// A stall is reported as Linux reports it: the full InputAddr (not
    /// page-aligned: it is the faulting access), LAST_PAGE, PASID_VALID with
    /// SSV, and never NEEDS_PASID, because CMD_RESUME names a StreamID and a
    /// STAG and has no SubstreamID field for an answer's PASID to fill.
    public func fault(deviceID: UInt32, timestampNS: UInt64 = 0) -> FaultEvent {
        let permissions = Permissions(read: read, write: !read, exec: instruction, privileged: privileged)
        if stall {
            return .pageRequest(PageRequest(
                deviceID: deviceID, pasid: substreamID, prgi: UInt32(stallTag), permissions: permissions,
                address: inputAddress, isLastPage: true, needsPASID: false,
                timestampNS: timestampNS))
        }
        let reason: UInt32
        switch eventID {
        case Self.translation: reason = FAULTRING_REASON_PTE_FETCH
        case Self.addressSize: reason = FAULTRING_REASON_OOR_ADDRESS
        case Self.access: reason = FAULTRING_REASON_ACCESS
        case Self.permission: reason = FAULTRING_REASON_PERMISSION
        default: reason = FAULTRING_REASON_UNKNOWN
        }
        return .unrecoverable(UnrecoverableFault(
            deviceID: deviceID, reason: reason, pasid: substreamID, permissions: permissions, address: inputAddress,
            fetchAddress: fetchAddress == 0 ? nil : fetchAddress, timestampNS: timestampNS))
    }
}
