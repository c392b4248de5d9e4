import FaultABI
import FaultQueue
import PageRequests

/// Connects the page-request layer to a queue's producer: a closed group
/// goes into the fault ring whole, or not at all.
public final class ProducerSink: GroupSink {
    /// The queue's producer.
    public let producer: FaultProducer

    /// A sink into `producer`.
    public init(_ producer: FaultProducer) { self.producer = producer }

    /// The ABI in force on the queue, or nil before negotiation.
    public var abi: ABIVersion? { producer.abi }

    /// Publishes the group contiguously, or reports why not.
    public func deliverGroup(_ events: [FaultEvent]) -> GroupDelivery {
        switch producer.publishGroup(events) {
        case .published: return .delivered
        case .noRoom: return .noRoom
        case .notNegotiated: return .notReady
        }
    }
}
