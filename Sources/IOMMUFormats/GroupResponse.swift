import FaultABI

/// A page request group's answer as hardware carries it: what an SMMUv3
/// CMD_PRI_RESP or a VT-d page group response descriptor encodes.
///
/// The formats' own response type, so they depend on nothing but the ABI
/// views: the service's tracker turns its completions into this, and a
/// guest's answer decodes from it, without either side inventing the
/// other's bookkeeping (cookies, sources).
public struct GroupResponse: Sendable, Hashable {
    /// The PASID echoed to the device (only when it set NEEDS_PASID / "PRG
    /// Response PASID Required"); nil otherwise.
    public var pasid: UInt32?
    /// The PRG index being answered.
    public var prgi: UInt32
    /// SUCCESS, INVALID or FAILURE.
    public var code: ResponseCode
    /// The device's private data, echoed (VT-d carries it; SMMUv3 does not).
    public var privateData: PrivateData?

    /// An answer to PRG index `prgi`.
    public init(pasid: UInt32?, prgi: UInt32, code: ResponseCode, privateData: PrivateData? = nil) {
        self.pasid = pasid
        self.prgi = prgi
        self.code = code
        self.privateData = privateData
    }
}
