import CFaultRingABI
import FaultABI
import FaultService
import FaultSys
import Foundation
import Glibc
import Testing
import VMMClient

/// JSONSerialization gives booleans as NSNumbers of type `c` (or Swift Bools).
func isBoolean(_ value: Any) -> Bool {
    if let number = value as? NSNumber { return String(cString: number.objCType) == "c" }
    return value is Bool
}

/// The subset of JSON Schema (2020-12) that Docs/stats.v1.schema.json uses:
/// type, properties, required, additionalProperties (false or a schema),
/// items, enum, minimum. Returns every violation, with its JSON path.
func violations(_ value: Any, _ schema: [String: Any], at path: String = "$") -> [String] {
    var out: [String] = []
    if let type = schema["type"] as? String {
        let ok: Bool
        switch type {
        case "object": ok = value is [String: Any]
        case "array": ok = value is [Any]
        case "string": ok = value is String
        case "boolean": ok = isBoolean(value)
        case "integer": ok = !isBoolean(value) && (value as? NSNumber).map { $0.doubleValue == $0.doubleValue.rounded() } ?? false
        case "number": ok = !isBoolean(value) && value is NSNumber
        default: ok = false
        }
        if !ok { return ["\(path): expected \(type), got \(value)"] }
    }
    if let allowed = schema["enum"] as? [Any], !allowed.contains(where: { "\($0)" == "\(value)" }) {
        out.append("\(path): \(value) is not one of \(allowed)")
    }
    if let minimum = schema["minimum"] as? Double, let n = value as? NSNumber, n.doubleValue < minimum {
        out.append("\(path): \(n) is below \(minimum)")
    }
    if let object = value as? [String: Any] {
        let properties = schema["properties"] as? [String: [String: Any]] ?? [:]
        for key in schema["required"] as? [String] ?? [] where object[key] == nil { out.append("\(path): missing \(key)") }
        for (key, member) in object {
            if let sub = properties[key] {
                out += violations(member, sub, at: "\(path).\(key)")
            } else if let extra = schema["additionalProperties"] as? [String: Any] {
                out += violations(member, extra, at: "\(path).\(key)")
            } else if (schema["additionalProperties"] as? Bool) == false {
                out.append("\(path): unexpected \(key)")
            }
        }
    }
    if let array = value as? [Any], let items = schema["items"] as? [String: Any] {
        for (i, element) in array.enumerated() { out += violations(element, items, at: "\(path)[\(i)]") }
    }
    return out
}

/// STATS has a documented, versioned schema, and real output follows it:
/// clients with and without queues, devices of both kinds of source,
/// latency, and a fault source's books.
@Suite struct StatsSchemaTests {
    static var schema: [String: Any] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Docs/stats.v1.schema.json")
        return try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    @Test func realStatsFollowTheSchema() throws {
        let path = socketPath("schema")
        let service = try startService(path, ["--devices", "2", "--rate", "2000"])
        let vmm = try VMMClient(socketPath: path, devices: [1])
        for _ in 0..<100 {
            _ = vmm.wait(timeoutMilliseconds: 5)
            try vmm.consume { record in
                guard case .event(.pageRequest(let r), _) = record, r.isLastPage else { return nil }
                return PageResponse(code: .success, cookie: r.cookie)
            }
        }
        let device = try Sys.seqpacketPair()
        let adder = try VMMClient(socketPath: path, devices: [], client: "schema test")
        try adder.addSource(kind: FAULTRING_SOURCE_DEVICE_FAULTS, descriptor: device.remote.descriptor, devices: [9])
        let text = try adder.stats()
        let document = try JSONSerialization.jsonObject(with: Data(text.utf8))
        let problems = violations(document, Self.schema)
        #expect(problems.isEmpty, "\(problems)")
        let top = document as? [String: Any]
        #expect((top?["sources"] as? [Any])?.count == 1)
        #expect(top?["latency"] != nil)
        // The check can fail: an unknown field, a wrong type and a missing field are all caught.
        var bad = top ?? [:]
        bad["surprise"] = 1
        bad["protocolErrors"] = "none"
        bad.removeValue(forKey: "devices")
        #expect(violations(bad, Self.schema).count == 3)
        adder.close()
        vmm.close()
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
    }
}
