import ArgumentParser
import CFaultRingABI
import FaultControl
import FaultFixtures
import FaultFD
import FaultService
import FaultSimulation
import FaultSys
import Foundation
import Glibc
import VMMClient

/// Simulated PRI devices in their own process, served to the service over a
/// device socket that speaks the iommufd fault-queue records (and,
/// optionally, a vEVENTQ socket): `RemoteDevices` behind ADD_SOURCE.
struct DeviceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device",
        abstract: "Run simulated PRI devices in this process, serving them to the service over a device socket.",
        discussion: """
            Connects to the service, hands it one end of a SOCK_SEQPACKET socket pair with ADD_SOURCE, and speaks \
            the kernel's fault-queue record protocol on the other: 40-byte iommu_hwpt_pgfault records per group, \
            8-byte iommu_hwpt_page_response answers. Prints the devices' own ledgers at the end; exit status 1 if \
            they do not balance.
            """)

    @Option(help: "The service's socket path.") var socketPath: String = ""
    @Option(parsing: .upToNextOption, help: "Device ids to serve (new to the service).") var devices: [UInt32] = [1]
    @Option(help: "Page-request groups each device raises per second (0: as fast as PRG indices allow).")
    var rate: Double = 1000
    @Option(help: "Stop raising after this many groups per device (0: until --seconds or the service stops).")
    var groups: UInt64 = 0
    @Option(help: "Stop after this many seconds (0: no limit).") var seconds: Double = 0
    @Option(help: "Also send an unrecoverable fault on a vEVENTQ socket every N groups (0: no event socket).")
    var eventsEvery = 0
    @Option(help: "Lose events on purpose every N events (sequence gaps and LOST_EVENTS headers; 0: never).")
    var lossEvery = 0
    @Option(help: "Largest group, in pages.") var maxGroupSize = 4
    @Flag(help: "Raise nothing until a consumer has attached every device (waits up to 30 s).")
    var waitForConsumer = false
    @Flag(help: "Measure each group's latency from its scheduled time (open loop) and report percentiles.")
    var measureLatency = false
    @Option(help: "Serve one VMM directly on this path (it connects and reads the records itself): no service.")
    var listen: String?
    @Option(help: "Raise a storm profile's arrival schedule (Docs/STORMS.md) on its devices instead of --rate and --devices.")
    var storm: String?
    @Option(help: "With --storm: scale the storm to this many seconds.") var stormSeconds: Double?
    @Option(help: "With --storm: multiply every phase's rate by this.") var stormRateScale: Double?
    @Flag(help: "Print the report as JSON.") var json = false
    @Option(help: "With --storm: print a JSON progress line every N ms, and the report as the last JSON line.")
    var progressMs: UInt64 = 0
    @Flag(help: "After the report, keep every socket open until SIGTERM, so a storm runner can read the service's final books of these devices.")
    var hold = false
    @Flag(help: "When the service hangs up, connect again (for 10 s) and add the sources anew, instead of ending.")
    var reconnect = false

    func run() throws {
        guard rate >= 0, rate.isFinite else { throw ValidationError("--rate must be 0 or positive") }
        var configs = devices.map { id in
            SimulatedDeviceConfig(deviceID: id, pasids: [id, id + 100], allocation: 2048, maxGroupSize: maxGroupSize,
                                  privateData: false, needsPASID: id % 2 == 1)
        }
        var options = RemoteDevices.Options()
        var devices = self.devices
        var eventsEvery = self.eventsEvery
        if let storm {
            let profile: StormProfile
            do {
                profile = try StormPlanCommand.load(storm, seconds: stormSeconds, rateScale: stormRateScale,
                                                   option: "--storm-seconds")
            } catch let error as FixtureError {
                throw ValidationError("\(error)")  // a bad profile is a usage error here, naming file and field
            }
            configs = Self.devices(of: profile)
            devices = configs.map(\.deviceID)
            options.schedule = ArrivalSchedule(phases: profile.phases, seed: profile.seed)
            options.seed = profile.seed
            options.progressEveryNS = try scaled(progressMs, by: 1_000_000, "--progress-ms")
            options.tenants = profile.tenants
            eventsEvery = Self.eventEvery(of: profile)
        }
        options.rate = rate
        options.groupsPerDevice = groups > 0 ? groups : nil
        options.eventEvery = eventsEvery
        options.lossEvery = lossEvery
        options.measureLatency = measureLatency
        if let listen {
            // The path a VMM has today: it reads the device's records itself, a system call per batch.
            let listener = try ControlSocket.listen(path: listen)
            var pfd = pollfd(fd: listener.fd.rawValue, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 30_000)
            guard let connection = try listener.accept() else { throw ValidationError("no VMM connected to \(listen) within 30 s") }
            try? listener.fd.close()
            unlink(listen)
            let remote = RemoteDevices(configs, faults: OwnedFD(adopting: connection.fd), events: nil, options: options)
            try finish(remote.run(seconds: seconds, progress: printProgress))
            return
        }
        var client = try VMMClient(socketPath: socketPath, devices: [], client: "faultring device")
        var made: RemoteDevices?
        try Self.addSources(to: client, devices: devices, events: eventsEvery > 0) { faults, events in
            made = RemoteDevices(configs, faults: faults, events: events, options: options)
        }
        let remote = made!
        if waitForConsumer {
            var attached = false
            for _ in 0..<600 where !attached {
                let stats = try JSONDecoder().decode(ServiceStats.self, from: Data(client.stats().utf8))
                attached = devices.allSatisfy { id in stats.devices.contains { $0.id == id && $0.attachedTo != nil } }
                if !attached { usleep(50_000) }
            }
            guard attached else { throw ValidationError("no consumer attached devices \(devices) within 30 s") }
        }
        let report = remote.run(seconds: seconds, progress: printProgress) { remote in
            guard reconnect else { return false }
            client.close()
            // The service restarts: it listens again within a moment. A failed attempt drops whatever it added.
            for _ in 0..<500 {
                if let again = try? VMMClient(socketPath: socketPath, devices: [], client: "faultring device"),
                   (try? Self.addSources(to: again, devices: devices, events: eventsEvery > 0, remote.adopt)) != nil {
                    client = again
                    return true
                }
                usleep(20_000)
            }
            return false
        }
        if hold {
            // The report first; the sources (and their books in the service) live until SIGTERM ends the
            // process, or until the runner that started it dies: then the kernel sends SIGKILL.
            try? Sys.dieWithParent(signal: SIGKILL)
            try? finish(report)
            withExtendedLifetime((remote, client)) { while true { pause() } }
        }
        client.close()
        try finish(report)
    }

    /// Adds the device-fault source (and, with `events`, the event source) for
    /// `devices` on `client`, and hands `body` the local ends.
    static func addSources(to client: VMMClient, devices: [UInt32], events: Bool,
                           _ body: (consuming OwnedFD, consuming OwnedFD?) -> Void) throws {
        let faults = try Sys.seqpacketPair().keepLocal { (fd) throws(VMMClientError) in
            try client.addSource(kind: FAULTRING_SOURCE_DEVICE_FAULTS, descriptor: fd, devices: devices)
        }
        guard events else { return body(faults, nil) }
        let eventEnd = try Sys.seqpacketPair().keepLocal { (fd) throws(VMMClientError) in
            try client.addSource(kind: FAULTRING_SOURCE_DEVICE_EVENTS, descriptor: fd, devices: devices)
        }
        body(faults, eventEnd)
    }

    /// Groups between two unrecoverable faults for a profile's unrecoverable
    /// share s (0: none): s of arrivals as events is s / (1 − s) events per
    /// group, one every (1 − s) / s groups (clamped: a tiny share cannot trap).
    static func eventEvery(of profile: StormProfile) -> Int {
        let share = profile.devices.unrecoverableShare
        return share > 0 ? max(1, Int(min((1 - share) / share, 1e9).rounded())) : 0
    }

    /// The simulated devices a storm profile describes: ids 1 ... count,
    /// PASIDs 1 ... pasidsPerDevice, its PRGI budget and allocation, stop
    /// markers and group-size distribution; odd ids set NEEDS_PASID.
    static func devices(of profile: StormProfile) -> [SimulatedDeviceConfig] {
        (1...UInt32(profile.devices.count)).map { id in
            var config = SimulatedDeviceConfig(
                deviceID: id, pasids: Array(1...profile.devices.pasidsPerDevice), allocation: profile.devices.allocation,
                maxGroupSize: profile.devices.groupSize.largest, privateData: false, needsPASID: id % 2 == 1,
                stopMarkerEvery: profile.devices.stopMarkerEvery)
            config.prgiBudget = profile.devices.prgiBudget
            switch profile.devices.groupSize {
            case .fixed(let n): config.minGroupSize = n
            case .uniform(let low, _): config.minGroupSize = low
            case .geometric(let mean, _): config.geometricMeanGroupSize = mean
            }
            return config
        }
    }

    /// One JSON progress line, flushed at once: a storm runner reads it live.
    func printProgress(_ tick: DeviceProgress) {
        if progressMs > 0 { Self.emit(DeviceOutputLine(progress: tick)) }
    }

    /// Writes one output line (a tick or the report) as JSON, unbuffered.
    static func emit(_ line: DeviceOutputLine) {
        guard let bytes = try? JSONEncoder().encode(line) else { return }
        FileHandle.standardOutput.write(bytes + Data("\n".utf8))
    }

    func finish(_ report: RemoteDevices.Report) throws {
        if progressMs > 0 && storm != nil {
            Self.emit(DeviceOutputLine(report: report))
        } else if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            var table = TextTable("device", "issued", "answered", "by", "outstanding", "unexpected", "wrong")
            for d in report.devices {
                table.add(String(d.id), String(d.issued), String(d.answered), Tally(d.answersBySource).description,
                          String(d.outstanding), String(d.unexpected), String(d.wrong))
            }
            print(table.render(indent: ""))
            print("unknown cookies \(report.unknownCookies), malformed answers \(report.malformedAnswers), " +
                  "events sent \(report.eventsSent) (lost on purpose \(report.eventsLost)), " +
                  "service hung up: \(report.serviceHungUp)")
            if let phases = report.phases {
                print("storm: \(report.offered) arrivals offered")
                var table = TextTable("phase", "answered", "p50 µs", "p99 µs", "p99.9 µs", "max µs")
                for p in phases {
                    let l = p.latency
                    table.add(p.name, String(l.count), String(format: "%.1f", Double(l.p50) / 1e3),
                              String(format: "%.1f", Double(l.p99) / 1e3), String(format: "%.1f", Double(l.p999) / 1e3),
                              String(format: "%.1f", Double(l.max) / 1e3))
                }
                print(table.render(indent: ""))
            }
            print(report.balanced ? "balanced: every group answered exactly once" : "NOT balanced")
        }
        if !report.balanced { throw ExitCode(1) }
    }
}
