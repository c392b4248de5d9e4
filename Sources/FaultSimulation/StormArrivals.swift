import DequeModule
import Histogram

/// A storm's arrival schedule as simulated devices raise it, wherever they
/// run (`RemoteDevices` in a device process, `SimulatedDevices` inside the
/// service): arrivals handed to devices round-robin as they fall due, each
/// device's backlog of arrivals still waiting for a PRG index or
/// allocation, and the latency books.
///
/// Open loop: an arrival keeps its scheduled time while it waits, so a wait
/// is latency, not a skipped sample. Latency is booked per phase, per
/// tenant (the devices one consumer process attaches), overall, and for
/// the interval since the last progress tick.
public final class StormArrivals {
    /// The phases, for reports.
    public let phases: [ArrivalPhase]
    var schedule: ArrivalSchedule
    var upcoming: (atNS: UInt64, phase: Int)?
    var backlog: [Deque<(atNS: UInt64, phase: Int)>]
    var nextDevice = 0
    var phaseHistograms: [Histogram<UInt64>]
    var tenants: [RemoteDevices.Tenant]
    var tenantHistograms: [Histogram<UInt64>]
    var tenantOfDevice: [Int]
    var overall = NamedLatency.emptyHistogram()
    var interval = NamedLatency.emptyHistogram()
    /// When the schedule started (its arrival times count from here), monotonic ns; nil until `start`.
    public private(set) var startNS: UInt64?
    /// Arrivals handed to devices so far.
    public private(set) var offered: UInt64 = 0
    /// Groups whose answer reached their device so far.
    public private(set) var answered: UInt64 = 0

    /// The schedule, for devices with these ids (in the order the caller
    /// indexes them), keeping latency per tenant too.
    public init(_ schedule: ArrivalSchedule, deviceIDs: [UInt32], tenants: [RemoteDevices.Tenant] = []) {
        phases = schedule.phases
        self.schedule = schedule
        upcoming = self.schedule.next()
        backlog = Array(repeating: Deque(), count: deviceIDs.count)
        phaseHistograms = schedule.phases.map { _ in NamedLatency.emptyHistogram() }
        self.tenants = tenants
        tenantHistograms = tenants.map { _ in NamedLatency.emptyHistogram() }
        tenantOfDevice = deviceIDs.map { id in tenants.firstIndex { $0.devices.contains(id) } ?? -1 }
    }

    /// Starts the schedule's clock at `now` (once; later calls do nothing).
    public func start(at now: UInt64) {
        if startNS == nil { startNS = now }
    }

    /// Hands every arrival due by `now` to its device (arrival n to device n mod count).
    public func admit(now: UInt64) {
        guard let start = startNS, !backlog.isEmpty else { return }
        while let arrival = upcoming, start &+ arrival.atNS <= now {
            backlog[nextDevice].append(arrival)
            nextDevice = (nextDevice + 1) % backlog.count
            offered += 1
            upcoming = schedule.next()
        }
    }

    /// Device `d`'s oldest waiting arrival: its absolute scheduled time and phase.
    public func first(of d: Int) -> (atNS: UInt64, phase: Int)? {
        guard let start = startNS, let a = backlog[d].first else { return nil }
        return (start &+ a.atNS, a.phase)
    }

    /// Device `d` raised its oldest waiting arrival.
    public func raisedFirst(of d: Int) { backlog[d].removeFirst() }

    /// When the next arrival falls due, monotonic ns (nil: none left, or not started).
    public var nextArrivalNS: UInt64? {
        guard let start = startNS, let upcoming else { return nil }
        return start &+ upcoming.atNS
    }

    /// Whether every arrival has been offered and raised.
    public var exhausted: Bool { startNS != nil && upcoming == nil && backlog.allSatisfy(\.isEmpty) }

    /// Arrivals waiting on their devices.
    public var waiting: Int { backlog.reduce(0) { $0 + $1.count } }

    /// A group of device `d`, scheduled at `scheduledNS` in `phase`, was answered at `now`.
    public func answered(scheduledNS: UInt64, phase: Int, device d: Int, now: UInt64) {
        let latency = Swift.max(1, now > scheduledNS ? now - scheduledNS : 0)
        answered += 1
        _ = phaseHistograms[phase].record(latency)
        _ = overall.record(latency)
        _ = interval.record(latency)
        if tenantOfDevice[d] >= 0 { _ = tenantHistograms[tenantOfDevice[d]].record(latency) }
    }

    /// A progress tick at `now`: the counts so far and the latency since the
    /// last tick (whose histogram starts again).
    public func progress(at now: UInt64, raised: UInt64, pending: Int) -> DeviceProgress {
        defer { interval.reset() }
        let start = startNS ?? now
        return DeviceProgress(atNS: now, startNS: start, phase: schedule.phaseIndex(atNS: now &- start), offered: offered,
                              raised: raised, answered: answered, pending: pending, backlog: waiting,
                              interval: LatencySummary(interval),
                              p99SoFar: overall.totalCount == 0 ? 0 : overall.valueAtPercentile(99))
    }

    /// The latency books into `report`: per phase, overall, per tenant; and the arrivals offered.
    public func finish(into report: inout RemoteDevices.Report) {
        report.offered = offered
        report.phases = zip(phases, phaseHistograms).map { NamedLatency(name: $0.name, histogram: $1) }
        report.overall = NamedLatency(name: "all", histogram: overall)
        if !tenants.isEmpty {
            report.tenants = zip(tenants, tenantHistograms).map { NamedLatency(name: $0.name, histogram: $1) }
        }
    }
}
