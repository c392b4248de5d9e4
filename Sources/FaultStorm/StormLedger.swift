import FaultPipeline

/// One device's books at the end of a storm: what the device itself
/// counted (the exactly-once proof crosses the process boundary) and who,
/// by the service's books, answered its groups.
public struct StormLedger: Codable, Sendable, Hashable {
    /// The device id.
    public var device: UInt32
    /// Groups it raised.
    public var issued: UInt64
    /// Groups answered, as the device counted them.
    public var answered: UInt64
    /// Groups never answered.
    public var unanswered: Int
    /// Answers it did not expect: a second answer, or one for a group it never raised.
    public var answeredTwice: UInt64
    /// Answers with the wrong PASID or PRGI.
    public var wrong: UInt64
    /// Who answered, by the service's books: `consumer`, `timeout`, `overflow`, `detach`, …
    /// (empty in a direct run, where the consumer answers everything itself).
    public var answeredBy: [String: UInt64]

    /// The device's books and the service's view of who answered.
    public init(_ books: DeviceBooks, answeredBy: [String: UInt64]) {
        device = books.id
        issued = books.issued
        answered = books.answered
        unanswered = books.outstanding
        answeredTwice = books.unexpected
        wrong = books.wrong
        self.answeredBy = answeredBy
    }

    /// Every group answered exactly once, correctly.
    public var balances: Bool { unanswered == 0 && answeredTwice == 0 && wrong == 0 && answered == issued }
}
