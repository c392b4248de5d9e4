import Glibc
import FaultFD
import FaultQueue
import NestedIOMMU
import PageRequests

/// What `STATS` returns (JSON) and `faultring stats` prints.
public struct ServiceStats: Codable, Sendable {
    /// One connected client.
    public struct Client: Codable, Sendable {
        /// The client's process id (SO_PEERCRED, read at accept).
        public var pid: UInt32
        /// The client's user id (SO_PEERCRED).
        public var uid: UInt32
        /// Its queue's record ABI; nil until its first successful ATTACH.
        public var abi: UInt32?
        /// The devices attached to it, ascending.
        public var devices: [UInt32]
        /// Its queue's producer counters; nil until its first successful ATTACH.
        public var queue: QueueCounters?
        /// Records waiting in its fault ring now (nil before its first ATTACH,
        /// or while the consumer index it wrote is not sane).
        public var ringOccupancy: UInt32?
        /// Its fault ring's size, records (nil before its first ATTACH).
        public var ringEntries: UInt32?
        /// Its VM's nested IOMMU, once it bound something (Docs/NESTED.md).
        public var nested: NestedCounters?
    }

    /// One device's books, as the fault source keeps them.
    public struct Device: Codable, Sendable {
        /// The device.
        public var id: UInt32
        /// Pid of the client it is attached to; nil if free.
        public var attachedTo: UInt32?
        /// Groups the device raised.
        public var issued: UInt64
        /// Groups answered (once each).
        public var answered: UInt64
        /// Groups raised and not answered yet.
        public var outstanding: Int
        /// Answers for no waiting group: a second answer, or one for a group never issued.
        public var answeredTwiceOrUnknown: UInt64
        /// Answers with the wrong PASID or private data.
        public var wrong: UInt64
        /// Answers by who gave them: `consumer` or an automatic cause (`timeout`, `detach`, ...).
        public var answersBySource: [String: UInt64]
        /// A DMA device's translation and guest-bug counters (Docs/NESTED.md); nil for other sources.
        public var dma: [String: UInt64]?
    }

    /// A fault source a client handed over, and what it read and wrote.
    public struct Source: Codable, Sendable {
        /// The client that added it.
        public var pid: UInt32
        /// What the descriptor is (`iommufd fault queue`, `device fault socket`, …).
        public var kind: String
        /// The devices it serves.
        public var devices: [UInt32]
        /// Its books: records read, answers written by source, refused, not written.
        public var books: FaultFDBooks
        /// Whether it has gone (its client left or it hung up): its books are final.
        public var removed: Bool
    }

    /// Percentiles of request-to-answer latency (ns) of consumer-answered groups.
    public struct Latency: Codable, Sendable {
        /// Groups measured.
        public var count: UInt64
        /// Median, ns (this and the other percentiles to three significant digits).
        public var p50: UInt64
        /// 90th percentile, ns.
        public var p90: UInt64
        /// 99th percentile, ns.
        public var p99: UInt64
        /// 99.9th percentile, ns.
        public var p999: UInt64
        /// Largest recorded, ns.
        public var max: UInt64
    }

    /// The version of the schema this document follows (Docs/stats.v1.schema.json).
    public var statsVersion = 1
    /// The event loop backend in use: `io_uring` or `poll`.
    public var eventLoop: String
    /// Nil until a consumer-answered group has been measured.
    public var latency: Latency?
    /// Seconds since the service was created.
    public var uptimeSeconds: Double
    /// Connected clients, by pid.
    public var clients: [Client]
    /// The page-request tracker's counters, over every queue.
    public var pageRequests: PageRequestCounters
    /// The source's per-device books, by id; empty if the source keeps none.
    public var devices: [Device]
    /// Requests answered with an error reply (malformed or refused) since start; a refused uid is not counted.
    public var protocolErrors: UInt64
    /// The fault sources clients handed over (ADD_SOURCE), with their books.
    public var sources: [Source] = []
}

extension FaultService {
    /// What `caller` may see: everything if it is the service's own uid or
    /// root; otherwise only its uid's clients and sources, and the devices
    /// those clients hold or that are free (never another tenant's pids or
    /// devices).
    func statistics(for caller: Session) -> ServiceStats {
        var stats = statistics()
        let uid = caller.uid
        guard uid != getuid() && uid != 0 else { return stats }
        let mine = Set(sessions.values.filter { $0.uid == uid }.map(\.pid))
        stats.clients = stats.clients.filter { $0.uid == uid }
        stats.devices = stats.devices.filter { d in d.attachedTo.map(mine.contains) ?? (config.deviceOwners[d.id].map { $0 == uid } ?? true) }
        stats.sources = stats.sources.filter { mine.contains($0.pid) }
        stats.latency = nil  // the service-wide latency mixes every tenant's answers
        return stats
    }

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
                      queue: $0.queue?.countersSnapshot, ringOccupancy: $0.queue?.status.recordsPending,
                      ringEntries: $0.queue?.status.entryCount, nested: $0.nested?.domain?.counters)
            },
            pageRequests: pipeline.tracker.snapshot,
            devices: pipeline.sources.flatMap { $0.books() }.sorted { $0.id < $1.id }.map { d in
                .init(id: d.id, attachedTo: owner[d.id].flatMap { sessions[$0]?.pid }, issued: d.issued,
                      answered: d.answered, outstanding: d.outstanding, answeredTwiceOrUnknown: d.unexpected,
                      wrong: d.wrong, answersBySource: d.answersBySource, dma: d.counters)
            },
            protocolErrors: metrics.protocolErrorCount,
            sources: sessions.values.sorted { $0.pid < $1.pid }.flatMap { session in
                session.sources.map { ServiceStats.Source($0, of: session.pid, removed: false) }
            } + retiredSources)
    }
}

extension ServiceStats.Source {
    /// What STATS says of `source`, added by client `pid`: live, or
    /// `removed` (then its books are final, and kept as this value).
    init(_ source: FaultFDSource, of pid: UInt32, removed: Bool) {
        self.init(pid: pid, kind: source.kind.description, devices: source.devices.map(\.id), books: source.bookkeeping,
                  removed: removed)
    }
}
