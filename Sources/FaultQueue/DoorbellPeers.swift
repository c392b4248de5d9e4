import FaultSys
import SystemPackage

/// The consumer's ends of a memfd queue's two doorbell socket pairs, kept
/// by the producer until (and after) it hands copies to its consumer
/// (`FaultProducer.consumerFiles`). The producer's own ends live in its
/// `QueueFiles`; the two sides never share an open file description.
struct DoorbellPeers: ~Copyable {
    /// The end the consumer waits on (the producer rings the other end).
    let consumerDoorbell: OwnedFD
    /// The end the consumer rings (the producer waits on the other end).
    let producerDoorbell: OwnedFD
}
