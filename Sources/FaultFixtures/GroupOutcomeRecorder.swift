import FaultABI
import PageRequests

/// Keeps the books of a fixture run or capture: each group's one answer,
/// recorded against the index of the event that closed it. Answers find
/// their group as a device would (`AnswerMatcher`: PRGI, then PASID and
/// private data), so a reused PRGI still finds its own group.
public final class GroupOutcomeRecorder {
    var waiting: [UInt32: AnswerMatcher<Int>] = [:]
    /// Groups closed and not answered yet.
    public private(set) var waitingCount = 0
    /// What happened so far.
    public var outcome = FixtureOutcome()

    /// Empty books.
    public init() {}

    /// A LAST_PAGE request (not a stop marker) was raised as event `event`.
    public func expectAnswer(_ request: PageRequest, event: Int) {
        waiting[request.deviceID, default: AnswerMatcher()].expect(
            prgi: request.prgi, pasid: request.pasid, privateData: request.privateData, event)
        waitingCount += 1
    }

    /// The one answer to a group.
    public func record(_ completion: DeviceCompletion) {
        guard let event = waiting[completion.deviceID]?.take(
            prgi: completion.prgi, pasid: completion.pasid, privateData: completion.privateData)
        else {
            outcome.problems.append("an answer for device \(completion.deviceID) PRGI \(completion.prgi) with no group waiting")
            return
        }
        waitingCount -= 1
        outcome.groups.append(.init(event: event, code: completion.code.description, source: completion.source.label))
    }

    /// The outcome as an expectation (what a capture writes).
    public var expectation: Fixture.Expectation {
        var e = Fixture.Expectation()
        e.groups = outcome.groups.sorted { $0.event < $1.event }
        e.auto = outcome.auto
        e.rejections = outcome.rejections
        e.lostRecords = outcome.lostRecords
        e.faultsDelivered = outcome.faultsDelivered
        return e
    }
}
