import FaultABI
import FaultPipeline
import Glibc
import IOMMUFormats
import PageRequests

/// Replays a fixture as a fault source: once every fixture device is
/// attached and its queue negotiated, events come out when due (the
/// recorded timing, or as fast as possible), and every group's one answer
/// is recorded against the index of the event that closed it.
///
/// Streams the file: events are read as they are due, never held all at once.
public final class FixtureFeed: FaultSource {
    /// The scenario's header (devices, service settings, consumer, expectation).
    public let fixture: Fixture
    /// The pace in force.
    public let pace: ReplayPace
    /// Where the outcome is written when the run finishes (nil: not written).
    public let outcomePath: String?
    let reader: FixtureReader
    var nextEvent: FixtureEvent?
    var nextIndex = 0
    var exhausted = false
    var startNS: UInt64?
    /// Each group's one answer, by the event that closed it.
    let recorder = GroupOutcomeRecorder()
    /// Why the outcome could not be written, if it could not.
    public private(set) var writeError: FixtureError?

    /// Opens `path` and reads its header and first event.
    /// - Throws: the first `FixtureError` met (file, event and field named).
    public init(path: String, pace: ReplayPace, outcomePath: String? = nil) throws(FixtureError) {
        reader = try FixtureReader(path: path)
        fixture = try reader.open()
        self.pace = pace
        self.outcomePath = outcomePath
        nextEvent = try reader.next()
        exhausted = nextEvent == nil
    }

    /// What happened so far.
    public var outcome: FixtureOutcome { recorder.outcome }

    /// The service policy the fixture asks for.
    public var policy: PageRequestPolicy {
        var policy = PageRequestPolicy()
        policy.timeoutNS = fixture.service.timeoutMicroseconds * 1000
        policy.passFailure = fixture.service.passFailure
        policy.maxOutstandingGroups = fixture.service.cookieTable
        return policy
    }

    /// The fixture's devices.
    public var devices: [SourceDevice] { fixture.devices.map { SourceDevice(id: $0.id, allocation: $0.allocation) } }

    /// All events handed out and every group answered.
    public var isFinished: Bool { exhausted && recorder.waitingCount == 0 }

    /// Hands out the events due at `now`; nothing until every fixture device
    /// is attached and negotiated (the clock starts then).
    public func raise(now: UInt64, into intake: any FaultIntake) {
        if startNS == nil {
            guard fixture.devices.allSatisfy({ intake.isReady($0.id) }) else { return }
        }
        let start = startNS ?? now
        startNS = start
        var handed = 0
        while let event = nextEvent {
            if pace == .recorded && event.t * 1000 > now - start { break }
            if pace == .fast && handed >= 4096 { break }
            inject(event, index: nextIndex, now: now, into: intake)
            handed += 1
            nextIndex += 1
            do {
                nextEvent = try reader.next()
            } catch {
                recorder.outcome.problems.append("\(error)")
                nextEvent = nil
            }
            if nextEvent == nil { exhausted = true }
        }
    }

    func inject(_ event: FixtureEvent, index: Int, now: UInt64, into intake: any FaultIntake) {
        switch event.kind {
        case .pageRequest(var request):
            request.timestampNS = now
            if request.isLastPage && !request.isStopMarker { recorder.expectAnswer(request, event: index) }
            intake.receive(request, now: now)
        case .fault(var fault):
            fault.timestampNS = now
            switch intake.deliver(fault) {
            case .published: recorder.outcome.faultsDelivered += 1
            case .dropped: break  // counted by the queue, and in lostRecords at the end
            case .noQueue: recorder.outcome.lostRecords += 1  // nobody to deliver it to
            }
        case .raw(let format, let device, let words):
            let needsPASID = fixture.devices.first { $0.id == device }?.needsPASID ?? false
            let dialect = fixture.service.decoding
            do {
                let decoded: FixtureEvent.Kind
                switch format {
                case .smmuv3PRI:
                    decoded = .pageRequest(try SMMUv3PRIRecord(words: words[0], words[1], dialect: dialect)
                        .pageRequest(deviceID: device, needsPASID: needsPASID))
                case .smmuv3Event:
                    switch try SMMUv3EventRecord(words: words[0], words[1], words[2], words[3], dialect: dialect)
                        .fault(deviceID: device) {
                    case .pageRequest(let r): decoded = .pageRequest(r)
                    case .unrecoverable(let f): decoded = .fault(f)
                    }
                case .vtdPageRequest:
                    decoded = .pageRequest(try VTdPageRequest(words: words[0], words[1], words[2], words[3], dialect: dialect)
                        .pageRequest(deviceID: device))
                }
                inject(FixtureEvent(t: event.t, kind: decoded), index: index, now: now, into: intake)
            } catch {
                recorder.outcome.problems.append("event \(index): \(error)")
            }
        }
    }

    /// Fast: at once while events remain; recorded: the next event's time.
    /// Nothing before every fixture device is ready (the attach or the
    /// negotiation that makes them ready wakes the loop).
    public func nextDeadline(after now: UInt64, intake: any FaultIntake) -> UInt64? {
        guard let start = startNS, let event = nextEvent else {
            return startNS == nil && fixture.devices.allSatisfy({ intake.isReady($0.id) }) ? now : nil
        }
        return pace == .fast ? now : start &+ event.t &* 1000
    }

    /// Records the group's one answer against its event.
    public func complete(_ completion: DeviceCompletion) { recorder.record(completion) }

    /// Writes the outcome (automatic answers, rejections, ring losses) to
    /// `outcomePath`.
    public func finish(_ summary: PipelineSummary) {
        recorder.outcome.auto = summary.pageRequests.autoResponses
        recorder.outcome.rejections = summary.pageRequests.rejections
        recorder.outcome.lostRecords += summary.recordsLost
        recorder.outcome.groups.sort { $0.event < $1.event }
        guard let outcomePath else { return }
        do {
            try recorder.outcome.write(to: outcomePath)
        } catch {
            writeError = error
        }
    }
}
