import FaultABI
import PageRequests

/// Keeps the books of a fixture run or capture: each group's one answer,
/// recorded against the index of the event that closed it. Answers are
/// matched by (device, PRGI), then PASID and private data, so a reused PRGI
/// still finds its own group.
public final class GroupOutcomeRecorder {
    var waiting: [UInt64: [(event: Int, pasid: UInt32?, data: PrivateData?)]] = [:]
    /// Groups closed and not answered yet.
    public private(set) var waitingCount = 0
    /// What happened so far.
    public var outcome = FixtureOutcome()

    public init() {}

    static func key(_ device: UInt32, _ prgi: UInt32) -> UInt64 { UInt64(device) << 32 | UInt64(prgi) }

    /// A LAST_PAGE request (not a stop marker) was raised as event `event`.
    public func expectAnswer(_ request: PageRequest, event: Int) {
        waiting[Self.key(request.deviceID, request.prgi), default: []].append((event, request.pasid, request.privateData))
        waitingCount += 1
    }

    /// The one answer to a group.
    public func record(_ completion: DeviceCompletion) {
        let key = Self.key(completion.deviceID, completion.prgi)
        guard var list = waiting[key], !list.isEmpty else {
            outcome.problems.append("an answer for device \(completion.deviceID) PRGI \(completion.prgi) with no group waiting")
            return
        }
        let index = list.firstIndex {
            ($0.pasid == completion.pasid || completion.pasid == nil) && $0.data == completion.privateData
        } ?? 0
        let group = list.remove(at: index)
        waiting[key] = list.isEmpty ? nil : list
        waitingCount -= 1
        let source: String
        switch completion.source {
        case .consumer: source = "consumer"
        case .automatic(let cause): source = cause.rawValue
        }
        outcome.groups.append(.init(event: group.event, code: completion.code.description, source: source))
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
