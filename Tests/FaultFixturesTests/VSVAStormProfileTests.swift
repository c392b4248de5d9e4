import FaultFixtures
import Foundation
import NestedIOMMU
import Testing
import VMMClient

/// The vSVA kind of storm profile: the shipped one, and each class of
/// malformed field refused with the field named.
@Suite struct VSVAStormProfileTests {
    @Test func theShippedProfileHasOneGuestOfEachFaultyKindBesideCorrectOnes() throws {
        let path = StormProfileTests.stormsDirectory.appendingPathComponent("vsva-guests.json").path
        guard case .vsva(let p) = try StormProfileReader.readAny(path: path) else {
            Issue.record("vsva-guests.json did not read as a vSVA profile")
            return
        }
        let behaviours = Set(p.guests.map(\.behaviour))
        #expect(behaviours == Set(NestedGuest.Behaviour.allCases))
        #expect(Set(p.guests.map(\.style)) == [.vtd, .smmuv3])
        // Devices are consecutive from 1, each held by one guest process.
        let held = p.processNames.indices.flatMap { p.devices(ofProcess: $0) }
        #expect(held == (1...UInt32(p.deviceCount)).map { $0 })
        let chaos = try #require(p.chaos)
        #expect(chaos.guestKills > 0 && chaos.killAmong.allSatisfy { name in p.guests.contains { $0.name == name } })
        // An arrival-storm reader refuses it by name rather than misreading it.
        #expect(throws: FixtureError.self) { _ = try StormProfileReader.read(path: path) }
        #expect(p.scaled(toSeconds: 2).seconds == 2)
    }

    /// A valid vSVA profile, with `edit` applied to its `vsva` section.
    static func write(_ edit: (inout [String: Any]) -> Void) throws -> String {
        var section: [String: Any] = [
            "seconds": 1, "pasids": [1, 2],
            "guests": [["name": "g", "behaviour": "correct", "devices": 2] as [String: Any]],
        ]
        edit(&section)
        let object: [String: Any] = ["name": "v", "vsva": section]
        let path = NSTemporaryDirectory() + "vsva-\(UUID().uuidString).json"
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func theBaseProfileIsValidWithItsDefaults() throws {
        let path = try Self.write { _ in }
        defer { unlink(path) }
        guard case .vsva(let p) = try StormProfileReader.readAny(path: path) else {
            Issue.record("not read as vSVA")
            return
        }
        #expect(p.budget == 48 && p.stepMicroseconds == 100 && p.timeoutMilliseconds == 1000 && p.staleGraceMilliseconds == 1000)
        #expect(p.guests[0].style == .vtd && p.deviceCount == 2 && p.chaos == nil)
    }

    typealias Edit = (inout [String: Any]) -> Void
    static func guest(_ g: [String: Any]) -> Edit { { $0["guests"] = [g] } }

    static var malformed: [(String, Edit, String, String)] { [
        ("unknown key", { $0["rate"] = 5 }, "vsva.rate", "unknown key"),
        ("no seconds", { $0["seconds"] = nil }, "vsva.seconds", "missing"),
        ("zero seconds", { $0["seconds"] = 0 }, "vsva.seconds", "too short"),
        ("PASID 0", { $0["pasids"] = [0, 1] }, "vsva.pasids.0", "PASID 0"),
        ("a PASID twice", { $0["pasids"] = [3, 3] }, "vsva.pasids.1", "twice"),
        ("a PASID beyond 20 bits", { $0["pasids"] = [1 << 20] }, "vsva.pasids.0", "out of range"),
        ("budgets beyond the guest's RAM", { $0["budget"] = 1024; $0["pasids"] = Array(1...9) }, "vsva.budget", "exceeds"),
        ("quota below the PASIDs bound", { $0["pasidQuota"] = 1 }, "vsva.pasidQuota", "below"),
        ("no guests", { $0["guests"] = [Any]() }, "vsva.guests", "at least one"),
        ("unknown behaviour", guest(["name": "g", "behaviour": "lazy"]), "vsva.guests.0.behaviour", "not one of"),
        ("unknown style", guest(["name": "g", "style": "amd"]), "vsva.guests.0.style", "not one of"),
        ("devices not below the budget", { $0["budget"] = 4; $0["guests"] = [["name": "g", "devices": 4]] },
         "vsva.guests.0.devices", "evict"),
        ("a name with a slash", guest(["name": "a/b"]), "vsva.guests.0.name", "slashes"),
        ("two sets with one name", { $0["guests"] = [["name": "g"], ["name": "g"]] }, "vsva.guests", "distinct"),
        ("kills of an unknown guest", { $0["chaos"] = ["guestKills": 2, "killAmong": ["nobody"]] },
         "vsva.chaos.killAmong.0", "not a guest"),
        ("kills with no one to kill", { $0["chaos"] = ["guestKills": 2] }, "vsva.chaos.killAmong", "at least one"),
        ("a faulty guest without PRI", guest(["name": "g", "behaviour": "slow", "pri": false]), "vsva.guests.0.pri",
         "only a correct guest"),
        ("a grace above a minute", { $0["staleGraceMs"] = 61_000 }, "vsva.staleGraceMs", "out of range"),
        ("a storm shorter than a second", { $0["seconds"] = 0.5 }, "vsva.seconds", "too short"),
        ("a budget of one page", { $0["budget"] = 1 }, "vsva.budget", "at least 2"),
        ("a slow guest in a storm too short to see it",
         { $0["seconds"] = 2; $0["guests"] = [["name": "s", "behaviour": "slow"]] }, "vsva.timeoutMs", "at least 2.5 s"),
        ("a timeout above ten minutes", { $0["timeoutMs"] = 600_001 }, "vsva.timeoutMs", "out of range"),
        ("an SMMUv3 guest with a PASID beyond its CD table",
         { $0["pasids"] = [1, 5000]; $0["guests"] = [["name": "s", "style": "smmuv3"]] }, "vsva.pasids", "CD table"),
        ("an SMMUv3 CD table wider than the quota",
         { $0["pasids"] = [1, 2, 3]; $0["pasidQuota"] = 3; $0["guests"] = [["name": "s", "style": "smmuv3"]] },
         "vsva.pasidQuota", "S1CDMax 2"),
    ] }

    @Test(arguments: malformed.indices)
    func aMalformedFieldIsRefusedByName(_ i: Int) throws {
        let (what, edit, field, words) = Self.malformed[i]
        let path = try Self.write(edit)
        defer { unlink(path) }
        do {
            _ = try StormProfileReader.readAny(path: path)
            Issue.record("\(what): accepted")
        } catch {
            #expect(error.field == field, "\(what): \(error)")
            #expect(error.message.contains(words), "\(what): \(error)")
            #expect(error.file == path)
        }
    }
}
