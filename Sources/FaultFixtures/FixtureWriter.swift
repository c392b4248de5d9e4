import CJSONC
import FaultABI
import Glibc
import IOMMUFormats
import PageRequests
import VMMClient

/// Writes a fixture with json-c, streaming: the header first, then one
/// event at a time, then the expected outcome. 64-bit values (addresses,
/// private data, raw records) are written as "0x…" strings so every bit
/// survives any JSON reader.
public final class FixtureWriter {
    /// The file being written.
    public let path: String
    let file: UnsafeMutablePointer<FILE>
    var events = 0
    var finished = false

    /// Creates (or truncates) `path` and writes everything but the events.
    public init(path: String, fixture: Fixture) throws(FixtureError) {
        self.path = path
        guard let file = fopen(path, "w") else {
            throw FixtureError(file: path, "cannot create: \(String(cString: strerror(errno)))")
        }
        self.file = file
        write("{\n")
        member("faultringFixture", json_object_new_int64(Int64(Fixture.formatVersion)))
        member("name", json_object_new_string(fixture.name))
        member("description", json_object_new_string(fixture.description))
        let service = json_object_new_object()
        json_object_object_add(service, "timeoutMicroseconds", json_object_new_int64(Int64(fixture.service.timeoutMicroseconds)))
        json_object_object_add(service, "passFailure", json_object_new_boolean(fixture.service.passFailure ? 1 : 0))
        json_object_object_add(service, "cookieTable", json_object_new_int64(Int64(fixture.service.cookieTable)))
        json_object_object_add(service, "entries", json_object_new_int64(Int64(fixture.service.entries)))
        if let pace = fixture.service.pace { json_object_object_add(service, "pace", json_object_new_string(pace.rawValue)) }
        if fixture.service.decoding != .linux {
            json_object_object_add(service, "decoding", json_object_new_string(fixture.service.decoding.description))
        }
        member("service", service)
        let devices = json_object_new_array()
        for d in fixture.devices {
            let o = json_object_new_object()
            json_object_object_add(o, "id", json_object_new_int64(Int64(d.id)))
            json_object_object_add(o, "name", json_object_new_string(d.name))
            let pasids = json_object_new_array()
            for p in d.pasids { json_object_array_add(pasids, json_object_new_int64(Int64(p))) }
            json_object_object_add(o, "pasids", pasids)
            json_object_object_add(o, "allocation", json_object_new_int64(Int64(d.allocation)))
            json_object_object_add(o, "needsPasid", json_object_new_boolean(d.needsPASID ? 1 : 0))
            json_object_object_add(o, "privateData", json_object_new_boolean(d.privateData ? 1 : 0))
            json_object_array_add(devices, o)
        }
        member("devices", devices)
        let c = fixture.consumer.behaviour
        let consumer = json_object_new_object()
        json_object_object_add(consumer, "abi", json_object_new_int64(Int64(fixture.consumer.abi)))
        json_object_object_add(consumer, "policy", json_object_new_string(c.policy.rawValue))
        json_object_object_add(consumer, "delayMicroseconds", json_object_new_int64(Int64(c.delayMicroseconds)))
        json_object_object_add(consumer, "startDelayMicroseconds", json_object_new_int64(Int64(c.startDelayMicroseconds)))
        if let crash = c.crashAfterGroups { json_object_object_add(consumer, "crashAfterGroups", json_object_new_int64(Int64(crash))) }
        for (key, path) in Fixture.Consumer.intervals where c[keyPath: path] > 0 {
            json_object_object_add(consumer, key.description, json_object_new_int64(Int64(c[keyPath: path])))
        }
        member("consumer", consumer)
        write("  \"events\": [")
    }

    deinit {
        if !finished { fclose(file) }
    }

    func write(_ text: String) { fputs(text, file) }

    func member(_ key: String, _ value: OpaquePointer?) {
        write("  \"\(key)\": ")
        write(String(cString: json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)))
        write(",\n")
        json_object_put(value)
    }

    static func hex(_ v: UInt64) -> OpaquePointer? { json_object_new_string("0x" + String(v, radix: 16)) }

    static func permissions(_ p: Permissions) -> String {
        (p.contains(.read) ? "r" : "") + (p.contains(.write) ? "w" : "") + (p.contains(.exec) ? "x" : "")
            + (p.contains(.privileged) ? "p" : "")
    }

    /// Appends one event (one line).
    public func append(_ event: FixtureEvent) {
        let o = json_object_new_object()
        json_object_object_add(o, "t", json_object_new_int64(Int64(bitPattern: event.t)))
        switch event.kind {
        case .pageRequest(let r):
            let stop = r.isStopMarker
            json_object_object_add(o, "type", json_object_new_string(stop ? "stop" : "page"))
            json_object_object_add(o, "device", json_object_new_int64(Int64(r.deviceID)))
            if let pasid = r.pasid { json_object_object_add(o, "pasid", json_object_new_int64(Int64(pasid))) }
            if !stop {
                json_object_object_add(o, "prgi", json_object_new_int64(Int64(r.prgi)))
                json_object_object_add(o, "perm", json_object_new_string(Self.permissions(r.permissions)))
                json_object_object_add(o, "addr", Self.hex(r.address))
                json_object_object_add(o, "last", json_object_new_boolean(r.isLastPage ? 1 : 0))
                if let data = r.privateData {
                    let words = json_object_new_array()
                    json_object_array_add(words, Self.hex(data.low))
                    json_object_array_add(words, Self.hex(data.high))
                    json_object_object_add(o, "private", words)
                }
            }
        case .fault(let f):
            json_object_object_add(o, "type", json_object_new_string("fault"))
            json_object_object_add(o, "device", json_object_new_int64(Int64(f.deviceID)))
            json_object_object_add(o, "reason", json_object_new_int64(Int64(f.reason)))
            if let pasid = f.pasid { json_object_object_add(o, "pasid", json_object_new_int64(Int64(pasid))) }
            if !f.permissions.isEmpty { json_object_object_add(o, "perm", json_object_new_string(Self.permissions(f.permissions))) }
            if let a = f.address { json_object_object_add(o, "addr", Self.hex(a)) }
            if let a = f.fetchAddress { json_object_object_add(o, "fetchAddr", Self.hex(a)) }
        case .raw(let format, let device, let words):
            json_object_object_add(o, "type", json_object_new_string(format.rawValue))
            json_object_object_add(o, "device", json_object_new_int64(Int64(device)))
            json_object_object_add(o, "hex", json_object_new_string(words.map { "0x" + String($0, radix: 16) }.joined(separator: " ")))
        }
        write(events == 0 ? "\n    " : ",\n    ")
        write(String(cString: json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)))
        json_object_put(o)
        events += 1
    }

    /// Writes the expected outcome (if any) and closes the file.
    public func finish(expected: Fixture.Expectation?) throws(FixtureError) {
        write(events == 0 ? "]" : "\n  ]")
        if let e = expected {
            let o = json_object_new_object()
            let groups = json_object_new_array()
            for g in e.groups {
                let go = json_object_new_object()
                json_object_object_add(go, "event", json_object_new_int64(Int64(g.event)))
                json_object_object_add(go, "code", json_object_new_string(g.code))
                json_object_object_add(go, "source", json_object_new_string(g.source))
                json_object_array_add(groups, go)
            }
            json_object_object_add(o, "groups", groups)
            for (key, counts) in [("auto", e.auto), ("rejections", e.rejections)] {
                let co = json_object_new_object()
                for (name, n) in counts.sorted(by: { $0.key < $1.key }) { json_object_object_add(co, name, json_object_new_int64(Int64(n))) }
                json_object_object_add(o, key, co)
            }
            if let lost = e.lostRecords { json_object_object_add(o, "lostRecords", json_object_new_int64(Int64(lost))) }
            if let n = e.faultsDelivered { json_object_object_add(o, "faultsDelivered", json_object_new_int64(Int64(n))) }
            write(",\n  \"expected\": ")
            write(String(cString: json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)))
            json_object_put(o)
        }
        write("\n}\n")
        finished = true
        guard fclose(file) == 0 else { throw FixtureError(file: path, "write failed: \(String(cString: strerror(errno)))") }
    }
}
