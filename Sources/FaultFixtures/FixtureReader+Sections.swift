import CFaultRingABI
import FaultABI
import CJSONC
import Glibc
import IOMMUFormats
import PageRequests
import VMMClient

extension FixtureReader {
    static func service(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> Fixture.ServiceSettings {
        let m = try v.members(c, allowed: ["timeoutMicroseconds", "passFailure", "cookieTable", "entries", "pace", "decoding"])
        var s = Fixture.ServiceSettings()
        if let name = try optional(m, "decoding", c, { (v, c) throws(FixtureError) in try v.string(c) }) {
            guard let dialect = HardwareDialect(named: name) else {
                throw c.child("decoding").error("\"\(name)\" is not one of \(HardwareDialect.named.map(\.name))")
            }
            s.decoding = dialect
        }
        if let pace = try optional(m, "pace", c, { (v, c) throws(FixtureError) in try v.string(c) }) {
            guard let chosen = ReplayPace(rawValue: pace) else {
                throw c.child("pace").error("\"\(pace)\" is not one of \(ReplayPace.allCases.map(\.rawValue))")
            }
            s.pace = chosen
        }
        if let t = try optional(m, "timeoutMicroseconds", c, { (v, c) throws(FixtureError) in
            try v.unsigned(c, max: FixtureReader.maxMicroseconds)
        }) {
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
        var b = ConsumerBehaviour()
        if let policy = try optional(m, "policy", c, { (v, c) throws(FixtureError) in try v.string(c) }) {
            guard let p = ConsumerBehaviour.Policy(rawValue: policy) else {
                throw c.child("policy").error("\"\(policy)\" is not one of \(ConsumerBehaviour.Policy.allCases.map(\.rawValue))")
            }
            b.policy = p
        }
        b.delayMicroseconds = try optional(m, "delayMicroseconds", c) { (v, c) throws(FixtureError) in try v.unsigned(c) } ?? 0
        b.startDelayMicroseconds = try optional(m, "startDelayMicroseconds", c) { (v, c) throws(FixtureError) in
            try v.unsigned(c, max: 60_000_000)
        } ?? 0
        b.crashAfterGroups = try optional(m, "crashAfterGroups", c) { (v, c) throws(FixtureError) in try v.unsigned(c) }
        for (key, path) in Fixture.Consumer.intervals {
            if let n = try optional(m, key, c, { (v, c) throws(FixtureError) in try v.unsigned(c, max: 1 << 30) }) {
                b[keyPath: path] = Int(n)
            }
        }
        consumer.behaviour = b
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
        func counts(_ key: StaticString, _ allowed: Set<String>) throws(FixtureError) -> [String: UInt64] {
            guard let value = m[key] else { return [:] }
            let kc = c.child(key)
            var out: [String: UInt64] = [:]
            for (name, count) in try value.dynamicMembers(kc, allowed: allowed) { out[name] = try count.unsigned(kc.child(name)) }
            return out
        }
        e.auto = try counts("auto", Set(AutoResponseCause.allCases.map(\.rawValue)))
        e.rejections = try counts("rejections", Set(ResponseRejectionReason.allCases.map(\.rawValue)))
        e.lostRecords = try optional(m, "lostRecords", c) { (v, c) throws(FixtureError) in try v.unsigned(c) }
        e.faultsDelivered = try optional(m, "faultsDelivered", c) { (v, c) throws(FixtureError) in try v.unsigned(c) }
        return e
    }

    /// An event's members, found in one pass over the object (no hash
    /// lookups, no strings made): the hot path of reading a large capture.
    struct EventSlots {
        var t, type, device, pasid, prgi, perm, addr, last, privateData, reason, fetchAddr, hex: JSONCValue?

        init(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) {
            guard v.type == json_type_object else { throw c.error("expected an object, found \(v.typeName)") }
            var it = json_object_iter_begin(v.object)
            var end = json_object_iter_end(v.object)
            while json_object_iter_equal(&it, &end) == 0 {
                let name = json_object_iter_peek_name(&it)!
                let value = JSONCValue(object: json_object_iter_peek_value(&it))
                func named(_ literal: StaticString) -> Bool {
                    strcmp(name, UnsafeRawPointer(literal.utf8Start).assumingMemoryBound(to: CChar.self)) == 0
                }
                switch UInt8(bitPattern: name[0]) {
                case UInt8(ascii: "t") where named("t"): t = value
                case UInt8(ascii: "t") where named("type"): type = value
                case UInt8(ascii: "d") where named("device"): device = value
                case UInt8(ascii: "p") where named("pasid"): pasid = value
                case UInt8(ascii: "p") where named("prgi"): prgi = value
                case UInt8(ascii: "p") where named("perm"): perm = value
                case UInt8(ascii: "p") where named("private"): privateData = value
                case UInt8(ascii: "a") where named("addr"): addr = value
                case UInt8(ascii: "l") where named("last"): last = value
                case UInt8(ascii: "r") where named("reason"): reason = value
                case UInt8(ascii: "f") where named("fetchAddr"): fetchAddr = value
                case UInt8(ascii: "h") where named("hex"): hex = value
                default:
                    throw c.child(String(cString: name)).error(
                        "unknown key (allowed: addr, device, fetchAddr, hex, last, pasid, perm, prgi, private, reason, t, type)")
                }
                json_object_iter_next(&it)
            }
        }
    }

    static func need<T>(_ value: JSONCValue?, _ key: StaticString, _ c: JSONCValue.Context,
                        _ read: (JSONCValue, JSONCValue.Context) throws(FixtureError) -> T) throws(FixtureError) -> T {
        guard let value else { throw c.child(key).error("missing") }
        return try read(value, c.child(key))
    }

    static func maybe<T>(_ value: JSONCValue?, _ key: StaticString, _ c: JSONCValue.Context,
                         _ read: (JSONCValue, JSONCValue.Context) throws(FixtureError) -> T) throws(FixtureError) -> T? {
        guard let value else { return nil }
        return try read(value, c.child(key))
    }

    static func forbid(_ value: JSONCValue?, _ key: StaticString, in type: StaticString, _ c: JSONCValue.Context)
        throws(FixtureError)
    {
        if value != nil { throw c.child(key).error("not allowed in a \"\(type)\" event") }
    }

    /// One event, validated against the fixture's devices.
    static func event(_ v: JSONCValue, _ c: JSONCValue.Context, _ devices: [UInt32: Fixture.Device])
        throws(FixtureError) -> FixtureEvent
    {
        let m = try EventSlots(v, c)
        let t = try need(m.t, "t", c) { (v, c) throws(FixtureError) in try v.unsigned(c, max: FixtureReader.maxMicroseconds) }
        guard let type = m.type else { throw c.child("type" as StaticString).error("missing") }
        let deviceID = try need(m.device, "device", c) { (v, c) throws(FixtureError) in try v.u32(c) }
        guard let device = devices[deviceID] else {
            throw c.child("device" as StaticString).error("device \(deviceID) is not in \"devices\"")
        }
        let pasid = try maybe(m.pasid, "pasid", c) { (v, c) throws(FixtureError) in try v.u32(c, max: UInt64(FAULTRING_PASID_MAX)) }
        let perm = try maybe(m.perm, "perm", c) { (v, c) throws(FixtureError) in try permissions(v, c) } ?? []
        let addr = try maybe(m.addr, "addr", c) { (v, c) throws(FixtureError) in try v.unsigned(c) }
        if type.isString("page") || type.isString("stop") {
            let stop = type.isString("stop")
            let name: StaticString = stop ? "stop" : "page"
            try forbid(m.reason, "reason", in: name, c)
            try forbid(m.fetchAddr, "fetchAddr", in: name, c)
            try forbid(m.hex, "hex", in: name, c)
            let prgi = stop ? 0 : try need(m.prgi, "prgi", c) { (v, c) throws(FixtureError) in
                try v.u32(c, max: UInt64(FAULTRING_PRGI_MAX))
            }
            if stop {
                guard pasid != nil else { throw c.child("pasid" as StaticString).error("a stop marker carries a PASID") }
                try forbid(m.prgi, "prgi", in: name, c)
                try forbid(m.perm, "perm", in: name, c)
                try forbid(m.addr, "addr", in: name, c)
                try forbid(m.last, "last", in: name, c)
                try forbid(m.privateData, "private", in: name, c)
            }
            let last = stop ? true : try maybe(m.last, "last", c) { (v, c) throws(FixtureError) in try v.bool(c) } ?? true
            let data = try maybe(m.privateData, "private", c) { (v, c) throws(FixtureError) -> PrivateData in
                let words = try v.array(c)
                guard words.count == 2 else { throw c.error("private data is two 64-bit words, found \(words.count)") }
                return PrivateData(low: try words[0].unsigned(c.child("[0]")), high: try words[1].unsigned(c.child("[1]")))
            }
            guard stop || !perm.isEmpty else {
                throw c.child("perm" as StaticString).error("a page request asks for r, w or both")
            }
            return FixtureEvent(t: t, kind: .pageRequest(PageRequest(
                deviceID: deviceID, pasid: pasid, prgi: prgi, permissions: perm, address: addr ?? 0, isLastPage: last,
                needsPASID: device.needsPASID && pasid != nil, privateData: data, timestampNS: t * 1000)))
        }
        if type.isString("fault") {
            try forbid(m.prgi, "prgi", in: "fault", c)
            try forbid(m.last, "last", in: "fault", c)
            try forbid(m.privateData, "private", in: "fault", c)
            try forbid(m.hex, "hex", in: "fault", c)
            let reason = try need(m.reason, "reason", c) { (v, c) throws(FixtureError) in
                try v.u32(c, max: UInt64(FAULTRING_REASON_OOR_ADDRESS))
            }
            let fetch = try maybe(m.fetchAddr, "fetchAddr", c) { (v, c) throws(FixtureError) in try v.unsigned(c) }
            return FixtureEvent(t: t, kind: .fault(UnrecoverableFault(
                deviceID: deviceID, reason: reason, pasid: pasid, permissions: perm, address: addr, fetchAddress: fetch,
                timestampNS: t * 1000)))
        }
        let typeName = try type.string(c.child("type" as StaticString))
        guard let format = FixtureEvent.RawFormat(rawValue: typeName) else {
            throw c.child("type" as StaticString).error(
                "\"\(typeName)\" is not page, stop, fault, smmuv3-pri, smmuv3-event or vtd-prq")
        }
        for (value, key) in [(m.pasid, "pasid" as StaticString), (m.prgi, "prgi"), (m.perm, "perm"), (m.addr, "addr"),
                             (m.last, "last"), (m.privateData, "private"), (m.reason, "reason"), (m.fetchAddr, "fetchAddr")] {
            if value != nil { throw c.child(key).error("not allowed in a \"\(typeName)\" event") }
        }
        let hex = try need(m.hex, "hex", c) { (v, c) throws(FixtureError) in try v.string(c) }
        let words = try Self.words(hex, format.words, c.child("hex" as StaticString))
        return FixtureEvent(t: t, kind: .raw(format, device: deviceID, words: words))
    }

    /// "rw", "r", "w", with optional "x" (execute) and "p" (privileged),
    /// read in place from json-c's bytes.
    static func permissions(_ v: JSONCValue, _ c: JSONCValue.Context) throws(FixtureError) -> Permissions {
        guard v.type == json_type_string else { throw c.error("expected a string, found \(v.typeName)") }
        let text = json_object_get_string(v.object)!
        var p: Permissions = []
        for i in 0..<Int(json_object_get_string_len(v.object)) {
            switch UInt8(bitPattern: text[i]) {
            case UInt8(ascii: "r"): p.insert(.read)
            case UInt8(ascii: "w"): p.insert(.write)
            case UInt8(ascii: "x"): p.insert(.exec)
            case UInt8(ascii: "p"): p.insert(.privileged)
            default: throw c.error("'\(Character(UnicodeScalar(UInt8(bitPattern: text[i]))))' is not one of r, w, x, p")
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
