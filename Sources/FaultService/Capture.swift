import Devices
import FaultABI
import Logging
import PageRequests
import Workloads

/// Records a live service as a fixture: every page request the simulated
/// devices raise (streamed to the file as it happens) and, at the end, how
/// each group ended, as the fixture's expected outcome — so the run can be
/// replayed forever.
final class Capture {
    let writer: FixtureWriter
    let recorder = GroupOutcomeRecorder()
    var index = 0
    var startNS: UInt64?

    init(path: String, config: ServiceConfig) throws(FixtureError) {
        var fixture = Fixture()
        fixture.name = "capture"
        fixture.description = "captured from a live faultring service"
        fixture.service.timeoutMicroseconds = config.policy.timeoutNS / 1000
        fixture.service.passFailure = config.policy.passFailure
        fixture.service.cookieTable = config.policy.maxOutstandingGroups
        fixture.service.entries = config.entryCount
        fixture.service.pace = "recorded"
        fixture.devices = config.devices.map {
            Fixture.Device(id: $0.deviceID, name: "simulated \($0.deviceID)", pasids: $0.pasids, allocation: $0.allocation,
                           needsPASID: $0.needsPASID, privateData: $0.privateData)
        }
        fixture.consumer.policy = .success
        writer = try FixtureWriter(path: path, fixture: fixture)
    }

    /// A device raised `request` at `now`.
    func raised(_ request: PageRequest, now: UInt64) {
        let start = startNS ?? now
        startNS = start
        if request.isLastPage && !request.isStopMarker { recorder.expectAnswer(request, event: index) }
        writer.append(FixtureEvent(t: (now - start) / 1000, kind: .pageRequest(request)))
        index += 1
    }

    /// Writes how every group ended, and closes the file.
    func finish(_ counters: PageRequestCounters, logger: Logger) {
        recorder.outcome.auto = counters.autoResponses
        recorder.outcome.rejections = counters.rejections
        do {
            try writer.finish(expected: recorder.expectation)
            logger.info("capture: \(index) events, \(recorder.outcome.groups.count) groups written to \(writer.path)")
        } catch {
            logger.error("capture: \(error)")
        }
    }
}
