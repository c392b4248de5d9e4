import FaultFixtures
import FaultQueue
import FaultService
import FaultSimulation

/// Turns device ticks and STATS snapshots into `StormSample`s.
///
/// A client's queue counters vanish from STATS when it disconnects (a
/// killed consumer), so the last counters seen for every pid are kept and
/// summed: totals only ever rise, and a crashed tenant's losses stay counted.
/// A restarted service starts its books again, so everything is kept per
/// service incarnation too (a reconnected consumer keeps its pid, not its
/// counters), and the service's own totals are the sum of each
/// incarnation's last STATS.
struct StormSampler {
    /// One client of one service incarnation.
    struct Client: Hashable {
        var incarnation: Int
        var pid: UInt32
    }

    let profile: StormProfile
    let tenants: [String]
    var previous: DeviceProgress?
    /// The service incarnation STATS now come from.
    var incarnation = 0
    /// The last queue counters seen per client, and its consumer's name.
    var counters: [Client: QueueCounters] = [:]
    var names: [Client: String] = [:]
    /// Each incarnation's last STATS.
    var lastStats: [Int: ServiceStats] = [:]
    /// Completed answers per consumer at the previous sample.
    var previousCompleted: [String: UInt64] = [:]

    init(profile: StormProfile, tenants: [String]) {
        self.profile = profile
        self.tenants = tenants
    }

    /// Remembers every client's counters from `stats`.
    mutating func note(stats: ServiceStats?, pids: [Int32: String]) {
        guard let stats else { return }
        lastStats[incarnation] = stats
        for client in stats.clients {
            guard let queue = client.queue, let name = pids[Int32(bitPattern: client.pid)] else { continue }
            counters[Client(incarnation: incarnation, pid: client.pid)] = queue
            names[Client(incarnation: incarnation, pid: client.pid)] = name
        }
    }

    /// Each consumer's counters, summed over its incarnations.
    var perConsumer: [String: QueueCounters] {
        var out: [String: QueueCounters] = [:]
        for (pid, c) in counters {
            guard let name = names[pid] else { continue }
            var sum = out[name] ?? QueueCounters()
            sum.recordsLost &+= c.recordsLost
            sum.groupsOverflowed &+= c.groupsOverflowed
            sum.responsesRejected.merge(c.responsesRejected, uniquingKeysWith: &+)
            sum.responsesMatched.merge(c.responsesMatched, uniquingKeysWith: &+)
            out[name] = sum
        }
        return out
    }

    /// Groups completed with each consumer's answers by service incarnation `incarnation`, by consumer name.
    func completed(inIncarnation incarnation: Int) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for (client, c) in counters where client.incarnation == incarnation {
            guard let name = names[client] else { continue }
            out[name, default: 0] &+= c.responsesMatched["completed"] ?? 0
        }
        return out
    }

    /// The sample for `tick`, with `stats` taken just after it.
    mutating func sample(_ tick: DeviceProgress, stats: ServiceStats?) -> StormSample {
        let last = previous
        previous = tick
        let seconds = last.map { Double(tick.atNS &- $0.atNS) / 1e9 } ?? Double(tick.atNS &- tick.startNS) / 1e9
        func rate(_ now: UInt64, _ before: UInt64?) -> Double {
            seconds > 0 ? Double(now &- (before ?? 0)) / seconds : 0
        }
        let consumers = perConsumer
        let totals = totals()  // over every incarnation: running totals never fall back at a restart
        var consumerRates: [String: Double] = [:]
        for name in tenants {
            let completed = consumers[name]?.responsesMatched["completed"] ?? 0
            consumerRates[name] = seconds > 0 ? Double(completed &- min(completed, previousCompleted[name] ?? 0)) / seconds : 0
            previousCompleted[name] = completed
        }
        var rejections: [String: UInt64] = [:]
        for c in consumers.values { rejections.merge(c.refusals, uniquingKeysWith: &+) }
        let interval = tick.interval
        func us(_ ns: UInt64) -> Double? { interval.count == 0 ? nil : Double(ns) / 1000 }
        return StormSample(
            t: Double(tick.atNS &- tick.startNS) / 1e9, phase: tick.phase,
            offeredPerSecond: rate(tick.offered, last?.offered), answeredPerSecond: rate(tick.answered, last?.answered),
            outstanding: tick.pending, backlog: tick.backlog,
            ringOccupancy: stats?.clients.reduce(0) { $0 &+ UInt64($1.ringOccupancy ?? 0) } ?? 0,
            ringCapacity: stats?.clients.reduce(0) { $0 &+ UInt64($1.ringEntries ?? 0) } ?? 0,
            p50Microseconds: us(interval.p50), p99Microseconds: us(interval.p99), p999Microseconds: us(interval.p999),
            lostRecords: consumers.values.reduce(0) { $0 &+ $1.recordsLost },
            overflowedGroups: totals.overflowedGroups, timeouts: totals.timeouts,
            rejections: rejections, consumerAnsweredPerSecond: consumerRates)
    }

    /// The service's totals: every incarnation's last STATS, and every client seen.
    func totals() -> StormTotals {
        var t = StormTotals()
        let consumers = perConsumer
        t.lostRecords = consumers.values.reduce(0) { $0 &+ $1.recordsLost }
        for c in consumers.values { t.rejections.merge(c.refusals, uniquingKeysWith: &+) }
        for last in lastStats.values {
            t.autoResponses.merge(last.pageRequests.autoResponses.filter { $0.value > 0 }, uniquingKeysWith: &+)
            t.eventsDelivered &+= last.sources.reduce(0) { $0 &+ $1.books.eventsDelivered }
            t.eventsLost &+= last.sources.reduce(0) { $0 &+ $1.books.eventsLost }
        }
        t.overflowedGroups = t.autoResponses["overflow"] ?? 0
        t.timeouts = t.autoResponses["timeout"] ?? 0
        return t
    }

    /// Who answered each device's groups by the service's books, summed over
    /// the incarnations (an incarnation killed between two samples loses
    /// what it answered since its last STATS: exact only without restarts).
    var answeredBy: [UInt32: [String: UInt64]] {
        var out: [UInt32: [String: UInt64]] = [:]
        for last in lastStats.values {
            for device in last.devices { out[device.id, default: [:]].merge(device.answersBySource, uniquingKeysWith: &+) }
        }
        return out
    }
}
