import FaultABI
import PageRequests

/// The device's own books: every group it issued, and every answer it got.
///
/// It checks each answer against what it sent — right PRG index, right
/// PASID (echoed only with NEEDS_PASID), right private data — and that each
/// group is answered exactly once. `verdict` says whether anything is
/// unanswered, answered twice, or answered wrongly.
public struct DeviceLedger: Sendable {
    struct Issued: Sendable {
        var pasid: UInt32?
        var needsPASID: Bool
        var privateData: PrivateData?
    }

    /// Issued groups still waiting, by PRG index (a list: a misbehaving
    /// device may reuse an index while a group is outstanding).
    var waiting = [[Issued]](repeating: [], count: 512)
    public private(set) var issued: UInt64 = 0
    public private(set) var answered: UInt64 = 0
    public private(set) var success: UInt64 = 0
    public private(set) var invalid: UInt64 = 0
    public private(set) var failure: UInt64 = 0
    /// Answers by the consumer.
    public private(set) var byConsumer: UInt64 = 0
    /// Automatic answers, by `AutoResponseCause` (in `allCases` order).
    var byCause = [UInt64](repeating: 0, count: AutoResponseCause.allCases.count)
    /// Answers by source (`consumer` or an `AutoResponseCause.rawValue`).
    public var bySource: [String: UInt64] {
        var sources: [String: UInt64] = [:]
        if byConsumer > 0 { sources["consumer"] = byConsumer }
        for (i, cause) in AutoResponseCause.allCases.enumerated() where byCause[i] > 0 { sources[cause.rawValue] = byCause[i] }
        return sources
    }
    /// Answers for no waiting group: a second answer, or one never issued.
    public private(set) var unexpected: UInt64 = 0
    /// Answers whose PASID or private data differ from the request's.
    public private(set) var wrong: UInt64 = 0
    /// The first few problems, in words.
    public private(set) var problems: [String] = []

    public init() {}

    /// Records a group the device sent (its LAST_PAGE request).
    public mutating func issue(prgi: UInt32, pasid: UInt32?, needsPASID: Bool, privateData: PrivateData?) {
        waiting[Int(prgi & 0x1FF)].append(Issued(pasid: pasid, needsPASID: needsPASID, privateData: privateData))
        issued += 1
    }

    /// Checks one answer. Returns false if it matched no waiting group.
    @discardableResult
    public mutating func receive(_ completion: DeviceCompletion) -> Bool {
        let prgi = Int(completion.prgi & 0x1FF)
        guard !waiting[prgi].isEmpty else {
            unexpected += 1
            note("answer for PRGI \(completion.prgi) with nothing outstanding (twice, or never issued)")
            return false
        }
        // A reused PRG index has several groups waiting: the answer is for
        // the one whose PASID and private data it echoes.
        let expected = { (g: Issued) in (g.needsPASID ? g.pasid : nil) == completion.pasid && g.privateData == completion.privateData }
        let issuedGroup = waiting[prgi].count == 1
            ? waiting[prgi].removeLast() : waiting[prgi].remove(at: waiting[prgi].firstIndex(where: expected) ?? 0)
        answered += 1
        let expectedPASID = issuedGroup.needsPASID ? issuedGroup.pasid : nil
        if completion.pasid != expectedPASID {
            wrong += 1
            note("PRGI \(completion.prgi): PASID \(String(describing: completion.pasid)), expected \(String(describing: expectedPASID))")
        }
        if completion.privateData != issuedGroup.privateData {
            wrong += 1
            note("PRGI \(completion.prgi): private data not echoed")
        }
        switch completion.code {
        case .success: success += 1
        case .invalid: invalid += 1
        default: failure += 1
        }
        switch completion.source {
        case .consumer: byConsumer += 1
        case .automatic(let cause): byCause[AutoResponseCause.allCases.firstIndex(of: cause)!] += 1
        }
        return true
    }

    /// Groups issued and not answered yet.
    public var unanswered: Int { waiting.reduce(0) { $0 + $1.count } }

    /// True when every issued group was answered exactly once, correctly.
    public var balanced: Bool { unanswered == 0 && unexpected == 0 && wrong == 0 && answered == issued }

    mutating func note(_ problem: String) {
        if problems.count < 10 { problems.append(problem) }
    }
}
