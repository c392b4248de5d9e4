import ArgumentParser
import FaultFixtures
import FaultSimulation
import Foundation
import VMMClient

/// Checks a storm profile and prints what it would offer: each phase's
/// arrivals (counted by running the real arrival schedule, not estimated),
/// and which devices each consumer process attaches.
struct StormPlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storm-plan",
        abstract: "Check a storm profile (Docs/STORMS.md) and print its arrival schedule and tenants.",
        discussion: """
            Exit status 1, with the file and field named, if the profile is malformed. The arrivals per phase \
            come from the same schedule a storm drives, so a profile's load can be read before it runs.
            """)

    @Argument(help: "The storm profile (e.g. Fixtures/storms/steady.json).") var profile: String
    @Option(help: "Scale the storm to last this many seconds (phases, stalls and crash times alike).")
    var seconds: Double?
    @Flag(help: "Print the checked profile as JSON.") var json = false

    /// The checked profile at `path`, scaled to `seconds` and its rates by
    /// `rateScale` if given: what every storm command starts from. A
    /// malformed profile throws its `FixtureError` (file and field); a
    /// scale out of range is a usage error naming `option`.
    static func load(_ path: String, seconds: Double?, rateScale: Double? = nil, option: String) throws -> StormProfile {
        guard case .arrivals(let profile) = try loadAny(path, seconds: seconds, rateScale: rateScale, option: option) else {
            throw ValidationError("\(path) is a vSVA storm profile: run it with `faultring storm`")
        }
        return profile
    }

    /// The checked profile of either kind at `path`, scaled as `load` scales
    /// (a vSVA storm has no rates: a rate scale for one is a usage error).
    static func loadAny(_ path: String, seconds: Double?, rateScale: Double? = nil, option: String) throws -> StormPlan {
        if let seconds, !(seconds > 0 && seconds <= StormProfileReader.maxSeconds) {
            throw ValidationError("\(option) must be in (0, \(StormProfileReader.maxSeconds)]")
        }
        if let rateScale, !(rateScale > 0 && rateScale <= 100) {
            throw ValidationError("the rate scale must be in (0, 100]")
        }
        var profile: StormProfile
        switch try StormProfileReader.readAny(path: path) {
        case .vsva(let vsva):
            if rateScale != nil { throw ValidationError("\(path) is a vSVA storm: its DMA devices have no arrival rate to scale") }
            let scaled = seconds.map { vsva.scaled(toSeconds: $0) } ?? vsva
            if let problem = scaled.timingProblem { throw ValidationError("\(option): \(problem)") }
            return .vsva(scaled)
        case .arrivals(let arrivals): profile = arrivals
        }
        if let seconds { profile = profile.scaled(toSeconds: seconds) }
        if let rateScale {
            profile = profile.scaled(rates: rateScale)
            for (i, phase) in profile.phases.enumerated() where phase.peakRate > StormProfileReader.maxRate {
                throw ValidationError("the rate scale takes phase \(i) (\(phase.name)) to \(phase.peakRate) groups/s; "
                                      + "at most \(StormProfileReader.maxRate)")
            }
        }
        return .arrivals(profile)
    }

    func run() throws {
        let plan: StormPlan
        do {
            plan = try Self.loadAny(profile, seconds: seconds, option: "--seconds")
        } catch let error as FixtureError {
            FileHandle.standardError.write(Data("faultring storm-plan: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let storm: StormProfile
        switch plan {
        case .arrivals(let arrivals): storm = arrivals
        case .vsva(let vsva):
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(vsva), as: UTF8.self))
            } else {
                print(Self.describe(vsva))
            }
            return
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(storm), as: UTF8.self))
            return
        }
        var counts = [Int](repeating: 0, count: storm.phases.count)
        for arrival in ArrivalSchedule(phases: storm.phases, seed: storm.seed) { counts[arrival.phase] += 1 }
        print("storm \(storm.name): \(String(format: "%.1f", Double(storm.durationNS) / 1e9)) s, " +
              "\(storm.devices.count) devices (\(storm.devices.placement.rawValue)), " +
              "\(storm.consumerProcesses) consumer processes, rings \(storm.rings.entries)/\(storm.rings.responses), " +
              "timeout \(storm.timeoutMilliseconds) ms")
        var phases = TextTable("phase", "shape", "seconds", "arrivals", "mean groups/s")
        for (i, p) in storm.phases.enumerated() {
            let s = Double(p.durationNS) / 1e9
            phases.add(p.name, StormProfile.describe(p.shape), String(format: "%.2f", s), String(counts[i]),
                       String(format: "%.0f", Double(counts[i]) / s))
        }
        print(phases.render(indent: "  "))
        var tenants = TextTable("consumer", "abi", "behaviour", "devices")
        var process = 0
        for c in storm.consumers {
            for k in 1...c.count {
                tenants.add("\(c.name)-\(k)", String(c.abi), StormProfile.describe(c.behaviour),
                            storm.devices(ofConsumerProcess: process).map(String.init).joined(separator: " "))
                process += 1
            }
        }
        print(tenants.render(indent: "  "))
    }

    /// A vSVA storm's plan: the service's devices and the guests, with the bug each must show.
    static func describe(_ p: VSVAStormProfile) -> String {
        var out = "vSVA storm \(p.name): \(String(format: "%.1f", p.seconds)) s, \(p.deviceCount) DMA devices in the service "
            + "(step \(p.stepMicroseconds) µs, PASIDs \(p.pasids.map(String.init).joined(separator: " "))), "
            + "\(p.processNames.count) guest processes, budget \(p.budget) pages per PASID, timeout \(p.timeoutMilliseconds) ms"
        if let chaos = p.chaos { out += ", \(chaos.guestKills) guest kills among \(chaos.killAmong.joined(separator: " "))" }
        var guests = TextTable("guest", "style", "behaviour", "devices", "must show")
        for (i, set) in p.processGuests.enumerated() {
            guests.add(p.processNames[i], set.style.rawValue, set.behaviour.rawValue,
                       p.devices(ofProcess: i).map(String.init).joined(separator: " "),
                       set.behaviour.expectedBug?.rawValue ?? "no bug")
        }
        return out + "\n" + guests.render(indent: "  ")
    }
}
