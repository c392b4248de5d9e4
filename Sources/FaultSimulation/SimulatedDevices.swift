import FaultABI
import FaultPipeline
import FaultSys
import PageRequests

/// How a set of simulated devices raises groups.
public struct SimulationSchedule: Sendable, Hashable {
    /// Groups each attached device raises per second, on the pipeline's
    /// clock (a timer drives the service); nil: `groupsPerStep` at every step
    /// (the loopback's virtual time).
    public var rate: Double?
    /// Groups each attached device tries to raise per step; with a `rate`,
    /// the most a device catches up in one step after the loop was late.
    public var groupsPerStep = 4
    /// Stop raising after this many groups per device (nil: never).
    public var groupsPerDevice: UInt64?
    /// Stop raising after this many groups in all (nil: never).
    public var totalGroups: UInt64?
    /// How requests and answers travel: generic structures, or raw SMMUv3 /
    /// VT-d records through the codecs.
    public var wire = HardwareWire.direct
    /// With a rate: keep the schedule however far behind the devices fall
    /// (open loop, for latency measurement: nothing is skipped). Off: a
    /// device that fell behind catches up one burst at most.
    public var openLoop = false
    /// Seed of the devices' choices (sizes, PASIDs, private data).
    public var seed: UInt64 = 0x5EED

    /// The default schedule: 4 groups per device per step, no limit, direct wire.
    public init() {}
}

/// Simulated PRI devices as a fault source: at each step, every attached
/// device raises up to `groupsPerStep` groups (within its PRG indices and
/// allocation), and each group's answer is checked in the device's ledger.
///
/// Deterministic for a seed: devices raise in attach order, drawing from one
/// generator.
public final class SimulatedDevices: FaultSource {
    /// The devices, in the order they were configured.
    public var simulated: [SimulatedPRIDevice] { fleet.units }
    /// The devices and their books, in one stored value (`SimulatedFleet`
    /// says why).
    ///
    /// Not checked for exclusive access at run time: one thread drives the
    /// devices, and no fleet method calls out of the fleet (the intake is
    /// called between fleet accesses, never inside one).
    @exclusivity(unchecked) var fleet: SimulatedFleet
    /// The schedule in force.
    public let schedule: SimulationSchedule
    /// Groups raised so far, over all devices.
    public var raised: UInt64 { fleet.raised }
    /// The first few records the codecs could not carry, in words.
    public private(set) var wireErrors: [String] = []
    var stopped = false
    /// Index into `simulated` by device id (-1: not ours).
    let index: [Int]
    /// The requests of the burst being delivered, reused between bursts;
    /// lent to the intake as a buffer (`FaultIntake.receive(batch:now:)`).
    @exclusivity(unchecked) var requests = PlainTable<PageRequest>()  // filled and handed over by one method at a time
    /// A storm raised inside the service (`Storm`), or nil.
    let storm: Storm?

    /// A storm's schedule raised by devices inside the service: arrivals
    /// instead of a rate, latency from each group's scheduled time to the
    /// moment its answer reaches the device, ticks and a final report.
    public final class Storm {
        /// The arrivals and latency books.
        public let arrivals: StormArrivals
        /// Called at every tick, and once more at the end.
        let progress: (DeviceProgress) -> Void
        /// Called once, when every arrival has been raised and answered (or 5 s after the last was raised).
        let finished: (RemoteDevices.Report) -> Void
        let tickNS: UInt64
        /// An unrecoverable fault every N groups raised (0: none), the profile's unrecoverable share.
        let eventEvery: Int
        var eventsSent: UInt64 = 0
        var nextTick: UInt64 = 0
        /// Outstanding groups by (device index, PRGI): their scheduled time and phase.
        var pending: [Int: (scheduled: UInt64, phase: Int)] = [:]
        var raisedAll: UInt64?
        var reported = false

        /// A storm on `arrivals`, ticking every `tickNS` (0: never), with an
        /// unrecoverable fault every `eventEvery` groups (0: none).
        public init(_ arrivals: StormArrivals, tickNS: UInt64, eventEvery: Int = 0,
                    progress: @escaping (DeviceProgress) -> Void, finished: @escaping (RemoteDevices.Report) -> Void) {
            self.arrivals = arrivals
            self.tickNS = tickNS
            self.eventEvery = eventEvery
            self.progress = progress
            self.finished = finished
        }

        static func key(_ device: Int, _ prgi: UInt32) -> Int { PRILimits.key(function: device, prgi: prgi) }
    }

    /// Devices built from `configs`, raising on `schedule`.
    public init(_ configs: [SimulatedDeviceConfig], schedule: SimulationSchedule = SimulationSchedule(),
                storm: Storm? = nil) {
        self.storm = storm
        fleet = SimulatedFleet(configs, seed: schedule.seed)
        self.schedule = schedule
        var index: [Int] = []
        for (i, config) in configs.enumerated() {
            let id = Int(config.deviceID)
            while index.count <= id { index.append(-1) }
            index[id] = i
        }
        self.index = index
    }

    /// The configured devices and their allocations.
    public var devices: [SourceDevice] {
        fleet.units.map { SourceDevice(id: $0.config.deviceID, allocation: $0.config.allocation) }
    }

    /// Where device `id` is in `simulated`, if it is one of these.
    func position(of id: UInt32) -> Int? { SimulatedFleet.position(of: id, in: index) }

    /// The device with `id`, if it is one of these.
    public func device(_ id: UInt32) -> SimulatedPRIDevice? {
        position(of: id).map { fleet.units[$0] }
    }

    /// Groups issued and not answered yet, over all devices.
    public var outstanding: Int { fleet.units.reduce(0) { $0 + $1.ledger.outstanding } }

    /// Whether every schedule limit is reached (or raising was stopped).
    public var doneRaising: Bool {
        stopped || schedule.totalGroups.map { fleet.raised >= $0 } ?? false
    }

    /// Each attached device raises up to `groupsPerStep` groups (with a
    /// storm: what its arrivals ask, once every device is attached).
    public func raise(now: UInt64, into intake: any FaultIntake) {
        requests.makeUnique()  // nothing copies it; checked once a step, not per append
        if let storm {
            raiseStorm(storm, now: now, into: intake)
            return
        }
        guard !doneRaising else { return }
        // On the direct wire, every device's burst goes in one batch: the
        // tracker then publishes each queue's groups with one index store.
        let oneBatch = schedule.wire == .direct
        requests.removeAll()
        for id in intake.attachedDevices {
            guard let d = position(of: id) else { continue }
            fleet.burst(d, now: now, schedule: schedule, into: &requests)
            // Delivered after the burst is built: the tracker may answer a group at once.
            if !oneBatch {
                deliverRequests(of: d, into: intake, now: now)
                requests.removeAll()
            }
        }
        if oneBatch && !requests.isEmpty { intake.receive(batch: requests.mutableBuffer, now: now) }
    }

    /// Hands `requests`, device `d`'s, to `intake` through the wire: on the
    /// direct wire in one `receive(batch:)`, otherwise each through the codecs.
    func deliverRequests(of d: Int, into intake: any FaultIntake, now: UInt64) {
        guard !requests.isEmpty else { return }
        if schedule.wire == .direct {
            intake.receive(batch: requests.mutableBuffer, now: now)
            return
        }
        let needsPASID = fleet.units[d].config.needsPASID
        for request in requests {
            do {
                intake.receive(try schedule.wire.carry(request, needsPASID: needsPASID), now: now)
            } catch {
                noteWireError(error)
            }
        }
    }

    /// With a rate: the earliest time an attached, unblocked device that has
    /// not reached its limit is due.
    public func nextDeadline(after now: UInt64, intake: any FaultIntake) -> UInt64? {
        if let storm {
            guard storm.arrivals.startNS != nil, !storm.reported else { return nil }  // attachments wake the loop
            var due = storm.tickNS > 0 ? storm.nextTick : UInt64.max
            if !stopped, let next = storm.arrivals.nextArrivalNS { due = Swift.min(due, next) }
            if let all = storm.raisedAll { due = Swift.min(due, all &+ RemoteDevices.answerGraceNS) }
            return due
        }
        guard schedule.rate != nil, !doneRaising else { return nil }
        var earliest: UInt64?
        for id in intake.attachedDevices {
            guard let d = position(of: id) else { continue }
            if fleet.blocked[d] { continue }
            if let limit = schedule.groupsPerDevice, fleet.units[d].ledger.issued >= limit { continue }
            let due = fleet.dueAt[d] == 0 ? now : fleet.dueAt[d]
            earliest = Swift.min(earliest ?? due, due)
        }
        return earliest
    }

    /// The answer reaches its device through the wire's response format.
    public func complete(_ completion: DeviceCompletion) {
        do {
            let seen = try schedule.wire.carry(completion)
            guard let d = position(of: seen.deviceID) else {
                noteWireError("an answer for device \(seen.deviceID), which is not simulated here")
                return
            }
            fleet.complete(d, seen)
            if let storm, let group = storm.pending.removeValue(forKey: Storm.key(d, seen.prgi)) {
                storm.arrivals.answered(scheduledNS: group.scheduled, phase: group.phase, device: d, now: Sys.monotonicNS)
            }
        } catch {
            noteWireError(error)
        }
    }

    /// Several answers: with the direct wire and no storm, one access to the
    /// devices for the whole batch (`SimulatedFleet.complete(batch:index:)`).
    public func complete(batch completions: [DeviceCompletion]) {
        guard storm == nil, schedule.wire == .direct else {
            for completion in completions { complete(completion) }
            return
        }
        if let stranger = fleet.complete(batch: completions, index: index) {
            noteWireError("an answer for device \(stranger), which is not simulated here")
        }
    }

    /// The storm's step: starts the clock once every device is attached,
    /// hands due arrivals to devices, lets each raise oldest first (an
    /// arrival that must wait for a PRG index keeps its scheduled time),
    /// ticks, and reports once everything raised is answered. `requests`
    /// is unshared already (`raise`).
    func raiseStorm(_ storm: Storm, now: UInt64, into intake: any FaultIntake) {
        guard !storm.reported else { return }
        if storm.arrivals.startNS == nil {
            guard fleet.units.allSatisfy({ intake.isAttached($0.config.deviceID) }) else { return }
            storm.arrivals.start(at: now)
            storm.nextTick = now &+ storm.tickNS
        }
        if !stopped {
            storm.arrivals.admit(now: now)
            for d in fleet.units.indices {
                var burst = 0
                while let arrival = storm.arrivals.first(of: d), burst < 256 {
                    requests.removeAll()
                    fleet.nextGroup(d, now: arrival.atNS, into: &requests)
                    guard let last = requests.last else {
                        fleet.blocked[d] = true
                        break
                    }
                    burst += 1
                    deliverRequests(of: d, into: intake, now: now)
                    if !last.isLastPage || last.isStopMarker { continue }  // a lone stop marker first
                    storm.arrivals.raisedFirst(of: d)
                    fleet.raised += 1
                    storm.pending[Storm.key(d, last.prgi)] = (arrival.atNS, arrival.phase)
                    if storm.eventEvery > 0 && fleet.raised % UInt64(storm.eventEvery) == 0 {
                        storm.eventsSent += 1
                        _ = intake.deliver(UnrecoverableFault(deviceID: fleet.units[d].config.deviceID, reason: 1,
                                                              address: 0x4000_0000 &+ storm.eventsSent << 12, timestampNS: now))
                    }
                }
            }
        }
        if storm.raisedAll == nil && (storm.arrivals.exhausted || stopped) { storm.raisedAll = now }
        if storm.tickNS > 0 && now >= storm.nextTick {
            storm.progress(storm.arrivals.progress(at: now, raised: fleet.raised, pending: storm.pending.count))
            storm.nextTick = now &+ storm.tickNS
        }
        if let all = storm.raisedAll, storm.pending.isEmpty || now &- all > RemoteDevices.answerGraceNS {
            storm.reported = true
            var report = RemoteDevices.Report()
            report.devices = books()
            report.seconds = Double(now &- (storm.arrivals.startNS ?? now)) / 1e9
            report.eventsSent = storm.eventsSent
            storm.arrivals.finish(into: &report)
            if storm.tickNS > 0 { storm.progress(storm.arrivals.progress(at: now, raised: fleet.raised, pending: storm.pending.count)) }
            storm.finished(report)
        }
    }

    /// The devices' ledgers.
    public func books() -> [DeviceBooks] {
        fleet.units.map { $0.ledger.books(device: $0.config.deviceID) }
    }

    /// Raise nothing more.
    public func stopRaising() { stopped = true }

    func noteWireError(_ error: Any) {
        if wireErrors.count < 5 { wireErrors.append("\(error)") }
    }
}
