import FaultService
import FaultABI
import Foundation
import Glibc
import Testing
import VMMClient

/// The service blocks in the kernel when there is nothing to do: no tick
/// spins it. Measured as CPU time the process used (utime + stime from
/// /proc), never as wall-clock time, with a wide margin: 10 % of one core.
@Suite struct IdleTests {
    /// CPU seconds (user + system) `pid` has used so far.
    static func cpuSeconds(_ pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        let ticks = Double(fields[11])! + Double(fields[12])!
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    @Test(arguments: ["io_uring", "poll"])
    func anIdleServiceUsesAlmostNoCPU(backend: String) throws {
        let path = socketPath("idle-\(backend)")
        let service = try startService(path, ["--devices", "4", "--backend", backend])
        // A client that is connected but has attached nothing: still nothing to do.
        let client = try VMMClient(socketPath: path, devices: [])
        let before = try Self.cpuSeconds(service.pid)
        usleep(2_000_000)
        let used = try Self.cpuSeconds(service.pid) - before
        #expect(used < 0.2, "an idle service used \(used) s of CPU in 2 s (\(backend))")
        client.close()
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
    }

    /// `--poll-us`: a service that spins (here, on groups due every few µs)
    /// still reads its control connections, so STATS and BYE are answered.
    @Test func aSpinningServiceStillServesItsControlSocket() throws {
        let path = socketPath("spinning")
        let service = try startService(path, ["--devices", "2", "--rate", "200000", "--poll-us", "200"])
        let client = try VMMClient(socketPath: path, devices: [1, 2])
        var answered = 0
        for _ in 0..<1000 where answered < 500 {
            _ = client.wait(timeoutMilliseconds: 10)
            try client.consume { record in
                guard case .event(.pageRequest(let r), _) = record, r.isLastPage else { return nil }
                answered += 1
                return PageResponse(code: .success, cookie: r.cookie, pasid: r.needsPASID ? r.pasid : nil, prgi: r.prgi)
            }
        }
        #expect(answered >= 500)
        let stats = try serviceStats(path)  // a control round trip while the service spins
        #expect(stats.pageRequests.completedByConsumer > 0)
        client.close()
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
    }
}
