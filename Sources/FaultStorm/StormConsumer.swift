import FaultSimulation

/// One consumer process of a storm (all its incarnations, when it was
/// killed and restarted): what it was told to do, what it said it did, and
/// what the service saw of it.
public struct StormConsumer: Codable, Sendable, Hashable {
    /// `name-k`, as in the profile.
    public var name: String
    /// Its behaviour, in words.
    public var behaviour: String
    /// Record ABI it negotiated.
    public var abi: UInt32
    /// Devices it attached.
    public var devices: [UInt32]
    /// Process ids, one per incarnation.
    public var pids: [Int32]
    /// How each incarnation ended: its exit status, or 128 + the signal.
    public var exitStatuses: [Int32]
    /// Records read (its own summary; a killed incarnation reports nothing).
    public var records: UInt64
    /// Page-request groups read.
    public var groups: UInt64
    /// Answers sent, by code.
    public var answered: [String: UInt64]
    /// LOST records seen (records the service could not fit).
    public var lostReported: UInt64
    /// Groups the service completed with its answer.
    public var completed: UInt64
    /// Its answers the service refused, by reason.
    public var rejected: [String: UInt64]
    /// Latency of its devices' groups, ns (nil in a direct run's summary).
    public var latency: LatencySummary?

    /// A consumer that has not run yet.
    public init(name: String, behaviour: String, abi: UInt32, devices: [UInt32]) {
        self.name = name
        self.behaviour = behaviour
        self.abi = abi
        self.devices = devices
        pids = []
        exitStatuses = []
        records = 0
        groups = 0
        answered = [:]
        lostReported = 0
        completed = 0
        rejected = [:]
    }
}
