import FaultControl
import FaultService
import FaultSys
import Foundation
import Testing
import VMMClient

/// A `faultring` child process (service or consumer), killed on deinit if
/// still running (`ChildProcess` does that).
final class Child {
    let process: ChildProcess
    let capturesErrors: Bool

    /// `.build/<triple>/debug/faultring`, next to the test bundle.
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("faultring").path
    }

    /// `stderr: true` captures the child's log (returned by `finish` instead of stdout).
    init(_ arguments: [String], stderr: Bool = false, executable: String = Child.binary) throws {
        capturesErrors = stderr
        process = try ChildProcess.spawn(executable, arguments, stdout: stderr ? .discard : .capture,
                                         stderr: stderr ? .capture : .discard)
    }

    var pid: Int32 { process.pid }

    /// Whether it has not exited yet.
    var isRunning: Bool { process.isRunning }

    func signal(_ signo: Int32) { process.signal(signo) }

    /// Waits for exit and returns (status, stdout).
    func finish() -> (Int32, String) {
        let output = capturesErrors ? process.readErrors() : process.readOutput()
        return (process.wait(), output)
    }
}

/// A fresh socket path per test.
func socketPath(_ name: String) -> String { "/tmp/faultring-test-\(getpid())-\(name).sock" }

/// Starts `faultring serve` and waits (bounded) until it accepts connections.
///
/// A bare connect is the probe, not a HELLO: a service that refuses this
/// uid closes the connection right after its refusal, and a HELLO sent into
/// that race fails with EPIPE as often as it reads the refusal.
func startService(_ path: String, _ extra: [String]) throws -> Child {
    unlink(path)
    let child = try Child(["serve", "--socket-path", path, "--log-level", "error"] + extra)
    for _ in 0..<200 {
        if let probe = try? ControlSocket.connect(path: path) {
            try? probe.fd.close()
            return child
        }
        usleep(25_000)
    }
    Issue.record("service did not start on \(path)")
    return child
}

/// Attaches `devices` once another process (a `faultring device`) has
/// announced them: up to 200 tries, 20 ms apart (a bound, not a timing
/// assertion); nil if they never became attachable.
func attachWhenReady(_ path: String, devices: [UInt32]) -> VMMClient? {
    for _ in 0..<200 {
        if let client = try? VMMClient(socketPath: path, devices: devices) { return client }
        usleep(20_000)
    }
    return nil
}

/// The service's statistics, read through a throwaway client.
func serviceStats(_ path: String) throws -> ServiceStats {
    let client = try VMMClient(socketPath: path, devices: [], client: "test stats")
    defer { client.close() }
    return try JSONDecoder().decode(ServiceStats.self, from: Data(client.stats().utf8))
}

/// Polls `condition` on fresh statistics up to `tries` × 50 ms (a bound, not a timing assertion).
func eventually(_ path: String, tries: Int = 200, _ condition: (ServiceStats) -> Bool) throws -> ServiceStats {
    var stats = try serviceStats(path)
    for _ in 0..<tries where !condition(stats) {
        usleep(50_000)
        stats = try serviceStats(path)
    }
    return stats
}
