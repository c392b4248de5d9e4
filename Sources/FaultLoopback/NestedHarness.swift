import DequeModule
import FaultABI
import FaultPipeline
import FaultQueue
import FaultSimulation
import IOMMUFormats
import NestedIOMMU
import PageRequests
import VMMClient

/// A vSVA session in one process, in virtual time, on the real queue and
/// real shared memory: the VMM's guest RAM (a memfd, written by the guest
/// model, read by the IOMMU with pread), a nested IOMMU domain, DMA devices
/// whose stage-1 misses become page requests, the page-request pipeline and
/// ring, and the guest's driver, which reads each request in its vIOMMU
/// format, maps the page, invalidates, and answers in that format.
public struct NestedHarness {
    /// What runs.
    public struct Config: Sendable, Hashable, Codable {
        /// How the guest binds (and so its formats: VT-d PRQ and x86 tables, or vSMMUv3 PRI and VMSAv8-64).
        public var style = NestedDomain.Style.vtd
        /// The guest driver's behaviour.
        public var behaviour = NestedGuest.Behaviour.correct
        /// DMA devices (ids 1…N), each PRI and ATS.
        public var devices = 2
        /// PASIDs each device uses (1…N, shared by all devices).
        public var pasids = 2
        /// Steps of virtual time the devices run.
        public var steps: UInt64 = 4_000
        /// Virtual time per step.
        public var stepNS: UInt64 = 1_000
        /// Accesses per device per step.
        public var accessesPerStep = 4
        /// Pages of each stream's window; the working set slides through it.
        public var windowPages = 96
        /// Resident pages per PASID the guest keeps (evicting beyond).
        public var budget = 48
        /// Page-request timeout (virtual).
        public var timeoutNS: UInt64 = 100_000
        /// Seed of every random choice.
        public var seed: UInt64 = 1
        /// Devices without PRI or ATS, the last of the `devices` (nil: none).
        /// They run device 1's streams (same PASIDs and windows, so they meet
        /// pages the guest mapped for device 1, read-only where it only read):
        /// their faults are unrecoverable events through the event path, and
        /// with no ATC their translations come from the IOTLB.
        public var nonPRIDevices: Int? = nil
        /// Answered page requests per MSI write of each device (nil: no
        /// interrupts; a session captured before devices wrote MSIs has none).
        public var msiEvery: Int? = nil

        /// The default session: VT-d, a correct guest.
        public init() {}
    }

    /// What happened, and what the tool found.
    public struct Report: Sendable, Codable {
        /// The configuration that ran.
        public var config: Config
        /// The devices' counters, summed.
        public var devices = DMADevice.Counters()
        /// The guest driver's counters.
        public var guest = NestedGuest.Counters()
        /// The IOMMU's counters.
        public var iommu = NestedCounters()
        /// The page-request layer's counters.
        public var tracker = PageRequestCounters()
        /// Page requests the guest answered after their timeout.
        public var lateAnswers: UInt64 = 0
        /// Unrecoverable faults the VMM read from its queue, by reason (`pte-fetch`, `permission`, …).
        public var events: [String: UInt64] = [:]
        /// Those the guest's driver read from its event queue, by its format's
        /// name (`F_TRANSLATION`, …; none for VT-d, which has no such queue here).
        public var guestEvents: [String: UInt64] = [:]
        /// Guest bugs by name, with their counts (empty: none).
        public var guestBugs: [String: UInt64] = [:]
        /// Differences between what must hold and what did (the books).
        public var problems: [String] = []
    }

    /// The configuration.
    public let config: Config

    /// A harness for `config`.
    public init(_ config: Config) { self.config = config }

    /// Runs the session.
    /// - Throws: if guest RAM, the queue or the guest's tables cannot be set up.
    public func run() throws -> Report { try session(replaying: nil, recording: false).report }

    /// Runs the session and records it: the configuration, each request the
    /// guest handled with its actions and answer, and the outcome.
    public func capture() throws -> (report: Report, session: NestedSession) {
        let (report, session) = try self.session(replaying: nil, recording: true)
        return (report, session!)
    }

    /// Replays a captured session: the same devices and IOMMU, the guest's
    /// recorded actions and answers instead of its judgement. The verdict is
    /// the list of differences from the captured outcome (empty: the same).
    /// - Throws: `NestedSessionError` if the run diverges from the recording
    ///   (a request the recording does not have next, an action that cannot
    ///   be done), naming the step.
    public static func replay(_ recorded: NestedSession) throws -> (report: Report, differences: [String]) {
        try recorded.validate()
        let (report, _) = try NestedHarness(recorded.config).session(replaying: recorded, recording: false)
        let got = NestedSession.Outcome(report)
        var differences: [String] = []
        let want = recorded.expected
        if got.devices != want.devices { differences.append("devices: recorded \(want.devices), replayed \(got.devices)") }
        if got.staleTranslations != want.staleTranslations {
            differences.append("staleTranslations: recorded \(want.staleTranslations), replayed \(got.staleTranslations)")
        }
        if got.staleContexts != want.staleContexts {
            differences.append("staleContexts: recorded \(want.staleContexts), replayed \(got.staleContexts)")
        }
        if got.completed != want.completed { differences.append("completed: recorded \(want.completed), replayed \(got.completed)") }
        if got.guestBugs != want.guestBugs { differences.append("guestBugs: recorded \(want.guestBugs), replayed \(got.guestBugs)") }
        return (report, differences)
    }

    func session(replaying script: NestedSession?, recording: Bool) throws -> (report: Report, session: NestedSession?) {
        let c = config
        // Guest RAM: the VMM's memfd; the IOMMU reads the same file through a read-only description.
        let ram = try GuestRAM(gpa: 1 << 30, size: 64 << 20)
        let memory = GuestMemory()
        try memory.add(fd: ram.fd.descriptor, gpa: ram.gpa, size: ram.size)
        let domain = NestedDomain(style: c.style, memory: memory, pasidQuota: 64)
        let pasids = (1...UInt32(max(c.pasids, 1))).map { $0 }
        let deviceIDs = (1...UInt32(max(c.devices, 1))).map { $0 }
        let patterns: [DMAStream.Pattern] = [.workingSet(pages: c.budget / 2, churnEvery: 16), .sequential, .strided(3),
                                             .random]
        let firstNonPRI = deviceIDs.count - min(c.nonPRIDevices ?? 0, deviceIDs.count - 1) + 1
        // Replaying, the devices as recorded (streams, PRI, ATS, interrupts); else built from the configuration.
        let configs = script?.setup?.devices ?? deviceIDs.map { id in
            let nonPRI = id >= firstNonPRI
            let window = nonPRI ? UInt32(1) : id   // a device without PRI meets device 1's pages
            var config = DMADevice.Config(id: id, streams: pasids.enumerated().map { i, pasid in
                DMAStream(pasid: pasid, base: UInt64(window) << 32 | UInt64(pasid) << 24, pages: c.windowPages,
                          // Each (device, PASID) its own pattern, in turn: two devices of two PASIDs run all four.
                          pattern: patterns[(Int(id - 1) * pasids.count + i) % patterns.count], writeEvery: 3)
            })
            config.pri = !nonPRI
            config.ats = !nonPRI
            config.accessesPerStep = c.accessesPerStep
            config.msi = c.msiEvery.map { DMADevice.MSIWrites(iova: NestedGuest.msiDoorbell, every: $0) }
            return config
        }
        let source = NestedDevices(domain: domain, devices: configs, stepNS: c.stepNS, seed: c.seed)
        // The guest invalidates device TLBs of the devices that have one (ATS).
        let guest = try NestedGuest(style: c.style, ram: ram, pasids: pasids,
                                    devices: configs.filter(\.ats).map(\.id), budget: c.budget,
                                    behaviour: c.behaviour, invalidate: { (inv) throws(NestedError) in
                                        try domain.invalidate(inv)
                                    })
        // The guest's tables, then its doorbell (before any answer: the devices' completion
        // interrupts go there). Replaying, what the session recorded, as recorded.
        let setup = script?.setup ?? NestedSession.Setup(of: guest, style: c.style, devices: deviceIDs, configs: configs)
        try setup.apply(to: domain)

        // The service side: pipeline, producer; the VMM side: consumer, guest format.
        var policy = PageRequestPolicy()
        policy.timeoutNS = c.timeoutNS
        let pipeline = Pipeline(source: source, policy: policy)
        let producer = try FaultProducer(geometry: QueueGeometry(entryCount: 1024, responseCount: 1024),
                                         name: "faultring-nested")
        let consumer = try FaultConsumer(files: producer.consumerFiles())
        try consumer.requestABI(.v2)
        producer.poll()
        let channel = pipeline.addQueue(producer)
        for id in deviceIDs { pipeline.attach(id, to: channel) }
        var path = GuestFormatPath(format: c.style == .vtd ? .vtd : .smmuv3)
        var held = Deque<(due: UInt64, response: PageResponse)>()
        var outbox: [PageResponse] = []
        var lateAnswers: UInt64 = 0
        var events: [String: UInt64] = [:]
        var guestEvents: [String: UInt64] = [:]

        var handled: [NestedSession.Handled] = []
        var actions: [NestedGuest.Action] = []
        if recording { guest.record = { actions.append($0) } }
        var next = 0   // the next recorded request, replaying

        var now: UInt64 = 0
        var step: UInt64 = 0
        let drainLimit = c.steps + c.timeoutNS / c.stepNS * 4 + 100
        while step < drainLimit {
            step += 1
            now &+= c.stepNS
            if step == c.steps { source.stopRaising() }
            pipeline.raise(now: now)
            // The guest's driver reads its queue and answers.
            let batch = try consumer.peek()
            for i in batch.indices {
                let record = try batch.decode(i)
                if case .event(.unrecoverable(let fault), _) = record {
                    events[fault.reasonName, default: 0] += 1
                    if let seen = path.presentEvent(fault, endpoint: fault.deviceID) { guestEvents[seen, default: 0] += 1 }
                    continue
                }
                guard case .event(.pageRequest(let request), _) = record, request.isLastPage else { continue }
                let code: ResponseCode
                if let script {
                    guard next < script.handled.count else {
                        throw NestedSessionError("step \(step): device \(request.deviceID) PRGI \(request.prgi) asks, the recording has ended")
                    }
                    let h = script.handled[next]
                    next += 1
                    guard h.step == step, h.device == request.deviceID, h.prgi == request.prgi else {
                        throw NestedSessionError("handled[\(next - 1)]: recorded step \(h.step) device \(h.device) PRGI \(h.prgi); "
                                                 + "replay has step \(step) device \(request.deviceID) PRGI \(request.prgi)")
                    }
                    for (i, action) in h.actions.enumerated() {
                        do { try guest.replay(action) } catch {
                            throw NestedSessionError("handled[\(next - 1)].actions[\(i)]: \(error.description)")
                        }
                    }
                    code = h.code == "success" ? .success : .invalid
                } else {
                    code = guest.handle(try path.present(request, endpoint: request.deviceID))
                }
                if recording {
                    handled.append(.init(step: step, device: request.deviceID, prgi: request.prgi, actions: actions,
                                         code: code == .success ? "success" : "invalid"))
                    actions.removeAll()
                }
                let response = try path.answer(request, endpoint: request.deviceID, code: code)
                if c.behaviour == .slow {
                    held.append((now + c.timeoutNS + 2 * c.stepNS, response))
                } else {
                    outbox.append(response)
                }
            }
            consumer.release(batch.count)
            while let first = held.first, first.due <= now {
                held.removeFirst()
                outbox.append(first.response)
                lateAnswers += 1
            }
            if !outbox.isEmpty {
                let written = consumer.respond(batch: outbox)
                outbox.removeFirst(written)
            }
            pipeline.serviceQueues(now: now)
            if step > c.steps + 1 && source.units.allSatisfy({ $0.outstanding == 0 }) && held.isEmpty && outbox.isEmpty {
                pipeline.raise(now: now &+ c.stepNS)   // the retries of the last answers
                break
            }
        }
        pipeline.shutdown()
        producer.close()
        domain.settleStale(now: .max)   // every held stale use judged: forgiven, or the guest's bug

        var report = Report(config: c)
        report.devices = source.totals
        report.guest = guest.counters
        report.iommu = domain.counters
        report.tracker = pipeline.tracker.snapshot
        report.lateAnswers = lateAnswers
        report.events = events
        report.guestEvents = guestEvents
        report.guestBugs = Self.bugs(report)
        report.problems = Self.check(report)
        if let script, next != script.handled.count {
            throw NestedSessionError("the replay read \(next) of the \(script.handled.count) recorded requests")
        }
        let session = recording ? NestedSession(config: c, setup: setup, handled: handled, expected: .init(report)) : nil
        return (report, session)
    }

    /// The guest's bugs the run shows, by name.
    static func bugs(_ r: Report) -> [String: UInt64] {
        GuestBug.tally(iommu: r.iommu, successNotMapped: r.devices.successNotMapped, lateAnswers: r.lateAnswers,
                       msiFaults: r.devices.msiFaults)
    }

    /// The books that must balance whatever the guest does: every page
    /// request answered exactly once, nothing stuck, no answer malformed.
    static func check(_ r: Report) -> [String] {
        var problems: [String] = []
        func expect(_ ok: Bool, _ what: @autoclosure () -> String) { if !ok { problems.append(what()) } }
        let d = r.devices, t = r.tracker
        expect(d.pageRequests == d.answeredSuccess + d.answeredOther,
               "\(d.pageRequests) page requests, \(d.answeredSuccess + d.answeredOther) answers reached the devices")
        expect(t.completed == d.pageRequests, "the tracker completed \(t.completed) of \(d.pageRequests) groups")
        expect(t.rejected(.malformed) == 0 && t.rejected(.mismatch) == 0 && t.rejected(.unknown) == 0,
               "answers rejected: \(t.rejections)")
        expect(t.rejected(.late) == r.lateAnswers, "\(r.lateAnswers) late answers, \(t.rejected(.late)) rejected as late")
        expect(d.retriesBalance(), "\(d.answeredSuccess) answered SUCCESS, \(d.retriesTranslated) retries translated, "
               + "\(d.successNotMapped) missed, \(d.retriesDropped) dropped")
        expect(d.unexpectedAnswers == 0, "\(d.unexpectedAnswers) answers for no page request in flight")
        expect(d.stage2Misses == 0, "\(d.stage2Misses) stage-2 misses: the host's tables are wrong")
        expect(r.iommu.invalidationsRefused == 0, "\(r.iommu.invalidationsRefused) invalidations refused")
        return problems
    }
}
