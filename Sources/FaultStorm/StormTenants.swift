import FaultFixtures
import FaultQueue
import FaultSimulation
import Foundation
import Glibc
import VMMClient

/// A storm's consumer processes: started from the profile, their
/// behaviours played on the schedule's clock, stopped at the end with their
/// summaries read.
///
/// What each behaviour does to a `faultring consume` process:
/// `slow` passes the delay distribution (`--policy delay --delay-us …`);
/// `wrong` passes `--wrong-every N` (a wrong-PASID answer before the right
/// one); `stalled` is SIGSTOP at its time and SIGCONT after its window (the
/// ring fills, groups overflow and time out, as with a descheduled VMM);
/// `crash` is SIGKILL at its time and a new process with `--reconnect`
/// after its restart delay, attaching the same devices; `scribble` is a
/// `faultring scribble` process instead of a consumer. With `reconnecting`
/// (a storm with chaos) every consumer runs with `--reconnect`.
struct StormTenants {
    struct Tenant {
        var name: String
        var consumer: StormProfile.Consumer
        var devices: [UInt32]
        /// Incarnations, oldest first; the last is the live one.
        var processes: [StormProcess] = []
        var stalled = false
        var resumed = false
        var killed = false
        var restarted = false
    }

    var list: [Tenant] = []
    let executable: String
    let socket: String
    let reconnecting: Bool
    let seed: UInt64

    init(profile: StormProfile, executable: String, socket: String) {
        self.executable = executable
        self.socket = socket
        reconnecting = profile.chaos != nil
        seed = profile.seed
        var index = 0
        for consumer in profile.consumers {
            for k in 1...max(1, consumer.count) {
                list.append(Tenant(name: "\(consumer.name)-\(k)", consumer: consumer,
                                   devices: profile.devices(ofConsumerProcess: index)))
                index += 1
            }
        }
    }

    /// The consumer processes' names, in profile order.
    var names: [String] { list.map(\.name) }

    /// Every incarnation's pid, with its consumer's name.
    var pidNames: [Int32: String] {
        Dictionary(list.flatMap { t in t.processes.map { ($0.pid, t.name) } }, uniquingKeysWith: { a, _ in a })
    }

    /// Starts one process per consumer; a problem in words if one would not start.
    mutating func startAll() -> String? {
        for i in list.indices {
            if let problem = start(i) { return problem }
        }
        return nil
    }

    mutating func start(_ i: Int) -> String? {
        let t = list[i]
        var arguments = ["consume", "--socket-path", socket, "--devices"] + t.devices.map(String.init)
            + ["--abi", String(t.consumer.abi), "--quiet", "--json"] + (reconnecting ? ["--reconnect"] : [])
        switch t.consumer.behaviour {
        case .scribble:
            arguments = ["scribble", "--socket-path", socket, "--devices"] + t.devices.map(String.init)
                + ["--seed", String(seed &+ UInt64(i) &+ UInt64(t.processes.count) << 32), "--json"]
        case .fast, .stalled: break
        case .slow(let delay):
            arguments += ["--policy", "delay"]
            switch delay {
            case .fixed(let us): arguments += ["--delay-us", String(UInt64(us.rounded()))]
            case .uniform(let low, let high):
                arguments += ["--delay-us", String(UInt64(low.rounded())), "--delay-max-us", String(UInt64(high.rounded()))]
            case .exponential(let mean): arguments += ["--delay-us", String(UInt64(mean.rounded())), "--delay-exponential"]
            }
        case .wrong(let share):
            // Clamped before the conversion: a share of 1e-300 means "never", not a trap.
            arguments += ["--wrong-every", String(Int(min(1 / share, 1e9).rounded()))]
        case .crash:
            if !reconnecting { arguments += ["--reconnect"] }
        }
        do {
            list[i].processes.append(try StormProcess(name: t.name, executable: executable, arguments: arguments))
            return nil
        } catch {
            return "cannot start consumer \(t.name): \(error)"
        }
    }

    /// Plays every behaviour due by `atNS` into the schedule; `beforeKill`
    /// runs just before a SIGKILL (to read what dies with the process).
    mutating func play(atNS now: UInt64, into run: inout StormRun, beforeKill: () -> Void) {
        for i in list.indices {
            list[i].processes.last?.pump()
            switch list[i].consumer.behaviour {
            case .stalled(let at, let length):
                if !list[i].stalled && now >= at {
                    list[i].processes.last?.signal(SIGSTOP)
                    list[i].stalled = true
                }
                if list[i].stalled && !list[i].resumed && now >= at &+ length {
                    list[i].processes.last?.signal(SIGCONT)
                    list[i].processes.last?.stopped = false
                    list[i].resumed = true
                }
            case .crash(let at, let restartAfter):
                if !list[i].killed && now >= at {
                    beforeKill()
                    list[i].processes.last?.signal(SIGKILL)
                    list[i].killed = true
                }
                if list[i].killed && !list[i].restarted && now >= at &+ restartAfter {
                    list[i].restarted = true
                    if let problem = start(i) { run.problems.append(problem) }
                }
            default: break
            }
        }
    }

    /// SIGKILLs consumer `i`'s live process and starts the next at once
    /// (chaos); a problem in words if it would not start.
    mutating func killAndRestart(_ i: Int) -> String? {
        list[i].processes.last?.signal(SIGKILL)
        return start(i)
    }

    /// The scribbling tenants' counts (`faultring scribble --json`), summed over them.
    var scribbleCounts: [String: UInt64] {
        var out: [String: UInt64] = [:]
        for t in list where t.consumer.behaviour == .scribble {
            for process in t.processes {
                guard let line = process.lines.last,
                      let counts = try? JSONDecoder().decode([String: UInt64].self, from: Data(line.utf8)) else { continue }
                out.merge(counts, uniquingKeysWith: &+)
            }
        }
        return out
    }

    /// Stops every live consumer (SIGTERM: it reports and exits) and reads
    /// the summaries; a consumer that ended otherwise than planned is a problem.
    mutating func stopAll(into run: inout StormRun) {
        for t in list {
            for (k, process) in t.processes.enumerated() {
                let plannedKill = k < t.processes.count - 1 || (t.killed && !t.restarted)
                if !plannedKill { process.signal(SIGTERM) }
                let (code, killed) = process.finish(within: 10)
                if killed {
                    run.problems.append("consumer \(t.name) (pid \(process.pid)) did not stop within 10 s of SIGTERM")
                } else if plannedKill ? code != 128 + SIGKILL : code != 0 {
                    run.problems.append("consumer \(t.name) (pid \(process.pid)) ended with status \(code)"
                                        + (process.errors.isEmpty ? "" : ": \(process.errors)"))
                }
            }
        }
    }

    /// One row per consumer: its summaries (every incarnation that lived to
    /// report), what the service matched for it (`matched`, by name), and its latency.
    func rows(matched: [String: QueueCounters], latency: [NamedLatency]) -> [StormConsumer] {
        list.map { t in
            var row = StormConsumer(name: t.name, behaviour: StormProfile.describe(t.consumer.behaviour), abi: t.consumer.abi,
                                    devices: t.devices)
            for process in t.processes {
                row.pids.append(process.pid)
                row.exitStatuses.append(process.child.wait())
                guard let line = process.lines.last,
                      let summary = try? JSONDecoder().decode(ReferenceVMM.Summary.self, from: Data(line.utf8)) else { continue }
                row.records += summary.records
                row.groups += summary.groups
                row.answered.merge(summary.answered, uniquingKeysWith: +)
                row.lostReported += summary.lostReported
            }
            if let counters = matched[t.name] {
                row.completed = counters.responsesMatched["completed"] ?? 0
                row.rejected = counters.refusals
            }
            row.latency = latency.first { $0.name == t.name }?.latency
            return row
        }
    }
}
