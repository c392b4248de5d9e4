import ArgumentParser
import FaultLoopback
import FaultSimulation
import Foundation
import PageRequests
import VMMClient

/// The whole page-request loop in one process, with a live summary and the
/// devices' ledger verdict at the end.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Simulated PRI devices, page-request tracking, the shared ring and a responding consumer, in one loop.",
        discussion: """
            Devices issue page-request groups; the tracker gives each a cookie and publishes it; a reference \
            consumer reads the ring and answers, injecting duplicate, late, unknown, stale, foreign, mismatched \
            and FAILURE answers and ring stalls; the tracker matches answers and completes each group on its \
            device exactly once. Time is virtual, so timeouts are deterministic. Exit status 1 if the books \
            do not balance.
            """)

    @Option(help: "Page-request groups to issue.") var groups: UInt64 = 1_000_000
    @Option(help: "Record ABI (1 or 2).") var abi: UInt32 = 2
    @Option(help: "Queues (consumers); foreign answers need at least 2.") var queues = 2
    @Option(help: "Devices per queue (default: 2, or 1 with --abi 1, whose queues serve one device).") var devicesPerQueue: Int?
    @Option(help: "Fault ring entries.") var entries = 256
    @Option(help: "Groups each device tries to issue per step.") var burst = 8
    @Option(help: "Largest group, in pages.") var maxGroupSize = 4
    @Option(help: "Page-request timeout in virtual microseconds.") var timeoutMicroseconds: UInt64 = 200
    @Option(help: "Misbehaving devices: reuse an outstanding PRG index every N groups (0: never).")
    var reusePRGIEvery = 0
    @Option(help: "Misbehaving devices: never close a group every N groups (0: never).") var abandonEvery = 0
    @Option(help: "Send a stop marker every N groups (0: never).") var stopMarkerEvery = 0
    @Flag(help: "A well-behaved consumer: inject nothing.") var noInjections = false
    @Option(help: """
        How devices talk to the service: direct, smmuv3 (raw PRI records, CMD_PRI_RESP), vtd (VT-d 4 descriptors, \
        as Linux ≥ 6.10) or vtd3 (VT-d 3 descriptors with private data, as Linux ≤ 6.9).
        """)
    var wire: String = "direct"
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Flag(help: "Print the report as JSON.") var json = false
    @Flag(help: "No live summary.") var quiet = false

    func run() throws {
        var config = LoopbackConfig()
        config.groups = groups
        config.abi = abi
        config.queues = queues
        config.devicesPerQueue = devicesPerQueue ?? (abi == 1 ? 1 : 2)
        config.entries = entries
        config.burst = burst
        config.maxGroupSize = maxGroupSize
        config.timeoutNS = try scaled(timeoutMicroseconds, by: 1000, "--timeout-microseconds")
        config.reusePRGIEvery = reusePRGIEvery
        config.abandonGroupEvery = abandonEvery
        config.stopMarkerEvery = stopMarkerEvery
        config.seed = seed
        if noInjections { config.behaviour = ConsumerBehaviour() }
        guard let hardware = HardwareWire(rawValue: wire) else {
            throw ValidationError("--wire must be one of \(HardwareWire.allCases.map(\.rawValue).joined(separator: ", ")), not \(wire)")
        }
        config.wire = hardware
        let start = Date()
        var lastPrint = start
        let report = try LoopbackHarness(config).run(progressEvery: 4096) { issued, counters in
            guard !quiet else { return }
            let now = Date()
            guard now.timeIntervalSince(lastPrint) >= 0.5 else { return }
            lastPrint = now
            let rate = Double(issued) / now.timeIntervalSince(start) / 1e6
            FileHandle.standardError.write(Data(String(
                format: "\rdemo: %llu/%llu groups  %.2f M/s  consumer-answered %llu  auto %llu  rejected %llu   ",
                issued, groups, rate, counters.completedByConsumer, counters.completed - counters.completedByConsumer,
                counters.rejectedTotal).utf8))
        }
        if !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(Self.describe(report))
        }
        if !report.balanced { throw ExitCode(1) }
    }

    static func describe(_ r: LoopbackReport) -> String {
        let t = r.tracker
        let sources = Tally(r.answersBySource)
        let rejections = Tally(t.rejections)
        return """
            demo: \(r.groupsIssued) groups on \(r.config.queues) queues x \(r.config.devicesPerQueue) devices, \
            ABI v\(r.config.abi), wire \(r.config.wire.rawValue), \(String(format: "%.2f", r.seconds)) s, \
            \(String(format: "%.2f", r.groupsPerSecond / 1e6)) M groups/s
              answered \(r.groupsAnswered): \(sources)
              device retries after SUCCESS \(r.retries)
              rejected responses: \(rejections)
              FAILURE turned INVALID \(t.failureConverted); PRGI reused \(t.prgiReused); partial requests discarded \
            \(t.partialsDiscarded); stop markers \(t.stopMarkers); allocation exceeded \(t.allocationExceeded)
              injected: duplicate \(r.injected.duplicate), late \(r.injected.late), unknown \(r.injected.unknown), \
            stale \(r.injected.stale), foreign \(r.injected.foreign), mismatch \(r.injected.mismatch), \
            failure \(r.injected.failure), ring stalls \(r.injected.stalls) (8 steps each)
              ledger: outstanding \(r.outstanding), answered twice or unknown \(r.answeredTwiceOrUnknown), \
            wrong \(r.wrongAnswers)
              verdict: \(r.balanced ? "every group answered exactly once; every injected fault counted" : r.problems.joined(separator: "; "))
            """
    }
}
