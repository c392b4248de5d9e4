/// The longest a device waited with a group owed and no answer coming: the
/// outage a tenant saw, whatever caused it (a killed consumer, a restarting
/// service, a full ring).
///
/// At each answer the device had been waiting since the later of its
/// previous answer and this group's scheduled arrival; the longest such
/// wait is kept. Arrivals that queue while the device is disconnected keep
/// their scheduled times, so an outage cannot hide in an empty queue.
///
/// Two waits are kept: for any answer, and for a SUCCESS. The service
/// answers INVALID at once for a device nobody attaches (`no_consumer`), so
/// only the second shows how long a tenant went without being served.
public struct AnswerGap: Codable, Sendable, Hashable {
    /// The device id.
    public var device: UInt32
    /// The longest wait, ns.
    public var longestNS: UInt64
    /// When that wait ended, ns from the start of the run.
    public var endedAtNS: UInt64
    /// The longest wait for a SUCCESS answer, ns (a group owed meanwhile).
    public var longestServedNS: UInt64
    /// When that wait ended, ns from the start of the run.
    public var servedEndedAtNS: UInt64

    /// A device that has waited for nothing yet.
    public init(device: UInt32) {
        self.device = device
        longestNS = 0
        endedAtNS = 0
        longestServedNS = 0
        servedEndedAtNS = 0
    }
}
