/// Column-aligned plain-text tables for summaries (`hosts check`, `inspect`, build results).
public struct TextTable: Sendable {
    /// Column headings.
    public var header: [String]
    /// Rows of cells.
    public var rows: [[String]] = []

    /// A table with these headings.
    public init(_ header: [String]) { self.header = header }

    /// Adds a row.
    public mutating func append(_ row: [String]) { rows.append(row) }

    /// The table as lines, two spaces between columns, the last column unpadded.
    public func render() -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { i < $0.count ? $0[i].count : 0 }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
