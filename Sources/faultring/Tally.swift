/// Counts keyed by name, printed for people: `consumer 318968, detach 36`,
/// in a stable order (largest first, then by name), or `none`.
///
/// The one formatter every human-facing summary uses, so no line shows a
/// Swift dictionary literal.
struct Tally: CustomStringConvertible {
    let counts: [String: UInt64]

    init(_ counts: [String: UInt64]) { self.counts = counts }

    /// `name count, name count`, largest first; `none` when empty or all zero.
    var description: String {
        let shown = counts.filter { $0.value > 0 }.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        return shown.isEmpty ? "none" : shown.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }
}

/// Rows printed as an aligned table for people: a header, then one line per
/// row, each column as wide as its widest cell (numbers right-aligned).
struct TextTable {
    let header: [String]
    var rows: [[String]] = []

    init(_ header: String...) { self.header = header }

    mutating func add(_ cells: String...) { rows.append(cells) }

    /// The table, each line indented by `indent`.
    func render(indent: String = "  ") -> String {
        let all = [header] + rows
        let widths = header.indices.map { c in all.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            indent + cells.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return cell.first?.isNumber == true ? pad + cell : cell + pad
            }.joined(separator: "  ")
        }
        return all.map(line).joined(separator: "\n")
    }
}
