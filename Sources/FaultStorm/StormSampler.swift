import FaultFixtures
import FaultQueue
import FaultService
import FaultSimulation

/// Turns device ticks and STATS snapshots into `StormSample`s.
///
/// A client's queue counters vanish from STATS when it disconnects (a
/// killed consumer), so the last counters seen for every pid are kept and
/// summed: totals only ever rise, and a crashed tenant's losses stay counted.
struct StormSampler {
    let profile: StormProfile
    let tenants: [String]
    var previous: DeviceProgress?
    /// The last queue counters seen per client pid, and its consumer's name.
    var counters: [UInt32: QueueCounters] = [:]
    var names: [UInt32: String] = [:]
    /// Completed answers per consumer at the previous sample.
    var previousCompleted: [String: UInt64] = [:]

    init(profile: StormProfile, tenants: [String]) {
        self.profile = profile
        self.tenants = tenants
    }

    /// Remembers every client's counters from `stats`.
    mutating func note(stats: ServiceStats?, pids: [Int32: String]) {
        guard let stats else { return }
        for client in stats.clients {
            guard let queue = client.queue, let name = pids[Int32(bitPattern: client.pid)] else { continue }
            counters[client.pid] = queue
            names[client.pid] = name
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

    /// Slot refusals and match refusals (everything but `completed`) of `c`, by reason.
    static func refusals(_ c: QueueCounters) -> [String: UInt64] {
        var out = c.responsesRejected
        for (reason, n) in c.responsesMatched where reason != "completed" { out[reason, default: 0] &+= n }
        return out.filter { $0.value > 0 }
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
        var consumerRates: [String: Double] = [:]
        for name in tenants {
            let completed = consumers[name]?.responsesMatched["completed"] ?? 0
            consumerRates[name] = seconds > 0 ? Double(completed &- min(completed, previousCompleted[name] ?? 0)) / seconds : 0
            previousCompleted[name] = completed
        }
        var rejections: [String: UInt64] = [:]
        for c in consumers.values { rejections.merge(Self.refusals(c), uniquingKeysWith: &+) }
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
            overflowedGroups: stats?.pageRequests.autoResponses["overflow"] ?? 0,
            timeouts: stats?.pageRequests.autoResponses["timeout"] ?? 0,
            rejections: rejections, consumerAnsweredPerSecond: consumerRates)
    }

    /// The service's totals from its final STATS and every client seen.
    func totals(_ final: ServiceStats?) -> StormTotals {
        var t = StormTotals()
        let consumers = perConsumer
        t.lostRecords = consumers.values.reduce(0) { $0 &+ $1.recordsLost }
        for c in consumers.values { t.rejections.merge(Self.refusals(c), uniquingKeysWith: &+) }
        guard let final else { return t }
        t.autoResponses = final.pageRequests.autoResponses.filter { $0.value > 0 }
        t.overflowedGroups = final.pageRequests.autoResponses["overflow"] ?? 0
        t.timeouts = final.pageRequests.autoResponses["timeout"] ?? 0
        t.eventsDelivered = final.sources.reduce(0) { $0 &+ $1.books.eventsDelivered }
        t.eventsLost = final.sources.reduce(0) { $0 &+ $1.books.eventsLost }
        return t
    }
}
