import FaultABI
import FaultQueue
import PageRequests
import FaultPipeline

/// A channel on a real queue: the tracker publishes into a real producer
/// (through `ProducerSink`), and the test reads what arrived with a real
/// consumer. A small ring makes "no room" real; leaving the ABI
/// unrequested makes "not negotiated" real.
final class QueueChannel {
    let producer: FaultProducer
    let consumer: FaultConsumer
    let sink: ProducerSink
    /// Groups read from the ring so far, in order (records of each group).
    private(set) var groups: [[PageRequest]] = []
    private var open: [PageRequest] = []

    init(entries: Int = 64, negotiate: Bool = true) throws {
        producer = try FaultProducer(geometry: QueueGeometry(entryCount: entries, responseCount: 64))
        consumer = try FaultConsumer(files: producer.consumerFiles())
        sink = ProducerSink(producer)
        if negotiate { self.negotiate() }
    }

    /// The consumer asks for ABI 2 and the producer puts it in force.
    func negotiate() {
        try? consumer.requestABI(.v2)
        producer.poll()
    }

    /// Reads everything published so far into `groups`.
    func read() {
        guard let batch = try? consumer.peek() else { return }
        for i in batch.indices {
            guard case .event(.pageRequest(let r), _) = try? batch.decode(i) else { continue }
            open.append(r)
            if r.isLastPage {
                groups.append(open)
                open = []
            }
        }
        consumer.release(batch.count)
    }

    /// Group sizes delivered so far.
    var sizes: [Int] {
        read()
        return groups.map(\.count)
    }

    /// The cookie of the n-th delivered group.
    func cookie(_ n: Int) -> UInt64 {
        read()
        return groups[n].last!.cookie
    }
}

/// A tracker with one channel and device 1 attached, and the completions it emits.
struct Bench {
    var tracker: PageRequestTracker
    let sink: QueueChannel
    let channel: ChannelID
    var completions: [DeviceCompletion] = []

    init(policy: PageRequestPolicy = PageRequestPolicy(), negotiated: Bool = true, entries: Int = 64, allocation: Int = 64) {
        tracker = PageRequestTracker(policy: policy)
        sink = try! QueueChannel(entries: entries, negotiate: negotiated)
        channel = tracker.addChannel(sink.sink)
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
             device: UInt32 = 1, address: UInt64 = 0x1000) -> PageRequest {
    PageRequest(deviceID: device, pasid: pasid, prgi: prgi, permissions: .read, address: address, isLastPage: last,
                needsPASID: needsPASID, privateData: data)
}
