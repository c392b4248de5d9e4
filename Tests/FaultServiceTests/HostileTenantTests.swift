import CFaultRingABI
import CFaultRingSys
import FaultABI
import FaultControl
import FaultQueue
import FaultService
import Foundation
import Glibc
import SystemPackage
import Testing

/// Attacks on a live `faultring serve` from this process, a tenant with an
/// attached queue that does what the docs say it must not. Each test shows
/// the attack fails and that another tenant, a `faultring consume` process,
/// keeps being served; and that SIGTERM still stops the service.
@Suite(.serialized) struct HostileTenantTests {
    /// A tenant speaking the control protocol by hand, keeping its queue's descriptors.
    final class Tenant {
        let socket: ControlSocket
        var id: UInt16 = 1
        var fds: [Int32] = []

        /// The HELLO reply's errno (0: welcome).
        var helloCode: Int32 = -1

        /// Connects and says HELLO; `strict`: the service must say welcome.
        init(_ path: String, strict: Bool = true) throws {
            socket = try ControlSocket.connect(path: path)
            helloCode = try request(.hello, try JSONPayload.encode(Hello(protocolVersion: 1, client: "hostile"))).0
            if strict { #expect(helloCode == 0) }
        }

        deinit {
            for fd in fds { close(fd) }
            try? socket.fd.close()
        }

        /// Sends `command`; the reply (errno or 0, payload), or nil if none came within `seconds`.
        func request(_ command: ControlCommand, _ payload: [UInt8] = [], seconds: Int32 = 10) throws -> (Int32, [UInt8]) {
            id &+= 1
            let bytes = ControlMessage(id: id, command: command.rawValue, payload: payload).bytes
            _ = bytes.withUnsafeBytes { send(socket.fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var pfd = pollfd(fd: socket.fd.rawValue, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, seconds * 1000) == 1 else { return (-1, []) }
            guard case .message(let m) = try socket.receive() else { return (-2, []) }
            fds += m.fds.map(\.rawValue)
            return (m.isError ? Int32(bitPattern: m.error) : 0, m.payload)
        }

        /// ATTACH; the queue's four descriptors in `QueueFiles` order.
        func attach(_ devices: [UInt32], abi: UInt32 = 2) throws -> [Int32] {
            let (code, _) = try request(.attach, AttachRequest(abi: abi, devices: devices).bytes)
            #expect(code == 0)
            return fds
        }
    }

    /// Answered groups of `device` by its consumer, read with a bounded STATS
    /// (nil: the service did not answer within 10 s, which is the freeze).
    static func answeredByConsumer(_ path: String, device: UInt32) throws -> UInt64? {
        let probe = try Tenant(path)
        let (code, payload) = try probe.request(.stats)
        guard code == 0 else { return nil }
        let stats = try JSONDecoder().decode(ServiceStats.self, from: Data(payload))
        return stats.devices.first { $0.id == device }?.answersBySource["consumer"] ?? 0
    }

    /// The other tenant is served: its consumer answers more groups within a bounded wait.
    static func expectServed(_ path: String, device: UInt32, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = try #require(try answeredByConsumer(path, device: device), "the service froze", sourceLocation: sourceLocation)
        var after = before
        for _ in 0..<100 where after <= before + 20 {
            usleep(50_000)
            after = try #require(try answeredByConsumer(path, device: device), "the service froze", sourceLocation: sourceLocation)
        }
        #expect(after > before + 20, "device \(device): \(before) → \(after)", sourceLocation: sourceLocation)
    }

    /// Whether the service closes `socket` within a bounded wait (10 s, in
    /// polls of 100 ms; a bound, not a timing assertion). Messages that
    /// arrive first are read and dropped.
    static func closedByService(_ socket: ControlSocket) throws -> Bool {
        for _ in 0..<100 {
            var p = pollfd(fd: socket.fd.rawValue, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 100) == 1, case .closed = try socket.receive() { return true }
        }
        return false
    }

    /// Waits (bounded: 4 s) until STATS lists at most `n` clients, the probe asking included:
    /// closed connections reach the service a moment after their owner let go.
    static func waitForClients(_ path: String, atMost n: Int) {
        for _ in 0..<200 {
            if let probe = try? Tenant(path, strict: false), probe.helloCode == 0,
               let reply = try? probe.request(.stats), reply.0 == 0,
               let stats = try? JSONDecoder().decode(ServiceStats.self, from: Data(reply.1)), stats.clients.count <= n {
                return
            }
            usleep(20_000)
        }
    }

    /// SIGTERM stops the service (bounded: 20 s).
    static func expectStops(_ service: Child, sourceLocation: SourceLocation = #_sourceLocation) {
        service.signal(SIGTERM)
        for _ in 0..<400 where service.isRunning { usleep(50_000) }
        #expect(!service.isRunning, "the service ignored SIGTERM", sourceLocation: sourceLocation)
        if service.isRunning { service.signal(SIGKILL) }
        _ = service.finish()
    }

    static func offset<T>(_ path: KeyPath<faultring_consumer_header, T>) -> Int {
        MemoryLayout<faultring_consumer_header>.offset(of: path)!
    }

    /// Finding 1: the doorbells were F_DUPFD copies sharing the service's open
    /// file description, so clearing O_NONBLOCK on them, or filling the eventfd
    /// counter, made the service's next read or write block for ever.
    @Test func aTenantCannotFreezeTheServiceThroughItsDoorbells() throws {
        let path = socketPath("hostile-doorbell")
        let service = try startService(path, ["--devices", "2", "--rate", "2000", "--timeout-ms", "500"])
        let good = try Child(["consume", "--socket-path", path, "--devices", "2", "--quiet"])
        defer { good.signal(SIGKILL) }
        try Self.expectServed(path, device: 2)

        let hostile = try Tenant(path)
        let fds = try hostile.attach([1])
        #expect(fds.count == 4)
        let consumerRegion = fds[1], consumerDoorbell = fds[2], producerDoorbell = fds[3]
        let size = Int(lseek(consumerRegion, 0, SEEK_END))
        let region = try #require(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, consumerRegion, 0))
        defer { munmap(region, size) }
        // Negotiate, so the service publishes to us and rings our doorbell.
        (region + Self.offset(\.requested_abi)).storeBytes(of: UInt32(2), as: UInt32.self)
        var one: UInt64 = 1
        _ = write(producerDoorbell, &one, 8)
        // Drain our doorbell, then fill it to the brim: a further 8-byte write to an eventfd would block.
        var sink: UInt64 = 0
        while read(consumerDoorbell, &sink, 8) > 0 {}
        var brim: UInt64 = 0xffff_ffff_ffff_fffe
        _ = write(consumerDoorbell, &brim, 8)
        // Clear O_NONBLOCK on both doorbells, say we sleep (so the service rings), and never read again.
        _ = fcntl(consumerDoorbell, F_SETFL, 0)
        _ = fcntl(producerDoorbell, F_SETFL, 0)
        (region + Self.offset(\.consumer_sleeping)).storeBytes(of: UInt32(1), as: UInt32.self)
        // Ring the service's doorbell now and then, so it wakes and drains it.
        for _ in 0..<5 {
            _ = write(producerDoorbell, &one, 8)
            usleep(20_000)
        }
        try Self.expectServed(path, device: 2)
        Self.expectStops(service)
    }

    /// Finding 2: the producer region's copy was opened read-only, but the
    /// memfd's inode is mode 0777: reopened O_RDWR through /proc it could be
    /// written and mapped writable, and counters the service sums trapped.
    @Test func theProducerRegionCannotBeMadeWritable() throws {
        let path = socketPath("hostile-seal")
        let service = try startService(path, ["--devices", "2", "--rate", "2000"])
        let good = try Child(["consume", "--socket-path", path, "--devices", "2", "--quiet"])
        defer { good.signal(SIGKILL) }
        let hostile = try Tenant(path)
        let producerRegion = try hostile.attach([1])[0]
        let size = Int(lseek(producerRegion, 0, SEEK_END))
        #expect(faultring_sys_get_seals(producerRegion) & faultring_sys_seal_future_write_bit() != 0)
        #expect(faultring_sys_get_seals(producerRegion) & faultring_sys_seal_seal() != 0)
        // Through the descriptor given: read-only.
        #expect(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, producerRegion, 0) == MAP_FAILED)
        // Reopened read-write: the open may succeed, but no write and no writable shared mapping does.
        let reopened = open("/proc/self/fd/\(producerRegion)", O_RDWR)
        if reopened >= 0 {
            defer { close(reopened) }
            var junk = [UInt8](repeating: 0xff, count: 64)
            #expect(pwrite(reopened, &junk, 64, 256) < 0 && errno == EPERM)
            #expect(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, reopened, 0) == MAP_FAILED && errno == EPERM)
            // Nor can a read-only shared mapping be upgraded.
            let readOnly = try #require(mmap(nil, size, PROT_READ, MAP_SHARED, reopened, 0))
            #expect(readOnly != MAP_FAILED)
            #expect(mprotect(readOnly, size, PROT_READ | PROT_WRITE) != 0)
            munmap(readOnly, size)
        }
        // The service still reads its own counters back, and serves the other tenant.
        try Self.expectServed(path, device: 2)
        Self.expectStops(service)
    }

    /// Maps a queue's two regions as a consumer may: (producer header, read-only; consumer region, read-write).
    static func map(_ fds: [Int32]) throws -> (UnsafeRawPointer, UnsafeMutableRawPointer) {
        let producerSize = Int(lseek(fds[0], 0, SEEK_END)), consumerSize = Int(lseek(fds[1], 0, SEEK_END))
        let producer = try #require(mmap(nil, producerSize, PROT_READ, MAP_SHARED, fds[0], 0))
        let consumer = try #require(mmap(nil, consumerSize, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0))
        #expect(producer != MAP_FAILED && consumer != MAP_FAILED)
        return (UnsafeRawPointer(producer), consumer)
    }

    /// Finding 6: a refused `resp_prod` (or one written before negotiation) kept
    /// `consumerHasWork` true, and the loop spun a core at 100 %.
    @Test func aRefusedResponseIndexDoesNotSpinTheService() throws {
        let path = socketPath("hostile-respprod")
        // A light load (50 groups/s for the good tenant): its cost stays far below the margin even
        // in a sanitizer build, while a spinning loop costs a whole core.
        let service = try startService(path, ["--devices", "3", "--rate", "50"])
        let good = try Child(["consume", "--socket-path", path, "--devices", "3", "--quiet"])
        defer { good.signal(SIGKILL) }
        // One tenant negotiates, then writes a response index a million slots ahead: refused.
        let negotiated = try Tenant(path)
        let (_, c1) = try Self.map(try negotiated.attach([1]))
        (c1 + Self.offset(\.requested_abi)).storeBytes(of: UInt32(2), as: UInt32.self)
        var one: UInt64 = 1
        _ = write(negotiated.fds[3], &one, 8)
        usleep(100_000)
        (c1 + Self.offset(\.resp_prod)).storeBytes(of: UInt32(1_000_000), as: UInt32.self)
        _ = write(negotiated.fds[3], &one, 8)
        // Another writes a response index and never negotiates.
        let early = try Tenant(path)
        let (_, c2) = try Self.map(try early.attach([2]))
        (c2 + Self.offset(\.resp_prod)).storeBytes(of: UInt32(5), as: UInt32.self)
        _ = write(early.fds[3], &one, 8)
        usleep(200_000)
        let before = try IdleTests.cpuSeconds(service.pid)
        usleep(2_000_000)
        let used = try IdleTests.cpuSeconds(service.pid) - before
        // 50 groups/s for one consumer costs a few per cent of a core; spinning costs all of it.
        #expect(used < 0.5, "the service used \(used) s of CPU in 2 s")
        try Self.expectServed(path, device: 3)
        Self.expectStops(service)
    }

    /// Finding 8: the ABI named in ATTACH was not bound to the queue, so a
    /// tenant could attach several devices as ABI 2 and then negotiate ABI 1,
    /// whose answers name no device.
    @Test func aQueueIsExactlyTheABIItsAttachNamed() throws {
        let path = socketPath("hostile-abi")
        let service = try startService(path, ["--devices", "3", "--rate", "500"])
        let good = try Child(["consume", "--socket-path", path, "--devices", "3", "--quiet"])
        defer { good.signal(SIGKILL) }
        let hostile = try Tenant(path)
        let fds = try hostile.attach([1, 2], abi: 2)
        let (producer, consumer) = try Self.map(fds)
        #expect(QueueStatus(producer: producer, consumer: consumer).maxABI == 2)
        (consumer + Self.offset(\.requested_abi)).storeBytes(of: UInt32(1), as: UInt32.self)
        var one: UInt64 = 1
        _ = write(fds[3], &one, 8)
        var status = QueueStatus(producer: producer, consumer: consumer)
        for _ in 0..<100 where status.counters.badABIRequests == 0 {
            usleep(20_000)
            status = QueueStatus(producer: producer, consumer: consumer)
        }
        #expect(status.abi == 0 && status.counters.badABIRequests == 1, "ABI \(status.abi) in force")
        try Self.expectServed(path, device: 3)
        Self.expectStops(service)
    }

    /// Finding 3: one DETACH naming a device 16,379 times retired every slot
    /// of the tracker that many times (about 10^9 slot checks).
    @Test func aDetachIsBoundedHoweverItIsWritten() throws {
        let path = socketPath("hostile-detach")
        let service = try startService(path, ["--devices", "3", "--rate", "500"])
        let good = try Child(["consume", "--socket-path", path, "--devices", "3", "--quiet"])
        defer { good.signal(SIGKILL) }
        let hostile = try Tenant(path)
        _ = try hostile.attach([1])
        func detach(_ ids: [UInt32]) throws -> (Int32, String) {
            let (code, payload) = try hostile.request(.detach, DetachRequest(devices: ids).bytes)
            return (code, String(decoding: payload, as: UTF8.self))
        }
        let (many, manyReason) = try detach(Array(repeating: 1, count: 16_379))
        #expect(many == EINVAL && manyReason.contains("above 64"), "\(manyReason)")
        let (twice, twiceReason) = try detach([1, 1])
        #expect(twice == EINVAL && twiceReason.contains("twice"), "\(twiceReason)")
        #expect(try detach([1]).0 == 0)
        try Self.expectServed(path, device: 3)
        Self.expectStops(service)
    }

    /// Finding 5: no cap on connections, no HELLO deadline. A uid's connections
    /// beyond its cap are refused with EAGAIN; a silent connection is dropped.
    @Test func connectionsAreCappedAndSilentOnesDropped() throws {
        let path = socketPath("hostile-caps")
        let service = try startService(path, ["--devices", "3", "--rate", "500", "--max-clients-per-uid", "6",
                                              "--hello-timeout-ms", "300"])
        let good = try Child(["consume", "--socket-path", path, "--devices", "3", "--quiet"])
        defer { good.signal(SIGKILL) }
        try Self.expectServed(path, device: 3)
        // A probe's close reaches the service a moment after the probe is gone: wait until only the
        // consumer and the probe are connected, then fill the cap (1 + 5 = 6).
        Self.waitForClients(path, atMost: 2)
        var held: [Tenant] = []
        for _ in 0..<200 where held.count < 5 {
            let t = try Tenant(path, strict: false)
            if t.helloCode == 0 { held.append(t) } else { usleep(20_000) }
        }
        #expect(held.count == 5)
        let refused = try ControlSocket.connect(path: path)
        var pfd = pollfd(fd: refused.fd.rawValue, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pfd, 1, 10_000) == 1)
        guard case .message(let reply) = try refused.receive() else {
            Issue.record("no refusal")
            return
        }
        #expect(reply.isError && Int32(bitPattern: reply.error) == EAGAIN)
        #expect(String(decoding: reply.payload, as: UTF8.self).contains("the most one uid may have"))
        held.removeAll()
        // A connection that never says HELLO is closed by the service, well after 300 ms but bounded.
        let silent = try ControlSocket.connect(path: path)
        #expect(try Self.closedByService(silent), "a connection without HELLO was kept")
        Self.waitForClients(path, atMost: 2)
        try Self.expectServed(path, device: 3)
        Self.expectStops(service)
    }

    /// Finding 5: no idle timeout. A connection that said HELLO but holds no
    /// queue, device or source and sends nothing is dropped after
    /// `--idle-timeout-ms`; one that holds a device is kept however quiet it
    /// is (a VMM whose guest raises no faults is quiet on purpose).
    @Test func idleConnectionsHoldingNothingAreDropped() throws {
        let path = socketPath("hostile-idle")
        let service = try startService(path, ["--devices", "3", "--rate", "500", "--idle-timeout-ms", "300"])
        let good = try Child(["consume", "--socket-path", path, "--devices", "3", "--quiet"])
        defer { good.signal(SIGKILL) }
        try Self.expectServed(path, device: 3)
        let holder = try Tenant(path)
        _ = try holder.attach([2])
        let idle = try Tenant(path)
        #expect(try Self.closedByService(idle.socket), "a connection holding nothing was kept idle")
        // The holder has been as quiet as the idle one, for longer than the timeout: still served.
        #expect(try holder.request(.stats).0 == 0, "a connection holding a device was dropped for idling")
        try Self.expectServed(path, device: 3)
        Self.expectStops(service)
    }

    /// Finding 5: out of descriptors, the listener stayed readable and the loop
    /// spun. With RLIMIT_NOFILE at 64, a tenant holds 80 connections open:
    /// the service sheds the ones it cannot take, does not spin, and serves
    /// again once they close.
    @Test func runningOutOfDescriptorsDoesNotSpinTheService() throws {
        let path = socketPath("hostile-emfile")
        unlink(path)
        let service = try Child(["--nofile=64", Child.binary, "serve", "--socket-path", path, "--log-level", "error",
                                 "--devices", "1", "--rate", "100", "--max-clients-per-uid", "1000"], executable: "/usr/bin/prlimit")
        #expect(attachWhenReady(path, devices: [])?.close() != nil)
        var flood: [ControlSocket] = []
        for _ in 0..<80 { if let s = try? ControlSocket.connect(path: path) { flood.append(s) } }
        usleep(300_000)
        let before = try IdleTests.cpuSeconds(service.pid)
        usleep(1_000_000)
        let used = try IdleTests.cpuSeconds(service.pid) - before
        #expect(used < 0.5, "the service used \(used) s of CPU in 1 s out of descriptors")
        for s in flood { try? s.fd.close() }
        flood.removeAll()
        // Once the flood is gone, a new client is served.
        var stats: Int32 = -1
        for _ in 0..<100 where stats != 0 {
            if let probe = try? Tenant(path) { stats = (try? probe.request(.stats).0) ?? -1 }
            if stats != 0 { usleep(50_000) }
        }
        #expect(stats == 0)
        Self.expectStops(service)
    }

    /// Finding 7: device ownership was not tied to identity, and STATS showed
    /// every client's pid, uid and devices to everyone. Another uid is played
    /// by a child under `setpriv --reuid 4242`.
    @Test func devicesBelongToTheirUidAndStatsShowsOnlyYourOwn() throws {
        let path = socketPath("hostile-owner")
        let service = try startService(path, ["--devices", "2", "--rate", "200", "--allow-uid", "0", "--allow-uid", "4242",
                                              "--socket-mode", "666", "--device-owner", "1:4242"])
        let root = try Tenant(path)
        let (taken, reason) = try root.request(.attach, AttachRequest(abi: 2, devices: [1]).bytes)
        #expect(taken == EACCES && String(decoding: reason, as: UTF8.self).contains("belongs to uid 4242"))
        #expect(try root.attach([2]).count == 4)
        func asOther(_ arguments: [String]) throws -> (Int32, String) {
            let child = try Child(["--reuid=4242", "--regid=4242", "--clear-groups", "--", Child.binary] + arguments,
                                  executable: "/usr/bin/setpriv")
            return child.finish()
        }
        let (code, json) = try asOther(["stats", "--socket-path", path])
        #expect(code == 0, "\(json)")
        let stats = try JSONDecoder().decode(ServiceStats.self, from: Data(json.utf8))
        #expect(stats.clients.allSatisfy { $0.uid == 4242 } && !stats.clients.isEmpty, "\(stats.clients.map(\.uid))")
        #expect(stats.devices.map(\.id) == [1], "device 2 is root's: not shown")
        // The owner attaches its device and is served.
        let (consumed, summary) = try asOther(["consume", "--socket-path", path, "--devices", "1", "--groups", "20", "--quiet", "--json"])
        #expect(consumed == 0, "\(summary)")
        Self.expectStops(service)
    }

    /// Finding 12: the socket path was unlinked blindly (a regular file there
    /// was deleted), and the socket's mode came from the umask.
    @Test func theSocketFileIsCreatedWithItsModeAndNeverReplacesAFile() throws {
        let path = socketPath("socket-file")
        unlink(path)
        #expect(FileManager.default.createFile(atPath: path, contents: Data("keep me".utf8)))
        defer { unlink(path) }
        let refused = try Child(["serve", "--socket-path", path, "--devices", "1"], stderr: true)
        let (code, log) = refused.finish()
        #expect(code != 0 && log.contains("not a socket"), "\(log)")
        #expect((try? String(contentsOfFile: path, encoding: .utf8)) == "keep me")
        unlink(path)
        let service = try startService(path, ["--devices", "1", "--socket-mode", "640"])
        var info = stat()
        #expect(lstat(path, &info) == 0 && info.st_mode & 0o777 == 0o640)
        Self.expectStops(service)
    }

    /// Finding 12: a zero-length packet was taken as end of stream. It is a
    /// malformed message (EINVAL), and the connection goes on.
    @Test func anEmptyPacketIsMalformedNotAGoodbye() throws {
        let path = socketPath("hostile-empty")
        let service = try startService(path, ["--devices", "1"])
        let tenant = try Tenant(path)
        _ = send(tenant.socket.fd.rawValue, nil, 0, Int32(MSG_NOSIGNAL))
        var pfd = pollfd(fd: tenant.socket.fd.rawValue, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pfd, 1, 10_000) == 1)
        guard case .message(let reply) = try tenant.socket.receive() else {
            Issue.record("no reply to an empty packet")
            return
        }
        #expect(reply.isError && Int32(bitPattern: reply.error) == EINVAL)
        #expect(try tenant.request(.stats).0 == 0, "the connection survives")
        Self.expectStops(service)
    }

    /// Finding 4: `readMessages` looped until EAGAIN, so a client that kept
    /// its socket full starved timeouts and every other client. For two
    /// seconds a thread here sends malformed packets as fast as the socket
    /// takes them, never reading a reply; meanwhile another tenant is served
    /// and a third tenant's unanswered groups still time out.
    @Test func aFloodingClientStarvesNobody() throws {
        let path = socketPath("hostile-flood")
        let service = try startService(path, ["--devices", "3", "--rate", "500", "--timeout-ms", "200"])
        let good = try Child(["consume", "--socket-path", path, "--devices", "3", "--quiet"])
        let silent = try Child(["consume", "--socket-path", path, "--devices", "2", "--policy", "never", "--quiet"])
        defer {
            good.signal(SIGKILL)
            silent.signal(SIGKILL)
        }
        try Self.expectServed(path, device: 3)
        let flooder = try Tenant(path)
        let fd = flooder.socket.fd.rawValue
        let junk = [UInt8](repeating: 0xee, count: 16)
        let flood = Thread {
            let end = Date().addingTimeInterval(2)
            while Date() < end {
                if junk.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }) < 0 {
                    if errno != EAGAIN { return }  // the service gave up on us: fine, nobody is starved
                    sched_yield()
                }
            }
        }
        flood.start()
        usleep(200_000)
        func timeouts() throws -> UInt64 {
            let probe = try Tenant(path)
            let reply = try probe.request(.stats)
            return try JSONDecoder().decode(ServiceStats.self, from: Data(reply.1)).pageRequests.autoResponses["timeout"] ?? 0
        }
        let before = try timeouts()
        try Self.expectServed(path, device: 3)
        var after = before
        for _ in 0..<40 where after <= before { usleep(50_000); after = try timeouts() }
        #expect(after > before, "no group timed out during the flood")
        while flood.isExecuting { usleep(50_000) }
        Self.expectStops(service)
    }
}
