import SystemPackage

/// The four descriptors of a queue pair as plain views (copyable), for a
/// queue that keeps its `QueueFiles` owner alive: valid only while that
/// queue is open.
public struct QueueDescriptors: Sendable, Hashable {
    /// The producer region.
    public let producerRegion: FileDescriptor
    /// The consumer region.
    public let consumerRegion: FileDescriptor
    /// Rung by the producer when the consumer sleeps.
    public let consumerDoorbell: FileDescriptor
    /// Rung by the consumer when the producer sleeps.
    public let producerDoorbell: FileDescriptor

    /// The views of `files`' descriptors.
    public init(_ files: borrowing QueueFiles) {
        producerRegion = files.producerRegion
        consumerRegion = files.consumerRegion
        consumerDoorbell = files.consumerDoorbell
        producerDoorbell = files.producerDoorbell
    }
}
