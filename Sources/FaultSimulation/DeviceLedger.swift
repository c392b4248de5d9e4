import FaultABI
import FaultPipeline
import PageRequests

/// The device's own books: every group it issued, and every answer it got.
///
/// It checks each answer against what it sent — right PRG index, right
/// PASID (echoed only with NEEDS_PASID), right private data — and that each
/// group is answered exactly once. `balanced` says whether anything is
/// outstanding, answered twice, or answered wrongly.
public struct DeviceLedger: Sendable {
    /// Issued groups still waiting, matched as PCIe answers name them; each
    /// entry holds what a right answer echoes (the PASID only when the
    /// device asked for it back, and the private data), and nothing else.
    var waiting = AnswerMatcher<Void>()
    /// Groups issued (LAST_PAGE requests sent).
    public private(set) var issued: UInt64 = 0
    /// Answers that matched a waiting group.
    public private(set) var answered: UInt64 = 0
    /// Answers by code.
    public private(set) var success: UInt64 = 0
    /// Answers with code INVALID.
    public private(set) var invalid: UInt64 = 0
    /// Answers with code FAILURE.
    public private(set) var failure: UInt64 = 0
    /// Answers by source, in `CompletionSource.labels` order, except the
    /// consumer's (most of them), which are `byConsumer`: a stored count,
    /// where an array element costs a copy-on-write check per answer.
    var bySourceTally = [UInt64](repeating: 0, count: CompletionSource.labels.count)
    var byConsumer: UInt64 = 0
    /// Answers recorded under a label of the caller's (`receive(_:label:)`).
    var byLabel: [String: UInt64] = [:]
    /// Answers by source (`consumer` or an `AutoResponseCause.rawValue`, or
    /// a caller's label); sources with none are left out.
    public var bySource: [String: UInt64] {
        var sources = byLabel
        var tally = bySourceTally
        tally[CompletionSource.consumer.ordinal] += byConsumer
        for (i, label) in CompletionSource.labels.enumerated() where tally[i] > 0 { sources[label] = tally[i] }
        return sources
    }
    /// Answers for no waiting group: a second answer, or one never issued.
    public private(set) var unexpected: UInt64 = 0
    /// Answers whose PASID or private data differ from the request's.
    public private(set) var wrong: UInt64 = 0
    /// The first few problems, in words.
    public private(set) var problems: [String] = []

    /// Empty books.
    public init() {}

    /// Records a group the device sent (its LAST_PAGE request).
    @inline(__always) public mutating func issue(prgi: UInt32, pasid: UInt32?, needsPASID: Bool, privateData: PrivateData?) {
        makeUnique()
        issueUnshared(prgi: prgi, pasid: pasid, needsPASID: needsPASID, privateData: privateData)
    }

    /// Unshares the books' table if a copy of them shares it: a device
    /// raising or answered many groups in one operation checks once, then
    /// uses the `…Unshared` forms.
    mutating func makeUnique() { waiting.makeUnique() }

    /// `issue`, after `makeUnique()` (no copy of the books made since).
    @inline(__always) mutating func issueUnshared(prgi: UInt32, pasid: UInt32?, needsPASID: Bool, privateData: PrivateData?) {
        waiting.expectUnshared(prgi: prgi, pasid: needsPASID ? pasid : nil, privateData: privateData, ())
        issued += 1
    }

    /// Checks one answer. Returns false if it matched no waiting group.
    /// `label`, if given, is the source the books record instead of
    /// `completion.source`: a device behind the kernel's record protocol
    /// learns only the code, so it books what it can see (`service`, or
    /// `closed` for the INVALID a hang-up implies).
    @discardableResult
    @inline(__always)
    public mutating func receive(_ completion: DeviceCompletion, label: String? = nil) -> Bool {
        makeUnique()
        return receiveUnshared(completion, label: label)
    }

    /// `receive`, after `makeUnique()` (no copy of the books made since).
    @inline(__always)
    mutating func receiveUnshared(_ completion: DeviceCompletion, label: String? = nil) -> Bool {
        guard let expected = waiting.takeEntryUnshared(prgi: completion.prgi, pasid: completion.pasid,
                                                       privateData: completion.privateData) else {
            unexpected += 1
            note("answer for PRGI \(completion.prgi) with nothing outstanding (twice, or never issued)")
            return false
        }
        answered += 1
        if completion.pasid != expected.pasid {
            wrong += 1
            note("PRGI \(completion.prgi): PASID \(String(describing: completion.pasid)), expected \(String(describing: expected.pasid))")
        }
        if completion.privateData != expected.privateData {
            wrong += 1
            note("PRGI \(completion.prgi): private data not echoed")
        }
        switch completion.code {
        case .success: success += 1
        case .invalid: invalid += 1
        default: failure += 1
        }
        if let label {
            byLabel[label, default: 0] += 1
        } else if case .consumer = completion.source {
            byConsumer += 1
        } else {
            bySourceTally[completion.source.ordinal] += 1
        }
        return true
    }

    /// Whether a group with PRG index `prgi` is still waiting.
    public func isWaiting(prgi: UInt32) -> Bool { waiting.isWaiting(prgi: prgi) }

    /// Groups issued and not answered yet.
    public var outstanding: Int { waiting.count }

    /// True when every issued group was answered exactly once, correctly.
    public var balanced: Bool { outstanding == 0 && unexpected == 0 && wrong == 0 && answered == issued }

    /// The books as the pipeline reports them (stats, summaries).
    public func books(device: UInt32) -> DeviceBooks {
        DeviceBooks(id: device, issued: issued, answered: answered, outstanding: outstanding, unexpected: unexpected,
                    wrong: wrong, answersBySource: bySource)
    }

    mutating func note(_ problem: String) {
        if problems.count < 10 { problems.append(problem) }
    }
}
