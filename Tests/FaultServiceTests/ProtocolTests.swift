import CFaultRingSys
import FaultABI
import CFaultRingABI
import FaultControl
import FaultService
import Foundation
import SystemPackage
import Testing
import VMMClient

/// Every malformed message gets an error reply with the right errno and a
/// reason; the connection survives; nothing another client owns is touched.
/// Run against both event-loop backends.
@Suite(.serialized) struct ProtocolTests {
    /// A raw client that can send anything.
    struct RawClient {
        let socket: ControlSocket
        var id: UInt16 = 100

        init(_ path: String) throws { socket = try ControlSocket.connect(path: path) }

        func sendRaw(_ bytes: [UInt8], fds: [Int32] = []) {
            _ = bytes.withUnsafeBytes { b in
                fds.withUnsafeBufferPointer { f in
                    faultring_sys_send_fds(socket.fd.rawValue, b.baseAddress, UInt(b.count), f.baseAddress, UInt32(f.count))
                }
            }
        }

        mutating func send(_ command: UInt16, _ payload: [UInt8] = [], flags: UInt32 = 0) {
            id += 1
            sendRaw(ControlMessage(id: id, command: command, flags: flags, payload: payload).bytes)
        }

        /// The next reply: (errno or 0, reason or payload text, message).
        func reply() throws -> (Int32, String, ControlMessage) {
            switch try socket.receive() {
            case .message(let m):
                for fd in m.fds { try? fd.close() }
                return (m.isError ? Int32(bitPattern: m.error) : 0, String(decoding: m.payload, as: UTF8.self), m)
            default:
                Issue.record("no reply")
                return (-1, "", ControlMessage(id: 0, command: 0))
            }
        }

        /// Sends, and expects an error reply with `errno` whose reason mentions `words`.
        mutating func expectError(_ command: UInt16, _ payload: [UInt8] = [], flags: UInt32 = 0, _ errno: Errno,
                                  _ words: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            send(command, payload, flags: flags)
            let (code, reason, message) = try reply()
            #expect(code == errno.rawValue, "\(reason)", sourceLocation: sourceLocation)
            #expect(reason.contains(words), "\(reason)", sourceLocation: sourceLocation)
            #expect(message.id == id, sourceLocation: sourceLocation)
        }
    }

    static func hello(_ version: UInt32 = 1) -> [UInt8] { try! JSONPayload.encode(Hello(protocolVersion: version, client: "test")) }

    static func u32(_ values: UInt32...) -> [UInt8] { values.flatMap { LittleEndian.bytes($0) } }

    /// STATS too large for one message is refused with EMSGSIZE in both
    /// formats (Prometheus text used to get no reply at all), and the
    /// connection goes on working.
    @Test func oversizedStatsGetAnErrorReplyInEitherFormat() throws {
        let path = socketPath("proto-bigstats")
        let service = try startService(path, ["--devices", "1200", "--rate", "1"])
        var c = try RawClient(path)
        c.send(ControlCommand.hello.rawValue, Self.hello())
        #expect(try c.reply().0 == 0)
        for flags in [0, FAULTRING_MSG_TEXT] {
            try c.expectError(ControlCommand.stats.rawValue, flags: flags, .messageTooLong, "message limit")
        }
        c.send(ControlCommand.bye.rawValue)
        #expect(try c.reply().0 == 0)
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
    }

    @Test(arguments: ["io_uring", "poll"])
    func malformedMessagesAreRefusedAndSurvived(backend: String) throws {
        let path = socketPath("proto-\(backend)")
        let service = try startService(path, ["--devices", "3", "--rate", "1000", "--backend", backend])
        // Where io_uring is blocked (containers), asking for it falls back to poll;
        // the test then still runs, on what the service really uses.
        let expected = backend == "poll" ? "poll" : EventLoop.probe(preferred: nil).rawValue
        #expect(try serviceStats(path).eventLoop == expected)
        let hello = ControlCommand.hello.rawValue
        let attach = ControlCommand.attach.rawValue
        var c = try RawClient(path)
        var errors = 0

        // Wrong state: ATTACH before HELLO.
        try c.expectError(attach, Self.u32(2, 1, 1), .protocolError, "HELLO must come first"); errors += 1
        // Short packet: 8 bytes cannot hold the 16-byte header.
        c.sendRaw([1, 0, 1, 0, 8, 0, 0, 0])
        #expect(try c.reply().0 == Errno.invalidArgument.rawValue); errors += 1
        // The size field disagrees with the packet.
        var bytes = ControlMessage(id: 7, command: hello, payload: Self.hello()).bytes
        bytes[4] = 200
        c.sendRaw(bytes)
        let (sizeErrno, sizeReason, _) = try c.reply()
        #expect(sizeErrno == Errno.invalidArgument.rawValue && sizeReason.contains("size field")); errors += 1
        // Unknown flag bits; the REPLY flag on a request.
        try c.expectError(hello, Self.hello(), flags: 1 << 9, .invalidArgument, "unknown flag"); errors += 1
        try c.expectError(hello, Self.hello(), flags: FAULTRING_MSG_REPLY, .invalidArgument, "REPLY"); errors += 1
        // Unknown command.
        try c.expectError(99, [], .noFunction, "unknown command 99"); errors += 1
        // Descriptors with a command that takes none: they are closed, not leaked.
        let eventfd = faultring_sys_eventfd()
        c.id += 1
        c.sendRaw(ControlMessage(id: c.id, command: hello, payload: Self.hello()).bytes, fds: [eventfd])
        let (fdErrno, fdReason, _) = try c.reply()
        #expect(fdErrno == Errno.badFileDescriptor.rawValue && fdReason.contains("takes no descriptors")); errors += 1
        close(eventfd)
        // Oversized: more than 64 KiB.
        c.sendRaw(ControlMessage(id: 9, command: hello, payload: [UInt8](repeating: 0x20, count: 70_000)).bytes)
        let (bigErrno, bigReason, _) = try c.reply()
        #expect(bigErrno == Errno.messageTooLong.rawValue && bigReason.contains("exceeds")); errors += 1
        // Bad HELLO payloads, then a good one, then a second one.
        try c.expectError(hello, Array("not json".utf8), .invalidArgument, "Hello"); errors += 1
        try c.expectError(hello, Self.hello(9), .protocolNotSupported, "protocol version 9"); errors += 1
        c.send(hello, Self.hello())
        let (ok, caps, _) = try c.reply()
        #expect(ok == 0 && caps.contains("protocolVersion"))
        try c.expectError(hello, Self.hello(), .protocolError, "HELLO sent twice"); errors += 1
        // Bad ATTACH payloads.
        try c.expectError(attach, Self.u32(2), .invalidArgument, "at least 8"); errors += 1
        try c.expectError(attach, Self.u32(2, 0), .invalidArgument, "device_count 0"); errors += 1
        try c.expectError(attach, Self.u32(2, 2, 1), .invalidArgument, "needs 16"); errors += 1
        try c.expectError(attach, Self.u32(3, 1, 1), .invalidArgument, "abi 3"); errors += 1
        try c.expectError(attach, Self.u32(2, 1, 99), .noSuchFileOrDirectory, "device 99 does not exist"); errors += 1
        try c.expectError(attach, Self.u32(1, 2, 1, 2), .invalidArgument, "ABI 1 queue serves one device"); errors += 1

        // Another client owns device 2: an ATTACH of [1, 2] is all-or-nothing.
        let other = try VMMClient(socketPath: path, devices: [2])
        try c.expectError(attach, Self.u32(2, 2, 1, 2), .resourceBusy, "device 2 is attached to another client"); errors += 1
        var stats = try serviceStats(path)
        #expect(stats.devices.first { $0.id == 1 }!.attachedTo == nil)  // nothing half-attached
        // DETACH of someone else's device cannot fail and does nothing to it.
        c.send(ControlCommand.detach.rawValue, Self.u32(1, 2))
        #expect(try c.reply().0 == 0)
        stats = try serviceStats(path)
        #expect(stats.devices.first { $0.id == 2 }!.attachedTo != nil)
        // After all that, the connection still works: ATTACH device 1, with the queue's fds.
        c.send(attach, Self.u32(2, 1, 1))
        let (attachErrno, _, attachReply) = try c.reply()
        #expect(attachErrno == 0)
        #expect(attachReply.payload.count == 16)
        // STATS in Prometheus text.
        c.send(ControlCommand.stats.rawValue, flags: FAULTRING_MSG_TEXT)
        let (_, text, _) = try c.reply()
        #expect(text.contains("faultring_groups_completed"))
        #expect(text.contains("faultring_protocol_errors_total"))
        // Monotonic counts are counters, levels are gauges, and a counter
        // read twice never goes backwards.
        #expect(text.contains("# TYPE faultring_groups_completed_total counter"))
        #expect(text.contains("# TYPE faultring_page_requests_total counter"))
        #expect(text.contains("# TYPE faultring_device_groups_issued_total counter"))
        #expect(text.contains("# TYPE faultring_clients gauge"))
        #expect(text.contains("# TYPE faultring_device_groups_outstanding gauge"))
        #expect(!text.contains("gauge\nfaultring_page_requests"))
        func value(_ text: String, _ series: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last!) }
        }
        c.send(ControlCommand.stats.rawValue, flags: FAULTRING_MSG_TEXT)
        let (_, later, _) = try c.reply()
        let requestsBefore = value(text, "faultring_page_requests_total")
        #expect(requestsBefore != nil, "no faultring_page_requests_total sample in \(text)")
        #expect((value(later, "faultring_page_requests_total") ?? -1) >= (requestsBefore ?? 0))
        stats = try serviceStats(path)
        #expect(stats.protocolErrors == UInt64(errors))
        // The other client was never disturbed.
        #expect(try other.stats().contains("\"eventLoop\""))
        other.close()
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
    }

    @Test func disallowedUIDIsRefused() throws {
        let path = socketPath("uid")
        let service = try startService(path, ["--allow-uid", "4242"])
        var client = try RawClient(path)
        // The service refuses at accept with EACCES and closes.
        let (code, reason, _) = try client.reply()
        #expect(code == Errno.permissionDenied.rawValue)
        #expect(reason.contains("not allowed"))
        client.send(ControlCommand.hello.rawValue, Self.hello())
        if case .closed = try client.socket.receive() {} else { Issue.record("connection not closed") }
        service.signal(SIGTERM)
        _ = service.finish()
    }
}
