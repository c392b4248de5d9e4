import CJSONC
import FaultSimulation
import Glibc

/// Reads and checks a storm profile (Docs/STORMS.md) with json-c. Every
/// malformed input — bad JSON, an unknown or missing key, a wrong type, a
/// value out of range, a window outside the storm, more consumer processes
/// than devices — throws a `FixtureError` naming the file and the field
/// (`phases.2.rate`), before anything runs.
public enum StormProfileReader {
    /// Profiles are small; a larger file is refused rather than read.
    public static let maxBytes = 1 << 20
    /// The longest storm a profile may describe (a day: soaks included).
    public static let maxSeconds = 86_400.0
    /// The highest offered rate a phase may ask, groups/s.
    public static let maxRate = 1e8
    /// Consumer processes a storm may start.
    public static let maxConsumerProcesses = 64
    /// Devices a storm may simulate.
    public static let maxDevices = 1024

    /// The arrival storm profile in the file at `path` (a vSVA profile is an error naming it).
    public static func read(path: String) throws(FixtureError) -> StormProfile {
        guard case .arrivals(let profile) = try readAny(path: path) else {
            throw FixtureError(file: path, "a vSVA storm profile (it has a \"vsva\" section): run it with `faultring storm`")
        }
        return profile
    }

    /// The profile of either kind in the file at `path`.
    public static func readAny(path: String) throws(FixtureError) -> StormPlan {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FixtureError(file: path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: maxBytes + 1)
        var length = 0
        while length < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + length, $0.count - length) }
            guard n >= 0 else {
                if errno == EINTR { continue }
                throw FixtureError(file: path, "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            length += n
        }
        guard length <= maxBytes else { throw FixtureError(file: path, "larger than \(maxBytes) bytes: not a storm profile") }
        return try parseAny(bytes[0..<length], file: path)
    }

    /// The arrival storm profile in `bytes`; errors name `file`.
    public static func parse(_ bytes: ArraySlice<UInt8>, file: String) throws(FixtureError) -> StormProfile {
        guard case .arrivals(let profile) = try parseAny(bytes, file: file) else {
            throw FixtureError(file: file, "a vSVA storm profile (it has a \"vsva\" section), not an arrival storm")
        }
        return profile
    }

    /// The profile of either kind in `bytes`; errors name `file`.
    public static func parseAny(_ bytes: ArraySlice<UInt8>, file: String) throws(FixtureError) -> StormPlan {
        guard let tokener = json_tokener_new() else { throw FixtureError(file: file, "json-c could not allocate a tokener") }
        defer { json_tokener_free(tokener) }
        let object = bytes.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { json_tokener_parse_ex(tokener, $0.baseAddress, Int32($0.count)) }
        }
        let parseError = json_tokener_get_error(tokener)
        guard let object, parseError == json_tokener_success else {
            if let object { json_object_put(object) }
            let what = parseError == json_tokener_continue ? "unexpected end of file" : String(cString: json_tokener_error_desc(parseError))
            throw FixtureError(file: file, "not valid JSON: \(what) at byte \(json_tokener_get_parse_end(tokener))")
        }
        defer { json_object_put(object) }
        guard json_tokener_get_parse_end(tokener) == bytes.count || bytes[(bytes.startIndex + json_tokener_get_parse_end(tokener))...].allSatisfy({ [0x20, 0x0A, 0x0D, 0x09].contains($0) }) else {
            throw FixtureError(file: file, "text after the profile's object at byte \(json_tokener_get_parse_end(tokener))")
        }
        let root = JSONCValue(object: object)
        // Contexts hold the name unowned: it lives until every error has been made.
        let name = FileName(file)
        defer { withExtendedLifetime(name) {} }
        let context = JSONCValue.Context(file: name, event: nil, path: "")
        if root.type == json_type_object, JSONCMembers(object: object)["vsva"] != nil {
            return .vsva(try VSVAStormProfileReader.profile(root, context))
        }
        return .arrivals(try profile(root, context))
    }

    /// The `name` every profile has: lower-case letters, digits and dashes (it names a directory).
    static func name(_ m: JSONCMembers, _ c: JSONCValue.Context) throws(FixtureError) -> String {
        let name = try required(m, "name", c) { (v, c) throws(FixtureError) in try v.string(c) }
        guard !name.isEmpty, name.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }) else {
            throw c.child("name").error("\"\(name)\" must be lower-case letters, digits and dashes")
        }
        return name
    }

    /// A set's `name` within a profile: non-empty, no spaces or slashes (it names processes).
    static func setName(_ m: JSONCMembers, _ c: JSONCValue.Context) throws(FixtureError) -> String {
        let name = try required(m, "name", c) { (v, c) throws(FixtureError) in try v.string(c) }
        guard !name.isEmpty, !name.utf8.contains(where: { $0 < 0x21 || $0 == 0x2F }) else {
            throw c.child("name").error("\"\(name)\" must be non-empty, without spaces or slashes")
        }
        return name
    }

    static func profile(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> StormProfile {
        let m = try v.members(c, allowed: ["name", "description", "seed", "phases", "devices", "consumers", "rings",
                                          "timeoutMs", "slo", "chaos"])
        let name = try Self.name(m, c)
        let description = try optional(m, "description", c) { (v, c) throws(FixtureError) in try v.string(c) } ?? ""
        let seed = try optional(m, "seed", c) { (v, c) throws(FixtureError) in try v.unsigned(c) } ?? 1
        let pc = c.child("phases")
        guard let phasesValue = m["phases"] else { throw pc.error("missing") }
        let phaseValues = try phasesValue.array(pc)
        guard !phaseValues.isEmpty else { throw pc.error("a storm needs at least one phase") }
        var phases: [ArrivalPhase] = []
        for (i, p) in phaseValues.enumerated() { phases.append(try phase(p, pc.child(String(i)))) }
        let total = phases.reduce(0.0) { $0 + Double($1.durationNS) / 1e9 }
        guard total <= maxSeconds else { throw pc.error("the phases last \(total) s together; at most \(maxSeconds) s") }
        let devices = try required(m, "devices", c) { (v, c) throws(FixtureError) in try Self.devices(v, c) }
        let cc = c.child("consumers")
        guard let consumersValue = m["consumers"] else { throw cc.error("missing") }
        let consumerValues = try consumersValue.array(cc)
        guard !consumerValues.isEmpty else { throw cc.error("a storm needs at least one consumer") }
        var consumers: [StormProfile.Consumer] = []
        for (i, value) in consumerValues.enumerated() {
            consumers.append(try consumer(value, cc.child(String(i)), durationNS: UInt64(total * 1e9)))
        }
        let processes = consumers.reduce(0) { $0 + $1.count }
        guard processes <= maxConsumerProcesses else {
            throw cc.error("\(processes) consumer processes; at most \(maxConsumerProcesses)")
        }
        guard processes <= devices.count else {
            throw cc.error("\(processes) consumer processes but \(devices.count) devices: every consumer needs a device")
        }
        if Set(consumers.map(\.name)).count != consumers.count { throw cc.error("consumer names must be distinct") }
        if consumers.allSatisfy({ $0.abi == 1 }) && devices.count > processes {
            throw cc.error("\(processes) ABI 1 consumer processes but \(devices.count) devices: an ABI 1 queue serves one "
                           + "device, so the others need an ABI 2 consumer")
        }
        let rings = try optional(m, "rings", c) { (v, c) throws(FixtureError) in try Self.rings(v, c) }
            ?? StormProfile.Rings(entries: 4096, responses: 256)
        let timeout = try optional(m, "timeoutMs", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 3_600_000) } ?? 10_000
        guard timeout > 0 else { throw c.child("timeoutMs").error("must be positive") }
        let slo = try optional(m, "slo", c) { (v, c) throws(FixtureError) in try Self.slo(v, c) }
            ?? StormProfile.SLO(p99Microseconds: nil, answeredByConsumerMin: nil, zeroUnanswered: true)
        let chaos = try optional(m, "chaos", c) { (v, c) throws(FixtureError) in try Self.chaos(v, c, consumers: consumers, devices: devices) }
        return StormProfile(name: name, description: description, seed: seed, phases: phases, devices: devices,
                            consumers: consumers, rings: rings, timeoutMilliseconds: timeout, slo: slo, chaos: chaos)
    }

    /// The `chaos` section: kill targets must name consumer sets that exist and
    /// are not themselves crashing or scribbling (their own plan would fight the kills).
    static func chaos(_ v: JSONCValue, _ c: JSONCValue.Context, consumers: [StormProfile.Consumer],
                      devices: StormProfile.Devices) throws(FixtureError) -> StormProfile.Chaos {
        let m = try v.members(c, allowed: ["consumerKills", "killAmong", "serviceRestarts", "restartsWithin"])
        let kills = Int(try optional(m, "consumerKills", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 10_000) } ?? 0)
        let restarts = Int(try optional(m, "serviceRestarts", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1000) } ?? 0)
        let within = try optional(m, "restartsWithin", c) { (v, c) throws(FixtureError) in try v.number(c, in: 0...1) } ?? 0.6
        guard within > 0 && within < 1 else { throw c.child("restartsWithin").error("\(within) must be above 0 and below 1") }
        guard restarts == 0 || devices.placement == .process else {
            throw c.child("serviceRestarts").error("devices placed in the service would restart with it: use \"placement\": \"process\"")
        }
        let kc = c.child("killAmong")
        var among: [String] = []
        if let value = m["killAmong"] {
            for (i, item) in try value.array(kc).enumerated() {
                let name = try item.string(kc.child(String(i)))
                guard let set = consumers.first(where: { $0.name == name }) else {
                    throw kc.child(String(i)).error("\"\(name)\" is not a consumer of this profile")
                }
                switch set.behaviour {
                case .crash, .scribble:
                    throw kc.child(String(i)).error("\"\(name)\" crashes or scribbles by itself; kill targets must not")
                default: break
                }
                among.append(name)
            }
        }
        guard kills == 0 || !among.isEmpty else { throw kc.error("\(kills) consumer kills need at least one consumer to kill") }
        return StormProfile.Chaos(consumerKills: kills, killAmong: among, serviceRestarts: restarts, restartsWithin: within)
    }

    static func seconds(_ m: JSONCMembers, _ key: StaticString, _ c: JSONCValue.Context, positive: Bool = true) throws(FixtureError) -> UInt64 {
        let s = try required(m, key, c) { (v, c) throws(FixtureError) in try v.number(c, in: 0...maxSeconds) }
        guard !positive || s > 0 else { throw c.child(key).error("must be positive") }
        return UInt64((s * 1e9).rounded())
    }

    /// The string under `key` that says which variant a tagged object is
    /// (`kind`, `distribution`), read before its other keys are checked.
    static func tag(_ v: JSONCValue, _ key: StaticString, _ c: JSONCValue.Context) throws(FixtureError) -> String {
        guard v.type == json_type_object else { throw c.error("expected an object, found \(v.typeName)") }
        return try required(JSONCMembers(object: v.object), key, c) { (v, c) throws(FixtureError) in try v.string(c) }
    }

    static func rate(_ m: JSONCMembers, _ key: StaticString, _ c: JSONCValue.Context) throws(FixtureError) -> Double {
        try required(m, key, c) { (v, c) throws(FixtureError) in try v.number(c, in: 0...maxRate) }
    }

    static func phase(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> ArrivalPhase {
        let kind = try tag(v, "kind", c)
        let common: [StaticString] = ["kind", "name", "seconds"]
        let shape: ArrivalPhase.Shape
        let m: JSONCMembers
        switch kind {
        case "steady", "burst", "poisson":
            m = try v.members(c, allowed: common + ["rate"])
            let r = try rate(m, "rate", c)
            shape = kind == "steady" ? .steady(rate: r) : kind == "burst" ? .burst(rate: r) : .poisson(rate: r)
        case "ramp":
            m = try v.members(c, allowed: common + ["from", "to"])
            shape = .ramp(from: try rate(m, "from", c), to: try rate(m, "to", c))
        case "square":
            m = try v.members(c, allowed: common + ["high", "low", "periodSeconds", "duty"])
            let duty = try required(m, "duty", c) { (v, c) throws(FixtureError) in try v.number(c, in: 0...1) }
            guard duty > 0 && duty < 1 else { throw c.child("duty").error("\(duty) must be strictly between 0 and 1") }
            shape = .square(high: try rate(m, "high", c), low: try rate(m, "low", c),
                            periodNS: try seconds(m, "periodSeconds", c), duty: duty)
        default:
            throw c.child("kind").error("\"\(kind)\" is not one of burst, poisson, ramp, square, steady")
        }
        let duration = try seconds(m, "seconds", c)
        let name = try optional(m, "name", c) { (v, c) throws(FixtureError) in try v.string(c) } ?? kind
        return ArrivalPhase(name: name, durationNS: duration, shape: shape)
    }

    static func devices(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> StormProfile.Devices {
        let m = try v.members(c, allowed: ["count", "placement", "pasidsPerDevice", "groupSize", "prgiBudget",
                                          "allocation", "stopMarkerEvery", "unrecoverableShare"])
        let count = Int(try required(m, "count", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: UInt64(maxDevices)) })
        guard count > 0 else { throw c.child("count").error("a storm needs at least one device") }
        let placementName = try optional(m, "placement", c) { (v, c) throws(FixtureError) in try v.string(c) } ?? "process"
        guard let placement = StormProfile.Placement(rawValue: placementName) else {
            throw c.child("placement").error("\"\(placementName)\" is not one of process, service")
        }
        let pasids = try optional(m, "pasidsPerDevice", c) { (v, c) throws(FixtureError) in try v.u32(c, max: 0xF_FFFF) } ?? 2
        guard pasids > 0 else { throw c.child("pasidsPerDevice").error("must be at least 1") }
        let prgi = Int(try optional(m, "prgiBudget", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 512) } ?? 512)
        guard prgi > 0 else { throw c.child("prgiBudget").error("must be at least 1 (a device with no PRG index raises nothing)") }
        let allocation = Int(try optional(m, "allocation", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1 << 16) } ?? 2048)
        let size = try optional(m, "groupSize", c) { (v, c) throws(FixtureError) in try Self.groupSize(v, c) } ?? .uniform(min: 1, max: 4)
        guard allocation >= size.largest else {
            throw c.child("allocation").error("\(allocation) pages cannot hold the largest group (\(size.largest) pages)")
        }
        let stop = Int(try optional(m, "stopMarkerEvery", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1 << 20) } ?? 0)
        let share = try optional(m, "unrecoverableShare", c) { (v, c) throws(FixtureError) in try v.number(c, in: 0...1) } ?? 0
        return StormProfile.Devices(count: count, placement: placement, pasidsPerDevice: pasids, groupSize: size,
                                    prgiBudget: prgi, allocation: allocation, stopMarkerEvery: stop,
                                    unrecoverableShare: share)
    }

    static func groupSize(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> StormProfile.GroupSize {
        let kind = try tag(v, "distribution", c)
        func pages(_ m: JSONCMembers, _ key: StaticString) throws(FixtureError) -> Int {
            let n = Int(try required(m, key, c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 512) })
            guard n > 0 else { throw c.child(key).error("a group has at least one page") }
            return n
        }
        switch kind {
        case "fixed":
            return .fixed(try pages(try v.members(c, allowed: ["distribution", "pages"]), "pages"))
        case "uniform":
            let m = try v.members(c, allowed: ["distribution", "min", "max"])
            let low = try pages(m, "min"), high = try pages(m, "max")
            guard low <= high else { throw c.child("max").error("\(high) is below min \(low)") }
            return .uniform(min: low, max: high)
        case "geometric":
            let m = try v.members(c, allowed: ["distribution", "mean", "max"])
            let mean = try required(m, "mean", c) { (v, c) throws(FixtureError) in try v.number(c, in: 1...512) }
            let high = try pages(m, "max")
            guard mean <= Double(high) else { throw c.child("mean").error("\(mean) is above max \(high)") }
            return .geometric(mean: mean, max: high)
        default:
            throw c.child("distribution").error("\"\(kind)\" is not one of fixed, geometric, uniform")
        }
    }

    static func consumer(_ v: JSONCValue, _ c: JSONCValue.Context, durationNS: UInt64) throws(FixtureError) -> StormProfile.Consumer {
        let m = try v.members(c, allowed: ["name", "count", "abi", "behaviour"])
        let name = try setName(m, c)
        let count = Int(try optional(m, "count", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: UInt64(maxConsumerProcesses)) } ?? 1)
        guard count > 0 else { throw c.child("count").error("must be at least 1") }
        let abi = try optional(m, "abi", c) { (v, c) throws(FixtureError) in try v.u32(c, max: 2) } ?? 2
        guard abi >= 1 else { throw c.child("abi").error("0 is not a record ABI (1 or 2)") }
        let behaviour = try optional(m, "behaviour", c) { (v, c) throws(FixtureError) in
            try Self.behaviour(v, c, durationNS: durationNS)
        } ?? .fast
        return StormProfile.Consumer(name: name, count: count, abi: abi, behaviour: behaviour)
    }

    static func behaviour(_ v: JSONCValue, _ c: JSONCValue.Context, durationNS: UInt64) throws(FixtureError) -> StormProfile.Behaviour {
        let kind = try tag(v, "kind", c)
        func inside(_ m: JSONCMembers, _ key: StaticString) throws(FixtureError) -> UInt64 {
            let at = try seconds(m, key, c, positive: false)
            guard at < durationNS else {
                throw c.child(key).error("\(Double(at) / 1e9) s is not inside the storm (\(Double(durationNS) / 1e9) s)")
            }
            return at
        }
        switch kind {
        case "fast":
            _ = try v.members(c, allowed: ["kind"])
            return .fast
        case "slow":
            let m = try v.members(c, allowed: ["kind", "delay"])
            return .slow(delay: try required(m, "delay", c) { (v, c) throws(FixtureError) in try Self.delay(v, c) })
        case "stalled":
            let m = try v.members(c, allowed: ["kind", "atSeconds", "forSeconds"])
            return .stalled(atNS: try inside(m, "atSeconds"), forNS: try seconds(m, "forSeconds", c))
        case "wrong":
            let m = try v.members(c, allowed: ["kind", "share"])
            let share = try required(m, "share", c) { (v, c) throws(FixtureError) in try v.number(c, in: 0...1) }
            guard share > 0 else { throw c.child("share").error("must be above 0 (use \"fast\" for a consumer that is never wrong)") }
            return .wrong(share: share)
        case "crash":
            let m = try v.members(c, allowed: ["kind", "atSeconds", "restartAfterSeconds"])
            return .crash(atNS: try inside(m, "atSeconds"), restartAfterNS: try seconds(m, "restartAfterSeconds", c, positive: false))
        case "scribble":
            _ = try v.members(c, allowed: ["kind"])
            return .scribble
        default:
            throw c.child("kind").error("\"\(kind)\" is not one of crash, fast, scribble, slow, stalled, wrong")
        }
    }

    static func delay(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> StormProfile.Delay {
        let kind = try tag(v, "distribution", c)
        func us(_ m: JSONCMembers, _ key: StaticString) throws(FixtureError) -> Double {
            try required(m, key, c) { (v, c) throws(FixtureError) in try v.number(c, in: 0...60_000_000) }
        }
        switch kind {
        case "fixed":
            return .fixed(microseconds: try us(try v.members(c, allowed: ["distribution", "us"]), "us"))
        case "uniform":
            let m = try v.members(c, allowed: ["distribution", "minUs", "maxUs"])
            let low = try us(m, "minUs"), high = try us(m, "maxUs")
            guard low <= high else { throw c.child("maxUs").error("\(high) is below minUs \(low)") }
            return .uniform(minMicroseconds: low, maxMicroseconds: high)
        case "exponential":
            return .exponential(meanMicroseconds: try us(try v.members(c, allowed: ["distribution", "meanUs"]), "meanUs"))
        default:
            throw c.child("distribution").error("\"\(kind)\" is not one of exponential, fixed, uniform")
        }
    }

    static func rings(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> StormProfile.Rings {
        let m = try v.members(c, allowed: ["entries", "responses"])
        func power(_ key: StaticString, _ fallback: Int) throws(FixtureError) -> Int {
            let n = Int(try optional(m, key, c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1 << 20) } ?? UInt64(fallback))
            guard n >= 16, n & (n - 1) == 0 else { throw c.child(key).error("\(n) is not a power of two ≥ 16") }
            return n
        }
        return StormProfile.Rings(entries: try power("entries", 4096), responses: try power("responses", 256))
    }

    static func slo(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> StormProfile.SLO {
        let m = try v.members(c, allowed: ["p99Us", "answeredByConsumerMin", "zeroUnanswered"])
        return StormProfile.SLO(
            p99Microseconds: try optional(m, "p99Us", c) { (v, c) throws(FixtureError) in try v.number(c, in: 0...3.6e9) },
            answeredByConsumerMin: try optional(m, "answeredByConsumerMin", c) { (v, c) throws(FixtureError) in try v.number(c, in: 0...1) },
            zeroUnanswered: try optional(m, "zeroUnanswered", c) { (v, c) throws(FixtureError) in try v.bool(c) } ?? true)
    }
}
