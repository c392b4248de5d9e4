import FaultABI
import FaultPipeline
import PageRequests

/// Records a live run as a fixture: wraps a fault source, streams every
/// page request it raises to the file as it happens and, at the end, writes
/// how each group ended as the fixture's expected outcome — so the run can
/// be replayed forever.
///
/// Asked to stop, a capture first stops the source raising and lets the
/// outstanding groups be answered (`drainsBeforeStop`), so its books are whole.
public final class Capture: FaultSource, FaultIntake {
    /// The source being recorded.
    public let inner: any FaultSource
    let writer: FixtureWriter
    let recorder = GroupOutcomeRecorder()
    var index = 0
    var startNS: UInt64?
    /// The intake in front of which the capture sits (the pipeline).
    weak var downstream: (any FaultIntake)?
    /// What `finish` did: the events and groups written, or why it failed.
    public private(set) var result: Result<(events: Int, groups: Int), FixtureError>?

    /// Starts a fixture at `path` describing `devices` (the inner source's,
    /// with their PASID and private-data traits) under `policy` and ring size `entries`.
    /// - Throws: `FixtureError` if the file cannot be created.
    public init(path: String, recording inner: any FaultSource, devices: [Fixture.Device], policy: PageRequestPolicy,
                entries: Int) throws(FixtureError) {
        self.inner = inner
        var fixture = Fixture()
        fixture.name = "capture"
        fixture.description = "captured from a live faultring service"
        fixture.service.timeoutMicroseconds = policy.timeoutNS / 1000
        fixture.service.passFailure = policy.passFailure
        fixture.service.cookieTable = policy.maxOutstandingGroups
        fixture.service.entries = entries
        fixture.service.pace = .recorded
        fixture.devices = devices
        fixture.consumer.behaviour.policy = .success
        writer = try FixtureWriter(path: path, fixture: fixture)
    }

    /// The fixture's path.
    public var path: String { writer.path }

    // MARK: FaultSource

    /// The inner source's devices.
    public var devices: [SourceDevice] { inner.devices }

    /// Lets the inner source raise, recording every page request on the way.
    public func raise(now: UInt64, into intake: any FaultIntake) {
        downstream = intake
        inner.raise(now: now, into: self)
    }

    /// The inner source's clock.
    public func nextDeadline(after now: UInt64, intake: any FaultIntake) -> UInt64? {
        downstream = intake
        return inner.nextDeadline(after: now, intake: self)
    }

    /// Records the answer, then passes it to the inner source.
    public func complete(_ completion: DeviceCompletion) {
        recorder.record(completion)
        inner.complete(completion)
    }

    /// The inner source's descriptors.
    public var descriptors: [Int32] { inner.descriptors }

    /// Reads through the inner source, recording what it raises.
    public func readable(_ descriptor: Int32, now: UInt64, into intake: any FaultIntake) {
        downstream = intake
        inner.readable(descriptor, now: now, into: self)
    }

    /// The inner source's books.
    public func books() -> [DeviceBooks] { inner.books() }
    /// Whether the inner source is finished.
    public var isFinished: Bool { inner.isFinished }
    /// A capture drains before it stops.
    public var drainsBeforeStop: Bool { true }
    /// Stops the inner source raising.
    public func stopRaising() { inner.stopRaising() }

    /// Writes how every group ended, and closes the file.
    public func finish(_ summary: PipelineSummary) {
        inner.finish(summary)
        recorder.outcome.auto = summary.pageRequests.autoResponses
        recorder.outcome.rejections = summary.pageRequests.rejections
        do {
            try writer.finish(expected: recorder.expectation)
            result = .success((index, recorder.outcome.groups.count))
        } catch {
            result = .failure(error)
        }
    }

    // MARK: FaultIntake (in front of the pipeline)

    /// As downstream.
    public func isAttached(_ device: UInt32) -> Bool { downstream?.isAttached(device) ?? false }
    /// As downstream.
    public func isReady(_ device: UInt32) -> Bool { downstream?.isReady(device) ?? false }
    /// As downstream.
    public var attachedDevices: [UInt32] { downstream?.attachedDevices ?? [] }

    /// Writes the request to the fixture, then passes it on.
    @discardableResult
    public func receive(_ request: PageRequest, now: UInt64) -> UInt64? {
        let start = startNS ?? now
        startNS = start
        if request.isLastPage && !request.isStopMarker { recorder.expectAnswer(request, event: index) }
        writer.append(FixtureEvent(t: (now - start) / 1000, kind: .pageRequest(request)))
        index += 1
        return downstream?.receive(request, now: now)
    }

    /// As downstream.
    public func lost(_ count: UInt64, device: UInt32) { downstream?.lost(count, device: device) }

    /// The inner source's batch.
    public func flush() { inner.flush() }

    /// Passes the fault on (captures record page requests only).
    public func deliver(_ fault: UnrecoverableFault) -> FaultDelivery { downstream?.deliver(fault) ?? .noQueue }
}
