import ArgumentParser
import FaultControl
import FaultSys
import Foundation
import Glibc
import IOMMUFormats

/// The path a VMM has without faultring: it reads a device's (or the
/// kernel's) fault-queue records itself and writes each batch's answers
/// back, a system call per batch. The baseline of the path benchmark.
struct DirectVMMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "direct-vmm",
        abstract: "Read fault-queue records straight from a device socket and answer them (the benchmark's baseline).")

    /// What the direct VMM did.
    struct Summary: Codable {
        var records: UInt64 = 0
        var groups: UInt64 = 0
        var reads: UInt64 = 0
        var writes: UInt64 = 0
        var seconds: Double = 0
        var cpuSeconds: Double = 0
    }

    @Option(help: "The device's listening socket (faultring device --listen PATH).") var connect: String
    @Flag(help: "Spin on the socket (MSG_DONTWAIT) instead of sleeping in poll().") var spin = false
    @Option(help: "Stop after this many seconds (0: when the device hangs up).") var seconds: Double = 0

    func run() throws {
        var socket: ControlSocket?
        for _ in 0..<3000 where socket == nil {  // 30 s: the device may still be starting
            socket = try? ControlSocket.connect(path: connect)
            if socket == nil { usleep(10_000) }
        }
        guard let socket else { throw ValidationError("cannot connect to \(connect)") }
        let fd = socket.fd.rawValue
        var summary = Summary()
        let start = Sys.monotonicNS
        let end = seconds > 0 ? start &+ UInt64(seconds * 1e9) : .max
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var answers: [UInt8] = []
        loop: while Sys.monotonicNS < end {
            if !spin {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&pfd, 1, 100)
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n == 0 { break loop }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                break loop
            }
            summary.reads += 1
            answers.removeAll(keepingCapacity: true)
            buffer.withUnsafeBytes { b in
                for offset in stride(from: 0, to: n - n % HWPTPageFault.size, by: HWPTPageFault.size) {
                    guard let record = try? HWPTPageFault(bytes: UnsafeRawBufferPointer(rebasing: b[offset...])) else { continue }
                    summary.records += 1
                    if record.isLastPage {
                        summary.groups += 1
                        answers += HWPTPageResponse(cookie: record.cookie, code: .success).bytes
                    }
                }
            }
            if !answers.isEmpty {
                _ = answers.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                summary.writes += 1
            }
        }
        summary.seconds = Double(Sys.monotonicNS &- start) / 1e9
        summary.cpuSeconds = Sys.cpuSeconds
        try? socket.fd.close()
        print(String(decoding: try JSONEncoder().encode(summary), as: UTF8.self))
    }
}
