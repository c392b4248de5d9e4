import FaultABI

extension PageRequestTracker {
    /// Advances time to `now` (ns): answers INVALID every group whose
    /// timeout passed, and delivers groups that waited for their channel to
    /// negotiate. Call it from the service loop's timer.
    public mutating func tick(now: UInt64, complete: (DeviceCompletion) -> Void) {
        // Deadlines are appended in time order with one timeout, so the
        // queue is sorted; entries of groups already answered are skipped.
        while let first = timeouts.first, first.deadline <= now {
            timeouts.removeFirst()
            let slot = slots[Int(UInt32(truncatingIfNeeded: first.cookie))]
            if slot.live && UInt64(slot.generation) << 32 | (first.cookie & 0xFFFF_FFFF) == first.cookie {
                retire(first.cookie, code: .invalid, source: .automatic(.timeout), complete: complete)
            }
        }
        flushBacklogs(complete: complete)
    }

    /// Delivers waiting groups of every channel whose ABI is now in force.
    public mutating func flushBacklogs(complete: (DeviceCompletion) -> Void) {
        for channelID in Array(channels.keys) {
            guard let channel = channels[channelID], !channel.backlog.isEmpty, channel.sink.abi != nil else { continue }
            var waiting = channel.backlog
            channels[channelID]!.backlog.removeAll()
            while let cookie = waiting.popFirst() {
                guard channels[channelID]!.backlog.isEmpty else {
                    channels[channelID]!.backlog.append(cookie)  // keep order behind a group that did not go
                    continue
                }
                let slot = slots[Int(UInt32(truncatingIfNeeded: cookie))]
                guard slot.live, slot.group?.delivered == false else { continue }
                deliver(cookie, channel: channelID, complete: complete)
            }
        }
    }

    /// The consumer of `channel` is gone: answer INVALID every group it
    /// owed, detach its devices, forget the channel. Cannot fail.
    public mutating func removeChannel(_ channelID: ChannelID, complete: (DeviceCompletion) -> Void) {
        retireAll(cause: .detach, complete: complete) { $0.channel == channelID }
        for (deviceID, device) in devices where device.channel == channelID { devices[deviceID]!.channel = nil }
        channels.removeValue(forKey: channelID)
    }

    /// The device is gone: answer INVALID its outstanding groups, drop its
    /// partial groups, forget it.
    public mutating func removeDevice(_ deviceID: UInt32, complete: (DeviceCompletion) -> Void) {
        retireAll(cause: .deviceRemoved, complete: complete) { $0.deviceID == deviceID }
        discardPartials(of: deviceID)
        devices.removeValue(forKey: deviceID)
    }

    /// The service stops: answer INVALID every outstanding group.
    public mutating func shutdown(complete: (DeviceCompletion) -> Void) {
        retireAll(cause: .shutdown, complete: complete) { _ in true }
    }

    mutating func retireAll(
        cause: AutoResponseCause, complete: (DeviceCompletion) -> Void, where matches: (Group) -> Bool
    ) {
        for index in slots.indices where slots[index].live {
            guard let group = slots[index].group, matches(group) else { continue }
            let cookie = UInt64(slots[index].generation) << 32 | UInt64(index)
            retire(cookie, code: .invalid, source: .automatic(cause), complete: complete)
        }
    }
}
