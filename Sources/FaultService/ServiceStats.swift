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

    public var eventLoop: String
    public var uptimeSeconds: Double
    public var clients: [Client]
    public var pageRequests: PageRequestCounters
    public var devices: [Device]
    public var protocolErrors: UInt64
}

extension FaultService {
    func statistics() -> ServiceStats {
        let uptime = ContinuousClock.now - started
        return ServiceStats(
            eventLoop: loop.backend.rawValue,
            uptimeSeconds: Double(uptime.components.seconds) + Double(uptime.components.attoseconds) / 1e18,
            clients: sessions.values.sorted { $0.pid < $1.pid }.map {
                .init(pid: $0.pid, uid: $0.uid, abi: $0.abi?.rawValue, devices: $0.devices.sorted(),
                      queue: $0.queue?.countersSnapshot)
            },
            pageRequests: tracker.snapshot,
            devices: devices.keys.sorted().map { id in
                let d = devices[id]!
                return .init(id: id, attachedTo: owner[id].flatMap { sessions[$0]?.pid }, issued: d.ledger.issued,
                             answered: d.ledger.answered, unanswered: d.ledger.unanswered,
                             answeredTwiceOrUnknown: d.ledger.unexpected, wrong: d.ledger.wrong,
                             answersBySource: d.ledger.bySource)
            },
            protocolErrors: UInt64(metrics.protocolErrorCount))
    }
}
