/// The 64-bit cookie the service gives each page-request group: the slot of
/// the group in the service's cookie table, and that slot's generation.
///
/// To a consumer a cookie is opaque: it echoes what the record carried.
/// The packing is the service's, and it is here, in one place, so the
/// tracker and the tools that fabricate wrong cookies on purpose agree.
/// Generation 0 is never issued, so a zero cookie is never live.
public struct GroupCookie: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The cookie as it travels in records and responses.
    public let rawValue: UInt64

    /// The cookie with this wire value.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// The cookie of `slot` at `generation` (`generation << 32 | slot`).
    @inlinable public init(generation: UInt32, slot: UInt32) {
        rawValue = UInt64(generation) << 32 | UInt64(slot)
    }

    /// The slot in the cookie table (low 32 bits).
    @inlinable public var slot: UInt32 { UInt32(truncatingIfNeeded: rawValue) }
    /// The slot's generation when the cookie was issued (high 32 bits).
    @inlinable public var generation: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) }

    /// A cookie no service issues: the generation is far beyond what a slot
    /// reaches in any run (a slot's generation grows by one per group), so
    /// the service must reject it as unknown. For tests and misbehaving
    /// consumers; `n` varies the slot.
    public static func neverIssued(_ n: UInt64) -> GroupCookie {
        GroupCookie(generation: 0xFFFF_FFF0, slot: UInt32(truncatingIfNeeded: n & 0xFFFF))
    }

    /// Prints `cookie <generation>:<slot>`.
    public var description: String { "cookie \(generation):\(slot)" }
}
