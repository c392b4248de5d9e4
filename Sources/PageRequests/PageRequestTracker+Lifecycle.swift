import FaultABI

extension PageRequestTracker {
    /// Advances time to `now` (ns): answers INVALID every group whose
    /// timeout passed, and delivers groups that waited for their channel to
    /// negotiate. Call it from the service loop's timer.
    public mutating func tick(now: UInt64) {
        makeTablesUnique()
        // Deadlines are appended in time order with one timeout, so the
        // queue is sorted; entries of groups already answered are skipped.
        while let first = timeouts.first, first.at <= now {
            _ = timeouts.popFirst()
            if isLive(first.cookie) { retire(first.cookie, code: .invalid, source: .automatic(.timeout)) }
        }
        flushBacklogs()
    }

    /// When `tick` next has a timeout to fire (ns), or nil if no group is
    /// outstanding. Deadlines of groups already answered are dropped here, so
    /// a loop that arms a timer for this wakes only for groups that can
    /// still time out.
    public mutating func nextDeadline() -> UInt64? {
        makeTablesUnique()  // it only moves the ring's head today; cheap insurance
        while let first = timeouts.first {
            if isLive(first.cookie) { return first.at }
            _ = timeouts.popFirst()
        }
        return nil
    }

    /// Groups waiting for their channel's ABI (delivered by `tick` or
    /// `flushBacklogs` once it is in force).
    public var backlogged: Int { backlogs.reduce(0) { $0 + $1.count } }

    /// Delivers waiting groups of every channel whose ABI is now in force.
    public mutating func flushBacklogs() {
        makeTablesUnique()
        for index in sinks.indices {
            guard !backlogs[index].isEmpty, let sink = sinks[index], sink.abi != nil else { continue }
            // Groups answered while they waited (timeout, detach) are skipped.
            let waiting: [UInt64] = backlogs[index].filter { isLive($0) && !group(of: $0).pointee.delivered }
            backlogs[index].removeAll()
            waiting.withUnsafeBufferPointer { deliverRun($0, channel: ChannelID(index)) }
        }
    }

    /// The consumer of `channel` is gone: answer INVALID every group it
    /// owed, detach its devices, forget the channel. Cannot fail.
    public mutating func removeChannel(_ channelID: ChannelID) {
        makeTablesUnique()
        retireAll(cause: .detach) { $0.channel == channelID }
        for index in devices.indices where devices[index].known && devices[index].channel == channelID {
            devices[index].channel = nil
        }
        if hasChannel(channelID) {
            sinks[Int(channelID)] = nil
            backlogs[Int(channelID)].removeAll()  // every group in it was retired above
        }
    }

    /// The device's consumer let it go (DETACH): answer INVALID its
    /// outstanding groups, drop its partial groups (their pages were asked
    /// under the old owner and must not reach the next one), and detach it;
    /// the device stays known.
    public mutating func detachDevice(_ deviceID: UInt32) {
        makeTablesUnique()
        retireLive(of: deviceID, cause: .detach)
        discardPartials(of: deviceID)
        attach(deviceID, to: nil)
    }

    /// The device is gone: answer INVALID its outstanding groups, drop its
    /// partial groups, forget it.
    public mutating func removeDevice(_ deviceID: UInt32) {
        makeTablesUnique()
        retireLive(of: deviceID, cause: .deviceRemoved)
        discardPartials(of: deviceID)
        if let d = deviceIndex(deviceID) {
            devices[d] = Device.unknown
            clearIndexTables(of: d)
        }
    }

    /// The service stops: answer INVALID every outstanding group.
    public mutating func shutdown() {
        makeTablesUnique()
        retireAll(cause: .shutdown) { _ in true }
    }

    /// Answers INVALID every live group of one device, found through its
    /// per-PRGI index (`PRILimits.prgiCount` entries, not the whole cookie
    /// table: a DETACH costs the device's groups, not the service's).
    mutating func retireLive(of deviceID: UInt32, cause: AutoResponseCause) {
        guard let d = deviceIndex(deviceID), devices[d].known else { return }
        var cookies: [UInt64] = []
        for prgi in 0..<PRILimits.prgiCount where indexStates[Self.reuseKey(d, prgi)].oldestLive != 0 {
            cookies += liveCookies(device: d, prgi: prgi)
        }
        // In slot order, as the scan of the whole table this replaces answered them.
        cookies.sort { GroupCookie(rawValue: $0).slot < GroupCookie(rawValue: $1).slot }
        for cookie in cookies { retire(cookie, code: .invalid, source: .automatic(cause)) }
    }

    mutating func retireAll(
        cause: AutoResponseCause, where matches: (Group) -> Bool
    ) {
        for index in 0..<table.capacity where table.slot(index).pointee.live {
            let slot = table.slot(index).pointee
            guard matches(table.record(Int(slot.record)).pointee) else { continue }
            let cookie = GroupCookie(generation: slot.generation, slot: UInt32(index)).rawValue
            retire(cookie, code: .invalid, source: .automatic(cause))
        }
    }
}
