import ArgumentParser

/// An option given in one unit, in a smaller one: `value` × `factor` (ms in
/// ns: 1_000_000; µs in ns, or ms in µs: 1000). A value whose product does
/// not fit in 64 bits is refused by the option's name, not trapped on.
func scaled(_ value: UInt64, by factor: UInt64, _ option: String) throws -> UInt64 {
    let (product, overflow) = value.multipliedReportingOverflow(by: factor)
    guard !overflow else { throw ValidationError("\(option) must be at most \(UInt64.max / factor), not \(value)") }
    return product
}
