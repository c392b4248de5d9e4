import CFaultRingABI

/// Access permissions a fault asks for (`FAULTRING_PERM_*`, the kernel's
/// `IOMMU_FAULT_PERM_*`).
public struct Permissions: OptionSet, Sendable, Hashable, BitwiseCopyable {
    /// The `FAULTRING_PERM_*` bits.
    public let rawValue: UInt32
    /// Permissions from `FAULTRING_PERM_*` bits; unknown bits are kept, not checked.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Read access (`FAULTRING_PERM_READ`, bit 0).
    public static let read = Permissions(rawValue: FAULTRING_PERM_READ)
    /// Write access (`FAULTRING_PERM_WRITE`, bit 1).
    public static let write = Permissions(rawValue: FAULTRING_PERM_WRITE)
    /// Instruction fetch (`FAULTRING_PERM_EXEC`, bit 2).
    public static let exec = Permissions(rawValue: FAULTRING_PERM_EXEC)
    /// Privileged-mode access (`FAULTRING_PERM_PRIV`, bit 3).
    public static let privileged = Permissions(rawValue: FAULTRING_PERM_PRIV)

    /// Permissions from the four request flags a hardware record carries.
    @inlinable
    public init(read: Bool, write: Bool, exec: Bool, privileged: Bool) {
        self = []
        if read { insert(.read) }
        if write { insert(.write) }
        if exec { insert(.exec) }
        if privileged { insert(.privileged) }
    }
}

/// The 16 bytes of device private data a page request may carry (VT-d ≤ 3.x).
///
/// The service keeps it and echoes it to the device; ABI 2 never shows it to
/// a consumer, and ABI 1 shows it only because the kernel's struct did.
public struct PrivateData: Sendable, Hashable, BitwiseCopyable {
    /// The first 8 bytes (VT-d qw2; ABI 1 `private_data[0]`).
    public var low: UInt64
    /// The last 8 bytes (VT-d qw3; ABI 1 `private_data[1]`).
    public var high: UInt64
    /// Private data from its two halves.
    public init(low: UInt64, high: UInt64) {
        self.low = low
        self.high = high
    }
}

/// One page request (PCIe PRI) as the service hands it to a producer.
public struct PageRequest: Sendable, Hashable, BitwiseCopyable {
    /// Service-assigned device id (ABI 2 only; ABI 1 queues serve one device).
    public var deviceID: UInt32
    /// The PASID, or `nil` when the request carried none.
    public var pasid: UInt32?
    /// Page request group index (9 bits).
    public var prgi: UInt32
    /// What the device asked for.
    public var permissions: Permissions
    /// The page address.
    public var address: UInt64
    /// True on the request that closes its group.
    public var isLastPage: Bool
    /// The response must carry this PASID (PCIe "PRG Response PASID Required").
    public var needsPASID: Bool
    /// Device private data, if the device supplied some.
    public var privateData: PrivateData?
    /// The group's cookie (ABI 2), the same for every request of a group.
    public var cookie: UInt64
    /// CLOCK_MONOTONIC nanoseconds when the source reported it.
    public var timestampNS: UInt64

    /// A page request from its fields; by default a last-page read with no
    /// PASID, device 0 and cookie 0. Nothing is validated here.
    public init(
        deviceID: UInt32 = 0, pasid: UInt32? = nil, prgi: UInt32, permissions: Permissions = .read,
        address: UInt64, isLastPage: Bool = true, needsPASID: Bool = false, privateData: PrivateData? = nil,
        cookie: UInt64 = 0, timestampNS: UInt64 = 0
    ) {
        self.deviceID = deviceID
        self.pasid = pasid
        self.prgi = prgi
        self.permissions = permissions
        self.address = address
        self.isLastPage = isLastPage
        self.needsPASID = needsPASID
        self.privateData = privateData
        self.cookie = cookie
        self.timestampNS = timestampNS
    }
}

extension PageRequest {
    /// A PCIe stop marker: last, neither read nor write, with a PASID. It
    /// says the device stopped using the PASID; no response is owed. (The
    /// same bits without a PASID are an ordinary request.)
    public var isStopMarker: Bool {
        isLastPage && pasid != nil && !permissions.contains(.read) && !permissions.contains(.write)
    }
}

/// An unrecoverable DMA fault (no response is owed).
public struct UnrecoverableFault: Sendable, Hashable {
    /// Service-assigned device id (ABI 2 only).
    public var deviceID: UInt32
    /// `FAULTRING_REASON_*` (the kernel's `enum iommu_fault_reason`).
    public var reason: UInt32
    /// The PASID, if known.
    public var pasid: UInt32?
    /// The access that faulted.
    public var permissions: Permissions
    /// The faulting address, if known.
    public var address: UInt64?
    /// The address of a table fetch that aborted, if any.
    public var fetchAddress: UInt64?
    /// CLOCK_MONOTONIC nanoseconds when the source reported it.
    public var timestampNS: UInt64

    /// The reason's name, as the kernel's `enum iommu_fault_reason` has it
    /// (`IOMMU_FAULT_REASON_PTE_FETCH` is `pte-fetch`); `reason-N` for a value it lacks.
    public var reasonName: String {
        switch reason {
        case FAULTRING_REASON_UNKNOWN: "unknown"
        case FAULTRING_REASON_PASID_FETCH: "pasid-fetch"
        case FAULTRING_REASON_BAD_PASID_ENTRY: "bad-pasid-entry"
        case FAULTRING_REASON_PASID_INVALID: "pasid-invalid"
        case FAULTRING_REASON_WALK_EABT: "walk-eabt"
        case FAULTRING_REASON_PTE_FETCH: "pte-fetch"
        case FAULTRING_REASON_PERMISSION: "permission"
        case FAULTRING_REASON_ACCESS: "access"
        case FAULTRING_REASON_OOR_ADDRESS: "oor-address"
        default: "reason-\(reason)"
        }
    }

    /// An unrecoverable fault from its fields; by default device 0 with no
    /// PASID, permissions, addresses or timestamp. Nothing is validated here.
    public init(
        deviceID: UInt32 = 0, reason: UInt32, pasid: UInt32? = nil, permissions: Permissions = [],
        address: UInt64? = nil, fetchAddress: UInt64? = nil, timestampNS: UInt64 = 0
    ) {
        self.deviceID = deviceID
        self.reason = reason
        self.pasid = pasid
        self.permissions = permissions
        self.address = address
        self.fetchAddress = fetchAddress
        self.timestampNS = timestampNS
    }
}

/// A fault as a source reports it, before it is encoded in a record ABI.
public enum FaultEvent: Sendable, Hashable {
    /// A page request (PCIe PRI, or a stalled SMMUv3 transaction).
    case pageRequest(PageRequest)
    /// An unrecoverable fault; no response is owed.
    case unrecoverable(UnrecoverableFault)
}
