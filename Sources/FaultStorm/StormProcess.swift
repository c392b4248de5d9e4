import FaultSys
import Foundation
import Glibc

/// One process a storm started: its name in the report, the child, and
/// what it said on stderr (the last few KiB, so a failure can be quoted).
///
/// Both pipes are drained whenever the runner looks (`pump`), so a chatty
/// child never blocks on a full pipe; a child still running when its owner
/// lets go is killed and reaped (`ChildProcess`).
final class StormProcess {
    let name: String
    let arguments: [String]
    let child: ChildProcess
    /// Stdout not yet split into lines.
    var pendingOutput: [UInt8] = []
    /// Whole stdout lines not yet taken.
    var lines: [String] = []
    /// Whether stdout reached end of file.
    var outputClosed = false
    var errorTail: [UInt8] = []
    /// Whether the runner stopped it with SIGSTOP (it must be continued before it can be stopped for good).
    var stopped = false

    init(name: String, executable: String, arguments: [String]) throws(SystemCallError) {
        self.name = name
        self.arguments = arguments
        child = try ChildProcess.spawn(executable, arguments, stdout: .capture, stderr: .capture)
    }

    var pid: Int32 { child.pid }

    /// Reads what both pipes hold now, without blocking.
    func pump() {
        if !outputClosed {
            if let bytes = child.readAvailableOutput() {
                pendingOutput += bytes
                while let newline = pendingOutput.firstIndex(of: UInt8(ascii: "\n")) {
                    lines.append(String(decoding: pendingOutput[..<newline], as: UTF8.self))
                    pendingOutput.removeSubrange(...newline)
                }
            } else {
                outputClosed = true
                if !pendingOutput.isEmpty { lines.append(String(decoding: pendingOutput, as: UTF8.self)) }
                pendingOutput = []
            }
        }
        if let bytes = child.readAvailableErrors() {
            errorTail += bytes
            if errorTail.count > 4096 { errorTail.removeFirst(errorTail.count - 4096) }
        }
    }

    /// Every whole line read so far, taken.
    func takeLines() -> [String] {
        pump()
        defer { lines = [] }
        return lines
    }

    /// Its stderr's last lines, trimmed, for a report.
    var errors: String {
        String(decoding: errorTail, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Sends `signo` (continuing a stopped process first, so it can act on it).
    func signal(_ signo: Int32) {
        if stopped && signo != SIGSTOP {
            child.signal(SIGCONT)
            stopped = false
        }
        child.signal(signo)
        if signo == SIGSTOP { stopped = true }
    }

    /// Waits up to `seconds` for it to exit, draining its pipes; then SIGKILL.
    /// Returns its exit status (128 + signal if killed) and whether it had to be killed.
    func finish(within seconds: Double) -> (status: Int32, killed: Bool) {
        let deadline = Sys.monotonicNS &+ UInt64(seconds * 1e9)
        while child.isRunning && Sys.monotonicNS < deadline {
            pump()
            usleep(10_000)
        }
        let killed = child.isRunning
        if killed { child.signal(SIGKILL) }
        let status = child.wait()
        while !outputClosed { pump() }
        return (status, killed)
    }

    /// SIGTERM (unless `signal` is false), then waits; a process that had to
    /// be killed, or ended with a status not in `acceptable`, is a problem
    /// of the run, appended to `problems` in words naming it as `name`.
    func stop(as name: String, within seconds: Double, signal: Bool = true, acceptable: Set<Int32> = [0],
              into problems: inout [String]) {
        if signal { self.signal(SIGTERM) }
        let (code, killed) = finish(within: seconds)
        if killed {
            problems.append("the \(name) did not stop within \(Int(seconds)) s of SIGTERM and was killed")
        } else if !acceptable.contains(code) {
            problems.append("the \(name) ended with status \(code)\(errors.isEmpty ? "" : ": \(errors)")")
        }
    }
}
