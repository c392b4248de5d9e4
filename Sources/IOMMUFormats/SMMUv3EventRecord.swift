import CFaultRingABI
import FaultABI

/// An Arm SMMUv3 event queue record (32 bytes, 4 × LE u64; Linux `EVTQ_*`):
///
/// ```
/// dw0 [7:0] EventID  11 SSV  [31:12] SubstreamID  [63:32] StreamID
/// dw1 [15:0] STAG  31 Stall  33 PnU  34 InD  35 RnW  39 S2  [41:40] CLASS  44 TTRnW
/// dw2 InputAddr      dw3 [51:3] FetchAddr / [51:12] IPA
/// ```
///
/// A stalled translation fault (Stall = 1) is a recoverable page request
/// answered with CMD_RESUME; other faults are unrecoverable.
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
    /// InputAddr, dw2 [63:0]: the faulting input address.
    public var inputAddress: UInt64
    /// FetchAddr, dw3 [51:3] (address bits 51:3, low 3 bits zero); 0 when absent.
    public var fetchAddress: UInt64

    /// F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION: the faults that may stall.
    public static let translation: UInt8 = 0x10
    /// F_ADDR_SIZE (0x11).
    public static let addressSize: UInt8 = 0x11
    /// F_ACCESS (0x12).
    public static let access: UInt8 = 0x12
    /// F_PERMISSION (0x13).
    public static let permission: UInt8 = 0x13
    static let format = "SMMUv3 event record"

    /// A record from its fields; the defaults describe a non-stalled stage-1 fault.
    /// Nothing is checked here: `words` keeps only each field's width.
    public init(eventID: UInt8, substreamID: UInt32?, streamID: UInt32, stallTag: UInt16 = 0, stall: Bool = false,
                privileged: Bool = false, instruction: Bool = false, read: Bool, stage2: Bool = false,
                eventClass: UInt8 = 0, inputAddress: UInt64, fetchAddress: UInt64 = 0) {
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
        self.inputAddress = inputAddress
        self.fetchAddress = fetchAddress
    }

    /// The four words the SMMU writes.
    public var words: (UInt64, UInt64, UInt64, UInt64) {
        let dw0 = UInt64(eventID) | Bits.flag(substreamID != nil, 11) | Bits.put(UInt64(substreamID ?? 0), 12, 20)
            | Bits.put(UInt64(streamID), 32, 32)
        let dw1 = UInt64(stallTag) | Bits.flag(stall, 31) | Bits.flag(privileged, 33) | Bits.flag(instruction, 34)
            | Bits.flag(read, 35) | Bits.flag(stage2, 39) | Bits.put(UInt64(eventClass), 40, 2)
        return (dw0, dw1, inputAddress, fetchAddress & 0x000F_FFFF_FFFF_FFF8)
    }

    /// Decodes a record. An unknown event ID is accepted (the service logs
    /// it as unrecoverable); a stall on an event that cannot stall is not.
    public init(words dw0: UInt64, _ dw1: UInt64, _ dw2: UInt64, _ dw3: UInt64) throws(HardwareRecordError) {
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
        inputAddress = dw2
        fetchAddress = Bits.get(dw3, 3, 49) << 3
        guard !stall || (Self.translation...Self.permission).contains(eventID) else {
            throw HardwareRecordError(format: Self.format, field: "Stall", value: UInt64(eventID),
                                      problem: "event ID cannot stall")
        }
    }

    /// What the record reports: a page request (stalled faults, answered by
    /// CMD_RESUME with this STAG as the group index) or an unrecoverable fault.
    public func fault(deviceID: UInt32, timestampNS: UInt64 = 0) -> FaultEvent {
        var permissions: Permissions = read ? .read : .write
        if instruction { permissions.insert(.exec) }
        if privileged { permissions.insert(.privileged) }
        if stall {
            return .pageRequest(PageRequest(
                deviceID: deviceID, pasid: substreamID, prgi: UInt32(stallTag), permissions: permissions,
                address: inputAddress & ~0xFFF, isLastPage: true, needsPASID: substreamID != nil,
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
