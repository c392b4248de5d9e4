import CFaultRingABI
import FaultABI

/// The nested-IOMMU requests (`faultring_protocol.h`, Docs/NESTED.md),
/// parsed and validated the VFIO way: `argsz` must be the payload's size,
/// unknown flag bits and non-zero reserved fields are refused, and a field
/// no flag makes meaningful must be zero. Each parse throws EINVAL naming
/// the command, the field and the value.
public enum NestedRequests {
    static func fail(_ command: String, _ detail: String) -> ControlError {
        ControlError(.invalidArgument, "\(command) \(detail)")
    }

    /// The common head: payload at least `fixed` bytes, `argsz` equal to the
    /// payload's size, `flags` within `knownFlags`.
    static func head(_ p: [UInt8], _ command: String, fixed: Int, knownFlags: UInt32 = 0) throws(ControlError) -> UInt32 {
        guard p.count >= fixed else { throw fail(command, "payload is \(p.count) bytes, at least \(fixed) needed") }
        let argsz = LittleEndian.uint32(p, at: 0)
        guard argsz == p.count else { throw fail(command, "argsz \(argsz) is not the payload's \(p.count) bytes") }
        let flags = LittleEndian.uint32(p, at: 4)
        guard flags & ~knownFlags == 0 else {
            throw fail(command, "flags 0x\(String(flags, radix: 16)): unknown bits 0x\(String(flags & ~knownFlags, radix: 16))")
        }
        return flags
    }

    /// The device ids at `offset`: `count` of them, 1…64, distinct.
    static func ids(_ p: [UInt8], _ command: String, count: UInt32, at offset: Int) throws(ControlError) -> [UInt32] {
        guard (1...UInt32(maxDevicesPerAttach)).contains(count) else {
            throw fail(command, "device_count \(count) is not in 1...\(maxDevicesPerAttach)")
        }
        guard p.count == offset + 4 * Int(count) else {
            throw fail(command, "payload is \(p.count) bytes; \(count) devices need \(offset + 4 * Int(count))")
        }
        let ids = (0..<Int(count)).map { LittleEndian.uint32(p, at: offset + 4 * $0) }
        guard Set(ids).count == ids.count else { throw fail(command, "names a device twice") }
        return ids
    }
}

/// ADD_GUEST_MEMORY (`struct faultring_msg_guest_memory`, with one memfd).
public struct GuestMemoryRequest: Sendable, Hashable {
    /// Guest-physical address of the region.
    public var gpa: UInt64
    /// Its size.
    public var size: UInt64
    /// Its offset in the file.
    public var offset: UInt64

    /// A request (alignment and overlap are the service's to check).
    public init(gpa: UInt64, size: UInt64, offset: UInt64 = 0) {
        self.gpa = gpa
        self.size = size
        self.offset = offset
    }

    /// The wire payload.
    public var bytes: [UInt8] {
        LittleEndian.bytes(UInt32(32)) + LittleEndian.bytes(UInt32(0)) + LittleEndian.bytes(gpa) + LittleEndian.bytes(size)
            + LittleEndian.bytes(offset)
    }

    /// - Throws: EINVAL: a size other than 32, argsz, flags.
    public init(payload p: [UInt8]) throws(ControlError) {
        _ = try NestedRequests.head(p, "ADD_GUEST_MEMORY", fixed: 32)
        guard p.count == 32 else { throw NestedRequests.fail("ADD_GUEST_MEMORY", "payload is \(p.count) bytes, not 32") }
        gpa = LittleEndian.uint64(p, at: 8)
        size = LittleEndian.uint64(p, at: 16)
        offset = LittleEndian.uint64(p, at: 24)
    }
}

/// BIND and UNBIND (`struct faultring_msg_bind`, `struct faultring_msg_unbind`).
public struct BindRequest: Sendable, Hashable {
    /// What is bound.
    public enum Format: UInt32, Sendable, Hashable {
        /// `FAULTRING_BIND_VTD_PASID`: one PASID's first stage.
        case vtdPASID = 1
        /// `FAULTRING_BIND_SMMUV3_STE`: the CD table.
        case smmuv3STE = 2
    }

    /// The format.
    public var format: Format
    /// VT-d: the PASID; SMMUv3: 0.
    public var pasid: UInt32
    /// BIND: the 8 data words (the PASID entry, or the 2 STE words and 6 zeros); UNBIND: empty.
    public var data: [UInt64]
    /// The devices.
    public var devices: [UInt32]

    /// A request (not checked here).
    public init(format: Format, pasid: UInt32, data: [UInt64], devices: [UInt32]) {
        self.format = format
        self.pasid = pasid
        self.data = data
        self.devices = devices
    }

    /// The wire payload of a BIND (`data` non-empty) or an UNBIND (`data` empty).
    public var bytes: [UInt8] {
        let fixed = data.isEmpty ? 24 : 88
        var out = LittleEndian.bytes(UInt32(fixed + 4 * devices.count)) + LittleEndian.bytes(UInt32(0))
            + LittleEndian.bytes(format.rawValue) + LittleEndian.bytes(pasid) + LittleEndian.bytes(UInt32(devices.count))
            + LittleEndian.bytes(UInt32(0))
        if !data.isEmpty { out += (0..<8).flatMap { LittleEndian.bytes($0 < data.count ? data[$0] : 0) } }
        return out + devices.flatMap(LittleEndian.bytes)
    }

    /// Parses a BIND (`bind` true) or an UNBIND.
    /// - Throws: EINVAL: argsz, flags, reserved, an unknown format, a PASID
    ///   for an SMMUv3 table or none for VT-d, non-zero words past the STE,
    ///   a device count out of 1…64 or a device named twice.
    public init(payload p: [UInt8], bind: Bool) throws(ControlError) {
        let command = bind ? "BIND" : "UNBIND"
        let fixed = bind ? 88 : 24
        _ = try NestedRequests.head(p, command, fixed: fixed)
        let rawFormat = LittleEndian.uint32(p, at: 8)
        guard let format = Format(rawValue: rawFormat) else {
            throw NestedRequests.fail(command, "format \(rawFormat) is not 1 (VT-d PASID) or 2 (SMMUv3 STE)")
        }
        self.format = format
        pasid = LittleEndian.uint32(p, at: 12)
        let reserved = LittleEndian.uint32(p, at: 20)
        guard reserved == 0 else { throw NestedRequests.fail(command, "reserved is 0x\(String(reserved, radix: 16)), not 0") }
        switch format {
        case .vtdPASID:
            guard pasid > 0 && pasid <= FAULTRING_PASID_MAX else {
                throw NestedRequests.fail(command, "pasid \(pasid) is not in 1...\(FAULTRING_PASID_MAX)")
            }
        case .smmuv3STE:
            guard pasid == 0 else { throw NestedRequests.fail(command, "pasid \(pasid) with an SMMUv3 table: must be 0") }
        }
        data = bind ? (0..<8).map { LittleEndian.uint64(p, at: 24 + 8 * $0) } : []
        if bind && format == .smmuv3STE, let i = data[2...].firstIndex(where: { $0 != 0 }) {
            throw NestedRequests.fail(command, "data[\(i)] is 0x\(String(data[i], radix: 16)); an STE is data[0...1]")
        }
        devices = try NestedRequests.ids(p, command, count: LittleEndian.uint32(p, at: 16), at: fixed)
    }
}

/// INVALIDATE (`struct faultring_msg_invalidate`).
public struct InvalidateRequest: Sendable, Hashable {
    /// `FAULTRING_INV_*`.
    public var granularity: UInt32
    /// `FAULTRING_INV_FLAG_*`.
    public var flags: UInt32
    /// The device (DEVICE_TLB, CONTEXT), else 0.
    public var device: UInt32
    /// The PASID, with FLAG_PASID.
    public var pasid: UInt32
    /// The range, with FLAG_RANGE.
    public var address: UInt64
    /// The range's size, with FLAG_RANGE.
    public var size: UInt64

    /// A request (checked by `init(payload:)` on the other side).
    public init(granularity: UInt32, flags: UInt32 = 0, device: UInt32 = 0, pasid: UInt32 = 0, address: UInt64 = 0,
                size: UInt64 = 0) {
        self.granularity = granularity
        self.flags = flags
        self.device = device
        self.pasid = pasid
        self.address = address
        self.size = size
    }

    /// The wire payload.
    public var bytes: [UInt8] {
        LittleEndian.bytes(UInt32(40)) + LittleEndian.bytes(flags) + LittleEndian.bytes(granularity)
            + LittleEndian.bytes(device) + LittleEndian.bytes(pasid) + LittleEndian.bytes(UInt32(0))
            + LittleEndian.bytes(address) + LittleEndian.bytes(size)
    }

    /// - Throws: EINVAL: argsz, unknown flags, reserved, an unknown
    ///   granularity, a flag the granularity does not take or lacks, a
    ///   field set that no flag covers.
    public init(payload p: [UInt8]) throws(ControlError) {
        let known = FAULTRING_INV_FLAG_LEAF | FAULTRING_INV_FLAG_PASID | FAULTRING_INV_FLAG_RANGE
        flags = try NestedRequests.head(p, "INVALIDATE", fixed: 40, knownFlags: known)
        guard p.count == 40 else { throw NestedRequests.fail("INVALIDATE", "payload is \(p.count) bytes, not 40") }
        granularity = LittleEndian.uint32(p, at: 8)
        device = LittleEndian.uint32(p, at: 12)
        pasid = LittleEndian.uint32(p, at: 16)
        address = LittleEndian.uint64(p, at: 24)
        size = LittleEndian.uint64(p, at: 32)
        let reserved = LittleEndian.uint32(p, at: 20)
        func fail(_ detail: String) -> ControlError { NestedRequests.fail("INVALIDATE", detail) }
        guard reserved == 0 else { throw fail("reserved is 0x\(String(reserved, radix: 16)), not 0") }
        // Per granularity: which flags it requires, which it allows, whether it names a device.
        let (required, allowed, namesDevice): (UInt32, UInt32, Bool)
        switch granularity {
        case FAULTRING_INV_GLOBAL: (required, allowed, namesDevice) = (0, 0, false)
        case FAULTRING_INV_PASID: (required, allowed, namesDevice) = (FAULTRING_INV_FLAG_PASID, FAULTRING_INV_FLAG_PASID, false)
        case FAULTRING_INV_RANGE:
            (required, allowed, namesDevice) = (FAULTRING_INV_FLAG_PASID | FAULTRING_INV_FLAG_RANGE, known, false)
        case FAULTRING_INV_DEVICE_TLB:
            (required, allowed, namesDevice) = (0, FAULTRING_INV_FLAG_PASID | FAULTRING_INV_FLAG_RANGE, true)
        case FAULTRING_INV_CONTEXT: (required, allowed, namesDevice) = (0, FAULTRING_INV_FLAG_PASID, true)
        default: throw fail("granularity \(granularity) is not 0 (global) ... 4 (context)")
        }
        guard flags & required == required else {
            throw fail("granularity \(granularity) needs flags 0x\(String(required, radix: 16)), has 0x\(String(flags, radix: 16))")
        }
        guard flags & ~allowed == 0 else {
            throw fail("granularity \(granularity) does not take flags 0x\(String(flags & ~allowed, radix: 16))")
        }
        guard namesDevice || device == 0 else { throw fail("device \(device) with granularity \(granularity): must be 0") }
        guard flags & FAULTRING_INV_FLAG_PASID != 0 || pasid == 0 else { throw fail("pasid \(pasid) without FLAG_PASID") }
        guard flags & FAULTRING_INV_FLAG_RANGE != 0 || (address == 0 && size == 0) else {
            throw fail("address 0x\(String(address, radix: 16)) size 0x\(String(size, radix: 16)) without FLAG_RANGE")
        }
    }
}

/// BIND_MSI (`struct faultring_msg_bind_msi`).
public struct BindMSIRequest: Sendable, Hashable {
    /// Unbind rather than bind.
    public var unbind: Bool
    /// The doorbell's input address.
    public var iova: UInt64
    /// Its guest-physical address (0 to unbind).
    public var gpa: UInt64
    /// Its size (0 to unbind).
    public var size: UInt64

    /// A request.
    public init(unbind: Bool = false, iova: UInt64, gpa: UInt64 = 0, size: UInt64 = 0) {
        self.unbind = unbind
        self.iova = iova
        self.gpa = gpa
        self.size = size
    }

    /// The wire payload.
    public var bytes: [UInt8] {
        LittleEndian.bytes(UInt32(32)) + LittleEndian.bytes(unbind ? FAULTRING_MSI_FLAG_UNBIND : 0)
            + LittleEndian.bytes(iova) + LittleEndian.bytes(gpa) + LittleEndian.bytes(size)
    }

    /// - Throws: EINVAL: argsz, flags; a size not a power of two from 4 KiB
    ///   to 1 MiB; iova or gpa not aligned to it; an unbind with gpa or size.
    public init(payload p: [UInt8]) throws(ControlError) {
        let flags = try NestedRequests.head(p, "BIND_MSI", fixed: 32, knownFlags: FAULTRING_MSI_FLAG_UNBIND)
        guard p.count == 32 else { throw NestedRequests.fail("BIND_MSI", "payload is \(p.count) bytes, not 32") }
        unbind = flags & FAULTRING_MSI_FLAG_UNBIND != 0
        iova = LittleEndian.uint64(p, at: 8)
        gpa = LittleEndian.uint64(p, at: 16)
        size = LittleEndian.uint64(p, at: 24)
        if unbind {
            guard gpa == 0 && size == 0 else { throw NestedRequests.fail("BIND_MSI", "an unbind carries no gpa or size") }
            return
        }
        guard size >= 4096 && size <= 1 << 20 && size & (size - 1) == 0 else {
            throw NestedRequests.fail("BIND_MSI", "size 0x\(String(size, radix: 16)) is not a power of two from 4 KiB to 1 MiB")
        }
        guard iova <= UInt64.max - (size - 1) && gpa <= UInt64.max - (size - 1) else {
            throw NestedRequests.fail("BIND_MSI", "iova 0x\(String(iova, radix: 16)) or gpa 0x\(String(gpa, radix: 16)) + size wraps")
        }
        guard iova & (size - 1) == 0 && gpa & (size - 1) == 0 else {
            throw NestedRequests.fail("BIND_MSI", "iova 0x\(String(iova, radix: 16)) or gpa 0x\(String(gpa, radix: 16)) not aligned to the size")
        }
    }
}
