import IOMMUFormats

/// Where a PASID's stage-1 walk starts, in one of the two formats a guest
/// can own: a VT-d PASID-table entry (first-stage root, mode, SRE, WPE) or
/// an SMMUv3 context descriptor (TTB0, T0SZ, IPS, ASID).
public enum Stage1Context: Hashable, Sendable {
    /// VT-d scalable mode: the guest's PASID entry, PGTT first-stage only or
    /// nested (the host's second stage is the guest-memory table).
    case vtd(VTdPASIDEntry)
    /// SMMUv3: the guest's context descriptor for the substream.
    case smmuv3(SMMUv3ContextDescriptor)

    /// The TLB tag a cached translation of this context carries: the
    /// domain ID (VT-d) or the ASID (SMMUv3).
    public var tag: UInt16 {
        switch self {
        case .vtd(let entry): entry.domainID
        case .smmuv3(let cd): cd.asid
        }
    }
}
