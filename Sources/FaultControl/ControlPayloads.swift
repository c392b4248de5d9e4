import CFaultRingABI
import FaultABI
import Foundation
import SystemPackage

/// What a service offers, sent as JSON in the HELLO reply (and printed by
/// `faultring serve --print-capabilities`).
public struct Capabilities: Codable, Sendable, Hashable {
    /// The control protocol version the service speaks (`FAULTRING_PROTOCOL_VERSION`).
    public var protocolVersion: UInt32
    /// Record ABI versions an ATTACH may ask for.
    public var abis: [UInt32]
    /// Names of what the service does (`page-requests`, `timeouts`, ...), so a client can check rather than assume.
    public var features: [String]
    /// Largest control message in bytes, header included.
    public var maxMessageSize: Int
    /// Most devices one ATTACH may list.
    public var maxDevicesPerAttach: Int
    /// Fault ring entries of each client's queue.
    public var entryCount: Int
    /// Response ring slots of each client's queue.
    public var responseCount: Int
    /// Ids of every device the service fronts, free or attached, ascending.
    public var devices: [UInt32]
    /// The event loop backend: `io_uring` or `poll`.
    public var eventLoop: String
    /// How long (ms) a group waits for a consumer's answer before the service answers it INVALID itself.
    public var pageRequestTimeoutMilliseconds: UInt64

    /// Capabilities with these values (the service builds them in `FaultService.capabilities(for:devices:eventLoop:)`).
    public init(protocolVersion: UInt32, abis: [UInt32], features: [String], maxMessageSize: Int, maxDevicesPerAttach: Int,
                entryCount: Int, responseCount: Int, devices: [UInt32], eventLoop: String,
                pageRequestTimeoutMilliseconds: UInt64) {
        self.protocolVersion = protocolVersion
        self.abis = abis
        self.features = features
        self.maxMessageSize = maxMessageSize
        self.maxDevicesPerAttach = maxDevicesPerAttach
        self.entryCount = entryCount
        self.responseCount = responseCount
        self.devices = devices
        self.eventLoop = eventLoop
        self.pageRequestTimeoutMilliseconds = pageRequestTimeoutMilliseconds
    }
}

/// The client's HELLO payload (JSON).
public struct Hello: Codable, Sendable, Hashable {
    /// The protocol version the client speaks; the service refuses any other (EPROTONOSUPPORT).
    public var protocolVersion: UInt32
    /// A name for the client, for the service's log.
    public var client: String
    /// A HELLO for this version of the protocol, naming the client.
    public init(protocolVersion: UInt32 = FAULTRING_PROTOCOL_VERSION, client: String) {
        self.protocolVersion = protocolVersion
        self.client = client
    }
}

/// Most devices in one ATTACH.
public let maxDevicesPerAttach = 64

/// ATTACH request payload (`struct faultring_msg_attach`).
public struct AttachRequest: Sendable, Hashable {
    /// The record ABI the client will request on its queue (1 or 2); an ABI 1 queue serves one device.
    public var abi: UInt32
    /// The devices to attach (1 to 64, no duplicates); all are attached or none is.
    public var devices: [UInt32]

    /// A request with these values, not checked here: the service refuses a bad one.
    public init(abi: UInt32, devices: [UInt32]) {
        self.abi = abi
        self.devices = devices
    }

    /// The wire payload: abi, device count, then the ids, each a little-endian u32.
    public var bytes: [UInt8] { le(abi) + le(UInt32(devices.count)) + devices.flatMap(le) }

    /// - Throws: EINVAL naming the field: short payload, count out of
    ///   1...64, size disagreeing with the count, duplicate device.
    public init(payload: [UInt8]) throws(ControlError) {
        // Device 0 is refused later, as a device that does not exist (ENOENT).
        (abi, devices) = try DeviceList.parse(payload, command: "ATTACH", zeroAllowed: true)
    }
}

/// The payload shape ATTACH and ADD_SOURCE share: a u32, a device count,
/// then that many u32 device ids, all little-endian.
enum DeviceList {
    /// The leading u32 and the ids.
    /// - Throws: EINVAL naming `command` and the field: short payload, count
    ///   out of 1...64, size disagreeing with the count, a duplicate or zero id.
    static func parse(_ payload: [UInt8], command: String, zeroAllowed: Bool = false) throws(ControlError)
        -> (UInt32, [UInt32])
    {
        guard payload.count >= 8 else {
            throw ControlError(.invalidArgument, "\(command) payload is \(payload.count) bytes, at least 8 needed")
        }
        let count = Int(readLE(payload, 4) as UInt32)
        guard (1...maxDevicesPerAttach).contains(count) else {
            throw ControlError(.invalidArgument, "\(command) device_count \(count) is not in 1...\(maxDevicesPerAttach)")
        }
        guard payload.count == 8 + 4 * count else {
            throw ControlError(.invalidArgument,
                               "\(command) payload is \(payload.count) bytes; device_count \(count) needs \(8 + 4 * count)")
        }
        let devices: [UInt32] = (0..<count).map { readLE(payload, 8 + 4 * $0) }
        guard Set(devices).count == devices.count else {
            throw ControlError(.invalidArgument, "\(command) lists a device twice")
        }
        guard zeroAllowed || !devices.contains(0) else { throw ControlError(.invalidArgument, "\(command) names device 0") }
        return (readLE(payload, 0), devices)
    }
}

/// ATTACH reply payload (`struct faultring_msg_attach_reply`).
public struct AttachReply: Sendable, Hashable {
    /// Whether this reply created the queue, and so carries its four descriptors.
    public var queueCreated: Bool
    /// Fault ring entries of the queue.
    public var entryCount: UInt32
    /// Response ring slots of the queue.
    public var responseCount: UInt32
    /// Devices now attached to this connection, earlier ATTACHes included.
    public var attached: UInt32

    /// A reply with these values.
    public init(queueCreated: Bool, entryCount: UInt32, responseCount: UInt32, attached: UInt32) {
        self.queueCreated = queueCreated
        self.entryCount = entryCount
        self.responseCount = responseCount
        self.attached = attached
    }

    /// The wire payload: four little-endian u32s (queue_created as 0 or 1), 16 bytes.
    public var bytes: [UInt8] { le(queueCreated ? 1 : 0) + le(entryCount) + le(responseCount) + le(attached) }

    /// Parses a reply payload (the client's side); any non-zero queue_created counts as true.
    /// - Throws: `ControlError` (EPROTO) if the payload is not exactly 16 bytes.
    public init(payload: [UInt8]) throws(ControlError) {
        guard payload.count == 16 else {
            throw ControlError(.protocolError, "ATTACH reply is \(payload.count) bytes, expected 16")
        }
        queueCreated = readLE(payload, 0) as UInt32 != 0
        entryCount = readLE(payload, 4)
        responseCount = readLE(payload, 8)
        attached = readLE(payload, 12)
    }
}

/// ADD_SOURCE request payload (`struct faultring_msg_add_source`); the
/// message carries the source's one descriptor.
public struct AddSourceRequest: Sendable, Hashable {
    /// `FAULTRING_SOURCE_*`: what the descriptor is.
    public var kind: UInt32
    /// The devices it serves (1 to 64, distinct, non-zero).
    public var devices: [UInt32]

    /// A request with these values, not checked here: the service refuses a bad one.
    public init(kind: UInt32, devices: [UInt32]) {
        self.kind = kind
        self.devices = devices
    }

    /// The wire payload: kind, device count, then the ids, each a little-endian u32.
    public var bytes: [UInt8] { le(kind) + le(UInt32(devices.count)) + devices.flatMap(le) }

    /// - Throws: EINVAL naming the field: short payload, count out of
    ///   1...64, size disagreeing with the count, a duplicate device.
    public init(payload: [UInt8]) throws(ControlError) {
        // Device 0 is a valid vSID; the bound on ids is the service's (it keeps them in tables).
        (kind, devices) = try DeviceList.parse(payload, command: "ADD_SOURCE", zeroAllowed: true)
    }
}

/// ADD_SOURCE reply payload (`struct faultring_msg_add_source_reply`).
public struct AddSourceReply: Sendable, Hashable {
    /// The service's id for the source.
    public var sourceID: UInt32
    /// Devices the source serves.
    public var devices: UInt32

    /// A reply with these values.
    public init(sourceID: UInt32, devices: UInt32) {
        self.sourceID = sourceID
        self.devices = devices
    }

    /// The wire payload: two little-endian u32s.
    public var bytes: [UInt8] { le(sourceID) + le(devices) }

    /// Parses a reply payload (the client's side).
    /// - Throws: `ControlError` (EPROTO) if the payload is not exactly 8 bytes.
    public init(payload: [UInt8]) throws(ControlError) {
        guard payload.count == 8 else {
            throw ControlError(.protocolError, "ADD_SOURCE reply is \(payload.count) bytes, expected 8")
        }
        sourceID = readLE(payload, 0)
        devices = readLE(payload, 4)
    }
}

/// DETACH request payload (`struct faultring_msg_detach`); empty = all devices.
public struct DetachRequest: Sendable, Hashable {
    /// The devices to detach; empty means all of this connection's. Ones not attached here are ignored.
    public var devices: [UInt32]

    /// A request to detach `devices` (empty: all of them).
    public init(devices: [UInt32]) { self.devices = devices }

    /// The wire payload: device count, then the ids, each a little-endian u32.
    public var bytes: [UInt8] { le(UInt32(devices.count)) + devices.flatMap(le) }

    /// Parses a request payload (the service's side).
    /// - Throws: `ControlError` (EINVAL) for a payload under 4 bytes, a
    ///   count above 64 (what one ATTACH can name), a size disagreeing with
    ///   the count, or a device named twice: a DETACH costs at most 64
    ///   device retirements, however it is written.
    public init(payload: [UInt8]) throws(ControlError) {
        guard payload.count >= 4 else {
            throw ControlError(.invalidArgument, "DETACH payload is \(payload.count) bytes, at least 4 needed")
        }
        let count = Int(readLE(payload, 0) as UInt32)
        guard count <= maxDevicesPerAttach else {
            throw ControlError(.invalidArgument, "DETACH device_count \(count) is above \(maxDevicesPerAttach)")
        }
        guard payload.count == 4 + 4 * count else {
            throw ControlError(.invalidArgument,
                               "DETACH payload is \(payload.count) bytes; device_count \(count) needs \(4 + 4 * count)")
        }
        devices = (0..<count).map { readLE(payload, 4 + 4 * $0) }
        guard Set(devices).count == devices.count else {
            throw ControlError(.invalidArgument, "DETACH names a device twice")
        }
    }
}

func le(_ value: UInt32) -> [UInt8] { LittleEndian.bytes(value) }

func readLE(_ bytes: [UInt8], _ offset: Int) -> UInt32 { LittleEndian.uint32(bytes, at: offset) }

/// JSON in and out of payloads.
public enum JSONPayload {
    /// `value` as sorted-key JSON bytes.
    /// - Throws: `ControlError` (`EINVAL`) naming the type if it cannot be
    ///   encoded (a non-finite number, say), rather than sending nothing.
    public static func encode(_ value: some Encodable) throws(ControlError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw ControlError(.invalidArgument, "\(type(of: value)) cannot be encoded as JSON: \(error)")
        }
    }

    /// Decodes a `T` from JSON bytes.
    /// - Throws: `ControlError` (`EINVAL`) naming the type and what was wrong.
    public static func decode<T: Decodable>(_ type: T.Type, _ payload: [UInt8]) throws(ControlError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(payload))
        } catch {
            throw ControlError(.invalidArgument, "payload is not a valid \(T.self) JSON object: \(error)")
        }
    }
}
