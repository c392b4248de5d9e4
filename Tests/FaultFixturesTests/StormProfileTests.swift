import FaultFixtures
import FaultSimulation
import Foundation
import Testing

@Suite struct StormProfileTests {
    static let stormsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/storms")

    static let required = ["steady", "migration-first-touch", "sva-many-pasids", "prgi-exhaustion", "slow-guest",
                           "consumer-crash-and-reconnect", "mixed-tenants", "soak"]

    @Test func everyShippedProfileLoadsAndIsNamedAfterItsFile() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.stormsDirectory.path)
            .filter { $0.hasSuffix(".json") }
        #expect(Set(Self.required).isSubset(of: Set(files.map { String($0.dropLast(5)) })))
        for file in files {
            let plan = try StormProfileReader.readAny(path: Self.stormsDirectory.appendingPathComponent(file).path)
            #expect(plan.name + ".json" == file)
            guard case .arrivals(let profile) = plan else { continue }   // vSVA profiles: VSVAStormProfileTests
            #expect(profile.durationNS > 0)
            // Every consumer process gets a device; every device goes to exactly one.
            let assigned = (0..<profile.consumerProcesses).flatMap { profile.devices(ofConsumerProcess: $0) }
            #expect(assigned.sorted() == (1...UInt32(profile.devices.count)).map { $0 })
            // An ABI 1 process attaches exactly one device.
            for (k, abi) in profile.consumers.flatMap({ c in Array(repeating: c.abi, count: c.count) }).enumerated() where abi == 1 {
                #expect(profile.devices(ofConsumerProcess: k).count == 1, "\(file): process \(k)")
            }
        }
    }

    @Test func theChaosProfileKillsRestartsAndScribbles() throws {
        let p = try StormProfileReader.read(path: Self.stormsDirectory.appendingPathComponent("chaos.json").path)
        let chaos = try #require(p.chaos)
        #expect(chaos.consumerKills == 100 && chaos.serviceRestarts == 10 && p.devices.placement == .process)
        #expect(p.consumers.filter { $0.behaviour == .scribble }.count == 1)
        #expect(chaos.killAmong.allSatisfy { name in p.consumers.contains { $0.name == name } })
        // Scaling shortens the storm; the chaos plan is in shares of it, so it scales along.
        #expect(p.scaled(toSeconds: 5).chaos == chaos)
    }

    @Test func migrationFirstTouchBurstsFarAboveItsRing() throws {
        let p = try StormProfileReader.read(path: Self.stormsDirectory.appendingPathComponent("migration-first-touch.json").path)
        let burst = try #require(p.phases.first { if case .burst = $0.shape { return true } else { return false } })
        #expect(burst.expectedArrivals > Double(p.rings.entries) * 100)
    }

    /// A valid profile, with `edit` applied to its JSON object.
    static func write(_ edit: (inout [String: Any]) -> Void) throws -> String {
        var object: [String: Any] = [
            "name": "t", "seed": 9,
            "phases": [["kind": "steady", "seconds": 1, "rate": 100] as [String: Any]],
            "devices": ["count": 2, "placement": "process"] as [String: Any],
            "consumers": [["name": "c", "count": 1, "abi": 2, "behaviour": ["kind": "fast"]] as [String: Any]],
        ]
        edit(&object)
        let path = NSTemporaryDirectory() + "storm-\(UUID().uuidString).json"
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func error(_ path: String) -> FixtureError? {
        do {
            _ = try StormProfileReader.read(path: path)
            return nil
        } catch {
            return error
        }
    }

    @Test func theBaseProfileIsValid() throws {
        let path = try Self.write { _ in }
        defer { unlink(path) }
        let p = try StormProfileReader.read(path: path)
        #expect(p.slo.zeroUnanswered && p.rings.entries == 4096 && p.timeoutMilliseconds == 10_000)
    }

    typealias Edit = (inout [String: Any]) -> Void

    static func phase(_ p: [String: Any]) -> Edit { { $0["phases"] = [p] } }
    static func devices(_ extra: [String: Any]) -> Edit {
        { o in
            var d = o["devices"] as! [String: Any]
            d.merge(extra) { $1 }
            o["devices"] = d
        }
    }
    static func behaviour(_ b: [String: Any]) -> Edit {
        { $0["consumers"] = [["name": "c", "behaviour": b] as [String: Any]] }
    }

    /// Each class of malformed profile, the field the error must name, and a word of its message.
    static var malformed: [(String, Edit, String?, String)] { [
        ("unknown top-level key", { $0["phase"] = 1 }, "phase", "unknown key"),
        ("missing phases", { $0["phases"] = nil }, "phases", "missing"),
        ("no phases", { $0["phases"] = [Any]() }, "phases", "at least one"),
        ("unknown phase kind", phase(["kind": "sine", "seconds": 1]), "phases.0.kind", "not one of"),
        ("negative rate", phase(["kind": "steady", "seconds": 1, "rate": -5]), "phases.0.rate", "out of range"),
        ("rate as a string", phase(["kind": "steady", "seconds": 1, "rate": "fast"]), "phases.0.rate", "expected a number"),
        ("zero-length phase", phase(["kind": "steady", "seconds": 0, "rate": 5]), "phases.0.seconds", "positive"),
        ("duty of 1", phase(["kind": "square", "seconds": 1, "high": 5, "low": 1, "periodSeconds": 0.1, "duty": 1]),
         "phases.0.duty", "strictly between"),
        ("key of another kind", phase(["kind": "steady", "seconds": 1, "rate": 5, "from": 1]), "phases.0.from", "unknown key"),
        ("a storm longer than a day", phase(["kind": "steady", "seconds": 90_000, "rate": 5]), "phases.0.seconds", "out of range"),
        ("PASIDs beyond 20 bits", devices(["pasidsPerDevice": 1 << 20]), "devices.pasidsPerDevice", "out of range"),
        ("PRGI budget beyond 512", devices(["prgiBudget": 513]), "devices.prgiBudget", "out of range"),
        ("unknown placement", devices(["placement": "gpu"]), "devices.placement", "not one of"),
        ("group size min above max", devices(["groupSize": ["distribution": "uniform", "min": 4, "max": 2]]),
         "devices.groupSize.max", "below min"),
        ("allocation below the largest group", devices(["allocation": 2, "groupSize": ["distribution": "fixed", "pages": 3]]),
         "devices.allocation", "cannot hold"),
        ("unrecoverable share above 1", devices(["unrecoverableShare": 1.5]), "devices.unrecoverableShare", "out of range"),
        ("more consumer processes than devices", { $0["consumers"] = [["name": "c", "count": 3] as [String: Any]] },
         "consumers", "every consumer needs a device"),
        ("ABI 1 consumers for more devices than they can serve",
         { $0["consumers"] = [["name": "c", "abi": 1] as [String: Any]] }, "consumers", "an ABI 1 queue serves one device"),
        ("two consumers with one name", { $0["consumers"] = [["name": "c"], ["name": "c"]] }, "consumers", "distinct"),
        ("ABI 3", { $0["consumers"] = [["name": "c", "abi": 3] as [String: Any]] }, "consumers.0.abi", "out of range"),
        ("crash after the storm", behaviour(["kind": "crash", "atSeconds": 5, "restartAfterSeconds": 1]),
         "consumers.0.behaviour.atSeconds", "not inside the storm"),
        ("unknown delay distribution", behaviour(["kind": "slow", "delay": ["distribution": "pareto"]]),
         "consumers.0.behaviour.delay.distribution", "not one of"),
        ("wrong share of 0", behaviour(["kind": "wrong", "share": 0]), "consumers.0.behaviour.share", "above 0"),
        ("ring not a power of two", { $0["rings"] = ["entries": 1000] }, "rings.entries", "power of two"),
        ("name with capitals", { $0["name"] = "Steady" }, "name", "lower-case"),
        ("SLO of the wrong type", { $0["slo"] = ["zeroUnanswered": "yes"] }, "slo.zeroUnanswered", "true or false"),
        ("chaos killing an unknown consumer", { $0["chaos"] = ["consumerKills": 3, "killAmong": ["nobody"]] },
         "chaos.killAmong.0", "not a consumer"),
        ("chaos kills with no one to kill", { $0["chaos"] = ["consumerKills": 3] }, "chaos.killAmong", "at least one"),
        ("chaos killing a scribbler", { o in
            o["consumers"] = [["name": "s", "behaviour": ["kind": "scribble"]] as [String: Any]]
            o["chaos"] = ["consumerKills": 1, "killAmong": ["s"]] as [String: Any]
        }, "chaos.killAmong.0", "kill targets must not"),
        ("chaos restarts with devices in the service", { o in
            o["devices"] = ["count": 2, "placement": "service"] as [String: Any]
            o["chaos"] = ["serviceRestarts": 2] as [String: Any]
        }, "chaos.serviceRestarts", "restart with it"),
        ("chaos restarts within the whole storm", { $0["chaos"] = ["serviceRestarts": 2, "restartsWithin": 1] },
         "chaos.restartsWithin", "below 1"),
        ("a scribbler with options", behaviour(["kind": "scribble", "share": 0.5]), "consumers.0.behaviour.share", "unknown key"),
    ] }

    @Test func theMalformedTableIsWhatTheParameterisedTestRuns() { #expect(Self.malformed.count == 32) }

    @Test(arguments: 0..<32)
    func everyMalformedClassIsRefusedWithFileAndField(_ index: Int) throws {
        let (what, edit, field, word) = Self.malformed[index]
        let path = try Self.write(edit)
        defer { unlink(path) }
        let error = try #require(Self.error(path), "\(what) was accepted")
        #expect(error.file == path, "\(what)")
        #expect(error.field == field, "\(what): \(error)")
        #expect(error.message.contains(word), "\(what): \(error)")
    }

    @Test func badJSONAndTrailingTextAreRefusedWithTheFile() throws {
        for text in ["{\"name\": \"t\",", "{} {}", "[1, 2]", ""] {
            let path = NSTemporaryDirectory() + "storm-\(UUID().uuidString).json"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            defer { unlink(path) }
            let error = try #require(Self.error(path), "\(text) was accepted")
            #expect(error.file == path)
        }
        #expect(Self.error("/nonexistent/storm.json")?.message.contains("cannot open") == true)
    }

    @Test func scalingShortensPhasesAndTheirWindows() throws {
        let p = try StormProfileReader.read(path: Self.stormsDirectory.appendingPathComponent("soak.json").path)
        let short = p.scaled(toSeconds: 6)
        #expect(short.durationNS == 6_000_000_000)
        guard case .crash(let at, _) = short.consumers[1].behaviour else { Issue.record("crash behaviour lost"); return }
        #expect(at == 3_000_000_000)  // half-way, as in the hour-long original
    }
}

@Suite struct ArrivalScheduleTests {
    @Test func steadyArrivalsAreEvenlySpacedAndCountExactly() {
        let times = Array(ArrivalSchedule(phases: [ArrivalPhase(name: "s", durationNS: 1_000_000_000, shape: .steady(rate: 1000))], seed: 1))
        #expect(times.count == 1000)
        #expect(times.first?.atNS == 0)
        #expect(zip(times, times.dropFirst()).allSatisfy { $1.atNS - $0.atNS == 1_000_000 })
    }

    @Test func aRampSpeedsUpAndOffersItsIntegral() {
        let ramp = ArrivalPhase(name: "r", durationNS: 2_000_000_000, shape: .ramp(from: 0, to: 2000))
        let times = Array(ArrivalSchedule(phases: [ramp], seed: 1)).map(\.atNS)
        #expect(abs(Double(times.count) - ramp.expectedArrivals) <= 1)  // 2000
        let firstHalf = times.filter { $0 < 1_000_000_000 }.count
        #expect(abs(firstHalf - 500) <= 1)  // the first half of a ramp from 0 holds a quarter of its arrivals
        #expect(zip(times, times.dropFirst()).allSatisfy { $0 <= $1 })
    }

    @Test func aSquareWaveAlternatesAndOffersItsIntegral() {
        let square = ArrivalPhase(name: "q", durationNS: 1_000_000_000,
                                  shape: .square(high: 10_000, low: 1000, periodNS: 100_000_000, duty: 0.5))
        let times = Array(ArrivalSchedule(phases: [square], seed: 1)).map(\.atNS)
        #expect(abs(Double(times.count) - square.expectedArrivals) <= 2)  // 5500
        #expect(times.filter { $0 < 50_000_000 }.count == 500)  // high half of the first period
        #expect(times.filter { $0 >= 50_000_000 && $0 < 100_000_000 }.count == 50)  // low half
    }

    @Test func poissonArrivalsRepeatForASeedAndKeepTheirMean() {
        let phase = ArrivalPhase(name: "p", durationNS: 10_000_000_000, shape: .poisson(rate: 10_000))
        let a = Array(ArrivalSchedule(phases: [phase], seed: 42)).map(\.atNS)
        let b = Array(ArrivalSchedule(phases: [phase], seed: 42)).map(\.atNS)
        let c = Array(ArrivalSchedule(phases: [phase], seed: 43)).map(\.atNS)
        #expect(a == b)
        #expect(a != c)
        // 100,000 expected; a Poisson count's standard deviation is ~316, and the seed is fixed.
        #expect(abs(a.count - 100_000) < 1600)
    }

    @Test func phasesFollowOneAnotherAndAreTagged() {
        let phases = [ArrivalPhase(name: "a", durationNS: 1_000_000_000, shape: .steady(rate: 10)),
                      ArrivalPhase(name: "b", durationNS: 1_000_000_000, shape: .burst(rate: 100))]
        let schedule = ArrivalSchedule(phases: phases, seed: 1)
        let times = Array(schedule)
        #expect(times.filter { $0.phase == 0 }.count == 10)
        #expect(times.filter { $0.phase == 1 }.count == 100)
        #expect(times.filter { $0.phase == 1 }.allSatisfy { $0.atNS >= 1_000_000_000 })
        #expect(schedule.phaseIndex(atNS: 1_500_000_000) == 1)
        #expect(schedule.totalNS == 2_000_000_000)
    }
}
