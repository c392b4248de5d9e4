import CJSONC
import Glibc

/// A file name shared by reference, so error contexts need not copy it.
package final class FileName {
    package let path: String
    package init(_ path: String) { self.path = path }
}

/// A json-c object seen through typed, validating accessors. Every failure
/// throws a `FixtureError` naming the field, with the file and event filled
/// in by `JSONCValue.Context`.
package struct JSONCValue {
    package let object: OpaquePointer?

    /// Where a value came from, for error messages. The dotted path is
    /// assembled only when an error is raised: on the happy path a child
    /// context shares its parent's path and a literal key, no allocation.
    package struct Context {
        /// The file's name, owned by the reader; not retained per copy (a
        /// context is copied for every field on the hot path).
        unowned(unsafe) let fileName: FileName
        var file: String { fileName.path }
        var event: Int?
        var parentPath: String
        var key: String?
        var staticKey: StaticString?

        package init(file: FileName, event: Int?, path: String) {
            fileName = file
            self.event = event
            parentPath = path
            key = nil
        }

        package var path: String {
            guard let key = key ?? staticKey.map({ "\($0)" }) else { return parentPath }
            return parentPath.isEmpty ? key : "\(parentPath).\(key)"
        }

        package func error(_ message: String) -> FixtureError {
            let path = self.path
            return FixtureError(file: file, event: event, field: path.isEmpty ? nil : path, message)
        }

        package func child(_ key: String) -> Context {
            var child = self
            child.parentPath = path
            child.key = key
            child.staticKey = nil
            return child
        }

        /// A child named by a literal: no string is built unless an error is.
        package func child(_ key: StaticString) -> Context {
            var child = self
            child.parentPath = path
            child.key = nil
            child.staticKey = key
            return child
        }
    }

    package var type: json_type { json_object_get_type(object) }

    package var typeName: String { String(cString: json_type_to_name(type)) }

    /// The members of an object, checking that no key outside `allowed`
    /// appears. Keys are looked up in json-c's own hash table; on the happy
    /// path no Swift string is made per key (unknown keys are found by
    /// count, and named only when there is one).
    package func members(_ context: Context, allowed: [StaticString]) throws(FixtureError) -> JSONCMembers {
        guard type == json_type_object else { throw context.error("expected an object, found \(typeName)") }
        let members = JSONCMembers(object: object)
        var present = 0
        for key in allowed where members[key] != nil { present += 1 }
        if Int(json_object_object_length(object)) != present {
            let names = Set(allowed.map { "\($0)" })
            var it = json_object_iter_begin(object)
            var end = json_object_iter_end(object)
            while json_object_iter_equal(&it, &end) == 0 {
                let key = String(cString: json_object_iter_peek_name(&it))
                if !names.contains(key) {
                    throw context.child(key).error("unknown key (allowed: \(names.sorted().joined(separator: ", ")))")
                }
                json_object_iter_next(&it)
            }
        }
        return members
    }

    /// `members` for keys known only at run time (enum raw values).
    package func dynamicMembers(_ context: Context, allowed: Set<String>) throws(FixtureError) -> [String: JSONCValue] {
        guard type == json_type_object else { throw context.error("expected an object, found \(typeName)") }
        var result: [String: JSONCValue] = [:]
        var it = json_object_iter_begin(object)
        var end = json_object_iter_end(object)
        while json_object_iter_equal(&it, &end) == 0 {
            let key = String(cString: json_object_iter_peek_name(&it))
            guard allowed.contains(key) else {
                throw context.child(key).error("unknown key (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
            result[key] = JSONCValue(object: json_object_iter_peek_value(&it))
            json_object_iter_next(&it)
        }
        return result
    }

    package func array(_ context: Context) throws(FixtureError) -> [JSONCValue] {
        guard type == json_type_array else { throw context.error("expected an array, found \(typeName)") }
        return (0..<json_object_array_length(object)).map { JSONCValue(object: json_object_array_get_idx(object, $0)) }
    }

    package func string(_ context: Context) throws(FixtureError) -> String {
        guard type == json_type_string else { throw context.error("expected a string, found \(typeName)") }
        return String(cString: json_object_get_string(object))
    }

    package func bool(_ context: Context) throws(FixtureError) -> Bool {
        guard type == json_type_boolean else { throw context.error("expected true or false, found \(typeName)") }
        return json_object_get_boolean(object) != 0
    }

    /// An unsigned integer: a JSON integer, or a string in decimal or "0x…"
    /// hex (so 64-bit values keep every bit whatever the reader's doubles do).
    package func unsigned(_ context: Context, max: UInt64 = .max) throws(FixtureError) -> UInt64 {
        let value: UInt64
        switch type {
        case json_type_int:
            let signed = json_object_get_int64(object)
            guard signed >= 0 || json_object_get_uint64(object) > UInt64(Int64.max) else {
                throw context.error("\(signed) is negative")
            }
            value = signed >= 0 ? UInt64(signed) : json_object_get_uint64(object)
        case json_type_string:
            guard let parsed = Self.parseUnsigned(json_object_get_string(object), Int(json_object_get_string_len(object))) else {
                let text = String(cString: json_object_get_string(object))
                throw context.error("\"\(text)\" is not a decimal or 0x-hex unsigned integer")
            }
            value = parsed
        default:
            throw context.error("expected an integer (or a decimal / \"0x…\" string), found \(typeName)")
        }
        guard value <= max else {
            throw context.error("0x\(String(value, radix: 16)) is out of range (max 0x\(String(max, radix: 16)))")
        }
        return value
    }

    /// Decimal or "0x" hex digits straight from json-c's bytes; nil on any
    /// other character, no digits, or overflow.
    static func parseUnsigned(_ text: UnsafePointer<CChar>?, _ length: Int) -> UInt64? {
        guard let text, length > 0 else { return nil }
        var i = 0
        var radix: UInt64 = 10
        if length > 2 && text[0] == 0x30 && (text[1] == 0x78 || text[1] == 0x58) {
            radix = 16
            i = 2
        }
        var value: UInt64 = 0
        while i < length {
            let c = UInt8(bitPattern: text[i])
            let digit: UInt64
            switch c {
            case 0x30...0x39: digit = UInt64(c - 0x30)
            case 0x61...0x66 where radix == 16: digit = UInt64(c - 0x61 + 10)
            case 0x41...0x46 where radix == 16: digit = UInt64(c - 0x41 + 10)
            default: return nil
            }
            let (times, o1) = value.multipliedReportingOverflow(by: radix)
            let (sum, o2) = times.addingReportingOverflow(digit)
            guard !o1 && !o2 else { return nil }
            value = sum
            i += 1
        }
        return value
    }

    /// Whether this is the JSON string `literal` (compared in place).
    package func isString(_ literal: StaticString) -> Bool {
        guard type == json_type_string, Int(json_object_get_string_len(object)) == literal.utf8CodeUnitCount else {
            return false
        }
        return memcmp(json_object_get_string(object), literal.utf8Start, literal.utf8CodeUnitCount) == 0
    }

    package func u32(_ context: Context, max: UInt64 = UInt64(UInt32.max)) throws(FixtureError) -> UInt32 {
        UInt32(try unsigned(context, max: max))
    }
}

/// An object's members, looked up by key in json-c's hash table.
package struct JSONCMembers {
    package let object: OpaquePointer?

    /// Looks `key` up without building a C string: a literal already is one.
    package subscript(key: StaticString) -> JSONCValue? {
        var value: OpaquePointer?
        let name = UnsafeRawPointer(key.utf8Start).assumingMemoryBound(to: CChar.self)
        guard json_object_object_get_ex(object, name, &value) != 0 else { return nil }
        return JSONCValue(object: value)
    }
}

/// Reads `key` from `members` if present, converting with `read`.
package func optional<T>(_ members: JSONCMembers, _ key: StaticString, _ context: JSONCValue.Context,
                 _ read: (JSONCValue, JSONCValue.Context) throws(FixtureError) -> T) throws(FixtureError) -> T? {
    guard let value = members[key] else { return nil }
    return try read(value, context.child(key))
}

/// Reads a required `key`.
package func required<T>(_ members: JSONCMembers, _ key: StaticString, _ context: JSONCValue.Context,
                 _ read: (JSONCValue, JSONCValue.Context) throws(FixtureError) -> T) throws(FixtureError) -> T {
    guard let value = members[key] else { throw context.child(key).error("missing") }
    return try read(value, context.child(key))
}

extension JSONCValue {
    /// A finite number (JSON integer or real) within `range`.
    package func number(_ context: Context, in range: ClosedRange<Double>) throws(FixtureError) -> Double {
        let value: Double
        switch type {
        case json_type_int: value = Double(json_object_get_int64(object))
        case json_type_double: value = json_object_get_double(object)
        default: throw context.error("expected a number, found \(typeName)")
        }
        guard value.isFinite, range.contains(value) else {
            throw context.error("\(value) is out of range (\(range.lowerBound) ... \(range.upperBound))")
        }
        return value
    }
}
