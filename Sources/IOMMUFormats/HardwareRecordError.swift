/// A raw hardware record or command that is not valid, naming the field.
public struct HardwareRecordError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The format, e.g. "SMMUv3 PRI record".
    public let format: String
    /// The field, as the specification names it.
    public let field: String
    /// The value found.
    public let value: UInt64
    /// What is wrong with it.
    public let problem: String

    /// An error in `field` of `format`, which holds `value`.
    public init(format: String, field: String, value: UInt64, problem: String) {
        self.format = format
        self.field = field
        self.value = value
        self.problem = problem
    }

    /// Prints `<format>: <field> = 0x<value>: <problem>`.
    public var description: String { "\(format): \(field) = 0x\(String(value, radix: 16)): \(problem)" }
}

/// Bit-field helpers over little-endian 64-bit words.
@usableFromInline
enum Bits {
    @inlinable static func get(_ word: UInt64, _ low: Int, _ width: Int) -> UInt64 {
        (word >> UInt64(low)) & (width == 64 ? ~0 : (1 << UInt64(width)) - 1)
    }
    @inlinable static func put(_ value: UInt64, _ low: Int, _ width: Int) -> UInt64 {
        (value & (width == 64 ? ~0 : (1 << UInt64(width)) - 1)) << UInt64(low)
    }
    @inlinable static func flag(_ word: UInt64, _ bit: Int) -> Bool { word >> UInt64(bit) & 1 != 0 }
    @inlinable static func flag(_ on: Bool, _ bit: Int) -> UInt64 { on ? 1 << UInt64(bit) : 0 }
}
