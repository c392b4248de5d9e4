import FaultABI

/// An Intel VT-d page request descriptor (32 bytes, 4 × LE u64):
///
/// ```
/// qw0 [7:0] type = 1   8 PASID present   9 private data present (VT-d 3 only; reserved in 4)
///     [31:16] RID   [51:32] PASID   52 execute   53 privileged
/// qw1 0 read   1 write   2 LPIG (last page in group)   [11:3] PRG index   [63:12] page address
/// qw2, qw3   private data (VT-d 3, when present; reserved in 4)
/// ```
///
/// Checked against `struct page_req_dsc` in Linux `drivers/iommu/intel/prq.c`
/// (VT-d 4) and the pre-6.10 `svm.c` (VT-d 3).
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
    /// VT-d 3 private data in qw2 (`low`) and qw3 (`high`); nil when Private
    /// Data Present (qw0 bit 9) is clear, and always nil in VT-d 4.
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

    /// The descriptor a device's request becomes on VT-d. Its private data
    /// is kept here; only `words(.v3)` writes it (VT-d 4 has no field for
    /// it, so a device model for VT-d 4 must not expect it echoed).
    public init(_ request: PageRequest, requesterID: UInt16) {
        self.init(requesterID: requesterID, pasid: request.pasid, execute: request.permissions.contains(.exec),
                  privileged: request.permissions.contains(.privileged), read: request.permissions.contains(.read),
                  write: request.permissions.contains(.write), lastInGroup: request.isLastPage,
                  prgIndex: request.prgi, address: request.address, privateData: request.privateData)
    }

    /// The four quadwords the IOMMU writes to the page request queue. PDP and
    /// qw2/qw3 are written only in VT-d 3; in VT-d 4 they are zero.
    public func words(_ revision: VTdRevision = .v4) -> (UInt64, UInt64, UInt64, UInt64) {
        let data = revision == .v3 ? privateData : nil
        let qw0 = Self.type | Bits.flag(pasid != nil, 8) | Bits.flag(data != nil, 9)
            | Bits.put(UInt64(requesterID), 16, 16) | Bits.put(UInt64(pasid ?? 0), 32, 20) | Bits.flag(execute, 52)
            | Bits.flag(privileged, 53)
        let qw1 = Bits.flag(read, 0) | Bits.flag(write, 1) | Bits.flag(lastInGroup, 2) | Bits.put(UInt64(prgIndex), 3, 9)
            | (address & ~0xFFF)
        return (qw0, qw1, data?.low ?? 0, data?.high ?? 0)
    }

    /// Decodes a descriptor as `dialect` reads it. qw2 and qw3 are read only
    /// in VT-d 3 with Private Data Present set.
    /// - Throws: `HardwareRecordError` if the type (qw0 [7:0]) is not 1; with
    ///   `dialect.strict`, also if a reserved bit is set: qw0 [15:10] and
    ///   [63:54] (VT-d 3), or qw0 [15:9], [63:54], qw2 or qw3 (VT-d 4, where
    ///   bit 9 set usually means a VT-d 3 producer).
    public init(words qw0: UInt64, _ qw1: UInt64, _ qw2: UInt64, _ qw3: UInt64,
                dialect: HardwareDialect = .linux) throws(HardwareRecordError) {
        func bad(_ field: String, _ value: UInt64, _ problem: String) -> HardwareRecordError {
            HardwareRecordError(format: Self.format, field: field, value: value, problem: problem)
        }
        guard Bits.get(qw0, 0, 8) == Self.type else { throw bad("type", Bits.get(qw0, 0, 8), "not a page request (1)") }
        let v3 = dialect.vtd == .v3
        if dialect.strict {
            let low = v3 ? 10 : 9
            guard Bits.get(qw0, low, 16 - low) == 0 else {
                throw bad("qw0[15:\(low)]", Bits.get(qw0, low, 16 - low),
                          v3 ? "reserved, not zero" : "reserved in VT-d 4, not zero (bit 9 was Private Data Present in VT-d 3)")
            }
            guard Bits.get(qw0, 54, 10) == 0 else { throw bad("qw0[63:54]", Bits.get(qw0, 54, 10), "reserved, not zero") }
            guard v3 || qw2 == 0 else { throw bad("qw2", qw2, "reserved in VT-d 4, not zero") }
            guard v3 || qw3 == 0 else { throw bad("qw3", qw3, "reserved in VT-d 4, not zero") }
        }
        requesterID = UInt16(Bits.get(qw0, 16, 16))
        pasid = Bits.flag(qw0, 8) ? UInt32(Bits.get(qw0, 32, 20)) : nil
        execute = Bits.flag(qw0, 52)
        privileged = Bits.flag(qw0, 53)
        read = Bits.flag(qw1, 0)
        write = Bits.flag(qw1, 1)
        lastInGroup = Bits.flag(qw1, 2)
        prgIndex = UInt32(Bits.get(qw1, 3, 9))
        address = qw1 & ~0xFFF
        privateData = v3 && Bits.flag(qw0, 9) ? PrivateData(low: qw2, high: qw3) : nil
    }

    /// The generic page request, as Linux reports it (`intel_prq_report`):
    /// NEEDS_PASID whenever the descriptor carries a PASID. A VT-d 3 request
    /// with private data is owed its own response, so it is the last page of
    /// its group even without LPIG (as Linux ≤ 6.9 marked it).
    public func pageRequest(deviceID: UInt32, timestampNS: UInt64 = 0) -> PageRequest {
        let permissions = Permissions(read: read, write: write, exec: execute, privileged: privileged)
        return PageRequest(deviceID: deviceID, pasid: pasid, prgi: prgIndex, permissions: permissions, address: address,
                           isLastPage: lastInGroup || privateData != nil, needsPASID: pasid != nil,
                           privateData: privateData, timestampNS: timestampNS)
    }
}

/// An Intel VT-d page group response descriptor (invalidation queue, type 9):
///
/// ```
/// qw0 [3:0] type = 9   4 PASID present   5 private data present (VT-d 3 only)   [11:9] type high = 0
///     [15:12] response code (0 success, 1 invalid, 0xF failure)   [31:16] RID   [51:32] PASID
/// qw1 2 LPIG   [11:3] PRG index      qw2, qw3 private data (VT-d 3, echoed)
/// ```
///
/// Checked against `intel_iommu_page_response()` and the `QI_PGRP_*` macros
/// in Linux `drivers/iommu/intel/{prq.c,iommu.h}`; reserved bits as QEMU's
/// `VTD_INV_DESC_PGRESP_RSVD_{LO,HI}`.
public struct VTdPageGroupResponse: Sendable, Hashable {
    /// RID (bus:devfn) of the device answered, qw0 [31:16].
    public var requesterID: UInt16
    /// PASID, qw0 [51:32]; nil when PASID Present (qw0 bit 4) is clear.
    public var pasid: UInt32?
    /// The code as written: 0x0 success, 0x1 invalid request, 0xF response
    /// failure; 0x2 from a Linux guest's FAILURE (see `code`).
    public var responseCode: UInt8
    /// PRG index being answered, qw1 [11:3].
    public var prgIndex: UInt32
    /// VT-d 3 private data echoed in qw2 (`low`) and qw3 (`high`); nil when
    /// Private Data Present (qw0 bit 5) is clear, and always nil in VT-d 4.
    public var privateData: PrivateData?

    /// The descriptor type: 9, page group response (qw0 [3:0], with [11:9] zero).
    public static let type: UInt64 = 0x9
    static let format = "VT-d page group response descriptor"

    /// The descriptor for a response. The generic FAILURE (2) is written as
    /// the PCIe encoding 0xF, not as 2 the way Linux writes it (a device takes
    /// other values as Response Failure anyway, Lu Baolu); the outcome is the same.
    public init(_ response: GroupResponse, requesterID: UInt16) {
        self.requesterID = requesterID
        pasid = response.pasid
        responseCode = response.code == .success ? 0x0 : response.code == .invalid ? 0x1 : 0xF
        prgIndex = response.prgi
        privateData = response.privateData
    }

    /// The four quadwords submitted to the invalidation queue, with the
    /// response code in qw0 [15:12] and LPIG (qw1 bit 2) set. PDP and qw2/qw3
    /// are written only in VT-d 3; in VT-d 4 (current Linux) they are zero.
    public func words(_ revision: VTdRevision = .v4) -> (UInt64, UInt64, UInt64, UInt64) {
        let data = revision == .v3 ? privateData : nil
        let qw0 = Self.type | Bits.flag(pasid != nil, 4) | Bits.flag(data != nil, 5)
            | Bits.put(UInt64(responseCode), 12, 4) | Bits.put(UInt64(requesterID), 16, 16)
            | Bits.put(UInt64(pasid ?? 0), 32, 20)
        let qw1 = Bits.flag(true, 2) | Bits.put(UInt64(prgIndex), 3, 9)
        return (qw0, qw1, data?.low ?? 0, data?.high ?? 0)
    }

    /// Decodes a descriptor as `dialect` reads it; qw2 and qw3 are read only
    /// in VT-d 3 with Private Data Present set.
    /// - Throws: `HardwareRecordError` if the type is not 9, LPIG (qw1 bit 2)
    ///   is clear, or the response code is not 0, 1, 2 or 0xF (2 only without
    ///   `dialect.strict`); with `strict`, also if a reserved bit is set
    ///   (qw0 [8:6] and [63:52], qw1 bits 1:0 and [63:12]; in VT-d 4 also PDP
    ///   and qw2/qw3).
    public init(words qw0: UInt64, _ qw1: UInt64, _ qw2: UInt64, _ qw3: UInt64,
                dialect: HardwareDialect = .linux) throws(HardwareRecordError) {
        func bad(_ field: String, _ value: UInt64, _ problem: String) -> HardwareRecordError {
            HardwareRecordError(format: Self.format, field: field, value: value, problem: problem)
        }
        let type = Bits.get(qw0, 0, 4) | Bits.get(qw0, 9, 3) << 4
        guard type == Self.type else { throw bad("type", type, "not a page group response (9)") }
        let code = UInt8(Bits.get(qw0, 12, 4))
        switch code {
        case 0x0, 0x1, 0xF: break
        case 0x2 where !dialect.strict: break
        default:
            throw bad("response code", UInt64(code), dialect.strict ? "not 0, 1 or 0xF" : "not 0, 1, 2 (Linux's FAILURE) or 0xF")
        }
        guard Bits.flag(qw1, 2) else { throw bad("LPIG", 0, "a page group response answers the last page") }
        let v3 = dialect.vtd == .v3
        if dialect.strict {
            guard v3 || !Bits.flag(qw0, 5) else { throw bad("PDP (qw0 bit 5)", 1, "reserved in VT-d 4 (private data was removed)") }
            guard Bits.get(qw0, 6, 3) == 0 else { throw bad("qw0[8:6]", Bits.get(qw0, 6, 3), "reserved, not zero") }
            guard Bits.get(qw0, 52, 12) == 0 else { throw bad("qw0[63:52]", Bits.get(qw0, 52, 12), "reserved, not zero") }
            guard Bits.get(qw1, 0, 2) == 0 else { throw bad("qw1[1:0]", Bits.get(qw1, 0, 2), "reserved, not zero") }
            guard Bits.get(qw1, 12, 52) == 0 else { throw bad("qw1[63:12]", Bits.get(qw1, 12, 52), "reserved, not zero") }
            guard v3 || qw2 == 0 else { throw bad("qw2", qw2, "reserved in VT-d 4, not zero") }
            guard v3 || qw3 == 0 else { throw bad("qw3", qw3, "reserved in VT-d 4, not zero") }
        }
        requesterID = UInt16(Bits.get(qw0, 16, 16))
        pasid = Bits.flag(qw0, 4) ? UInt32(Bits.get(qw0, 32, 20)) : nil
        responseCode = code
        prgIndex = UInt32(Bits.get(qw1, 3, 9))
        privateData = v3 && Bits.flag(qw0, 5) ? PrivateData(low: qw2, high: qw3) : nil
    }

    /// The generic code the device acts on: 0 success, 1 invalid, anything
    /// else (0xF, or 2 from Linux) failure.
    public var code: ResponseCode { responseCode == 0 ? .success : responseCode == 1 ? .invalid : .failure }
}
