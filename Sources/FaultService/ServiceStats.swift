import FaultQueue
import PageRequests

/// What `STATS` returns (JSON) and `faultring stats` prints.
public struct ServiceStats: Codable, Sendable {
    public struct Client: Codable, Sendable {
        public var pid: UInt32
        public var uid: UInt32
        public var abi: UInt32?
        public var devices: [UInt32]
        public var queue: QueueCounters?
    }

    public struct Device: Codable, Sendable {
        public var id: UInt32
        public var attachedTo: UInt32?
        public var issued: UInt64
        public var answered: UInt64
        public var unanswered: Int
        public var answeredTwiceOrUnknown: UInt64
        public var wrong: UInt64
        public var answersBySource: [String: UInt64]
    }

    /// Percentiles of request-to-answer latency (ns) of consumer-answered groups.
    public struct Latency: Codable, Sendable {
        public var count: UInt64
        public var p50: UInt64
        public var p90: UInt64
        public var p99: UInt64
        public var p999: UInt64
        public var max: UInt64
    }

    public var eventLoop: String
    public var latency: Latency?
    public var uptimeSeconds: Double
    public var clients: [Client]
    public var pageRequests: PageRequestCounters
    public var devices: [Device]
    public var protocolErrors: UInt64
}

extension FaultService {
    func statistics() -> ServiceStats {
        let uptime = ContinuousClock.now - started
        let h = latency
        return ServiceStats(
            eventLoop: loop.backend.rawValue,
            latency: h.totalCount == 0 ? nil : .init(
                count: h.totalCount, p50: h.valueAtPercentile(50), p90: h.valueAtPercentile(90),
                p99: h.valueAtPercentile(99), p999: h.valueAtPercentile(99.9), max: h.maxRecorded),
            uptimeSeconds: Double(uptime.components.seconds) + Double(uptime.components.attoseconds) / 1e18,
            clients: sessions.values.sorted { $0.pid < $1.pid }.map {
                .init(pid: $0.pid, uid: $0.uid, abi: $0.abi?.rawValue, devices: $0.devices.sorted(),
                      queue: $0.queue?.countersSnapshot)
            },
            pageRequests: pipeline.tracker.snapshot,
            devices: source.books().sorted { $0.id < $1.id }.map { d in
                .init(id: d.id, attachedTo: owner[d.id].flatMap { sessions[$0]?.pid }, issued: d.issued,
                      answered: d.answered, unanswered: d.unanswered, answeredTwiceOrUnknown: d.unexpected,
                      wrong: d.wrong, answersBySource: d.answersBySource)
            },
            protocolErrors: UInt64(metrics.protocolErrorCount))
    }
}
