import NestedIOMMU
import VMMClient

/// Reads the `vsva` kind of storm profile (Docs/STORMS.md §vSVA storms)
/// once `StormProfileReader.parseAny` has found its `vsva` section. Every
/// malformed field throws a `FixtureError` naming the file and the field
/// (`vsva.guests.1.behaviour`), before anything runs.
enum VSVAStormProfileReader {
    /// Guest processes a vSVA storm may start.
    static let maxGuestProcesses = StormProfileReader.maxConsumerProcesses
    /// Devices a guest process may attach.
    static let maxDevicesPerGuest = 64
    /// PASIDs every device's streams may use.
    static let maxPASIDs = 64
    /// Guest pages all PASIDs' budgets may take together: a guest's RAM is
    /// 64 MiB (16,384 pages), and its tables need room beside the data.
    static let maxResidentPages = 8192
    /// The shortest storm: guests take a moment to connect and bind, and the runner samples every 100 ms.
    static let minSeconds = 1.0
    /// The highest PASID an SMMUv3 guest's linear CD table covers here (4096 CDs: 256 KiB of its RAM).
    static let maxSMMUv3PASID: UInt32 = 4095

    static func profile(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> VSVAStormProfile {
        let m = try v.members(c, allowed: ["name", "description", "seed", "vsva"])
        let name = try StormProfileReader.name(m, c)
        let description = try optional(m, "description", c) { (v, c) throws(FixtureError) in try v.string(c) } ?? ""
        let seed = try optional(m, "seed", c) { (v, c) throws(FixtureError) in try v.unsigned(c) } ?? 1
        return try required(m, "vsva", c) { (v, c) throws(FixtureError) in
            try section(v, c, name: name, description: description, seed: seed)
        }
    }

    static func section(_ v: JSONCValue, _ c: JSONCValue.Context, name: String, description: String,
                        seed: UInt64) throws(FixtureError) -> VSVAStormProfile {
        let m = try v.members(c, allowed: ["seconds", "stepUs", "pasids", "budget", "timeoutMs", "pasidQuota", "staleGraceMs",
                                          "msiEvery", "guests", "chaos"])
        let seconds = try required(m, "seconds", c) { (v, c) throws(FixtureError) in
            try v.number(c, in: 0...StormProfileReader.maxSeconds)
        }
        guard seconds >= minSeconds else {
            throw c.child("seconds").error("\(seconds) s is too short: guests need \(minSeconds) s to bind and be sampled")
        }
        let step = try optional(m, "stepUs", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1_000_000) } ?? 100
        guard step > 0 else { throw c.child("stepUs").error("must be at least 1") }
        let pasids = try optional(m, "pasids", c) { (v, c) throws(FixtureError) in try Self.pasids(v, c) } ?? [1, 2]
        let budget = Int(try optional(m, "budget", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1024) } ?? 48)
        guard budget >= 2 else { throw c.child("budget").error("\(budget) pages per PASID; at least 2 (a device needs one, and one to spare)") }
        guard budget * pasids.count <= maxResidentPages else {
            throw c.child("budget").error("\(budget) pages for each of \(pasids.count) PASIDs exceeds the guest's \(maxResidentPages)")
        }
        let timeout = try optional(m, "timeoutMs", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 600_000) } ?? 1000
        guard timeout > 0 else { throw c.child("timeoutMs").error("must be positive") }
        let quota = Int(try optional(m, "pasidQuota", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1 << 20) } ?? 64)
        guard quota >= pasids.count else {
            throw c.child("pasidQuota").error("\(quota) is below the \(pasids.count) PASIDs every guest binds")
        }
        let grace = try optional(m, "staleGraceMs", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 60_000) } ?? 1000
        let msiEvery = Int(try optional(m, "msiEvery", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1_000_000) } ?? 100)
        guard msiEvery > 0 else { throw c.child("msiEvery").error("must be at least 1 (a device without interrupts cannot show a forgotten doorbell)") }
        let gc = c.child("guests")
        let values = try required(m, "guests", c) { (v, c) throws(FixtureError) in try v.array(c) }
        guard !values.isEmpty else { throw gc.error("a storm needs at least one guest") }
        var guests: [VSVAStormProfile.Guests] = []
        for (i, value) in values.enumerated() {
            guests.append(try guest(value, gc.child(String(i)), budget: budget))
        }
        if Set(guests.map(\.name)).count != guests.count { throw gc.error("guest names must be distinct") }
        let processes = guests.reduce(0) { $0 + $1.count }
        guard processes <= maxGuestProcesses else { throw gc.error("\(processes) guest processes; at most \(maxGuestProcesses)") }
        let devices = guests.reduce(0) { $0 + $1.count * $1.devicesPerProcess }
        guard devices <= StormProfileReader.maxDevices else {
            throw gc.error("\(devices) devices in all; at most \(StormProfileReader.maxDevices)")
        }
        if guests.contains(where: { $0.style == .smmuv3 }) {
            // An SMMUv3 guest's CD table is linear, 2^S1CDMax entries covering the highest PASID.
            let highest = pasids.max() ?? 1
            guard highest <= maxSMMUv3PASID else {
                throw c.child("pasids").error("PASID \(highest) with an SMMUv3 guest: its linear CD table covers 0 ... \(maxSMMUv3PASID) here")
            }
            var cdMax = 0
            while UInt32(1) << UInt32(cdMax) <= highest { cdMax += 1 }
            guard quota >= 1 << cdMax else {
                throw c.child("pasidQuota").error("\(quota) is below the \(1 << cdMax) PASIDs an SMMUv3 guest's CD table spans "
                                                 + "(S1CDMax \(cdMax), to reach PASID \(highest))")
            }
        }
        let chaos = try optional(m, "chaos", c) { (v, c) throws(FixtureError) in try Self.chaos(v, c, guests: guests) }
        var profile = VSVAStormProfile(name: name, description: description, seed: seed, seconds: seconds, stepMicroseconds: step,
                                pasids: pasids, budget: budget, timeoutMilliseconds: timeout, pasidQuota: quota,
                                staleGraceMilliseconds: grace, guests: guests, chaos: chaos)
        profile.msiEvery = msiEvery
        if let problem = profile.timingProblem { throw c.child("timeoutMs").error(problem) }
        return profile
    }

    static func pasids(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> [UInt32] {
        let items = try v.array(c)
        guard (1...maxPASIDs).contains(items.count) else { throw c.error("\(items.count) PASIDs; 1 ... \(maxPASIDs)") }
        var out: [UInt32] = []
        for (i, item) in items.enumerated() {
            let pasid = try item.u32(c.child(String(i)), max: 0xF_FFFF)
            guard pasid > 0 else { throw c.child(String(i)).error("PASID 0 is the device's own address space, not a guest's") }
            guard !out.contains(pasid) else { throw c.child(String(i)).error("PASID \(pasid) is listed twice") }
            out.append(pasid)
        }
        return out
    }

    static func guest(_ v: JSONCValue, _ c: JSONCValue.Context, budget: Int) throws(FixtureError) -> VSVAStormProfile.Guests {
        let m = try v.members(c, allowed: ["name", "count", "style", "behaviour", "devices", "pri"])
        let name = try StormProfileReader.setName(m, c)
        let count = Int(try optional(m, "count", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: UInt64(maxGuestProcesses)) } ?? 1)
        guard count > 0 else { throw c.child("count").error("must be at least 1") }
        let styleName = try optional(m, "style", c) { (v, c) throws(FixtureError) in try v.string(c) } ?? "vtd"
        guard let style = NestedDomain.Style(rawValue: styleName) else {
            throw c.child("style").error("\"\(styleName)\" is not one of smmuv3, vtd")
        }
        let behaviourName = try optional(m, "behaviour", c) { (v, c) throws(FixtureError) in try v.string(c) } ?? "correct"
        guard let behaviour = NestedGuest.Behaviour(rawValue: behaviourName) else {
            throw c.child("behaviour").error("\"\(behaviourName)\" is not one of "
                                             + NestedGuest.Behaviour.allCases.map(\.rawValue).sorted().joined(separator: ", "))
        }
        let devices = Int(try optional(m, "devices", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: UInt64(maxDevicesPerGuest)) } ?? 1)
        guard devices > 0 else { throw c.child("devices").error("must be at least 1") }
        // Each device has one request in flight per PASID stream; a budget above the devices
        // means a correct guest never evicts a page it mapped before the device's retry.
        guard devices < budget else {
            throw c.child("devices").error("\(devices) devices need a budget above \(devices) pages per PASID (it is \(budget)): "
                                           + "a correct guest would evict pages before their retries")
        }
        var set = VSVAStormProfile.Guests(name: name, count: count, style: style, behaviour: behaviour, devicesPerProcess: devices)
        set.pri = try optional(m, "pri", c) { (v, c) throws(FixtureError) in try v.bool(c) } ?? true
        guard set.pri || behaviour == .correct else {
            throw c.child("pri").error("devices without PRI raise no page request, so a \(behaviour.rawValue) guest's bug "
                                      + "cannot show: only a correct guest may have them")
        }
        return set
    }

    static func chaos(_ v: JSONCValue, _ c: JSONCValue.Context,
                      guests: [VSVAStormProfile.Guests]) throws(FixtureError) -> VSVAStormProfile.Chaos {
        let m = try v.members(c, allowed: ["guestKills", "killAmong"])
        let kills = Int(try optional(m, "guestKills", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1000) } ?? 0)
        let kc = c.child("killAmong")
        var among: [String] = []
        if let value = m["killAmong"] {
            for (i, item) in try value.array(kc).enumerated() {
                let name = try item.string(kc.child(String(i)))
                guard guests.contains(where: { $0.name == name }) else {
                    throw kc.child(String(i)).error("\"\(name)\" is not a guest of this profile")
                }
                among.append(name)
            }
        }
        guard kills == 0 || !among.isEmpty else { throw kc.error("\(kills) guest kills need at least one guest to kill") }
        return VSVAStormProfile.Chaos(guestKills: kills, killAmong: among)
    }
}
