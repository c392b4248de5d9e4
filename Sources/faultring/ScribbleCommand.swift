import ArgumentParser
import CFaultRingABI
import FaultControl
import FaultSimulation
import FaultSys
import Foundation
import Glibc

/// A hostile tenant, for chaos storms and by hand: attaches its devices as
/// the protocol allows, then does with what it was given everything the
/// docs say a tenant must not, and hangs up and comes back, until SIGTERM.
///
/// Each session it maps its consumer region and writes random words into
/// it (the indices, `requested_abi` and `consumer_sleeping` most often,
/// but any offset); writes random bytes to both doorbell ends, clears
/// `O_NONBLOCK` on them and shuts them down; sends junk packets, requests
/// with random commands and payloads, and STATS requests whose replies it
/// never reads; and tries to reopen its read-only producer region for
/// writing (which must fail: `reopenedWritable` stays 0). Sessions last
/// 50–500 ms and end with BYE or an abrupt close. It never answers a page
/// request: the service must answer its devices' groups itself (timeout,
/// detach, overflow), and keep serving everyone else.
///
/// Its own calls never block (every send is `MSG_DONTWAIT`; a descriptor
/// whose `O_NONBLOCK` it cleared is only shut down afterwards), so SIGTERM
/// always ends it with its counts printed.
struct ScribbleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scribble",
        abstract: "A hostile tenant: attach devices, then scribble the queue's memory, doorbells and control socket.")

    @Option(help: "The service's socket path.") var socketPath: String
    @Option(parsing: .upToNextOption, help: "Devices to attach.") var devices: [UInt32] = [1]
    @Option(help: "Seed of every random choice.") var seed: UInt64 = 1
    @Option(help: "Stop after this many seconds (0: until SIGTERM).") var seconds: Double = 0
    @Flag(help: "Print the counts as JSON.") var json = false

    /// What it did: enough to show the attacks happened.
    struct Counts: Codable {
        /// Sessions that said HELLO.
        var sessions: UInt64 = 0
        /// Sessions whose ATTACH was granted (the queue's four descriptors came).
        var attached: UInt64 = 0
        /// ATTACH refused (the devices still held by a previous session, a restarting service).
        var attachRefused: UInt64 = 0
        /// Connections that could not be made (the service restarting).
        var connectFailures: UInt64 = 0
        /// Random words written into consumer regions.
        var wordsScribbled: UInt64 = 0
        /// Random packets sent on doorbell ends.
        var doorbellPackets: UInt64 = 0
        /// Junk packets and random requests on the control socket.
        var junkPackets: UInt64 = 0
        /// STATS requests whose replies were left unread.
        var unreadRequests: UInt64 = 0
        /// Opens of the producer region for writing that succeeded and then wrote (must stay 0).
        var reopenedWritable: UInt64 = 0
    }

    func run() throws {
        let signals = try Sys.signalfd([SIGTERM, SIGINT])
        let signalFD = signals.rawValue
        func stopping() -> Bool {
            var pfd = pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0)
            return poll(&pfd, 1, 0) > 0
        }
        let end = seconds > 0 ? Sys.monotonicNS &+ UInt64(seconds * 1e9) : UInt64.max
        var rng = SplitMix64(seed: seed)
        var counts = Counts()
        while !stopping() && Sys.monotonicNS < end {
            session(&rng, &counts, until: min(end, Sys.monotonicNS &+ 50_000_000 &+ rng.next() % 450_000_000), stopping)
        }
        withExtendedLifetime(signals) {}
        if json {
            print(String(decoding: try JSONEncoder().encode(counts), as: UTF8.self))
        } else {
            print("scribble: \(counts)")
        }
    }

    /// One connection: HELLO, ATTACH, then attacks until `until`.
    func session(_ rng: inout SplitMix64, _ counts: inout Counts, until: UInt64, _ stopping: () -> Bool) {
        guard let socket = try? ControlSocket.connect(path: socketPath) else {
            counts.connectFailures += 1
            usleep(20_000)
            return
        }
        let control = socket.fd.rawValue
        var fds: [Int32] = []
        defer {
            for fd in fds { close(fd) }
            close(control)
        }
        var id: UInt16 = 0
        /// Sends a request; its reply (errno or 0) if one comes within 1 s, keeping its descriptors.
        func request(_ command: ControlCommand, _ payload: [UInt8]) -> Int32? {
            id &+= 1
            let bytes = ControlMessage(id: id, command: command.rawValue, payload: payload).bytes
            _ = bytes.withUnsafeBytes { send(control, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            for _ in 0..<10 {
                var pfd = pollfd(fd: control, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, 100) == 1, case .message(let m)? = try? socket.receive() else { continue }
                fds += m.fds.map(\.rawValue)
                guard m.id == id else { continue }
                return m.isError ? Int32(bitPattern: m.error) : 0
            }
            return nil
        }
        guard let hello = try? JSONPayload.encode(Hello(client: "faultring scribble")), request(.hello, hello) == 0 else {
            usleep(20_000)
            return
        }
        counts.sessions += 1
        guard request(.attach, AttachRequest(abi: 2, devices: devices).bytes) == 0, fds.count == 4 else {
            counts.attachRefused += 1
            usleep(50_000)
            return
        }
        counts.attached += 1
        let (producerRegion, consumerRegion, doorbells) = (fds[0], fds[1], [fds[2], fds[3]])
        let size = Int(lseek(consumerRegion, 0, SEEK_END))
        guard size >= MemoryLayout<faultring_consumer_header>.size,
              let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, consumerRegion, 0), mapped != MAP_FAILED else { return }
        defer { munmap(mapped, size) }
        let header = [MemoryLayout<faultring_consumer_header>.offset(of: \.requested_abi)!,
                      MemoryLayout<faultring_consumer_header>.offset(of: \.fault_cons)!,
                      MemoryLayout<faultring_consumer_header>.offset(of: \.resp_prod)!,
                      MemoryLayout<faultring_consumer_header>.offset(of: \.consumer_sleeping)!]
        var shutDown = Set<Int32>()
        while Sys.monotonicNS < until && !stopping() {
            let roll = rng.next() % 100
            switch roll {
            case 0..<60:
                // A random word: at a header field (half the time, so negotiation and the indices are hit), or anywhere.
                let offset = rng.next() % 2 == 0 ? header[Int(rng.next() % 4)] : Int(rng.next() % UInt64(size / 8)) * 8
                let value: UInt64 = rng.next() % 4 == 0 ? rng.next() % 3 : rng.next()
                (mapped + offset).storeBytes(of: UInt32(truncatingIfNeeded: value), as: UInt32.self)
                counts.wordsScribbled += 1
            case 60..<70:
                let fd = doorbells[Int(rng.next() % 2)]
                guard !shutDown.contains(fd) else { continue }
                var junk = (0..<Int(rng.next() % 24)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                _ = send(fd, &junk, junk.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
                counts.doorbellPackets += 1
            case 70:
                // Finding 1's attack, on a socket pair: clear O_NONBLOCK, then shut the end down
                // (never to be written again here, so this process cannot block on it).
                let fd = doorbells[Int(rng.next() % 2)]
                _ = fcntl(fd, F_SETFL, 0)
                _ = shutdown(fd, Int32(rng.next() % 3))
                shutDown.insert(fd)
            case 71..<80:
                var junk = (0..<Int(rng.next() % 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                _ = send(control, &junk, junk.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
                counts.junkPackets += 1
            case 80..<85:
                id &+= 1
                let payload = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                let bytes = ControlMessage(id: id, command: UInt16(truncatingIfNeeded: rng.next() % 8), payload: payload).bytes
                _ = bytes.withUnsafeBytes { send(control, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
                counts.junkPackets += 1
            case 85..<90:
                id &+= 1
                let bytes = ControlMessage(id: id, command: ControlCommand.stats.rawValue, payload: []).bytes
                _ = bytes.withUnsafeBytes { send(control, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
                counts.unreadRequests += 1
            case 90:
                let reopened = open("/proc/self/fd/\(producerRegion)", O_RDWR | O_CLOEXEC)
                if reopened >= 0 {
                    var junk = UInt64.max
                    if pwrite(reopened, &junk, 8, Int(rng.next() % 4096)) == 8 { counts.reopenedWritable += 1 }
                    close(reopened)
                }
            default:
                // Now and then read what came back, with any descriptors (closed with the session).
                var pfd = pollfd(fd: control, events: Int16(POLLIN), revents: 0)
                if poll(&pfd, 1, 0) == 1, case .message(let m)? = try? socket.receive() { fds += m.fds.map(\.rawValue) }
            }
            usleep(250)  // some 4,000 attacks a second; a spinning tenant would be a CPU-quota matter, not this test's
        }
        if rng.next() % 2 == 0 { _ = request(.bye, []) }
    }
}
