import FaultABI

/// An Arm SMMUv3 PRI queue record (16 bytes, 2 × little-endian u64; IHI 0070
/// ch. 8, Linux `PRIQ_*`):
///
/// ```
/// dw0 [31:0]  StreamID        dw0 [51:32] SubstreamID    dw0 [57:52] RES0
/// dw0 58 Priv  59 Exec  60 Read  61 Write  62 Last  63 SSV
/// dw1 [8:0]   PRG index       dw1 [11:9]  RES0           dw1 [63:12] page address
/// ```
public struct SMMUv3PRIRecord: Sendable, Hashable {
    /// StreamID, dw0 [31:0] (with PCIe PRI, bits 15:0 are the Requester ID).
    public var streamID: UInt32
    /// The PASID, if the request carried one (SSV).
    public var substreamID: UInt32?
    /// Priv, dw0 bit 58: privileged mode requested (0 without a PASID, by the spec).
    public var privileged: Bool
    /// X, dw0 bit 59: execute permission requested (0 without a PASID, by the spec).
    public var execute: Bool
    /// R, dw0 bit 60: read access requested.
    public var read: Bool
    /// W, dw0 bit 61: write access requested.
    public var write: Bool
    /// L, dw0 bit 62: the last request of its page request group.
    public var last: Bool
    /// PRGIndex, dw1 [8:0].
    public var prgIndex: UInt32
    /// Page address (bits 63:12; the low 12 bits are zero).
    public var address: UInt64

    /// A record from its fields. Nothing is checked here: `words` keeps only each
    /// field's width (SubstreamID 20 bits, PRG index 9 bits, address bits 63:12).
    public init(streamID: UInt32, substreamID: UInt32?, privileged: Bool = false, execute: Bool = false, read: Bool,
                write: Bool, last: Bool, prgIndex: UInt32, address: UInt64) {
        self.streamID = streamID
        self.substreamID = substreamID
        self.privileged = privileged
        self.execute = execute
        self.read = read
        self.write = write
        self.last = last
        self.prgIndex = prgIndex
        self.address = address
    }

    static let format = "SMMUv3 PRI record"

    /// The two words the SMMU writes.
    public var words: (UInt64, UInt64) {
        let dw0 = UInt64(streamID) | Bits.put(UInt64(substreamID ?? 0), 32, 20) | Bits.flag(privileged, 58)
            | Bits.flag(execute, 59) | Bits.flag(read, 60) | Bits.flag(write, 61) | Bits.flag(last, 62)
            | Bits.flag(substreamID != nil, 63)
        let dw1 = Bits.put(UInt64(prgIndex), 0, 9) | (address & ~0xFFF)
        return (dw0, dw1)
    }

    /// Decodes a record as `dialect` reads it. Linux's `arm_smmu_handle_ppr`
    /// reads only the defined fields, and Priv / Exec whatever SSV says, so
    /// the default does too.
    /// - Throws: `HardwareRecordError` only with `dialect.strict`: RES0 bits
    ///   set (dw0 [57:52], dw1 [11:9]), or Priv / Exec without a PASID (they
    ///   travel in the PASID TLP prefix, so a request without one has neither).
    public init(words dw0: UInt64, _ dw1: UInt64, dialect: HardwareDialect = .linux) throws(HardwareRecordError) {
        func bad(_ field: String, _ value: UInt64, _ problem: String) -> HardwareRecordError {
            HardwareRecordError(format: Self.format, field: field, value: value, problem: problem)
        }
        let ssv = Bits.flag(dw0, 63)
        if dialect.strict {
            guard Bits.get(dw0, 52, 6) == 0 else { throw bad("dw0[57:52]", Bits.get(dw0, 52, 6), "RES0 not zero") }
            guard Bits.get(dw1, 9, 3) == 0 else { throw bad("dw1[11:9]", Bits.get(dw1, 9, 3), "RES0 not zero") }
            guard ssv || Bits.get(dw0, 58, 2) == 0 else {
                throw bad("Priv/Exec", Bits.get(dw0, 58, 2), "must be 0 without a PASID (SSV = 0)")
            }
        }
        streamID = UInt32(truncatingIfNeeded: dw0)
        substreamID = ssv ? UInt32(Bits.get(dw0, 32, 20)) : nil
        privileged = Bits.flag(dw0, 58)
        execute = Bits.flag(dw0, 59)
        read = Bits.flag(dw0, 60)
        write = Bits.flag(dw0, 61)
        last = Bits.flag(dw0, 62)
        prgIndex = UInt32(Bits.get(dw1, 0, 9))
        address = dw1 & ~0xFFF
    }

    /// The generic page request. `needsPASID` is the function's "PRG
    /// Response PASID Required" capability, which the record does not carry.
    public func pageRequest(deviceID: UInt32, needsPASID: Bool, timestampNS: UInt64 = 0) -> PageRequest {
        let permissions = Permissions(read: read, write: write, exec: execute, privileged: privileged)
        return PageRequest(deviceID: deviceID, pasid: substreamID, prgi: prgIndex, permissions: permissions,
                           address: address, isLastPage: last, needsPASID: needsPASID && substreamID != nil,
                           timestampNS: timestampNS)
    }

    /// The record a device's request becomes on an SMMUv3.
    public init(_ request: PageRequest, streamID: UInt32) {
        self.init(streamID: streamID, substreamID: request.pasid,
                  privileged: request.pasid != nil && request.permissions.contains(.privileged),
                  execute: request.pasid != nil && request.permissions.contains(.exec),
                  read: request.permissions.contains(.read), write: request.permissions.contains(.write),
                  last: request.isLastPage, prgIndex: request.prgi, address: request.address)
    }
}
