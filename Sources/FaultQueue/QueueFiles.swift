import FaultSys
import Glibc
import SystemPackage

/// The four descriptors that make a queue pair, owned: what travels to a
/// consumer (by inheritance or SCM_RIGHTS) and what it needs to attach.
///
/// Noncopyable: exactly one `QueueFiles` owns each descriptor and closes it
/// when it goes away, so a path that fails half-way (the second eventfd, the
/// mapping) releases the rest by returning. The queue that is built from a
/// `QueueFiles` consumes it and keeps it open for its own lifetime.
public struct QueueFiles: ~Copyable, Sendable {
    let producerRegionOwner: OwnedFD
    let consumerRegionOwner: OwnedFD
    let consumerDoorbellOwner: OwnedFD
    let producerDoorbellOwner: OwnedFD

    /// Takes ownership of four descriptors.
    public init(producerRegion: consuming OwnedFD, consumerRegion: consuming OwnedFD,
                consumerDoorbell: consuming OwnedFD, producerDoorbell: consuming OwnedFD) {
        producerRegionOwner = producerRegion
        consumerRegionOwner = consumerRegion
        consumerDoorbellOwner = consumerDoorbell
        producerDoorbellOwner = producerDoorbell
    }

    /// Takes ownership of four raw descriptors (received over SCM_RIGHTS, or inherited).
    public init(adopting producerRegion: FileDescriptor, consumerRegion: FileDescriptor,
                consumerDoorbell: FileDescriptor, producerDoorbell: FileDescriptor) {
        self.init(producerRegion: OwnedFD(adopting: producerRegion), consumerRegion: OwnedFD(adopting: consumerRegion),
                  consumerDoorbell: OwnedFD(adopting: consumerDoorbell),
                  producerDoorbell: OwnedFD(adopting: producerDoorbell))
    }

    /// The producer region. The service holds it read-write; the copy a
    /// consumer gets is opened read-only, so it cannot map it writable.
    public var producerRegion: FileDescriptor { producerRegionOwner.descriptor }
    /// The consumer region (read-write on both sides).
    public var consumerRegion: FileDescriptor { consumerRegionOwner.descriptor }
    /// Rung by the producer when the consumer sleeps (records, negotiation, close).
    public var consumerDoorbell: FileDescriptor { consumerDoorbellOwner.descriptor }
    /// Rung by the consumer when the producer sleeps (responses, ABI request).
    public var producerDoorbell: FileDescriptor { producerDoorbellOwner.descriptor }

    /// The descriptors in their conventional order (the order in which they
    /// are inherited from fd 3 and sent with SCM_RIGHTS). Views: still owned here.
    public var all: [FileDescriptor] { [producerRegion, consumerRegion, consumerDoorbell, producerDoorbell] }

    /// Takes ownership of the four descriptors a parent passed at `first ..< first + 4`.
    public static func inherited(from first: CInt = 3) -> QueueFiles {
        QueueFiles(adopting: FileDescriptor(rawValue: first), consumerRegion: FileDescriptor(rawValue: first + 1),
                   consumerDoorbell: FileDescriptor(rawValue: first + 2),
                   producerDoorbell: FileDescriptor(rawValue: first + 3))
    }

    /// Gives up ownership of all four, in `all` order: the caller closes
    /// them (as a control message does once it is sent).
    public consuming func release() -> [FileDescriptor] {
        [producerRegionOwner.release(), consumerRegionOwner.release(), consumerDoorbellOwner.release(),
         producerDoorbellOwner.release()]
    }

    /// Closes all four now (dropping the value does the same).
    public consuming func close() {}
}
