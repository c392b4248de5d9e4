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
    /// Each group's one answer, by the event that closed it.
    let recorder = GroupOutcomeRecorder()
    var outcome: FixtureOutcome {
        get { recorder.outcome }
        set { recorder.outcome = newValue }
    }

    init(path: String, pace: Pace) throws(FixtureError) {
        reader = try FixtureReader(path: path)
        fixture = try reader.open()
        self.pace = pace
        nextEvent = try reader.next()
        exhausted = nextEvent == nil
    }

    /// All events handed out and every group answered.
    var done: Bool { exhausted && recorder.waitingCount == 0 }

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

    func expectAnswer(_ request: PageRequest, event: Int) { recorder.expectAnswer(request, event: event) }

    func record(_ completion: DeviceCompletion) { recorder.record(completion) }
}
