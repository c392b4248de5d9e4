import FaultABI
import PageRequests

/// The mutable state of a set of simulated devices, in one value: the
/// devices, the one generator they draw from, and their schedule books.
///
/// `SimulatedDevices` keeps it in a single stored property so that the hot
/// paths make one access to it per burst (raise) or per answer (complete).
/// A class's stored properties are checked for exclusive access at run
/// time on every access; eight properties touched per group cost more than
/// the device simulation itself. Nothing here calls out: the pipeline is
/// called only after a burst is built, so an answer that arrives while the
/// burst is being delivered (an automatic INVALID) finds the state free.
struct SimulatedFleet {
    /// The devices, in the order they were configured.
    var units: [SimulatedPRIDevice]
    /// The one generator every device draws from (deterministic for a seed).
    var rng: SplitMix64
    /// With a rate: when each device may raise its next group (0: not started).
    var dueAt: [UInt64]
    /// A device that could not raise (out of PRG indices or allocation)
    /// waits for an answer, not for the clock.
    var blocked: [Bool]
    /// Groups raised so far, over all devices.
    var raised: UInt64 = 0

    init(_ configs: [SimulatedDeviceConfig], seed: UInt64) {
        units = configs.map(SimulatedPRIDevice.init)
        rng = SplitMix64(seed: seed)
        dueAt = [UInt64](repeating: 0, count: configs.count)
        blocked = [Bool](repeating: false, count: configs.count)
    }

    /// Appends to `out` the requests of up to `schedule.groupsPerStep`
    /// groups of device `d` at `now`, within its limits; marks it blocked
    /// when it is out of PRG indices or allocation.
    mutating func burst(_ d: Int, now: UInt64, schedule: SimulationSchedule, into out: inout PlainTable<PageRequest>) {
        if let rate = schedule.rate {
            // Starts when first attached; a device that fell behind (blocked,
            // or the loop was late) catches up by one burst at most.
            let burst = UInt64(1e9 / rate) &* UInt64(schedule.groupsPerStep)
            if dueAt[d] == 0 {
                dueAt[d] = now
            } else if !schedule.openLoop && dueAt[d] &+ burst < now {
                dueAt[d] = now &- Swift.min(now, burst)
            }
        }
        // One access to `units` for the whole burst: through the array, each
        // group paid a copy-on-write check of it before reaching the device.
        var generator = rng
        defer { rng = generator }
        units.withUnsafeMutableBufferPointer { units in
            units[d].makeTableUnique()  // once for the burst (`nextGroupUnshared`)
            for _ in 0..<schedule.groupsPerStep {
                if let total = schedule.totalGroups, raised >= total { return }
                if let limit = schedule.groupsPerDevice, units[d].ledger.issued >= limit { return }
                if schedule.rate != nil && dueAt[d] > now { return }
                let before = out.count
                // With a rate, a group carries its scheduled time, so latency is
                // measured from the schedule (open loop), not from when it was raised.
                units[d].nextGroupUnshared(now: schedule.rate != nil ? dueAt[d] : now, using: &generator, into: &out)
                if out.count == before {  // out of PRG indices or allocation: wait for answers
                    blocked[d] = true
                    return
                }
                raised += 1
                if let rate = schedule.rate { dueAt[d] &+= UInt64(1e9 / rate) }
            }
        }
    }

    /// Appends the requests of device `d`'s next group (stamped `now`) to
    /// `out`; nothing if it is out of PRG indices or allocation.
    mutating func nextGroup(_ d: Int, now: UInt64, into out: inout PlainTable<PageRequest>) {
        units[d].nextGroup(now: now, using: &rng, into: &out)
    }

    /// The position of device `id` in `units`, given `index` (device id to
    /// position, -1 for none); nil if it is not one of these.
    static func position(of id: UInt32, in index: [Int]) -> Int? {
        Int(id) < index.count && index[Int(id)] >= 0 ? index[Int(id)] : nil
    }

    /// Each answer reaches its device (`index` as in `position(of:in:)`), in
    /// order. Returns a device id that is not one of these, if an answer
    /// named one (that answer is dropped).
    mutating func complete(batch completions: [DeviceCompletion], index: [Int]) -> UInt32? {
        var stranger: UInt32?
        var touched = false
        // One access to `units` for the whole batch, not one per answer.
        units.withUnsafeMutableBufferPointer { units in
            // A device's table is unshared once per run of its answers, not
            // per answer (`completeUnshared`), nor for devices with none.
            var unshared = -1
            for completion in completions {
                guard let d = Self.position(of: completion.deviceID, in: index) else {
                    stranger = completion.deviceID
                    continue
                }
                if d != unshared {
                    units[d].makeTableUnique()
                    unshared = d
                }
                units[d].completeUnshared(completion)
                touched = true
            }
        }
        // A device that got an answer may raise again. Usually none is
        // blocked, and the second pass is skipped.
        if touched && blocked.contains(true) {
            for completion in completions {
                if let d = Self.position(of: completion.deviceID, in: index) { blocked[d] = false }
            }
        }
        return stranger
    }

    /// Device `d` takes its answer; it may raise again.
    mutating func complete(_ d: Int, _ completion: DeviceCompletion) {
        units[d].complete(completion)
        blocked[d] = false
    }
}
