import ArgumentParser
import FaultControl
import FaultFixtures
import FaultPipeline
import FaultService
import Foundation
import FaultSimulation
import NestedIOMMU
import Logging

/// The daemon, in the foreground (vhost-user backend conventions).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the faultring service: simulated PRI devices behind a UNIX control socket.",
        discussion: """
            Clients (VMMs) connect, say HELLO, ATTACH devices and receive a queue. SIGTERM or SIGINT stops the \
            service cleanly: every outstanding page request is answered INVALID and every queue marked closed.
            """)

    @Option(help: "Listen on this UNIX socket path.") var socketPath: String?
    @Option(help: "Use this inherited, listening SOCK_SEQPACKET socket instead.") var fd: Int32?
    @Flag(help: "Print the capabilities as JSON and exit.") var printCapabilities = false
    @Option(help: "Simulated devices (ids 1...N; 0: none, only sources clients add).") var devices = 4
    @Option(help: "Page-request groups each attached simulated device raises per second (a timer, not a tick).")
    var rate: Double = 4000
    @Flag(help: "Simulated devices keep their --rate schedule however far behind they fall (latency benchmarks).")
    var openLoop = false
    @Option(help: "Spin this many microseconds looking for consumer answers before sleeping (0: sleep at once).")
    var pollUs: UInt64 = 0
    @Option(help: "Stop raising after this many groups per device.") var groupsPerDevice: UInt64?
    @Option(help: "Largest group, in pages.") var maxGroupSize = 4
    @Option(help: "Page-request timeout in milliseconds (default 10000).") var timeoutMs: UInt64 = 10_000
    @Option(help: "Event loop: io_uring or poll (default: io_uring if available).") var backend: String?
    @Option(help: "Allow peers with this uid (repeatable; default: this user and root).") var allowUid: [UInt32] = []
    @Option(help: "Fault ring entries per client queue.") var entries = 4096
    @Option(help: "Response ring slots per client queue.") var responses = 1024
    @Option(help: "Raise a storm profile's schedule on simulated devices inside the service (placement \"service\"), printing JSON progress lines and the report as the last line.")
    var storm: String?
    @Option(help: "With --storm: scale the storm to this many seconds.") var stormSeconds: Double?
    @Option(help: "With --storm: multiply every phase's rate by this.") var stormRateScale: Double?
    @Option(help: "With --storm: a progress line every N ms (0: only the report).") var progressMs: UInt64 = 100
    @Option(help: "The socket file's mode, octal (default 600: only this uid and root can connect).")
    var socketMode = "600"
    @Option(help: "Only this uid may attach this device: ID:UID (repeatable).") var deviceOwner: [String] = []
    @Option(help: "Connections at once, from everyone (more are refused with EAGAIN).") var maxClients = 256
    @Option(help: "Connections at once from one uid.") var maxClientsPerUid = 64
    @Option(help: "Drop a connection that has not said HELLO this many ms after connecting.") var helloTimeoutMs: UInt64 = 5000
    @Option(help: "Drop a connection that holds no queue, device or source and sends nothing for this many ms (0: never).")
    var idleTimeoutMs: UInt64 = 60_000
    @Option(help: "PASIDs one client's VM may have bound at once (nested IOMMU, Docs/NESTED.md).") var pasidQuota = 64
    @Option(help: "Ms a DMA through a changed, not yet invalidated translation waits for its invalidation before it counts as a stale translation.")
    var staleGraceMs: UInt64 = 100
    @Flag(help: "The simulated devices do DMA through the nested IOMMU of the client holding them (Docs/NESTED.md).")
    var dmaDevices = false
    @Option(parsing: .upToNextOption, help: "With --dma-devices: the PASIDs each device's streams use.") var dmaPasids: [UInt32] = [1, 2]
    @Option(help: "With --dma-devices: microseconds between DMA steps.") var dmaStepUs: UInt64 = 100
    @Option(parsing: .upToNextOption, help: "With --dma-devices: devices with neither PRI nor ATS (their faults are events).")
    var dmaNoPri: [UInt32] = []
    @Option(help: "With --dma-devices: a device's MSI write to 0xFEE00000 after every N answered page requests (0: none).") var dmaMsiEvery = 100
    @Option(help: .hidden) var failBindAtDevice: Int?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"
    @Option(help: "Replay this fixture as the fault source (its devices and events), then stop.") var fixture: String?
    @Option(help: "Fixture pacing: fast (as fast as possible) or recorded (the events' timing).") var pace = ReplayPace.fast
    @Option(help: "Write the fixture run's outcome (JSON) here before stopping.") var outcome: String?
    @Option(help: "Record the simulated devices' page requests and how each ended as a fixture here.") var capture: String?

    /// The daemon's own settings.
    func config() throws -> ServiceConfig {
        var config = ServiceConfig()
        config.socketPath = socketPath
        config.inheritedFD = fd
        config.policy.timeoutNS = try scaled(timeoutMs, by: 1_000_000, "--timeout-ms")
        if let backend {
            guard let chosen = EventLoop.Backend.allCases.first(where: { $0.rawValue == backend || ($0 == .uring && backend == "uring") })
            else { throw ValidationError("--backend must be io_uring or poll, not \(backend)") }
            config.backend = chosen
        }
        config.allowedUIDs = allowUid.isEmpty ? nil : Set(allowUid)
        config.entryCount = entries
        config.responseCount = responses
        guard let mode = mode_t(socketMode, radix: 8), mode <= 0o777 else {
            throw ValidationError("--socket-mode must be octal 000...777, not \(socketMode)")
        }
        config.socketMode = mode
        for entry in deviceOwner {
            let parts = entry.split(separator: ":")
            guard parts.count == 2, let device = UInt32(parts[0]), let uid = UInt32(parts[1]) else {
                throw ValidationError("--device-owner must be ID:UID, not \(entry)")
            }
            config.deviceOwners[device] = uid
        }
        config.maxSessions = maxClients
        config.maxSessionsPerUID = maxClientsPerUid
        config.helloTimeoutNS = try scaled(helloTimeoutMs, by: 1_000_000, "--hello-timeout-ms")
        config.idleTimeoutNS = try scaled(idleTimeoutMs, by: 1_000_000, "--idle-timeout-ms")
        config.pollNS = try scaled(pollUs, by: 1000, "--poll-us")
        guard pasidQuota >= 1 && pasidQuota <= 1 << 20 else { throw ValidationError("--pasid-quota must be 1...2^20") }
        config.pasidQuota = pasidQuota
        guard staleGraceMs <= 60_000 else { throw ValidationError("--stale-grace-ms must be at most 60000") }
        config.staleGraceNS = staleGraceMs * 1_000_000
        config.failBindAtDevice = failBindAtDevice
        return config
    }

    /// The simulated devices `--devices` describes.
    func simulatedDevices() -> [SimulatedDeviceConfig] {
        (0..<max(0, devices)).map { $0 + 1 }.map { (n: Int) -> SimulatedDeviceConfig in
            let id = UInt32(n)
            return SimulatedDeviceConfig(deviceID: id, pasids: [id, id + 100], allocation: 2048,
                                         maxGroupSize: maxGroupSize, privateData: true, needsPASID: n % 2 == 1)
        }
    }

    /// The fault source the options choose, with the settings it imposes:
    /// a fixture feed (its devices, timeout and ring size), or simulated
    /// devices, recorded by a capture if `capture` is given.
    func source(capture: String?, domains: DomainLookup = DomainLookup()) throws -> (any FaultSource, ServiceConfig) {
        var config = try config()
        if let fixture {
            guard capture == nil else { throw ValidationError("--capture records simulated devices, not a --fixture replay") }
            let feed = try FixtureFeed(path: fixture, pace: pace, outcomePath: outcome)
            config.policy = feed.policy
            config.entryCount = feed.fixture.service.entries
            return (feed, config)
        }
        if let storm {
            guard capture == nil else { throw ValidationError("--capture records rate-driven devices, not a --storm") }
            let profile: StormProfile
            do {
                profile = try StormPlanCommand.load(storm, seconds: stormSeconds, rateScale: stormRateScale,
                                                    option: "--storm-seconds")
            } catch let error as FixtureError {
                throw ValidationError("\(error)")
            }
            let configs = DeviceCommand.devices(of: profile)
            let arrivals = StormArrivals(ArrivalSchedule(phases: profile.phases, seed: profile.seed),
                                         deviceIDs: configs.map(\.deviceID), tenants: profile.tenants)
            let run = SimulatedDevices.Storm(arrivals, tickNS: try scaled(progressMs, by: 1_000_000, "--progress-ms"),
                                             eventEvery: DeviceCommand.eventEvery(of: profile),
                                             progress: { DeviceCommand.emit(DeviceOutputLine(progress: $0)) },
                                             finished: { DeviceCommand.emit(DeviceOutputLine(report: $0)) })
            var schedule = SimulationSchedule()
            schedule.seed = profile.seed
            return (SimulatedDevices(configs, schedule: schedule, storm: run), config)
        }
        let configs = simulatedDevices()
        if dmaDevices {
            guard capture == nil else {
                throw ValidationError("--capture records rate-driven devices, not --dma-devices: record a vSVA session with "
                                      + "`faultring nested --capture` (Docs/NESTED.md §5)")
            }
            // Each device's DMA goes through the domain of the client holding it, found once the service exists.
            guard (0...1_000_000).contains(dmaMsiEvery) else { throw ValidationError("--dma-msi-every must be in 0...1000000") }
            let dma = configs.map { c in
                var device = DMADevice.Config(id: c.deviceID, streams: dmaPasids.enumerated().map { i, pasid in
                    DMAStream(pasid: pasid, base: UInt64(c.deviceID) << 32 | UInt64(pasid) << 24, pages: 96,
                              pattern: i % 2 == 0 ? .workingSet(pages: 24, churnEvery: 16) : .sequential, writeEvery: 3)
                })
                device.msi = dmaMsiEvery > 0 ? DMADevice.MSIWrites(every: dmaMsiEvery) : nil
                device.pri = !dmaNoPri.contains(c.deviceID)
                device.ats = device.pri
                return device
            }
            var config = config
            config.devicesWithoutATS = Set(dmaNoPri)
            let stepNS = try scaled(dmaStepUs, by: 1000, "--dma-step-us")
            return (NestedDevices(devices: dma, stepNS: stepNS, seed: 1, domainOf: { [domains] in domains.find?($0) }), config)
        }
        var schedule = SimulationSchedule()
        schedule.rate = rate
        schedule.groupsPerStep = 64
        schedule.openLoop = openLoop
        schedule.groupsPerDevice = groupsPerDevice
        let simulated = SimulatedDevices(configs, schedule: schedule)
        guard let capture else { return (simulated, config) }
        let recording = try Capture(
            path: capture, recording: simulated,
            devices: configs.map {
                Fixture.Device(id: $0.deviceID, name: "simulated \($0.deviceID)", pasids: $0.pasids,
                               allocation: $0.allocation, needsPASID: $0.needsPASID, privateData: $0.privateData)
            },
            policy: config.policy, entries: config.entryCount)
        return (recording, config)
    }

    func validate() throws {
        guard rate > 0, rate.isFinite else { throw ValidationError("--rate must be a positive number of groups per second") }
    }

    func run() throws { try serve(capture: capture) }

    func serve(capture: String?) throws {
        var logger = Logger(label: "faultring.serve")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        if printCapabilities {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let devices = simulatedDevices().map(\.deviceID)
            print(String(decoding: try encoder.encode(FaultService.capabilities(for: config(), devices: devices)),
                         as: UTF8.self))
            return
        }
        guard (socketPath == nil) != (fd == nil) else { throw ValidationError("give exactly one of --socket-path and --fd") }
        let domains = DomainLookup()
        let (source, config) = try source(capture: capture, domains: domains)
        let service = try FaultService(config: config, source: source, logger: logger)
        domains.find = { [unowned service] in service.nestedDomain(holding: $0) }
        service.run()
        if let feed = source as? FixtureFeed {
            logger.info("fixture \(feed.fixture.name) done: \(feed.outcome.groups.count) groups answered")
            if let error = feed.writeError { throw error }
        }
        if let recording = source as? Capture {
            switch recording.result {
            case .success(let written)?:
                logger.info("capture: \(written.events) events, \(written.groups) groups written to \(recording.path)")
            case .failure(let error)?: throw error
            case nil: break
            }
        }
    }
}

/// Where `--dma-devices` find the domain of the client holding a device:
/// the service's answer, wired in once the service exists.
final class DomainLookup {
    var find: ((UInt32) -> NestedDomain?)?
}

/// `faultring serve` that records what it sees as a fixture.
struct CaptureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Run the service and record its page requests, and how each ended, as a replayable fixture.",
        discussion: """
            On SIGTERM or SIGINT the service stops raising groups, waits (up to twice the timeout) for the \
            outstanding ones to be answered, writes the expected outcome and exits. `faultring replay FILE` then \
            runs the same events again.
            """)

    @Option(name: .shortAndLong, help: "The fixture to write.") var output: String
    @OptionGroup var service: ServeCommand

    func run() throws { try service.serve(capture: output) }
}

extension ReplayPace: ExpressibleByArgument {}
