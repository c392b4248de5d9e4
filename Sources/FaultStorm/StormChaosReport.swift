/// What a storm's chaos did and what it left behind: the kills and restarts
/// as they happened, each tenant's longest wait for an answer, and the
/// final service incarnation's descriptors and memory.
public struct StormChaosReport: Codable, Sendable, Hashable {
    /// One service restart.
    public struct Restart: Codable, Sendable, Hashable {
        /// When, seconds into the storm.
        public var atSeconds: Double
        /// The signal that stopped the old incarnation (SIGTERM or SIGKILL).
        public var signal: String
        /// From the signal to the new incarnation answering the observer, ms.
        public var downMilliseconds: Double
    }

    /// One consumer process's longest waits (its devices' `AnswerGap`s, the longest).
    public struct TenantGap: Codable, Sendable, Hashable {
        /// The consumer process, `name-k`.
        public var name: String
        /// The longest wait for any answer with a group owed, ns.
        public var longestNS: UInt64
        /// When it ended, seconds into the storm.
        public var endedAtSeconds: Double
        /// The longest wait for a SUCCESS with a group owed, ns: how long the tenant went unserved
        /// (the service's own INVALID answers, for a device nobody attaches, do not end it). Judged.
        public var longestServedNS: UInt64
        /// When it ended, seconds into the storm.
        public var servedEndedAtSeconds: Double
        /// Whether the gap is judged: not for a scribbling tenant (it answers nothing by design).
        public var judged: Bool
    }

    /// Kills the profile planned, and made.
    public var consumerKillsPlanned = 0
    /// SIGKILLs sent to consumer processes.
    public var consumerKills = 0
    /// Restarts the profile planned.
    public var serviceRestartsPlanned = 0
    /// Every restart made.
    public var restarts: [Restart] = []
    /// The service's page-request timeout, ms: no judged tenant may go unserved longer.
    public var timeoutMilliseconds: UInt64 = 0
    /// Per consumer process, its longest wait.
    public var gaps: [TenantGap] = []
    /// Descriptors of the first incarnation with only the observer connected, before any device or consumer.
    public var descriptorsAtStart: Int?
    /// Descriptors of the final incarnation with only the observer connected, after every device and consumer left.
    public var descriptorsAtEnd: Int?
    /// The final incarnation's resident memory a quarter into its life, KiB (under load).
    public var residentAtQuarterKiB: UInt64?
    /// The final incarnation's resident memory at the storm's last sample, KiB (under load).
    public var residentAtEndKiB: UInt64?
    /// The final incarnation's resident memory, KiB, sampled through its life.
    public var residentKiB: [UInt64] = []
    /// Per consumer process, groups the final service incarnation completed with its answers:
    /// every reconnecting tenant must have some (one that never noticed a restart has none).
    public var servedByFinalIncarnation: [String: UInt64] = [:]
    /// What the scribbling tenants said they did (their counts, summed).
    public var scribbles: [String: UInt64] = [:]

    /// The most a final incarnation's memory may grow from a quarter into its life to its end: 10 %.
    public static let residentGrowthAllowed = 0.10

    /// A report with nothing in it yet.
    public init() {}
}
