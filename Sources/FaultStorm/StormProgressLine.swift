import FaultSys
import Foundation

/// Live progress of a storm: on a terminal, one status line redrawn in
/// place at every sample; otherwise a plain line once a second, so a log
/// file or CI output gets a readable record rather than control codes.
public struct StormProgressLine {
    let terminal: Bool
    let handle: FileHandle
    var lastPlainNS: UInt64 = 0
    var drawn = false

    /// Progress on stdout (or stderr), redrawn in place when `terminal`.
    public init(terminal: Bool, toStandardError: Bool) {
        self.terminal = terminal
        handle = toStandardError ? .standardError : .standardOutput
    }

    /// The status line for `status`: phase, time left, offered against
    /// answered rate, p99 so far, outstanding groups (+ arrivals waiting for
    /// a PRG index), LOST records, overflowed groups, timeouts and refused answers so far.
    public static func line(_ s: StormRunner.Status, run: String) -> String {
        let sample = s.sample
        let p99 = s.p99SoFarMicroseconds >= 1000
            ? String(format: "%.1f ms", s.p99SoFarMicroseconds / 1000) : String(format: "%.0f µs", s.p99SoFarMicroseconds)
        return String(format: "[%@] %@ %.1fs left | %.0f/s offered, %.0f/s answered | p99 %@ | out %d+%d | "
                      + "lost %llu ovf %llu t/o %llu ref %llu",
                      run, s.phaseName, s.secondsLeft, sample.offeredPerSecond, sample.answeredPerSecond, p99,
                      sample.outstanding, sample.backlog, sample.lostRecords, sample.overflowedGroups, sample.timeouts,
                      sample.rejected)
    }

    /// Shows `status` (on a terminal at once; otherwise at most once a second).
    public mutating func show(_ status: StormRunner.Status, run: String) {
        let text = Self.line(status, run: run)
        if terminal {
            // Clipped to the terminal's width: a line that wraps cannot be redrawn in place.
            let shown = Sys.terminalColumns(handle.fileDescriptor).map { String(text.prefix(max(1, $0 - 1))) } ?? text
            handle.write(Data(("\r\u{1b}[2K" + shown).utf8))
            drawn = true
            return
        }
        let now = DispatchTime.now().uptimeNanoseconds
        guard now &- lastPlainNS >= 1_000_000_000 else { return }
        lastPlainNS = now
        handle.write(Data((text + "\n").utf8))
    }

    /// Ends a redrawn line, so what follows starts on a line of its own.
    public mutating func end() {
        if drawn { handle.write(Data("\n".utf8)) }
        drawn = false
        lastPlainNS = 0
    }
}
