import CFaultRingABI
import Glibc
import SystemPackage

/// The four descriptors that make a queue pair: what travels to a consumer
/// (by inheritance or SCM_RIGHTS) and what it needs to attach.
public struct QueueFiles: Sendable {
    /// The producer region. The service holds it read-write; the copy a
    /// consumer gets is opened read-only, so it cannot map it writable.
    public var producerRegion: FileDescriptor
    /// The consumer region (read-write on both sides).
    public var consumerRegion: FileDescriptor
    /// Rung by the producer when the consumer sleeps (records, negotiation, close).
    public var consumerDoorbell: FileDescriptor
    /// Rung by the consumer when the producer sleeps (responses, ABI request).
    public var producerDoorbell: FileDescriptor

    public init(producerRegion: FileDescriptor, consumerRegion: FileDescriptor,
                consumerDoorbell: FileDescriptor, producerDoorbell: FileDescriptor) {
        self.producerRegion = producerRegion
        self.consumerRegion = consumerRegion
        self.consumerDoorbell = consumerDoorbell
        self.producerDoorbell = producerDoorbell
    }

    /// The descriptors in their conventional order (the order in which they
    /// are inherited from fd 3 and sent with SCM_RIGHTS).
    public var all: [FileDescriptor] { [producerRegion, consumerRegion, consumerDoorbell, producerDoorbell] }

    /// The four descriptors a parent passed at `first ..< first + 4`.
    public static func inherited(from first: CInt = 3) -> QueueFiles {
        QueueFiles(producerRegion: FileDescriptor(rawValue: first), consumerRegion: FileDescriptor(rawValue: first + 1),
                   consumerDoorbell: FileDescriptor(rawValue: first + 2),
                   producerDoorbell: FileDescriptor(rawValue: first + 3))
    }

    /// Closes all four (errors ignored: there is nothing left to do with them).
    public func close() {
        for fd in all { try? fd.close() }
    }

    /// Opens a second, read-only file description of `fd` through
    /// /proc/self/fd: the copy a consumer receives for the producer region.
    public static func reopenReadOnly(_ fd: FileDescriptor) throws(FaultQueueError) -> FileDescriptor {
        let raw = open("/proc/self/fd/\(fd.rawValue)", O_RDONLY | O_CLOEXEC)
        guard raw >= 0 else { throw .system("open(/proc/self/fd/\(fd.rawValue), O_RDONLY)") }
        return FileDescriptor(rawValue: raw)
    }

    /// Duplicates `fd` (close-on-exec) so the copy can be closed independently.
    public static func duplicate(_ fd: FileDescriptor) throws(FaultQueueError) -> FileDescriptor {
        let raw = fcntl(fd.rawValue, F_DUPFD_CLOEXEC, CInt(16))
        guard raw >= 0 else { throw .system("fcntl(\(fd.rawValue), F_DUPFD_CLOEXEC)") }
        return FileDescriptor(rawValue: raw)
    }
}
