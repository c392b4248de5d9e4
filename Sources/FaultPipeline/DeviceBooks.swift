import PageRequests

/// One device's books, as its source keeps them: groups issued, answered
/// (once each), by whom, and what went wrong.
public struct DeviceBooks: Codable, Sendable, Hashable {
    /// The device.
    public var id: UInt32
    /// Groups the device raised.
    public var issued: UInt64
    /// Groups answered (once each).
    public var answered: UInt64
    /// Groups raised and not answered yet.
    public var outstanding: Int
    /// Answers for no waiting group (a second answer, or never issued).
    public var unexpected: UInt64
    /// Answers with the wrong PASID or private data.
    public var wrong: UInt64
    /// Answers by source: `consumer` or an automatic cause.
    public var answersBySource: [String: UInt64]
    /// Counters particular to the source, by name (a DMA device's
    /// translations and the guest bugs it saw); nil if it keeps none.
    public var counters: [String: UInt64]?

    /// Books with these counts.
    public init(id: UInt32, issued: UInt64, answered: UInt64, outstanding: Int, unexpected: UInt64, wrong: UInt64,
                answersBySource: [String: UInt64]) {
        self.id = id
        self.issued = issued
        self.answered = answered
        self.outstanding = outstanding
        self.unexpected = unexpected
        self.wrong = wrong
        self.answersBySource = answersBySource
    }
}

/// The pipeline's final counts, handed to a source when the run ends.
public struct PipelineSummary: Sendable, Hashable {
    /// The page-request layer's counters.
    public var pageRequests: PageRequestCounters
    /// Records dropped for full rings, over every queue that ever existed.
    public var recordsLost: UInt64

    /// A summary of these counts.
    public init(pageRequests: PageRequestCounters, recordsLost: UInt64) {
        self.pageRequests = pageRequests
        self.recordsLost = recordsLost
    }
}
