import FaultABI
import PageRequests

/// A channel's consumer as the tracker sees it: a real ring would accept
/// groups until full; this one records what it was given and can be told
/// to refuse (no room) or to have no ABI yet, which is all a tracker test
/// needs to observe. The real producer is used in the loopback tests.
final class RecordingSink: GroupSink {
    var abi: ABIVersion?
    var room = Int.max
    var groups: [[FaultEvent]] = []

    init(abi: ABIVersion? = .v2) { self.abi = abi }

    func deliverGroup(_ events: [FaultEvent]) -> GroupDelivery {
        guard abi != nil else { return .notReady }
        guard events.count <= room else { return .noRoom }
        room -= events.count
        groups.append(events)
        return .delivered
    }

    /// The cookie of the n-th delivered group.
    func cookie(_ n: Int) -> UInt64 {
        guard case .pageRequest(let r) = groups[n].last! else { return 0 }
        return r.cookie
    }
}

/// A tracker with one channel and device 1 attached, and the completions it emits.
struct Bench {
    var tracker: PageRequestTracker
    let sink: RecordingSink
    let channel: ChannelID
    var completions: [DeviceCompletion] = []

    init(policy: PageRequestPolicy = PageRequestPolicy(), abi: ABIVersion? = .v2, allocation: Int = 64) {
        tracker = PageRequestTracker(policy: policy)
        sink = RecordingSink(abi: abi)
        channel = tracker.addChannel(sink)
        tracker.addDevice(1, allocation: allocation, channel: channel)
    }

    mutating func send(_ request: PageRequest, at now: UInt64 = 0) {
        var out: [DeviceCompletion] = []
        tracker.receive(request, now: now) { out.append($0) }
        completions += out
    }

    @discardableResult
    mutating func answer(_ response: PageResponse, abi: ABIVersion = .v2, on channel: ChannelID? = nil) -> ResponseVerdict {
        var out: [DeviceCompletion] = []
        let verdict = tracker.respond(.success(response), channel: channel ?? self.channel, abi: abi) { out.append($0) }
        completions += out
        return verdict
    }

    mutating func tick(_ now: UInt64) {
        var out: [DeviceCompletion] = []
        tracker.tick(now: now) { out.append($0) }
        completions += out
    }
}

func request(prgi: UInt32, pasid: UInt32? = 5, last: Bool = true, needsPASID: Bool = true, data: PrivateData? = nil,
             device: UInt32 = 1) -> PageRequest {
    PageRequest(deviceID: device, pasid: pasid, prgi: prgi, permissions: .read, address: 0x1000, isLastPage: last,
                needsPASID: needsPASID, privateData: data)
}
