import FaultABI

/// An Intel VT-d page request descriptor (32 bytes, 4 × LE u64):
///
/// ```
/// qw0 [7:0] type = 1   8 PASID present   9 private data present (VT-d ≤ 3.x)
///     [31:16] RID   [51:32] PASID   52 execute   53 privileged
/// qw1 0 read   1 write   2 LPIG (last page in group)   [11:3] PRG index   [63:12] page address
/// qw2, qw3   private data (when present)
/// ```
public struct VTdPageRequest: Sendable, Hashable {
    /// RID (bus:devfn), qw0 [31:16].
    public var requesterID: UInt16
    /// PASID, qw0 [51:32]; nil when PASID Present (qw0 bit 8) is clear.
    public var pasid: UInt32?
    /// Execute Requested, qw0 bit 52.
    public var execute: Bool
    /// Privileged Mode Requested, qw0 bit 53.
    public var privileged: Bool
    /// Read Requested, qw1 bit 0.
    public var read: Bool
    /// Write Requested, qw1 bit 1.
    public var write: Bool
    /// LPIG (last page in group), qw1 bit 2.
    public var lastInGroup: Bool
    /// PRG index, qw1 [11:3].
    public var prgIndex: UInt32
    /// Page address, qw1 [63:12] (the low 12 bits are zero).
    public var address: UInt64
    /// Private data in qw2 (`low`) and qw3 (`high`); nil when Private Data Present (qw0 bit 9) is clear.
    public var privateData: PrivateData?

    /// The descriptor type in qw0 [7:0]: 1, page request.
    public static let type: UInt64 = 0x1
    static let format = "VT-d page request descriptor"

    /// A descriptor from its fields. Nothing is checked here: `words` keeps only
    /// each field's width (PASID 20 bits, PRG index 9 bits, address bits 63:12).
    public init(requesterID: UInt16, pasid: UInt32?, execute: Bool = false, privileged: Bool = false, read: Bool,
                write: Bool, lastInGroup: Bool, prgIndex: UInt32, address: UInt64, privateData: PrivateData? = nil) {
        self.requesterID = requesterID
        self.pasid = pasid
        self.execute = execute
        self.privileged = privileged
        self.read = read
        self.write = write
        self.lastInGroup = lastInGroup
        self.prgIndex = prgIndex
        self.address = address
        self.privateData = privateData
    }

    /// The descriptor a device's request becomes on VT-d.
    public init(_ request: PageRequest, requesterID: UInt16) {
        self.init(requesterID: requesterID, pasid: request.pasid, execute: request.permissions.contains(.exec),
                  privileged: request.permissions.contains(.privileged), read: request.permissions.contains(.read),
                  write: request.permissions.contains(.write), lastInGroup: request.isLastPage,
                  prgIndex: request.prgi, address: request.address, privateData: request.privateData)
    }

    /// The four quadwords the IOMMU writes to the page request queue (qw2 and qw3
    /// are zero without private data).
    public var words: (UInt64, UInt64, UInt64, UInt64) {
        let qw0 = Self.type | Bits.flag(pasid != nil, 8) | Bits.flag(privateData != nil, 9)
            | Bits.put(UInt64(requesterID), 16, 16) | Bits.put(UInt64(pasid ?? 0), 32, 20) | Bits.flag(execute, 52)
            | Bits.flag(privileged, 53)
        let qw1 = Bits.flag(read, 0) | Bits.flag(write, 1) | Bits.flag(lastInGroup, 2) | Bits.put(UInt64(prgIndex), 3, 9)
            | (address & ~0xFFF)
        return (qw0, qw1, privateData?.low ?? 0, privateData?.high ?? 0)
    }

    /// Decodes a descriptor; qw2 and qw3 are read only when Private Data Present is set.
    /// - Throws: `HardwareRecordError` if the type (qw0 [7:0]) is not 1, or reserved
    ///   bits qw0 [15:10] or [63:54] are set.
    public init(words qw0: UInt64, _ qw1: UInt64, _ qw2: UInt64, _ qw3: UInt64) throws(HardwareRecordError) {
        func bad(_ field: String, _ value: UInt64, _ problem: String) -> HardwareRecordError {
            HardwareRecordError(format: Self.format, field: field, value: value, problem: problem)
        }
        guard Bits.get(qw0, 0, 8) == Self.type else { throw bad("type", Bits.get(qw0, 0, 8), "not a page request (1)") }
        guard Bits.get(qw0, 10, 6) == 0 else { throw bad("qw0[15:10]", Bits.get(qw0, 10, 6), "reserved, not zero") }
        guard Bits.get(qw0, 54, 10) == 0 else { throw bad("qw0[63:54]", Bits.get(qw0, 54, 10), "reserved, not zero") }
        requesterID = UInt16(Bits.get(qw0, 16, 16))
        pasid = Bits.flag(qw0, 8) ? UInt32(Bits.get(qw0, 32, 20)) : nil
        execute = Bits.flag(qw0, 52)
        privileged = Bits.flag(qw0, 53)
        read = Bits.flag(qw1, 0)
        write = Bits.flag(qw1, 1)
        lastInGroup = Bits.flag(qw1, 2)
        prgIndex = UInt32(Bits.get(qw1, 3, 9))
        address = qw1 & ~0xFFF
        privateData = Bits.flag(qw0, 9) ? PrivateData(low: qw2, high: qw3) : nil
    }

    /// The generic page request. Linux sets NEEDS_PASID whenever the
    /// descriptor carries a PASID; so does this decoder.
    public func pageRequest(deviceID: UInt32, timestampNS: UInt64 = 0) -> PageRequest {
        var permissions: Permissions = []
        if read { permissions.insert(.read) }
        if write { permissions.insert(.write) }
        if execute { permissions.insert(.exec) }
        if privileged { permissions.insert(.privileged) }
        return PageRequest(deviceID: deviceID, pasid: pasid, prgi: prgIndex, permissions: permissions, address: address,
                           isLastPage: lastInGroup, needsPASID: pasid != nil, privateData: privateData,
                           timestampNS: timestampNS)
    }
}

/// An Intel VT-d page group response descriptor (invalidation queue, type 9):
///
/// ```
/// qw0 [3:0] type = 9   4 PASID present   5 private data present
///     [15:12] response code (0 success, 1 invalid, 0xF failure)   [31:16] RID   [51:32] PASID
/// qw1 2 LPIG   [11:3] PRG index      qw2, qw3 private data (echoed)
/// ```
public struct VTdPageGroupResponse: Sendable, Hashable {
    /// RID (bus:devfn) of the device answered, qw0 [31:16].
    public var requesterID: UInt16
    /// PASID, qw0 [51:32]; nil when PASID Present (qw0 bit 4) is clear.
    public var pasid: UInt32?
    /// The PCIe code: 0x0 success, 0x1 invalid request, 0xF response failure.
    public var responseCode: UInt8
    /// PRG index being answered, qw1 [11:3].
    public var prgIndex: UInt32
    /// Private data echoed in qw2 (`low`) and qw3 (`high`); nil when Private Data Present (qw0 bit 5) is clear.
    public var privateData: PrivateData?

    /// The descriptor type in qw0 [3:0]: 9, page group response.
    public static let type: UInt64 = 0x9
    static let format = "VT-d page group response descriptor"

    /// The descriptor for a response. The generic FAILURE (2) is not the
    /// PCIe encoding: it becomes 0xF here (Lu Baolu: other values are taken
    /// as Response Failure anyway).
    public init(_ response: GroupResponse, requesterID: UInt16) {
        self.requesterID = requesterID
        pasid = response.pasid
        responseCode = response.code == .success ? 0x0 : response.code == .invalid ? 0x1 : 0xF
        prgIndex = response.prgi
        privateData = response.privateData
    }

    /// The four quadwords submitted to the invalidation queue, with the response
    /// code in qw0 [15:12]; LPIG (qw1 bit 2) is always set.
    public var words: (UInt64, UInt64, UInt64, UInt64) {
        let qw0 = Self.type | Bits.flag(pasid != nil, 4) | Bits.flag(privateData != nil, 5)
            | Bits.put(UInt64(responseCode), 12, 4) | Bits.put(UInt64(requesterID), 16, 16)
            | Bits.put(UInt64(pasid ?? 0), 32, 20)
        let qw1 = Bits.flag(true, 2) | Bits.put(UInt64(prgIndex), 3, 9)
        return (qw0, qw1, privateData?.low ?? 0, privateData?.high ?? 0)
    }

    /// Decodes a descriptor; qw2 and qw3 are read only when Private Data Present is set.
    /// - Throws: `HardwareRecordError` if the type (qw0 [3:0]) is not 9, the response
    ///   code (qw0 [15:12]) is not 0, 1 or 0xF, or LPIG (qw1 bit 2) is clear.
    public init(words qw0: UInt64, _ qw1: UInt64, _ qw2: UInt64, _ qw3: UInt64) throws(HardwareRecordError) {
        func bad(_ field: String, _ value: UInt64, _ problem: String) -> HardwareRecordError {
            HardwareRecordError(format: Self.format, field: field, value: value, problem: problem)
        }
        guard Bits.get(qw0, 0, 4) == Self.type else { throw bad("type", Bits.get(qw0, 0, 4), "not a page group response (9)") }
        let code = UInt8(Bits.get(qw0, 12, 4))
        guard code == 0x0 || code == 0x1 || code == 0xF else { throw bad("response code", UInt64(code), "not 0, 1 or 0xF") }
        guard Bits.flag(qw1, 2) else { throw bad("LPIG", 0, "a page group response answers the last page") }
        requesterID = UInt16(Bits.get(qw0, 16, 16))
        pasid = Bits.flag(qw0, 4) ? UInt32(Bits.get(qw0, 32, 20)) : nil
        responseCode = code
        prgIndex = UInt32(Bits.get(qw1, 3, 9))
        privateData = Bits.flag(qw0, 5) ? PrivateData(low: qw2, high: qw3) : nil
    }

    /// The generic code the device acts on.
    public var code: ResponseCode { responseCode == 0 ? .success : responseCode == 1 ? .invalid : .failure }
}
