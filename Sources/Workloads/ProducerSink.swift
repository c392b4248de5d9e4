import FaultABI
import FaultQueue
import PageRequests

/// Connects the page-request layer to a queue's producer: a closed group
/// goes into the fault ring whole, or not at all.
public final class ProducerSink: GroupSink {
    /// The queue's producer.
    public let producer: FaultProducer

    public init(_ producer: FaultProducer) { self.producer = producer }

    public var abi: ABIVersion? { producer.abi }

    public func deliverGroup(_ events: [FaultEvent]) -> GroupDelivery {
        switch producer.publishGroup(events) {
        case .published: return .delivered
        case .noRoom: return .noRoom
        case .notNegotiated: return .notReady
        }
    }
}
