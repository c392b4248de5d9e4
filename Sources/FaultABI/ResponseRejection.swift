import CFaultRingABI

/// Why a response slot written by a consumer was refused.
///
/// Each `Reason` has its own counter in `faultring_counters` so an operator
/// can tell a confused VMM (bad version) from a hostile one (reserved bits).
public struct ResponseRejection: Error, Sendable, Hashable, CustomStringConvertible {
    /// The class of fault, one per counter.
    public enum Reason: String, Sendable, Hashable, CaseIterable {
        /// `argsz` below the ABI's response size or above the slot size.
        case badArgsz = "bad_argsz"
        /// Non-zero bytes between the known size and `argsz` (the kernel's E2BIG rule).
        case trailingNonZero = "trailing_nonzero"
        /// `version` is not the response version of the ABI in force.
        case badVersion = "bad_version"
        /// `flags` has bits this ABI does not define.
        case unknownFlags = "unknown_flags"
        /// A field that must be zero is not (pasid or grpid without its flag).
        case reservedNonZero = "reserved_nonzero"
        /// `code` is not SUCCESS, INVALID or FAILURE.
        case badCode = "bad_code"
        /// `pasid` wider than 20 bits or `grpid` wider than 9 bits.
        case outOfRange = "out_of_range"
    }

    /// Which rule the slot broke; it selects the counter.
    public let reason: Reason
    /// The value found there.
    public let value: UInt64
    /// The field's name (for a trailing byte, "byte").
    let fieldName: StaticString
    /// For a trailing byte, its offset in the slot; -1 otherwise.
    let byteOffset: Int

    /// The field, named as in `faultring_abi.h` (a trailing byte as `byte[N]`).
    public var field: String { byteOffset < 0 ? "\(fieldName)" : "byte[\(byteOffset)]" }

    /// A rejection for `reason` of `field`, which holds `value` (kept as its low 64 bits).
    ///
    /// The name is a `StaticString`, so a rejection is plain data: the
    /// `Result` every response slot is read into costs no retain or release.
    public init(_ reason: Reason, field: StaticString, value: some BinaryInteger) {
        self.reason = reason
        fieldName = field
        byteOffset = -1
        self.value = UInt64(truncatingIfNeeded: value)
    }

    /// A rejection of the non-zero byte at `offset`, past the known size (`trailingNonZero`).
    public init(trailingByte offset: Int, value: UInt8) {
        reason = .trailingNonZero
        fieldName = "byte"
        byteOffset = offset
        self.value = UInt64(value)
    }

    /// Equal when reason, field and value are.
    public static func == (a: Self, b: Self) -> Bool {
        a.reason == b.reason && a.value == b.value && a.byteOffset == b.byteOffset && a.field == b.field
    }

    /// Hashes reason, field and value.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(reason)
        hasher.combine(value)
        hasher.combine(field)
    }

    /// Prints `response <reason>: <field> = 0x<value>`.
    public var description: String { "response \(reason.rawValue): \(field) = 0x\(String(value, radix: 16))" }
}
