import CFaultRingABI

/// The PCIe PRI limits every layer works within, from the ABI header's
/// constants, so no module spells them as bare numbers.
public enum PRILimits {
    /// Largest PRG index: a PRGI is 9 bits (PCIe Page Request Message), per function.
    public static let maxPRGI: UInt32 = FAULTRING_PRGI_MAX
    /// PRG indices a function has: 512.
    public static let prgiCount = Int(FAULTRING_PRGI_MAX) + 1
    /// Largest PASID: 20 bits (PCIe PASID TLP prefix).
    public static let maxPASID: UInt32 = FAULTRING_PASID_MAX

    /// `prgi` as an index into a per-function table of `prgiCount` entries.
    /// A record's PRGI field is wider than 9 bits; the bits above are not
    /// part of the index, so they are masked, never trapped on.
    @inlinable public static func slot(_ prgi: UInt32) -> Int { Int(prgi & FAULTRING_PRGI_MAX) }

    /// One key for (a function's position in a table, one of its PRG
    /// indices): `position` × `prgiCount` + `slot(prgi)`, for maps keyed by both.
    @inlinable public static func key(function position: Int, prgi: UInt32) -> Int {
        position &* prgiCount &+ slot(prgi)
    }
}
