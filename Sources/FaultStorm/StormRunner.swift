import FaultFixtures
import FaultQueue
import FaultService
import FaultSimulation
import FaultSys
import Foundation
import Glibc
import VMMClient

/// Runs a storm profile end to end in separate processes — `faultring
/// serve`, one `faultring device` raising the profile's arrival schedule
/// open-loop, one `faultring consume` per consumer process — plays each
/// consumer's behaviour (slow answers, a SIGSTOP window, wrong answers, a
/// SIGKILL and a restart), and samples it all every 100 ms.
///
/// Timing: every device tick and behaviour time counts from the schedule's
/// start (`DeviceProgress.startNS`, `CLOCK_MONOTONIC`), which the device
/// process takes once every consumer has attached; so a stall at 3 s is 3 s
/// into the load, however long the processes took to start.
///
/// The devices' latency is measured from each group's scheduled arrival to
/// the moment its answer reaches the device (no coordinated omission: a
/// stalled path shows as latency, not as fewer samples). The service's
/// books are read after the devices have their last answer and before
/// anything is torn down, so the ledgers are final.
public final class StormRunner {
    /// What to run, and how.
    public struct Options: Sendable {
        /// The `faultring` executable to start the processes from.
        public var executable: String
        /// The profile's path (the device process reads it too).
        public var profilePath: String
        /// `--seconds`: the storm scaled to this length (nil: as written).
        public var seconds: Double?
        /// `--rate-scale`: every phase's rate multiplied by this (nil: as written).
        public var rateScale: Double?
        /// The device tick (and so the sample) period, ms.
        public var sampleMilliseconds: UInt64 = 100
        /// Asked every 10 ms: true ends the storm early (SIGTERM or SIGINT to
        /// the runner); every process is stopped and the run says it was interrupted.
        public var interrupted: (@Sendable () -> Bool)?
        /// Options for this executable and profile.
        public init(executable: String, profilePath: String, seconds: Double? = nil, rateScale: Double? = nil) {
            self.executable = executable
            self.profilePath = profilePath
            self.seconds = seconds
            self.rateScale = rateScale
        }
    }

    /// What the live status line shows, at each sample.
    public struct Status: Sendable {
        /// The latest sample.
        public var sample: StormSample
        /// The phase's name.
        public var phaseName: String
        /// Seconds of schedule left.
        public var secondsLeft: Double
        /// p99 latency of every group answered so far, µs.
        public var p99SoFarMicroseconds: Double
        /// Arrivals offered so far.
        public var offered: UInt64
        /// Groups answered so far.
        public var answered: UInt64
    }

    let profile: StormProfile
    let options: Options

    /// A runner for `profile` (already read and scaled) with `options`.
    public init(profile: StormProfile, options: Options) {
        self.profile = profile
        self.options = options
    }

    /// Runs the schedule once through `mode`'s path; `status` is called at every sample.
    /// Problems with the run itself (a process that would not start, died
    /// or hung) end up in `StormRun.problems`, never as a trap or a hang.
    public func run(_ mode: StormRun.Mode, status: (Status) -> Void = { _ in }) -> StormRun {
        var run = StormRun(mode: mode)
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("faultring-storm-\(getpid())-\(mode.rawValue)").path
        try? FileManager.default.removeItem(atPath: directory)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            run.problems.append("cannot create \(directory): \(error)")
            return run
        }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/s.sock"
        switch mode {
        case .service: runThroughService(socket: socket, into: &run, status: status)
        case .direct: runDirect(socket: socket, into: &run, status: status)
        }
        return run
    }

    // MARK: The service path

    /// Through the service. With `placement: process` the devices are one
    /// `faultring device` process over a device socket; with `service` they
    /// are the service's own simulated devices (`serve --storm`), which
    /// print the ticks and the report instead.
    func runThroughService(socket: String, into run: inout StormRun, status: (Status) -> Void) {
        let inService = profile.devices.placement == .service
        let service: StormService
        do {
            service = try StormService(executable: options.executable, arguments: [
                "serve", "--socket-path", socket, "--entries", String(profile.rings.entries),
                "--responses", String(profile.rings.responses), "--timeout-ms", String(profile.timeoutMilliseconds),
                "--log-level", "error",
            ] + (inService
                ? ["--storm", options.profilePath, "--progress-ms", String(options.sampleMilliseconds)] + scaling
                : ["--devices", "0"]), socket: socket)
        } catch {
            run.problems.append("cannot start the service: \(error)")
            return
        }
        defer {
            service.observer?.close()
            service.process.stop(as: "service", within: 3 * Double(profile.timeoutMilliseconds) / 1000 + 5, into: &run.problems)
        }
        guard service.connect() else {
            run.problems.append("the service did not accept a connection within 10 s: \(service.process.errors)")
            return
        }
        var chaos = profile.chaos.map { StormChaos($0, profile: self.profile) }
        // Before any device or consumer: what the final incarnation must come back to.
        chaos?.report.descriptorsAtStart = service.descriptorCount
        // The process whose ticks and report are followed: the device process, or the service itself.
        let device: StormProcess
        if inService {
            device = service.process
        } else {
            do {
                device = try StormProcess(name: "device", executable: options.executable, arguments: [
                    "device", "--socket-path", socket, "--storm", options.profilePath, "--wait-for-consumer",
                    "--progress-ms", String(options.sampleMilliseconds), "--hold",
                ] + scaling + (chaos != nil ? ["--reconnect"] : []))
            } catch {
                run.problems.append("cannot start the device process: \(error)")
                return
            }
        }
        let ids = (1...UInt32(profile.devices.count)).map { $0 }
        guard service.wait(until: { stats in ids.allSatisfy { id in stats.devices.contains { $0.id == id } } }, watching: device) else {
            run.problems.append("the devices were not there within 10 s: \(device.errors)")
            if !inService { device.stop(as: "device process", within: 1, into: &run.problems) }
            return
        }
        var tenants = StormTenants(profile: profile, executable: options.executable, socket: socket)
        if let problem = tenants.startAll() {
            run.problems.append(problem)
            if !inService { device.stop(as: "device process", within: 1, into: &run.problems) }
            tenants.stopAll(into: &run)
            return
        }
        var sampler = StormSampler(profile: profile, tenants: tenants.names)
        let report = follow(device, &sampler, into: &run, status: status) { sampler, run, stats, elapsedNS in
            service.process.pump()
            sampler.note(stats: stats, pids: tenants.pidNames)
            // A consumer about to be killed is read first: its counters die with its connection.
            let pids = tenants.pidNames
            tenants.play(atNS: elapsedNS, into: &run) { sampler.note(stats: service.snapshot(), pids: pids) }
            chaos?.play(atNS: elapsedNS, service: service, tenants: &tenants, into: &run) {
                sampler.note(stats: service.snapshot(), pids: pids)
            }
            sampler.incarnation = service.incarnation
        } observe: {
            service.snapshot()
        }
        // The devices have every answer they will get: the service's books are final now.
        let final = service.snapshot()
        if let final { sampler.note(stats: final, pids: tenants.pidNames) }
        tenants.stopAll(into: &run)
        if !inService {
            // Held until now (`--hold`), it ends by the signal; its ledger is judged from the report.
            device.stop(as: "device process", within: 5, acceptable: [0, 1, 128 + SIGTERM], into: &run.problems)
        }
        if var played = chaos {
            // Everyone has gone: the final incarnation must hold what the first held with only the observer.
            if !service.waitUntilAlone() { run.problems.append("the service still listed clients or sources 5 s after all left") }
            played.report.descriptorsAtEnd = service.descriptorCount
            chaos = played
        }
        guard let report else { return }
        record(report, into: &run)
        let answeredBy = sampler.answeredBy
        run.ledgers = report.devices.map { StormLedger($0, answeredBy: answeredBy[$0.id] ?? [:]) }
        run.totals = sampler.totals()
        run.consumers = tenants.rows(matched: sampler.perConsumer, latency: report.tenants ?? [])
        run.chaos = chaos?.finished(gaps: report.answerGaps, tenants: tenants, sampler: sampler)
    }

    // MARK: The direct path

    /// The same schedule and devices, served on a socket that one
    /// `faultring direct-vmm` reads itself: the kernel's fault-queue record
    /// protocol straight into a consumer, no service and no ring.
    func runDirect(socket: String, into run: inout StormRun, status: (Status) -> Void) {
        let device: StormProcess
        let consumer: StormProcess
        do {
            device = try StormProcess(name: "device", executable: options.executable, arguments: [
                "device", "--listen", socket, "--storm", options.profilePath,
                "--progress-ms", String(options.sampleMilliseconds),
            ] + scaling)
            consumer = try StormProcess(name: "direct-vmm", executable: options.executable,
                                        arguments: ["direct-vmm", "--connect", socket])
        } catch {
            run.problems.append("cannot start the direct run's processes: \(error)")
            return
        }
        var sampler = StormSampler(profile: profile, tenants: ["direct-vmm"])
        let report = follow(device, &sampler, into: &run, status: status) { _, _, _, _ in consumer.pump() } observe: { nil }
        // It ends by itself after its report (a SIGTERM now could beat its exit);
        // status 1 is an unbalanced ledger, which the verdict judges from the report.
        device.stop(as: "device process", within: 5, signal: report == nil, acceptable: [0, 1, 128 + SIGTERM],
                    into: &run.problems)
        let (code, killed) = consumer.finish(within: 10)
        if killed || code != 0 { run.problems.append("direct-vmm ended with status \(code): \(consumer.errors)") }
        guard let report else { return }
        record(report, into: &run)
        run.ledgers = report.devices.map { StormLedger($0, answeredBy: [:]) }
        var row = StormConsumer(name: "direct-vmm", behaviour: "fast (reads the device socket itself)", abi: 0,
                                devices: report.devices.map(\.id))
        row.pids = [consumer.pid]
        row.exitStatuses = [code]
        if let line = consumer.lines.last, let summary = try? JSONDecoder().decode(DirectSummary.self, from: Data(line.utf8)) {
            row.records = summary.records
            row.groups = summary.groups
            row.answered = ["SUCCESS": summary.groups]
            row.completed = summary.groups
        }
        row.latency = report.overall?.latency
        run.consumers = [row]
    }

    /// What `faultring direct-vmm` prints.
    struct DirectSummary: Decodable {
        var records: UInt64
        var groups: UInt64
    }

    // MARK: Shared steps

    /// `--storm-seconds` and `--storm-rate-scale` when the storm is scaled: the device process scales alike.
    var scaling: [String] {
        (options.seconds.map { ["--storm-seconds", String($0)] } ?? [])
            + (options.rateScale.map { ["--storm-rate-scale", String($0)] } ?? [])
    }

    /// Reads the device process's ticks until its report: a sample per tick
    /// (with `observe`'s STATS), `between` called every 10 ms with the time
    /// into the schedule. Bounded: the storm's length plus two minutes.
    func follow(_ device: StormProcess, _ sampler: inout StormSampler, into run: inout StormRun, status: (Status) -> Void,
                between: (inout StormSampler, inout StormRun, ServiceStats?, UInt64) -> Void,
                observe: () -> ServiceStats?) -> RemoteDevices.Report? {
        let deadline = Sys.monotonicNS &+ profile.durationNS &+ 120_000_000_000
        var startNS: UInt64?
        var latest: ServiceStats?
        while Sys.monotonicNS < deadline {
            for line in device.takeLines() {
                guard let decoded = try? JSONDecoder().decode(DeviceOutputLine.self, from: Data(line.utf8)) else {
                    run.problems.append("the device process printed a line that is not a progress or report line: \(line.prefix(200))")
                    continue
                }
                if let report = decoded.report { return report }
                if options.interrupted?() == true { break }
                guard let tick = decoded.progress else { continue }
                startNS = tick.startNS
                latest = observe()
                between(&sampler, &run, latest, tick.atNS &- tick.startNS)  // this STATS counted in this sample
                let sample = sampler.sample(tick, stats: latest)
                run.samples.append(sample)
                let phase = profile.phases.indices.contains(sample.phase) ? profile.phases[sample.phase].name : "?"
                status(Status(sample: sample, phaseName: phase,
                              secondsLeft: max(0, Double(profile.durationNS) / 1e9 - sample.t),
                              p99SoFarMicroseconds: Double(tick.p99SoFar) / 1000, offered: tick.offered,
                              answered: tick.answered))
            }
            if device.outputClosed {
                run.problems.append("the device process ended without a report (status \(device.child.wait())): \(device.errors)")
                return nil
            }
            if let startNS { between(&sampler, &run, latest, Sys.monotonicNS &- startNS) }
            if options.interrupted?() == true {
                run.problems.append("interrupted (SIGTERM or SIGINT) before the storm ended")
                return nil
            }
            usleep(10_000)
        }
        run.problems.append("the storm did not finish within its length plus two minutes")
        return nil
    }

    /// Copies the device report's latency and counts into `run`.
    func record(_ report: RemoteDevices.Report, into run: inout StormRun) {
        run.offered = report.offered
        run.seconds = report.seconds
        run.phases = report.phases ?? []
        run.overall = report.overall
        run.tenants = report.tenants ?? []
        run.eventsSent = report.eventsSent
    }
}
