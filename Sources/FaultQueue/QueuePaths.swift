import Glibc
import SystemPackage

/// The files of a queue created at a filesystem path: one directory with
/// the two regions and two FIFO doorbells.
public struct QueuePaths: Sendable, Hashable {
    /// The queue directory.
    public let directory: FilePath
    /// The producer region (mode 0644: anyone allowed may map it read-only).
    public var producer: FilePath { directory.appending("producer") }
    /// The consumer region (mode 0600).
    public var consumer: FilePath { directory.appending("consumer") }
    /// FIFO rung by the producer.
    public var consumerDoorbell: FilePath { directory.appending("doorbell-consumer") }
    /// FIFO rung by the consumer.
    public var producerDoorbell: FilePath { directory.appending("doorbell-producer") }

    public init(directory: FilePath) { self.directory = directory }

    /// Opens the four files for a consumer: the producer region read-only.
    /// - Throws: `.systemCall` naming the first path that could not be opened.
    public func openForConsumer() throws(FaultQueueError) -> QueueFiles {
        var opened: [FileDescriptor] = []
        let plan: [(FilePath, Int32)] = [
            (producer, O_RDONLY), (consumer, O_RDWR), (consumerDoorbell, O_RDWR | O_NONBLOCK),
            (producerDoorbell, O_RDWR | O_NONBLOCK),
        ]
        for (path, flags) in plan {
            let raw = open(path.string, flags | O_CLOEXEC)
            guard raw >= 0 else {
                let error = FaultQueueError.system("open(\(path))")
                for fd in opened { try? fd.close() }
                throw error
            }
            opened.append(FileDescriptor(rawValue: raw))
        }
        return QueueFiles(producerRegion: opened[0], consumerRegion: opened[1], consumerDoorbell: opened[2],
                          producerDoorbell: opened[3])
    }

    /// Removes the files and the directory (best effort: used at close).
    public func remove() {
        for path in [producer, consumer, consumerDoorbell, producerDoorbell] { unlink(path.string) }
        rmdir(directory.string)
    }
}
