/// What the nested IOMMU of one VM did, and the guest bugs it saw.
public struct NestedCounters: Sendable, Hashable, Codable {
    /// Translations requested by devices.
    public var translations: UInt64 = 0
    /// Served by a device's ATC.
    public var atcHits: UInt64 = 0
    /// Served by the IOTLB.
    public var iotlbHits: UInt64 = 0
    /// Full stage-1 walks.
    public var walks: UInt64 = 0
    /// Walk faults by `WalkFault.Kind` raw value.
    public var faults: [String: UInt64] = [:]
    /// **Guest bug**: DMAs that used a cached translation the guest's
    /// tables no longer gave, with no invalidation of it arriving within
    /// the grace period (the guest changed or removed it without
    /// invalidating).
    public var staleTranslations: UInt64 = 0
    /// DMAs that used a cached translation the tables no longer gave, held
    /// for judgement (each ends as a stale translation or forgiven).
    public var staleUsesPending: UInt64 = 0
    /// Of those, the ones an invalidation arrived for within the grace
    /// period: the guest changed the mapping and invalidated, the DMA was in
    /// the window hardware allows.
    public var staleUsesForgiven: UInt64 = 0
    /// **Guest bug**: DMAs through a cached context descriptor the guest
    /// rewrote without CFGI_CD arriving within the grace period.
    public var staleContexts: UInt64 = 0
    /// DMAs through a cached CD that differed from guest memory, held for judgement.
    public var staleContextUsesPending: UInt64 = 0
    /// Of those, the ones whose CFGI_CD arrived within the grace period.
    public var staleContextUsesForgiven: UInt64 = 0
    /// Binds that took effect (per device and PASID or table).
    public var binds: UInt64 = 0
    /// Binds refused before anything changed.
    public var bindsRefused: UInt64 = 0
    /// Binds that failed on a device after others had taken it, and were
    /// rolled back on every device.
    public var bindsRolledBack: UInt64 = 0
    /// Unbinds (per device and PASID or table).
    public var unbinds: UInt64 = 0
    /// Invalidations by `Invalidation.kind`.
    public var invalidations: [String: UInt64] = [:]
    /// Invalidations refused (malformed, or naming what the client does not hold).
    public var invalidationsRefused: UInt64 = 0
    /// Devices detached, with their bindings and cached state dropped.
    public var revocations: UInt64 = 0

    /// All zero.
    public init() {}

    /// Every scalar counter; `add` reads this list, so a new field is summed once it is listed here.
    static var scalars: [WritableKeyPath<NestedCounters, UInt64>] { [
        \.translations, \.atcHits, \.iotlbHits, \.walks, \.staleTranslations, \.staleUsesPending, \.staleUsesForgiven,
        \.staleContexts, \.staleContextUsesPending, \.staleContextUsesForgiven, \.binds, \.bindsRefused, \.bindsRolledBack,
        \.unbinds, \.invalidationsRefused, \.revocations,
    ] }

    /// Adds `other`'s counts to these (a VM's incarnations summed; wrapping, never trapping).
    public mutating func add(_ other: NestedCounters) {
        for path in Self.scalars { self[keyPath: path] &+= other[keyPath: path] }
        faults.merge(other.faults, uniquingKeysWith: &+)
        invalidations.merge(other.invalidations, uniquingKeysWith: &+)
    }
}
