import Devices
import FaultABI
import PageRequests
import Workloads

/// Replays a fixture as the service's fault source: events come out when
/// due (recorded timing, or as fast as possible), and every group's one
/// answer is recorded against the index of the event that closed it.
final class FixtureFeed {
    enum Pace: String, Sendable { case fast, recorded }

    let reader: FixtureReader
    let fixture: Fixture
    let pace: Pace
    var nextEvent: FixtureEvent?
    var nextIndex = 0
    var exhausted = false
    var startNS: UInt64?
    /// Groups waiting for their answer, by (device, PRGI).
    var waiting: [UInt64: [(event: Int, pasid: UInt32?, data: PrivateData?)]] = [:]
    var waitingCount = 0
    var outcome = FixtureOutcome()

    init(path: String, pace: Pace) throws(FixtureError) {
        reader = try FixtureReader(path: path)
        fixture = try reader.open()
        self.pace = pace
        nextEvent = try reader.next()
        exhausted = nextEvent == nil
    }

    /// All events handed out and every group answered.
    var done: Bool { exhausted && waitingCount == 0 }

    /// The events due at `now` (ns), with their indices. The clock starts
    /// at the first call.
    func due(now: UInt64) throws(FixtureError) -> [(Int, FixtureEvent)] {
        let start = startNS ?? now
        startNS = start
        var out: [(Int, FixtureEvent)] = []
        while let event = nextEvent {
            if pace == .recorded && event.t * 1000 > now - start { break }
            if pace == .fast && out.count >= 4096 { break }
            out.append((nextIndex, event))
            nextIndex += 1
            nextEvent = try reader.next()
            if nextEvent == nil { exhausted = true }
        }
        return out
    }

    static func key(_ device: UInt32, _ prgi: UInt32) -> UInt64 { UInt64(device) << 32 | UInt64(prgi) }

    /// A LAST_PAGE request (not a stop marker) went to the tracker.
    func expectAnswer(_ request: PageRequest, event: Int) {
        waiting[Self.key(request.deviceID, request.prgi), default: []].append((event, request.pasid, request.privateData))
        waitingCount += 1
    }

    /// The one answer to a group: recorded against the event that closed it.
    func record(_ completion: DeviceCompletion) {
        let key = Self.key(completion.deviceID, completion.prgi)
        guard var list = waiting[key], !list.isEmpty else {
            outcome.problems.append("an answer for device \(completion.deviceID) PRGI \(completion.prgi) with no group waiting")
            return
        }
        let index = list.firstIndex { ($0.pasid == completion.pasid || completion.pasid == nil) && $0.data == completion.privateData } ?? 0
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
}
