import CJSONC

/// A json-c object seen through typed, validating accessors. Every failure
/// throws a `FixtureError` naming the field, with the file and event filled
/// in by `JSONCValue.Context`.
struct JSONCValue {
    let object: OpaquePointer?

    /// Where a value came from, for error messages. The dotted path is
    /// assembled only when an error is raised: on the happy path a child
    /// context shares its parent's path and a literal key, no allocation.
    struct Context {
        var file: String
        var event: Int?
        var parentPath: String
        var key: String?

        init(file: String, event: Int?, path: String) {
            self.file = file
            self.event = event
            parentPath = path
            key = nil
        }

        var path: String {
            guard let key else { return parentPath }
            return parentPath.isEmpty ? key : "\(parentPath).\(key)"
        }

        func error(_ message: String) -> FixtureError {
            let path = self.path
            return FixtureError(file: file, event: event, field: path.isEmpty ? nil : path, message)
        }

        func child(_ key: String) -> Context {
            var child = self
            child.parentPath = path
            child.key = key
            return child
        }
    }

    var type: json_type { json_object_get_type(object) }

    var typeName: String { String(cString: json_type_to_name(type)) }

    /// The members of an object, checking that no key outside `allowed`
    /// appears. Keys are looked up in json-c's own hash table; on the happy
    /// path no Swift string is made per key (unknown keys are found by
    /// count, and named only when there is one).
    func members(_ context: Context, allowed: Set<String>) throws(FixtureError) -> JSONCMembers {
        guard type == json_type_object else { throw context.error("expected an object, found \(typeName)") }
        let members = JSONCMembers(object: object)
        var present = 0
        for key in allowed where members[key] != nil { present += 1 }
        if Int(json_object_object_length(object)) != present {
            var it = json_object_iter_begin(object)
            var end = json_object_iter_end(object)
            while json_object_iter_equal(&it, &end) == 0 {
                let key = String(cString: json_object_iter_peek_name(&it))
                if !allowed.contains(key) {
                    throw context.child(key).error("unknown key (allowed: \(allowed.sorted().joined(separator: ", ")))")
                }
                json_object_iter_next(&it)
            }
        }
        return members
    }

    func array(_ context: Context) throws(FixtureError) -> [JSONCValue] {
        guard type == json_type_array else { throw context.error("expected an array, found \(typeName)") }
        return (0..<json_object_array_length(object)).map { JSONCValue(object: json_object_array_get_idx(object, $0)) }
    }

    func string(_ context: Context) throws(FixtureError) -> String {
        guard type == json_type_string else { throw context.error("expected a string, found \(typeName)") }
        return String(cString: json_object_get_string(object))
    }

    func bool(_ context: Context) throws(FixtureError) -> Bool {
        guard type == json_type_boolean else { throw context.error("expected true or false, found \(typeName)") }
        return json_object_get_boolean(object) != 0
    }

    /// An unsigned integer: a JSON integer, or a string in decimal or "0x…"
    /// hex (so 64-bit values keep every bit whatever the reader's doubles do).
    func unsigned(_ context: Context, max: UInt64 = .max) throws(FixtureError) -> UInt64 {
        let value: UInt64
        switch type {
        case json_type_int:
            let signed = json_object_get_int64(object)
            guard signed >= 0 || json_object_get_uint64(object) > UInt64(Int64.max) else {
                throw context.error("\(signed) is negative")
            }
            value = signed >= 0 ? UInt64(signed) : json_object_get_uint64(object)
        case json_type_string:
            let text = String(cString: json_object_get_string(object))
            let parsed: UInt64?
            if text.hasPrefix("0x") || text.hasPrefix("0X") {
                parsed = UInt64(text.dropFirst(2), radix: 16)
            } else {
                parsed = UInt64(text)
            }
            guard let parsed else { throw context.error("\"\(text)\" is not a decimal or 0x-hex unsigned integer") }
            value = parsed
        default:
            throw context.error("expected an integer (or a decimal / \"0x…\" string), found \(typeName)")
        }
        guard value <= max else {
            throw context.error("0x\(String(value, radix: 16)) is out of range (max 0x\(String(max, radix: 16)))")
        }
        return value
    }

    func u32(_ context: Context, max: UInt64 = UInt64(UInt32.max)) throws(FixtureError) -> UInt32 {
        UInt32(try unsigned(context, max: max))
    }
}

/// An object's members, looked up by key in json-c's hash table.
struct JSONCMembers {
    let object: OpaquePointer?

    subscript(key: String) -> JSONCValue? {
        var value: OpaquePointer?
        guard json_object_object_get_ex(object, key, &value) != 0 else { return nil }
        return JSONCValue(object: value)
    }
}

/// Reads `key` from `members` if present, converting with `read`.
func optional<T>(_ members: JSONCMembers, _ key: String, _ context: JSONCValue.Context,
                 _ read: (JSONCValue, JSONCValue.Context) throws(FixtureError) -> T) throws(FixtureError) -> T? {
    guard let value = members[key] else { return nil }
    return try read(value, context.child(key))
}

/// Reads a required `key`.
func required<T>(_ members: JSONCMembers, _ key: String, _ context: JSONCValue.Context,
                 _ read: (JSONCValue, JSONCValue.Context) throws(FixtureError) -> T) throws(FixtureError) -> T {
    guard let value = members[key] else { throw context.child(key).error("missing") }
    return try read(value, context.child(key))
}
