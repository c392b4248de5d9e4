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

    /// Publishes the groups, each contiguously, with one index store.
    public func deliverGroups(_ requests: UnsafeBufferPointer<PageRequest>, sizes: UnsafeBufferPointer<Int>,
                              outcomes: UnsafeMutableBufferPointer<GroupDelivery>) -> Int {
        var group = 0
        producer.publishGroups(requests, sizes: sizes) { outcome in
            switch outcome {
            case .published: outcomes[group] = .delivered
            case .noRoom: outcomes[group] = .noRoom
            case .notNegotiated: outcomes[group] = .notReady
            }
            group += 1
        }
        return group
    }
}
