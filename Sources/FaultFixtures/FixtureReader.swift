import CJSONC
import FaultABI
import VMMClient
import Glibc

/// Reads a fixture file with json-c, streaming: the top-level object is
/// walked key by key; each value — and each element of `"events"`, one at a
/// time — is fed to json-c's incremental tokenizer chunk by chunk. Memory
/// stays bounded by the largest single event, whatever the file's size.
///
/// `"devices"` must come before `"events"` (events are checked against the
/// devices as they stream by). Every malformed input throws a
/// `FixtureError` naming the file, the event index and the field, before
/// anything runs.
public final class FixtureReader {
    /// The largest event time and timeout a fixture may give, µs (a day):
    /// every µs value is later multiplied by 1000 into ns, which must not overflow.
    public static let maxMicroseconds: UInt64 = 86_400_000_000

    /// The file being read; every `FixtureError` names it.
    public let path: String
    let fileName: FileName
    let fd: Int32
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    var position = 0
    var end = 0
    var eof = false
    let tokener: UnsafeMutablePointer<json_tokener>

    /// Opens `path` for reading.
    public init(path: String) throws(FixtureError) {
        self.path = path
        fileName = FileName(path)
        fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FixtureError(file: path, "cannot open: \(String(cString: strerror(errno)))") }
        guard let tokener = json_tokener_new_ex(64) else {
            close(fd)
            throw FixtureError(file: path, "json-c could not allocate a tokener")
        }
        self.tokener = tokener
    }

    deinit {
        close(fd)
        json_tokener_free(tokener)
    }

    // MARK: Bytes

    func refill() throws(FixtureError) {
        guard !eof else { return }
        if position < end {
            buffer.replaceSubrange(0..<(end - position), with: buffer[position..<end])
        }
        end -= position
        position = 0
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + end, $0.count - end) }
        guard n >= 0 else { throw FixtureError(file: path, "read failed: \(String(cString: strerror(errno)))") }
        if n == 0 { eof = true } else { end += n }
    }

    /// The next non-whitespace byte (not consumed), or nil at end of file.
    func peek() throws(FixtureError) -> UInt8? {
        while true {
            while position < end {
                let byte = buffer[position]
                if byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 } else { return byte }
            }
            if eof { return nil }
            try refill()
        }
    }

    func expect(_ byte: UInt8, _ what: String, _ context: JSONCValue.Context) throws(FixtureError) {
        guard let next = try peek() else { throw context.error("truncated: expected \(what), found end of file") }
        guard next == byte else {
            throw context.error("expected \(what), found '\(String(UnicodeScalar(next)))'")
        }
        position += 1
    }

    /// One complete JSON value through json-c's incremental tokenizer.
    func value(_ context: JSONCValue.Context) throws(FixtureError) -> OpaquePointer {
        json_tokener_reset(tokener)
        guard try peek() != nil else { throw context.error("truncated: expected a value, found end of file") }
        while true {
            let object = buffer.withUnsafeBytes { raw in
                json_tokener_parse_ex(tokener, raw.baseAddress!.assumingMemoryBound(to: CChar.self) + position,
                                      Int32(end - position))
            }
            let error = json_tokener_get_error(tokener)
            if let object {
                position += Int(json_tokener_get_parse_end(tokener))
                return object
            }
            guard error == json_tokener_continue else {
                throw context.error("invalid JSON: \(String(cString: json_tokener_error_desc(error)))")
            }
            position = end
            if eof {
                // A bare number at the very end needs no delimiter; anything else is truncated.
                if let done = json_tokener_parse_ex(tokener, "", 1) { return done }
                throw context.error("truncated in the middle of a value")
            }
            try refill()
        }
    }

    /// A JSON string key (then the colon).
    func key(_ context: JSONCValue.Context) throws(FixtureError) -> String {
        let object = try value(context)
        defer { json_object_put(object) }
        guard json_object_get_type(object) == json_type_string else {
            throw context.error("expected a quoted key")
        }
        try expect(UInt8(ascii: ":"), "':'", context)
        return String(cString: json_object_get_string(object))
    }

    // MARK: The document

    static let topKeys: Set<String> = ["faultringFixture", "name", "description", "service", "devices", "consumer",
                                       "events", "expected"]

    /// Reads the whole file, handing each event to `body` as it streams by,
    /// and returns everything else.
    /// - Throws: `FixtureError` for the first problem found (in file order).
    @discardableResult
    public func read(_ body: (Int, FixtureEvent) throws(FixtureError) -> Void) throws(FixtureError) -> Fixture {
        _ = try open()
        var index = 0
        while let event = try next() {
            try body(index, event)
            index += 1
        }
        return try finish()
    }

    // Pull state: the header read so far, where we are in the events.
    var fixture = Fixture()
    var seen: Set<String> = []
    var devicesByID: [UInt32: Fixture.Device] = [:]
    var eventIndex = 0
    var lastT: UInt64 = 0
    var inEvents = false
    var firstMember = true

    /// Reads up to the first event: everything before `"events"`.
    public func open() throws(FixtureError) -> Fixture {
        let root = JSONCValue.Context(file: fileName, event: nil, path: "")
        try expect(UInt8(ascii: "{"), "'{' opening the fixture", root)
        try readMembers(untilEvents: true)
        guard inEvents else { throw root.child("events").error("missing") }
        return fixture
    }

    /// The next event, or nil after the last one.
    public func next() throws(FixtureError) -> FixtureEvent? {
        guard inEvents else { return nil }
        let context = JSONCValue.Context(file: fileName, event: nil, path: "events")
        if try peek() == UInt8(ascii: "]") {
            position += 1
            inEvents = false
            return nil
        }
        if eventIndex > 0 { try expect(UInt8(ascii: ","), "',' or ']' after event \(eventIndex - 1)", context) }
        let eventContext = JSONCValue.Context(file: fileName, event: eventIndex, path: "")
        let object = try value(eventContext)
        let event: FixtureEvent
        do {
            defer { json_object_put(object) }
            event = try Self.event(JSONCValue(object: object), eventContext, devicesByID)
        }
        guard event.t >= lastT else {
            throw eventContext.child("t").error("\(event.t) is earlier than the previous event's \(lastT)")
        }
        lastT = event.t
        eventIndex += 1
        return event
    }

    /// Reads what follows the events (the expected outcome) and checks the end.
    public func finish() throws(FixtureError) -> Fixture {
        while try next() != nil {}
        try readMembers(untilEvents: false)
        let root = JSONCValue.Context(file: fileName, event: nil, path: "")
        guard try peek() == nil else { throw root.error("data after the closing '}'") }
        for key in ["faultringFixture", "devices", "events"] where !seen.contains(key) {
            throw root.child(key).error("missing")
        }
        return fixture
    }

    func readMembers(untilEvents: Bool) throws(FixtureError) {
        let root = JSONCValue.Context(file: fileName, event: nil, path: "")
        while true {
            if try peek() == UInt8(ascii: "}") {
                position += 1
                return
            }
            if !firstMember { try expect(UInt8(ascii: ","), "',' or '}'", root) }
            firstMember = false
            let name = try key(root)
            let context = root.child(name)
            guard Self.topKeys.contains(name) else {
                throw context.error("unknown key (allowed: \(Self.topKeys.sorted().joined(separator: ", ")))")
            }
            guard seen.insert(name).inserted else { throw context.error("appears twice") }
            if name == "events" {
                guard seen.contains("devices") else { throw context.error("\"devices\" must come before \"events\"") }
                try expect(UInt8(ascii: "["), "'[' opening the events", context)
                inEvents = true
                if untilEvents { return }
                while try next() != nil {}
                continue
            }
            let object = try value(context)
            defer { json_object_put(object) }
            let value = JSONCValue(object: object)
            switch name {
            case "faultringFixture":
                let version = try value.unsigned(context)
                guard version == Fixture.formatVersion else {
                    throw context.error("format version \(version); this build reads version \(Fixture.formatVersion)")
                }
            case "name": fixture.name = try value.string(context)
            case "description": fixture.description = try value.string(context)
            case "service": fixture.service = try Self.service(value, context)
            case "devices":
                fixture.devices = try value.array(context).enumerated().map { (i, v) throws(FixtureError) in
                    try Self.device(v, context.child("[\(i)]"))
                }
                for device in fixture.devices {
                    guard devicesByID.updateValue(device, forKey: device.id) == nil else {
                        throw context.error("device id \(device.id) appears twice")
                    }
                }
            case "consumer": fixture.consumer = try Self.consumer(value, context)
            default: fixture.expected = try Self.expectation(value, context)
            }
        }
    }
}
