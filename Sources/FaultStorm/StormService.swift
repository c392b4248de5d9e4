import FaultService
import FaultSys
import Foundation
import Glibc
import VMMClient

/// The `faultring serve` a storm runs through: the running process, the
/// runner's own control connection to it (the observer, which reads STATS),
/// and, when chaos restarts it, how many incarnations came before.
///
/// A restart stops the running process (SIGTERM, or SIGKILL to leave a
/// stale socket file behind) and starts the same command line again on the
/// same socket path; the observer reconnects. Clients reconnect by
/// themselves. What the kernel says about the process is read from
/// `/proc/PID` (descriptors, resident memory), never from the service.
final class StormService {
    let executable: String
    let arguments: [String]
    let socket: String
    /// The running incarnation.
    private(set) var process: StormProcess
    /// The runner's control connection (nil while it is not connected).
    private(set) var observer: VMMClient?
    /// 0 for the first incarnation, then one more per restart.
    private(set) var incarnation = 0

    /// Starts `faultring serve` with `arguments` (the socket path among them).
    init(executable: String, arguments: [String], socket: String) throws(SystemCallError) {
        self.executable = executable
        self.arguments = arguments
        self.socket = socket
        process = try StormProcess(name: "service", executable: executable, arguments: arguments)
    }

    /// Connects the observer once the service listens (10 s at most, while
    /// it runs); its requests wait at most 5 s for a reply.
    func connect() -> Bool {
        for _ in 0..<200 {
            if let client = try? VMMClient(socketPath: socket, devices: [], client: "faultring storm") {
                client.replyTimeoutMilliseconds = 5000
                observer = client
                return true
            }
            process.pump()
            guard process.child.isRunning else { return false }
            usleep(50_000)
        }
        return false
    }

    /// The service's STATS, or nil if it did not answer within 5 s (or is not connected).
    func snapshot() -> ServiceStats? {
        guard let observer, let text = try? observer.stats() else { return nil }
        return try? JSONDecoder().decode(ServiceStats.self, from: Data(text.utf8))
    }

    /// Polls STATS until `condition` holds: `tries` times, `every` µs apart
    /// (10 s by default), while `process` — the service itself, or a process
    /// it waits on — runs.
    func wait(until condition: (ServiceStats) -> Bool, watching process: StormProcess, tries: Int = 200,
              every: UInt32 = 50_000) -> Bool {
        for _ in 0..<tries {
            if let stats = snapshot(), condition(stats) { return true }
            process.pump()
            self.process.pump()
            guard process.child.isRunning else { return false }
            usleep(every)
        }
        return false
    }

    /// Stops the running incarnation — SIGKILL if `kill`, else SIGTERM and
    /// up to `within` seconds for it to exit by itself (status 0) — and
    /// starts and connects to the next. A problem in words, or nil.
    func restart(kill: Bool, within seconds: Double) -> String? {
        observer?.close()
        observer = nil
        process.signal(kill ? SIGKILL : SIGTERM)
        let (code, killed) = process.finish(within: kill ? 5 : seconds)
        var problem: String?
        if killed {
            problem = "service incarnation \(incarnation) did not stop within \(Int(seconds)) s of SIGTERM and was killed"
        } else if code != (kill ? 128 + SIGKILL : 0) {
            problem = "service incarnation \(incarnation) ended with status \(code): \(process.errors)"
        }
        incarnation += 1
        do {
            process = try StormProcess(name: "service", executable: executable, arguments: arguments)
        } catch {
            return [problem, "cannot start service incarnation \(incarnation): \(error)"].compactMap { $0 }.joined(separator: "; ")
        }
        guard connect() else {
            return [problem, "service incarnation \(incarnation) did not accept a connection within 10 s: \(process.errors)"]
                .compactMap { $0 }.joined(separator: "; ")
        }
        return problem
    }

    /// Descriptors the running process holds (`/proc/PID/fd`), or nil if it cannot be read.
    var descriptorCount: Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.pid)/fd"))?.count
    }

    /// The running process's resident set, KiB (`/proc/PID/statm`), or nil.
    var residentKiB: UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(process.pid)/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = UInt64(fields[1]) else { return nil }
        return pages &* UInt64(sysconf(Int32(_SC_PAGESIZE))) / 1024
    }

    /// Waits (5 s at most) until the service has no client but the observer
    /// and no source: everyone else has gone and been cleaned up.
    func waitUntilAlone() -> Bool {
        wait(until: { $0.clients.count <= 1 && $0.sources.allSatisfy(\.removed) }, watching: process, tries: 250, every: 20_000)
    }
}
