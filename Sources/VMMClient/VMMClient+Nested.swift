import CFaultRingABI
import FaultControl
import IOMMUFormats
import NestedIOMMU
import SystemPackage

/// The nested-IOMMU commands (Docs/NESTED.md §3): what a VMM calls when its
/// guest shares memory, binds its stage-1 tables, invalidates, and binds
/// MSI doorbells. Each throws `.refused` with the service's errno and reason.
extension VMMClient {
    /// Shares `ram` (a shrink-sealed memfd) as guest memory at its GPA.
    public func addGuestMemory(_ ram: GuestRAM) throws(VMMClientError) {
        _ = try request(.addGuestMemory, GuestMemoryRequest(gpa: ram.gpa, size: ram.size).bytes, fds: [ram.fd.descriptor])
    }

    /// VT-d: binds the guest's PASID entry for `pasid` on `devices`, all or none.
    public func bind(pasid: UInt32, entry: VTdPASIDEntry, devices: [UInt32]) throws(VMMClientError) {
        _ = try request(.bind, BindRequest(format: .vtdPASID, pasid: pasid, data: entry.words, devices: devices).bytes)
    }

    /// SMMUv3: binds the guest's CD table (`ste`, the two vSTE words) on `devices`, all or none.
    public func bind(table ste: [UInt64], devices: [UInt32]) throws(VMMClientError) {
        _ = try request(.bind, BindRequest(format: .smmuv3STE, pasid: 0, data: ste, devices: devices).bytes)
    }

    /// Unbinds `pasid` (VT-d) or the CD table (SMMUv3, `pasid` nil) from `devices`. Cannot be refused once well formed.
    public func unbind(pasid: UInt32?, devices: [UInt32]) throws(VMMClientError) {
        let format: BindRequest.Format = pasid == nil ? .smmuv3STE : .vtdPASID
        _ = try request(.unbind, BindRequest(format: format, pasid: pasid ?? 0, data: [], devices: devices).bytes)
    }

    /// Forwards one of the guest's invalidations.
    public func invalidate(_ invalidation: Invalidation) throws(VMMClientError) {
        _ = try request(.invalidate, InvalidateRequest(invalidation).bytes)
    }

    /// Binds (or, with `unbind`, removes) the guest's MSI doorbell at `iova`.
    public func bindMSI(iova: UInt64, gpa: UInt64 = 0, size: UInt64 = 0, unbind: Bool = false) throws(VMMClientError) {
        _ = try request(.bindMSI, BindMSIRequest(unbind: unbind, iova: iova, gpa: gpa, size: size).bytes)
    }

    /// `invalidate` as a guest model wants it: a refusal as the IOMMU's `NestedError`.
    public func forward(_ invalidation: Invalidation) throws(NestedError) {
        do { try invalidate(invalidation) } catch {
            if case .refused(_, let errno, let reason) = error { throw NestedError(errno, reason) }
            throw NestedError(.ioError, "\(error)")
        }
    }
}

extension InvalidateRequest {
    /// The wire form of `invalidation` (the inverse of the service's reading).
    public init(_ invalidation: Invalidation) {
        switch invalidation {
        case .global:
            self.init(granularity: FAULTRING_INV_GLOBAL)
        case .pasid(let pasid):
            self.init(granularity: FAULTRING_INV_PASID, flags: FAULTRING_INV_FLAG_PASID, pasid: pasid)
        case .range(let pasid, let address, let size, let leaf):
            self.init(granularity: FAULTRING_INV_RANGE,
                      flags: FAULTRING_INV_FLAG_PASID | FAULTRING_INV_FLAG_RANGE | (leaf ? FAULTRING_INV_FLAG_LEAF : 0),
                      pasid: pasid, address: address, size: size)
        case .deviceTLB(let device, let pasid, let range):
            self.init(granularity: FAULTRING_INV_DEVICE_TLB,
                      flags: (pasid != nil ? FAULTRING_INV_FLAG_PASID : 0) | (range != nil ? FAULTRING_INV_FLAG_RANGE : 0),
                      device: device, pasid: pasid ?? 0, address: range?.address ?? 0, size: range?.size ?? 0)
        case .context(let device, let pasid):
            self.init(granularity: FAULTRING_INV_CONTEXT, flags: pasid != nil ? FAULTRING_INV_FLAG_PASID : 0,
                      device: device, pasid: pasid ?? 0)
        }
    }
}
