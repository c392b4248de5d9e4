import Foundation

/// What actually happened when a fixture ran: per group (by the index of
/// its LAST_PAGE event) the code the device got and who answered; counts of
/// automatic answers and rejections; ring losses and delivered faults.
public struct FixtureOutcome: Codable, Sendable, Hashable {
    /// A group's answer, as in an expectation.
    public typealias Group = Fixture.ExpectedGroup

    /// Each answered group, by the event that closed it.
    public var groups: [Group] = []
    /// Groups the service answered itself, by cause (`AutoResponseCause.rawValue`).
    public var auto: [String: UInt64] = [:]
    /// Responses that completed nothing, by reason (`ResponseRejectionReason.rawValue`).
    public var rejections: [String: UInt64] = [:]
    /// Records dropped for a full ring, plus faults with no queue to deliver to.
    public var lostRecords: UInt64 = 0
    /// Unrecoverable faults written into a consumer's ring.
    public var faultsDelivered: UInt64 = 0
    /// Events the run could not turn into anything (undecodable raw records).
    public var problems: [String] = []

    /// Nothing happened yet.
    public init() {}

    /// Every difference between `expected` and this outcome, in words.
    public func differences(from expected: Fixture.Expectation) -> [String] {
        var out: [String] = []
        let actual = Dictionary(groups.map { ($0.event, $0) }, uniquingKeysWith: { a, _ in a })
        var listed = Set<Int>()
        for want in expected.groups {
            listed.insert(want.event)
            guard let got = actual[want.event] else {
                out.append("group closed by event \(want.event): expected \(want.code) from \(want.source), got no answer")
                continue
            }
            if got.code != want.code || got.source != want.source {
                out.append("group closed by event \(want.event): expected \(want.code) from \(want.source), got \(got.code) from \(got.source)")
            }
        }
        if !expected.groups.isEmpty {
            for got in groups.sorted(by: { $0.event < $1.event }) where !listed.contains(got.event) {
                out.append("group closed by event \(got.event): answered \(got.code) from \(got.source), not in the expectation")
            }
        }
        for (label, want, got) in [("automatic answers", expected.auto, auto), ("rejections", expected.rejections, rejections)] {
            for key in Set(want.keys).union(got.keys).sorted() where (want[key] ?? 0) != (got[key] ?? 0) {
                out.append("\(label) \(key): expected \(want[key] ?? 0), got \(got[key] ?? 0)")
            }
        }
        if let lost = expected.lostRecords, lost != lostRecords {
            out.append("records lost: expected \(lost), got \(lostRecords)")
        }
        if let delivered = expected.faultsDelivered, delivered != faultsDelivered {
            out.append("unrecoverable faults delivered: expected \(delivered), got \(faultsDelivered)")
        }
        out += problems
        return out
    }

    /// Writes the outcome as JSON (sorted keys) to `path`.
    /// - Throws: `FixtureError` naming the file.
    public func write(to path: String) throws(FixtureError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            try encoder.encode(self).write(to: URL(fileURLWithPath: path))
        } catch {
            throw FixtureError(file: path, "cannot write the outcome: \(error)")
        }
    }

    /// Reads an outcome `write(to:)` wrote.
    /// - Throws: `FixtureError` naming the file.
    public static func read(from path: String) throws(FixtureError) -> FixtureOutcome {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FixtureError(file: path, "no outcome was written")
        }
        do {
            return try JSONDecoder().decode(FixtureOutcome.self, from: data)
        } catch {
            throw FixtureError(file: path, "the outcome is not valid: \(error)")
        }
    }
}
