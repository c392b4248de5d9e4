import DequeModule
import FaultABI
import FaultPipeline
import FaultQueue
import FaultSimulation
import PageRequests
import VMMClient

/// The whole loop in one process, on the real queue:
/// simulated devices → PageRequests → producer → fault ring → consumer
/// (reference responder) → response ring → PageRequests → devices.
///
/// Time is virtual (`stepNS` per step), so timeouts and their effects are
/// deterministic; two queues (channels) with their own devices make foreign
/// responses possible.
public struct LoopbackConfig: Sendable, Hashable, Codable {
    /// Groups the devices issue in total.
    public var groups: UInt64 = 100_000
    /// Record ABI the consumers negotiate.
    public var abi: UInt32 = 2
    /// Queues, each with one consumer and `devicesPerQueue` devices.
    public var queues = 2
    /// Devices attached to each queue.
    public var devicesPerQueue = 2
    /// Fault ring and response ring sizes.
    public var entries = 256
    /// Response ring size, in slots.
    public var responses = 1024
    /// Groups each device tries to issue per step.
    public var burst = 8
    /// Largest group, in pages.
    public var maxGroupSize = 4
    /// Page-request timeout, virtual ns.
    public var timeoutNS: UInt64 = 200_000
    /// Virtual time per step.
    public var stepNS: UInt64 = 1_000
    /// Cookie table size (`PageRequestPolicy.maxOutstandingGroups`).
    public var cookieTable = 65_536
    /// Misbehaving devices (0: never).
    public var reusePRGIEvery = 0
    /// Start a group and never close it every N groups (0: never).
    public var abandonGroupEvery = 0
    /// Send a stop marker every N groups (0: never).
    public var stopMarkerEvery = 0
    /// How devices talk to the service: generic structures, or raw SMMUv3
    /// or VT-d records through the hardware decoders.
    public var wire = HardwareWire.direct
    /// Random seed (device choices, sizes, private data).
    public var seed: UInt64 = 1
    /// How the consumers answer (SUCCESS, with injections to count).
    public var behaviour = ConsumerBehaviour.allInjections

    /// The default run: 100 000 groups on 2 queues × 2 devices, every injection.
    public init() {}
}

/// The outcome of a loopback run: devices' ledgers, tracker counters,
/// injected faults, and whether they all agree.
public struct LoopbackReport: Sendable, Codable {
    /// The configuration that ran.
    public var config: LoopbackConfig
    /// Groups the devices issued.
    public var groupsIssued: UInt64 = 0
    /// Answers that matched a waiting group.
    public var groupsAnswered: UInt64 = 0
    /// Groups still waiting for an answer at the end.
    public var outstanding: Int = 0
    /// Answers for no waiting group: a second answer, or one never issued.
    public var answeredTwiceOrUnknown: UInt64 = 0
    /// Wrong PASIDs or private data in answers, one count per wrong field.
    public var wrongAnswers: UInt64 = 0
    /// Answers by source (`consumer` or an `AutoResponseCause.rawValue`).
    public var answersBySource: [String: UInt64] = [:]
    /// Accesses the devices retried after SUCCESS.
    public var retries: UInt64 = 0
    /// The page-request layer's counters at the end.
    public var tracker = PageRequestCounters()
    /// Misbehaviour the consumers injected, summed over queues.
    public var injected = InjectedCounts()
    /// Steps run, each `stepNS` of virtual time.
    public var steps: UInt64 = 0
    /// Wall-clock time of the run, in seconds.
    public var seconds: Double = 0
    /// Groups issued per wall-clock second.
    public var groupsPerSecond: Double = 0
    /// Every difference between what should have happened and what did.
    public var problems: [String] = []
    /// No problem: every group answered exactly once, correctly, and every
    /// injected fault counted under its own reason.
    public var balanced: Bool { problems.isEmpty }
}

/// Runs the loop (see `LoopbackConfig`).
public struct LoopbackHarness {
    /// What the harness runs.
    public let config: LoopbackConfig

    /// A harness for `config`; nothing runs until `run`.
    public init(_ config: LoopbackConfig) { self.config = config }

    /// Runs to completion. `progress` is called about every `progressEvery`
    /// steps with the groups issued so far.
    public func run(progressEvery: UInt64 = 0, progress: (UInt64, PageRequestCounters) -> Void = { _, _ in })
        throws -> LoopbackReport
    {
        let abi = ABIVersion(rawValue: config.abi) ?? .v2
        guard abi == .v2 || config.reusePRGIEvery == 0 else {
            throw LoopbackError("ABI 1 matches responses by (PASID, PRGI) and cannot tell a reused PRGI's groups apart; use ABI 2 (cookies) with --reuse-prgi-every")
        }
        guard abi == .v2 || config.devicesPerQueue == 1 else {
            // The service refuses the same (an ABI 1 queue serves one device).
            throw LoopbackError("an ABI 1 queue serves one device (responses name no device); use --devices-per-queue 1 with --abi 1")
        }
        var policy = PageRequestPolicy()
        policy.timeoutNS = config.timeoutNS
        policy.maxOutstandingGroups = config.cookieTable
        var configs: [SimulatedDeviceConfig] = []
        for q in 0..<config.queues {
            for d in 0..<config.devicesPerQueue {
                configs.append(SimulatedDeviceConfig(
                    deviceID: UInt32(configs.count + 1), pasids: [UInt32(q * 16 + d + 1), UInt32(q * 16 + d + 100)],
                    allocation: PRILimits.prgiCount * 4, maxGroupSize: config.maxGroupSize,
                    privateData: config.wire.carriesPrivateData,
                    needsPASID: config.wire.vtdRevision != nil || d % 2 == 0,  // VT-d: NEEDS_PASID whenever a PASID is present
                    stopMarkerEvery: config.stopMarkerEvery, reusePRGIEvery: config.reusePRGIEvery,
                    abandonGroupEvery: config.abandonGroupEvery))
            }
        }
        var schedule = SimulationSchedule()
        schedule.groupsPerStep = config.burst
        schedule.totalGroups = config.groups
        schedule.wire = config.wire
        schedule.seed = config.seed
        let devices = SimulatedDevices(configs, schedule: schedule)
        let pipeline = Pipeline(source: devices, policy: policy)
        var producers: [FaultProducer] = []
        var responders: [ReferenceResponder] = []
        let geometry = try QueueGeometry(entryCount: config.entries, responseCount: config.responses)
        for q in 0..<config.queues {
            let producer = try FaultProducer(geometry: geometry, name: "faultring-loopback-\(q)")
            let consumer = try FaultConsumer(files: producer.consumerFiles())
            try consumer.requestABI(abi)
            producer.poll()
            var behaviour = config.behaviour
            if q == 0 { behaviour.foreignEvery = 0 }  // foreign answers flow from later queues into queue 0
            producers.append(producer)
            responders.append(ReferenceResponder(
                consumer: consumer, script: AnswerScript(behaviour, abi: abi, cookieTable: config.cookieTable),
                seed: config.seed &+ UInt64(q)))
            let channel = pipeline.addQueue(producer)
            for d in 0..<config.devicesPerQueue { pipeline.attach(UInt32(q * config.devicesPerQueue + d + 1), to: channel) }
        }

        var now: UInt64 = 0
        var steps: UInt64 = 0
        let clock = ContinuousClock()
        let start = clock.now
        let drainLimit = config.timeoutNS / config.stepNS * 4 + 10_000
        var drainSteps: UInt64 = 0
        var foreign = Deque<PageResponse>()
        while true {
            steps += 1
            now &+= config.stepNS
            // 1. Devices raise page requests.
            if devices.doneRaising { drainSteps += 1 } else { pipeline.raise(now: now) }
            // 2. Consumers read and answer.
            for q in responders.indices {
                if q == 0 {
                    var none = Deque<PageResponse>()
                    try responders[q].process(now: now, timeoutNS: config.timeoutNS, stepNS: config.stepNS, foreign: &none)
                } else {
                    try responders[q].process(now: now, timeoutNS: config.timeoutNS, stepNS: config.stepNS,
                                              foreign: &foreign)
                }
            }
            // Foreign answers first, so they reach the tracker while their
            // groups are still live; what does not fit is not injected.
            if !foreign.isEmpty {
                let written = responders[0].consumer.respond(batch: foreign)
                if written < foreign.count { responders[responders.count - 1].unsent(foreign: foreign.count - written) }
                foreign.removeAll()
            }
            for q in responders.indices { responders[q].flush() }
            // 3. The service reads responses, completes groups on devices,
            //    fires timeouts and delivers groups that waited for negotiation.
            pipeline.serviceQueues(now: now)
            if progressEvery > 0 && steps % progressEvery == 0 { progress(devices.raised, pipeline.tracker.snapshot) }
            if devices.doneRaising {
                if (devices.outstanding == 0 && responders.allSatisfy(\.idle)) || drainSteps > drainLimit { break }
            }
        }
        // Anything left is answered on the way out, like a service shutdown.
        pipeline.shutdown()
        for producer in producers { producer.close() }

        let elapsed = clock.now - start
        var report = LoopbackReport(config: config)
        report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        report.steps = steps
        report.tracker = pipeline.tracker.snapshot
        report.injected = responders.map(\.injected).reduce(InjectedCounts(), +)
        for device in devices.simulated {
            let ledger = device.ledger
            report.groupsIssued += ledger.issued
            report.groupsAnswered += ledger.answered
            report.outstanding += ledger.outstanding
            report.answeredTwiceOrUnknown += ledger.unexpected
            report.wrongAnswers += ledger.wrong
            report.retries += device.retries
            for (source, count) in ledger.bySource { report.answersBySource[source, default: 0] += count }
            report.problems += ledger.problems.prefix(3).map { "device \(device.config.deviceID): \($0)" }
        }
        report.groupsPerSecond = Double(report.groupsIssued) / max(report.seconds, 1e-9)
        report.problems += devices.wireErrors.map { "\(config.wire.rawValue) decode: \($0)" }
        report.problems += Self.check(report)
        return report
    }

    /// Compares the books: every group answered once, every injection
    /// counted under its own reason.
    static func check(_ r: LoopbackReport) -> [String] {
        var problems: [String] = []
        func expect(_ ok: Bool, _ what: @autoclosure () -> String) { if !ok { problems.append(what()) } }
        expect(r.outstanding == 0, "\(r.outstanding) groups never answered")
        expect(r.answeredTwiceOrUnknown == 0, "\(r.answeredTwiceOrUnknown) answers for no outstanding group")
        expect(r.wrongAnswers == 0, "\(r.wrongAnswers) answers with wrong PASID or private data")
        expect(r.groupsAnswered == r.groupsIssued, "answered \(r.groupsAnswered) of \(r.groupsIssued)")
        let t = r.tracker
        let i = r.injected
        expect(t.rejected(.duplicate) == i.duplicate, "duplicates: injected \(i.duplicate), rejected \(t.rejected(.duplicate))")
        expect(t.rejected(.late) == i.late, "late: injected \(i.late), rejected \(t.rejected(.late))")
        expect(t.auto(.timeout) == i.late, "timeouts: withheld \(i.late), timed out \(t.auto(.timeout))")
        expect(t.rejected(.unknown) == i.unknown, "unknown: injected \(i.unknown), rejected \(t.rejected(.unknown))")
        expect(t.rejected(.stale) == i.stale, "stale: injected \(i.stale), rejected \(t.rejected(.stale))")
        expect(t.rejected(.foreignDevice) == i.foreign,
               "foreign: injected \(i.foreign), rejected \(t.rejected(.foreignDevice))")
        expect(t.rejected(.mismatch) == i.mismatch, "mismatch: injected \(i.mismatch), rejected \(t.rejected(.mismatch))")
        expect(t.failureConverted == i.failure, "FAILURE: injected \(i.failure), converted \(t.failureConverted)")
        expect(t.rejected(.malformed) == 0, "\(t.rejected(.malformed)) malformed responses")
        expect(t.completed == r.groupsAnswered, "tracker completed \(t.completed), devices got \(r.groupsAnswered)")
        expect(t.auto(.shutdown) == 0, "\(t.auto(.shutdown)) groups were still open at the end")
        return problems
    }
}

/// A run that cannot be set up as configured.
public struct LoopbackError: Error, CustomStringConvertible {
    /// What is wrong with the configuration.
    public let description: String
    init(_ description: String) { self.description = description }
}
