import CFaultRingABI
import FaultABI
import PageRequests

extension FixtureReader {
    static func service(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> Fixture.ServiceSettings {
        let m = try v.members(c, allowed: ["timeoutMicroseconds", "passFailure", "cookieTable", "entries", "pace"])
        var s = Fixture.ServiceSettings()
        if let pace = try optional(m, "pace", c, { (v, c) throws(FixtureError) in try v.string(c) }) {
            guard pace == "fast" || pace == "recorded" else { throw c.child("pace").error("\"\(pace)\" is not fast or recorded") }
            s.pace = pace
        }
        if let t = try optional(m, "timeoutMicroseconds", c, { (v, c) throws(FixtureError) in try v.unsigned(c) }) {
            s.timeoutMicroseconds = t
        }
        if let p = try optional(m, "passFailure", c, { (v, c) throws(FixtureError) in try v.bool(c) }) { s.passFailure = p }
        if let n = try optional(m, "cookieTable", c, { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1 << 20) }) {
            guard n >= 1 else { throw c.child("cookieTable").error("must be at least 1") }
            s.cookieTable = Int(n)
        }
        if let n = try optional(m, "entries", c, { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1 << 20) }) {
            guard n >= 2, n & (n - 1) == 0 else { throw c.child("entries").error("\(n) is not a power of two ≥ 2") }
            s.entries = Int(n)
        }
        return s
    }

    static func device(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> Fixture.Device {
        let m = try v.members(c, allowed: ["id", "name", "pasids", "allocation", "needsPasid", "privateData"])
        let id = try required(m, "id", c) { (v, c) throws(FixtureError) in try v.u32(c) }
        guard id > 0 else { throw c.child("id").error("device ids start at 1") }
        let pasids = try optional(m, "pasids", c) { (v, c) throws(FixtureError) in
            try v.array(c).enumerated().map { (i, p) throws(FixtureError) in try p.u32(c.child("[\(i)]"), max: UInt64(FAULTRING_PASID_MAX)) }
        } ?? []
        return Fixture.Device(
            id: id, name: try optional(m, "name", c) { (v, c) throws(FixtureError) in try v.string(c) } ?? "device \(id)",
            pasids: pasids,
            allocation: Int(try optional(m, "allocation", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1 << 20) } ?? 256),
            needsPASID: try optional(m, "needsPasid", c) { (v, c) throws(FixtureError) in try v.bool(c) } ?? false,
            privateData: try optional(m, "privateData", c) { (v, c) throws(FixtureError) in try v.bool(c) } ?? false)
    }

    static func consumer(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> Fixture.Consumer {
        let m = try v.members(c, allowed: ["abi", "policy", "delayMicroseconds", "startDelayMicroseconds", "crashAfterGroups",
                                           "duplicateEvery", "unknownEvery", "mismatchEvery", "staleEvery", "foreignEvery"])
        var consumer = Fixture.Consumer()
        if let abi = try optional(m, "abi", c, { (v, c) throws(FixtureError) in try v.u32(c) }) {
            guard abi == 1 || abi == 2 else { throw c.child("abi").error("\(abi) is not 1 or 2") }
            consumer.abi = abi
        }
        if let policy = try optional(m, "policy", c, { (v, c) throws(FixtureError) in try v.string(c) }) {
            guard let p = Fixture.Consumer.Policy(rawValue: policy) else {
                throw c.child("policy").error("\"\(policy)\" is not one of \(Fixture.Consumer.Policy.allCases.map(\.rawValue))")
            }
            consumer.policy = p
        }
        consumer.delayMicroseconds = try optional(m, "delayMicroseconds", c) { (v, c) throws(FixtureError) in try v.unsigned(c) } ?? 0
        consumer.startDelayMicroseconds = try optional(m, "startDelayMicroseconds", c) { (v, c) throws(FixtureError) in
            try v.unsigned(c, max: 60_000_000)
        } ?? 0
        consumer.crashAfterGroups = try optional(m, "crashAfterGroups", c) { (v, c) throws(FixtureError) in try v.unsigned(c) }
        for (key, path) in [("duplicateEvery", \Fixture.Consumer.duplicateEvery), ("unknownEvery", \.unknownEvery),
                            ("mismatchEvery", \.mismatchEvery), ("staleEvery", \.staleEvery),
                            ("foreignEvery", \.foreignEvery)] {
            if let n = try optional(m, key, c, { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1 << 30) }) {
                consumer[keyPath: path] = Int(n)
            }
        }
        return consumer
    }

    static func expectation(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> Fixture.Expectation {
        let m = try v.members(c, allowed: ["groups", "auto", "rejections", "lostRecords", "faultsDelivered"])
        var e = Fixture.Expectation()
        let sources = Set(["consumer"] + AutoResponseCause.allCases.map(\.rawValue))
        e.groups = try optional(m, "groups", c) { (v, c) throws(FixtureError) in
            try v.array(c).enumerated().map { (i, g) throws(FixtureError) in
                let gc = c.child("[\(i)]")
                let gm = try g.members(gc, allowed: ["event", "code", "source"])
                let code = try required(gm, "code", gc) { (v, c) throws(FixtureError) in try v.string(c) }
                guard ["success", "invalid", "failure"].contains(code) else {
                    throw gc.child("code").error("\"\(code)\" is not success, invalid or failure")
                }
                let source = try required(gm, "source", gc) { (v, c) throws(FixtureError) in try v.string(c) }
                guard sources.contains(source) else { throw gc.child("source").error("\"\(source)\" is not one of \(sources.sorted())") }
                return Fixture.ExpectedGroup(
                    event: Int(try required(gm, "event", gc) { (v, c) throws(FixtureError) in try v.unsigned(c, max: UInt64(Int32.max)) }),
                    code: code, source: source)
            }
        } ?? []
        func counts(_ key: String, _ allowed: Set<String>) throws(FixtureError) -> [String: UInt64] {
            guard let value = m[key] else { return [:] }
            let kc = c.child(key)
            var out: [String: UInt64] = [:]
            let members = try value.members(kc, allowed: allowed)
            for name in allowed { if let count = members[name] { out[name] = try count.unsigned(kc.child(name)) } }
            return out
        }
        e.auto = try counts("auto", Set(AutoResponseCause.allCases.map(\.rawValue)))
        e.rejections = try counts("rejections", Set(ResponseRejectionReason.allCases.map(\.rawValue)))
        e.lostRecords = try optional(m, "lostRecords", c) { (v, c) throws(FixtureError) in try v.unsigned(c) }
        e.faultsDelivered = try optional(m, "faultsDelivered", c) { (v, c) throws(FixtureError) in try v.unsigned(c) }
        return e
    }

    static let eventKeys: Set<String> = ["t", "type", "device", "pasid", "prgi", "perm", "addr", "last", "private",
                                         "reason", "fetchAddr", "hex"]

    /// One event, validated against the fixture's devices.
    static func event(_ v: JSONCValue, _ c: JSONCValue.Context, _ devices: [UInt32: Fixture.Device])
        throws(FixtureError) -> FixtureEvent
    {
        let m = try v.members(c, allowed: eventKeys)
        let t = try required(m, "t", c) { (v, c) throws(FixtureError) in try v.unsigned(c) }
        let type = try required(m, "type", c) { (v, c) throws(FixtureError) in try v.string(c) }
        let deviceID = try required(m, "device", c) { (v, c) throws(FixtureError) in try v.u32(c) }
        guard let device = devices[deviceID] else { throw c.child("device").error("device \(deviceID) is not in \"devices\"") }
        let pasid = try optional(m, "pasid", c) { (v, c) throws(FixtureError) in try v.u32(c, max: UInt64(FAULTRING_PASID_MAX)) }
        let perm = try optional(m, "perm", c) { (v, c) throws(FixtureError) in try permissions(v, c) } ?? []
        let addr = try optional(m, "addr", c) { (v, c) throws(FixtureError) in try v.unsigned(c) }
        func forbid(_ keys: [String]) throws(FixtureError) {
            for key in keys where m[key] != nil { throw c.child(key).error("not allowed in a \"\(type)\" event") }
        }
        switch type {
        case "page", "stop":
            try forbid(["reason", "fetchAddr", "hex"])
            let prgi = type == "stop" ? 0 : try required(m, "prgi", c) { (v, c) throws(FixtureError) in
                try v.u32(c, max: UInt64(FAULTRING_PRGI_MAX))
            }
            if type == "stop" {
                guard pasid != nil else { throw c.child("pasid").error("a stop marker carries a PASID") }
                try forbid(["prgi", "perm", "addr", "last", "private"])
            }
            let last = type == "stop" ? true : try optional(m, "last", c) { (v, c) throws(FixtureError) in try v.bool(c) } ?? true
            let data = try optional(m, "private", c) { (v, c) throws(FixtureError) -> PrivateData in
                let words = try v.array(c)
                guard words.count == 2 else { throw c.error("private data is two 64-bit words, found \(words.count)") }
                return PrivateData(low: try words[0].unsigned(c.child("[0]")), high: try words[1].unsigned(c.child("[1]")))
            }
            guard type == "stop" || !perm.isEmpty else { throw c.child("perm").error("a page request asks for r, w or both") }
            return FixtureEvent(t: t, kind: .pageRequest(PageRequest(
                deviceID: deviceID, pasid: pasid, prgi: prgi, permissions: perm, address: addr ?? 0, isLastPage: last,
                needsPASID: device.needsPASID && pasid != nil, privateData: data, timestampNS: t * 1000)))
        case "fault":
            try forbid(["prgi", "last", "private", "hex"])
            let reason = try required(m, "reason", c) { (v, c) throws(FixtureError) in try v.u32(c, max: UInt64(FAULTRING_REASON_OOR_ADDRESS)) }
            let fetch = try optional(m, "fetchAddr", c) { (v, c) throws(FixtureError) in try v.unsigned(c) }
            return FixtureEvent(t: t, kind: .fault(UnrecoverableFault(
                deviceID: deviceID, reason: reason, pasid: pasid, permissions: perm, address: addr, fetchAddress: fetch,
                timestampNS: t * 1000)))
        default:
            guard let format = FixtureEvent.RawFormat(rawValue: type) else {
                throw c.child("type").error("\"\(type)\" is not page, stop, fault, smmuv3-pri, smmuv3-event or vtd-prq")
            }
            try forbid(["pasid", "prgi", "perm", "addr", "last", "private", "reason", "fetchAddr"])
            let hex = try required(m, "hex", c) { (v, c) throws(FixtureError) in try v.string(c) }
            let words = try Self.words(hex, format.words, c.child("hex"))
            return FixtureEvent(t: t, kind: .raw(format, device: deviceID, words: words))
        }
    }

    /// "rw", "r", "w", with optional "x" (execute) and "p" (privileged).
    static func permissions(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> Permissions {
        var p: Permissions = []
        for letter in try v.string(c) {
            switch letter {
            case "r": p.insert(.read)
            case "w": p.insert(.write)
            case "x": p.insert(.exec)
            case "p": p.insert(.privileged)
            default: throw c.error("'\(letter)' is not one of r, w, x, p")
            }
        }
        return p
    }

    /// A record as little-endian 64-bit words written in hex, most
    /// significant digit first per word, words separated by spaces.
    static func words(_ hex: String, _ count: Int, _ c: JSONCValue.Context) throws(FixtureError) -> [UInt64] {
        let parts = hex.split(separator: " ")
        guard parts.count == count else { throw c.error("expected \(count) space-separated 64-bit words, found \(parts.count)") }
        var words: [UInt64] = []
        for (i, part) in parts.enumerated() {
            let digits = part.hasPrefix("0x") ? part.dropFirst(2) : part[...]
            guard digits.count <= 16, let w = UInt64(digits, radix: 16) else {
                throw c.error("word \(i) \"\(part)\" is not a 64-bit hex number")
            }
            words.append(w)
        }
        return words
    }
}
