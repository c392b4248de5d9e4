import CFaultRingSys
import FaultControl
import FaultService
import FaultSys
import Foundation
import Glibc
import SystemPackage
import Testing
import VMMClient

/// A VMM must not trust what it maps (issue 13, finding 12): a fake service
/// that answers HELLO properly, then hands over queue descriptors that are
/// not what a faultring service sends. `VMMClient` refuses each, naming
/// what is wrong, and never maps it.
@Suite(.serialized) struct HostileServerTests {
    /// Serves one connection on `path`: HELLO, then an ATTACH reply carrying `fds` (closed after sending).
    static func serveOnce(_ path: String, fds: [Int32]) throws -> Thread {
        unlink(path)
        let listener = try ControlSocket.listen(path: path)
        let capabilities = try JSONPayload.encode(FaultService.capabilities(for: ServiceConfig(), devices: [1]))
        let reply = AttachReply(queueCreated: true, entryCount: 4096, responseCount: 1024, attached: 1).bytes
        let thread = Thread {
            defer { try? listener.fd.close() }
            var pfd = pollfd(fd: listener.fd.rawValue, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 10_000) == 1, let connection = try? listener.accept() else { return }
            defer { try? connection.fd.close() }
            for answer in 0..<2 {
                var p = pollfd(fd: connection.fd.rawValue, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 10_000) == 1, case .message(let request)? = try? connection.receive() else { return }
                let message = answer == 0
                    ? ControlMessage.reply(to: request, payload: capabilities)
                    : ControlMessage.reply(to: request, payload: reply, fds: fds.map { FileDescriptor(rawValue: $0) })
                try? connection.send(message)
            }
            for fd in fds { close(fd) }
        }
        thread.start()
        return thread
    }

    /// What `VMMClient` says when the fake service hands it `fds` for a queue.
    static func refusal(_ fds: [Int32], _ name: String) throws -> String {
        let path = socketPath("fake-\(name)")
        _ = try serveOnce(path, fds: fds)
        defer { unlink(path) }
        do {
            let client = try VMMClient(socketPath: path, devices: [1])
            client.close()
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    static func memfd(sealed seals: Int32?, size: Int = 1 << 20) -> Int32 {
        let fd = faultring_sys_memfd_create("fake")
        _ = ftruncate(fd, off_t(size))
        if let seals { _ = fcntl(fd, 1033, seals) }  // F_ADD_SEALS (1024 + 9), hidden behind _GNU_SOURCE
        return fd
    }

    /// `fd` reopened read-only (as the service sends its producer region); the original is closed.
    static func readOnly(_ fd: Int32) -> Int32 {
        let copy = open("/proc/self/fd/\(fd)", O_RDONLY | O_CLOEXEC)
        close(fd)
        return copy
    }

    static func doorbell() -> Int32 {
        var ends: [Int32] = [-1, -1]
        _ = faultring_sys_doorbell_pair(&ends)
        close(ends[1])
        return ends[0]
    }

    static let sizeSeals = faultring_sys_seal_shrink() | faultring_sys_seal_grow() | faultring_sys_seal_seal()

    @Test func unsealedOrWritableRegionsAndWrongDescriptorsAreRefused() throws {
        let unsealed = try Self.refusal([Self.memfd(sealed: nil), Self.memfd(sealed: Self.sizeSeals), Self.doorbell(),
                                         Self.doorbell()], "unsealed")
        #expect(unsealed.contains("producer region is not sealed against shrinking"), "\(unsealed)")

        let writable = try Self.refusal([Self.memfd(sealed: Self.sizeSeals), Self.memfd(sealed: Self.sizeSeals),
                                         Self.doorbell(), Self.doorbell()], "writable")
        #expect(writable.contains("producer region is not sealed against writes"), "\(writable)")

        let sealedAll = Self.sizeSeals | faultring_sys_seal_future_write_bit()
        let readWrite = try Self.refusal([Self.memfd(sealed: sealedAll), Self.memfd(sealed: Self.sizeSeals),
                                          Self.doorbell(), Self.doorbell()], "readwrite")
        #expect(readWrite.contains("producer region is not opened read-only"), "\(readWrite)")

        let eventfd = try Self.refusal([Self.readOnly(Self.memfd(sealed: sealedAll)), Self.memfd(sealed: Self.sizeSeals),
                                        faultring_sys_eventfd(), Self.doorbell()], "eventfd")
        #expect(eventfd.contains("consumer doorbell is not a socket"), "\(eventfd)")

        let three = try Self.refusal([Self.readOnly(Self.memfd(sealed: sealedAll)), Self.memfd(sealed: Self.sizeSeals),
                                      Self.doorbell()], "three")
        #expect(three.contains("3 descriptors, 4 expected"), "\(three)")
    }

    @Test func aServiceOfAnotherUidIsNotTrusted() throws {
        let path = socketPath("fake-uid")
        let service = try startService(path, ["--devices", "1"])
        do {
            _ = try VMMClient(socketPath: path, devices: [], trustedServiceUIDs: [4242])
            Issue.record("a service of uid \(getuid()) was trusted")
        } catch {
            #expect("\(error)".contains("runs as uid \(getuid())"), "\(error)")
        }
        service.signal(SIGTERM)
        _ = service.finish()
    }
}
