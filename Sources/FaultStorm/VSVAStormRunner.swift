import FaultFixtures
import FaultService
import FaultSimulation
import FaultSys
import Foundation
import Glibc
import NestedIOMMU
import VMMClient

/// Runs a vSVA storm profile end to end in separate processes: `faultring
/// serve --dma-devices` (the DMA devices and the nested IOMMU), and one
/// `faultring guest` per guest process, each sharing its RAM, binding its
/// tables and answering by mapping; with chaos, guests SIGKILLed mid-storm
/// and started again at once. STATS is sampled every 100 ms.
///
/// Order at the end: every guest exits by itself when its time is up (a
/// guest reads its VM's counters from STATS before it says BYE); the
/// runner waits until the service lists no client but its observer — so
/// every device has been detached and its groups answered — then reads the
/// final STATS (the devices' books), the service's descriptors, and stops it.
public final class VSVAStormRunner {
    /// What to run, and how.
    public struct Options: Sendable {
        /// The `faultring` executable to start the processes from.
        public var executable: String
        /// The sample period, ms.
        public var sampleMilliseconds: UInt64 = 100
        /// Asked every 10 ms: true ends the storm early (every process stopped, the run says so).
        public var interrupted: (@Sendable () -> Bool)?
        /// Options for this executable.
        public init(executable: String) { self.executable = executable }
    }

    /// One guest process and its incarnations.
    struct Tenant {
        var name: String
        var set: VSVAStormProfile.Guests
        var devices: [UInt32]
        var processes: [StormProcess] = []
        /// Per pid: its VM's counters and its refused answers, as the last STATS showed them.
        var lastSeen: [Int32: (iommu: NestedCounters?, refused: [String: UInt64])] = [:]
    }

    let profile: VSVAStormProfile
    let profilePath: String
    let options: Options

    /// A runner for `profile` (read from `profilePath`) with `options`.
    public init(profile: VSVAStormProfile, profilePath: String, options: Options) {
        self.profile = profile
        self.profilePath = profilePath
        self.options = options
    }

    /// Runs the storm; `status` is called at every sample. Problems with the
    /// run itself end up in `problems` of the report, never as a trap or a hang.
    public func run(status: (VSVAStormReport.Sample) -> Void = { _ in }) -> VSVAStormReport {
        var report = VSVAStormReport(profile: profile, profilePath: profilePath, started: Date())
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultring-vsva-storm-\(getpid())").path
        try? FileManager.default.removeItem(atPath: directory)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            report.problems.append("cannot create \(directory): \(error)")
            report.judge()
            return report
        }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        storm(socket: directory + "/s.sock", into: &report, status: status)
        report.judge()
        return report
    }

    /// The service's command line: the profile's devices, PASIDs, step, timeout and quota.
    var serviceArguments: [String] {
        let noPRI = profile.devicesWithoutPRI
        return ["serve", "--devices", String(profile.deviceCount), "--dma-devices", "--dma-pasids"]
            + profile.pasids.map(String.init)
            + ["--dma-step-us", String(profile.stepMicroseconds), "--dma-msi-every", String(profile.msiEvery),
               "--timeout-ms", String(profile.timeoutMilliseconds), "--pasid-quota", String(profile.pasidQuota),
               "--stale-grace-ms", String(profile.staleGraceMilliseconds), "--log-level", "error"]
            + (noPRI.isEmpty ? [] : ["--dma-no-pri"] + noPRI.map(String.init))
    }

    /// A guest's command line, running `seconds` (a slow guest answers
    /// `slowDelayMilliseconds` late: past the timeout, within the storm).
    func guestArguments(_ t: Tenant, socket: String, seconds: Double) -> [String] {
        ["guest", "--socket-path", socket, "--devices"] + t.devices.map(String.init)
            + ["--style", t.set.style.rawValue, "--behaviour", t.set.behaviour.rawValue, "--pasids"]
            + profile.pasids.map(String.init)
            + ["--budget", String(profile.budget), "--seconds", String(format: "%.3f", seconds),
               "--slow-delay-ms", String(profile.slowDelayMilliseconds), "--json"]
            + (t.set.pri ? [] : ["--no-ats"] + t.devices.map(String.init))
    }

    func storm(socket: String, into report: inout VSVAStormReport, status: (VSVAStormReport.Sample) -> Void) {
        let service: StormService
        do {
            service = try StormService(executable: options.executable, arguments: serviceArguments + ["--socket-path", socket],
                                       socket: socket)
        } catch {
            report.problems.append("cannot start the service: \(error)")
            return
        }
        defer {
            service.observer?.close()
            service.process.stop(as: "service", within: 10, into: &report.problems)
        }
        guard service.connect() else {
            report.problems.append("the service did not accept a connection within 10 s: \(service.process.errors)")
            return
        }
        let ids = Set((1...UInt32(profile.deviceCount)).map { $0 })
        guard service.wait(until: { ids.isSubset(of: Set($0.devices.map(\.id))) }, watching: service.process) else {
            report.problems.append("the service's DMA devices were not there within 10 s: \(service.process.errors)")
            return
        }
        report.service.descriptorsAtStart = service.descriptorCount

        var tenants = profile.processGuests.enumerated().map { i, set in
            Tenant(name: profile.processNames[i], set: set, devices: profile.devices(ofProcess: i))
        }
        let startNS = Sys.monotonicNS
        let lengthNS = UInt64(profile.seconds * 1e9)
        func start(_ i: Int) -> Int32? {
            let left = max(0.5, Double(lengthNS &- min(lengthNS, Sys.monotonicNS &- startNS)) / 1e9)
            do {
                let process = try StormProcess(name: tenants[i].name, executable: options.executable,
                                               arguments: guestArguments(tenants[i], socket: socket, seconds: left))
                tenants[i].processes.append(process)
                return process.pid
            } catch {
                report.problems.append("cannot start guest \(tenants[i].name): \(error)")
                return nil
            }
        }
        for i in tenants.indices { _ = start(i) }

        // Kills evenly over the first 70 % of the storm, targets drawn with the seed.
        let chaos = profile.chaos
        let killTimes = (0..<(chaos?.guestKills ?? 0)).map { k in
            UInt64(Double(lengthNS) * 0.7 * Double(k + 1) / Double((chaos?.guestKills ?? 0) + 1))
        }
        let targets = tenants.indices.filter { chaos?.killAmong.contains(tenants[$0].set.name) == true }
        var random = SplitMix64(seed: profile.seed)
        var previous: (t: Double, dma: [String: DMADevice.Counters])?
        var nextSampleNS = startNS
        let deadline = startNS &+ lengthNS &+ 60_000_000_000
        func observe() -> ServiceStats? {
            guard let stats = service.snapshot() else { return nil }
            let byPid = Dictionary(stats.clients.map { ($0.pid, $0) }, uniquingKeysWith: { a, _ in a })
            for i in tenants.indices {
                for process in tenants[i].processes {
                    guard let client = byPid[UInt32(bitPattern: process.pid)] else { continue }
                    tenants[i].lastSeen[process.pid] = (client.nested, client.queue?.refusals ?? [:])
                }
            }
            return stats
        }

        while tenants.contains(where: { $0.processes.last?.child.isRunning == true }) {
            let now = Sys.monotonicNS
            for t in tenants { t.processes.last?.pump() }
            service.process.pump()
            if options.interrupted?() == true {
                report.problems.append("interrupted (SIGTERM or SIGINT) before the storm ended")
                break
            }
            if now >= deadline {
                report.problems.append("the guests had not ended 60 s after the storm's length")
                break
            }
            if now >= nextSampleNS {
                nextSampleNS = now &+ options.sampleMilliseconds &* 1_000_000
                let t = Double(now &- startNS) / 1e9
                if let stats = observe() {
                    let dma = perGuest(stats, tenants)
                    var sample = VSVAStormReport.Sample(t: t, residentKiB: service.residentKiB)
                    for tenant in tenants {
                        let c = dma[tenant.name] ?? DMADevice.Counters()
                        if let previous, t > previous.t, let before = previous.dma[tenant.name] {
                            sample.dmasPerSecond[tenant.name] = Double(c.dmas &- before.dmas) / (t - previous.t)
                            sample.pageRequestsPerSecond[tenant.name] = Double(c.pageRequests &- before.pageRequests) / (t - previous.t)
                        }
                        let iommu = tenant.lastSeen.values.reduce(into: NestedCounters()) { $0.add($1.iommu ?? NestedCounters()) }
                        let late = tenant.lastSeen.values.reduce(0) { $0 &+ ($1.refused["late"] ?? 0) }
                        sample.bugs[tenant.name] = GuestBug.tally(iommu: iommu, successNotMapped: c.successNotMapped, lateAnswers: late,
                                                                  msiFaults: c.msiFaults)
                            .values.reduce(0, &+)
                    }
                    previous = (t, dma)
                    if report.service.residentAtQuarterKiB == nil && now &- startNS >= lengthNS / 4 {
                        report.service.residentAtQuarterKiB = sample.residentKiB
                    }
                    if now &- startNS < lengthNS { report.service.residentAtEndKiB = sample.residentKiB }
                    report.samples.append(sample)
                    status(sample)
                }
            }
            if let due = killTimes.dropFirst(report.kills.count).first, now &- startNS >= due, !targets.isEmpty {
                let i = targets[Int(random.next() % UInt64(targets.count))]
                _ = observe()   // what dies with its connection, read first
                if let victim = tenants[i].processes.last {
                    victim.signal(SIGKILL)
                    _ = victim.finish(within: 5)
                    report.kills.append(.init(atSeconds: Double(now &- startNS) / 1e9, guest: tenants[i].name, pid: victim.pid,
                                              nextPid: start(i)))
                }
            }
            usleep(10_000)
        }
        report.seconds = Double(Sys.monotonicNS &- startNS) / 1e9

        // Every guest ends by itself; a guest still running here is a problem (the loop broke early).
        let killed = Set(report.kills.map(\.pid))
        for t in tenants {
            for process in t.processes {
                let planned = killed.contains(process.pid)
                if !planned && process.child.isRunning { process.signal(SIGTERM) }
                let (code, hung) = process.finish(within: 10)
                if hung {
                    report.problems.append("guest \(t.name) (pid \(process.pid)) did not end and was killed")
                } else if code != (planned ? 128 + SIGKILL : 0) {
                    report.problems.append("guest \(t.name) (pid \(process.pid)) ended with status \(code)"
                                           + (process.errors.isEmpty ? "" : ": \(process.errors)"))
                }
            }
        }
        // Every guest gone and cleaned up: the devices detached, their groups
        // answered, and (a step later) the retries owed to the gone VMs dropped.
        _ = service.wait(until: { stats in
            stats.clients.count <= 1 && stats.devices.allSatisfy { ($0.dma?["retriesOwed"] ?? 0) == 0 }
        }, watching: service.process)
        guard let final = service.snapshot() else {
            report.problems.append("the service did not answer STATS after the guests left: \(service.process.errors)")
            return
        }
        report.service.clientsAtEnd = final.clients.count
        report.service.descriptorsAtEnd = service.descriptorCount
        report.devices = final.devices.filter { ids.contains($0.id) }.sorted { $0.id < $1.id }.map { d in
            VSVAStormReport.Device(id: d.id, guest: tenants.first { $0.devices.contains(d.id) }?.name ?? "",
                                   issued: d.issued, answered: d.answered, outstanding: d.outstanding,
                                   answeredTwiceOrUnknown: d.answeredTwiceOrUnknown, retriesOwed: d.dma?["retriesOwed"] ?? 0, dma: DMADevice.Counters(d.dma ?? [:]))
        }
        let dma = perGuest(final, tenants)
        report.guests = tenants.map { row($0, dma: dma[$0.name] ?? DMADevice.Counters()) }
    }

    /// Each guest's devices' DMA counters, summed, from `stats`.
    func perGuest(_ stats: ServiceStats, _ tenants: [Tenant]) -> [String: DMADevice.Counters] {
        var out: [String: DMADevice.Counters] = [:]
        for t in tenants {
            var sum = DMADevice.Counters()
            for d in stats.devices where t.devices.contains(d.id) { sum.add(DMADevice.Counters(d.dma ?? [:])) }
            out[t.name] = sum
        }
        return out
    }

    /// A guest's row: every incarnation's summary (or, for one killed, its
    /// last STATS), and its devices' counters.
    func row(_ t: Tenant, dma: DMADevice.Counters) -> VSVAStormReport.Guest {
        var row = VSVAStormReport.Guest(name: t.name, style: t.set.style, behaviour: t.set.behaviour, devices: t.devices)
        row.dma = dma
        row.pri = t.set.pri
        for process in t.processes {
            row.pids.append(process.pid)
            row.exitStatuses.append(process.child.wait())
            let seen = t.lastSeen[process.pid]
            var handled: UInt64 = 0
            if let line = process.lines.last,
               let summary = try? JSONDecoder().decode(NestedVMM.Summary.self, from: Data(line.utf8)) {
                // Its own reading of STATS just before BYE: later than the runner's last sample.
                handled = summary.pageRequests
                row.answered.merge(summary.answered, uniquingKeysWith: &+)
                row.guest.add(summary.guest)
                row.iommu.add(summary.iommu ?? seen?.iommu ?? NestedCounters())
                row.refused.merge(summary.refused ?? seen?.refused ?? [:], uniquingKeysWith: &+)
                row.events.merge(summary.events, uniquingKeysWith: &+)
                row.guestEvents.merge(summary.guestEvents, uniquingKeysWith: &+)
            } else {
                // Killed: no summary, its last STATS before the kill.
                row.iommu.add(seen?.iommu ?? NestedCounters())
                row.refused.merge(seen?.refused ?? [:], uniquingKeysWith: &+)
            }
            row.pageRequests &+= handled
            row.pageRequestsLastIncarnation = handled
        }
        row.bugs = GuestBug.tally(iommu: row.iommu, successNotMapped: dma.successNotMapped, lateAnswers: row.refused["late"] ?? 0,
                                  msiFaults: dma.msiFaults)
        return row
    }
}
