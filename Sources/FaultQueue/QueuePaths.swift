import FaultSys
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

    /// The files of the queue in `directory`.
    public init(directory: FilePath) { self.directory = directory }

    /// Opens the four files for a consumer: the producer region read-only.
    /// - Throws: `.systemCall` naming the first path that could not be
    ///   opened; what was opened before it is closed.
    public func openForConsumer() throws(FaultQueueError) -> QueueFiles {
        try FaultQueueError.wrapping { () throws(SystemCallError) in
            QueueFiles(producerRegion: try Sys.open(producer.string, O_RDONLY),
                       consumerRegion: try Sys.open(consumer.string, O_RDWR),
                       consumerDoorbell: try Sys.open(consumerDoorbell.string, O_RDWR | O_NONBLOCK),
                       producerDoorbell: try Sys.open(producerDoorbell.string, O_RDWR | O_NONBLOCK))
        }
    }

    /// Creates the directory and its four files for a producer: regions of
    /// the given sizes (zero-filled), FIFO doorbells.
    /// - Throws: `.systemCall` naming the path that could not be created.
    ///   Whatever was created before it is closed and removed again,
    ///   directory included.
    public func create(producerSize: Int, consumerSize: Int) throws(FaultQueueError) -> QueueFiles {
        try FaultQueueError.wrapping { () throws(SystemCallError) in try Sys.makeDirectory(directory.string, mode: 0o755) }
        do throws(SystemCallError) {
            func region(_ path: FilePath, mode: mode_t, size: Int) throws(SystemCallError) -> OwnedFD {
                let fd = try Sys.open(path.string, O_RDWR | O_CREAT | O_EXCL, mode: mode)
                try Sys.truncate(fd, to: size, name: path.string)
                return fd
            }
            func fifo(_ path: FilePath) throws(SystemCallError) -> OwnedFD {
                try Sys.makeFIFO(path.string, mode: 0o600)
                return try Sys.open(path.string, O_RDWR | O_NONBLOCK)
            }
            return QueueFiles(producerRegion: try region(producer, mode: 0o644, size: producerSize),
                              consumerRegion: try region(consumer, mode: 0o600, size: consumerSize),
                              consumerDoorbell: try fifo(consumerDoorbell), producerDoorbell: try fifo(producerDoorbell))
        } catch {
            remove()
            throw .system(error)
        }
    }

    /// Removes the files and the directory (best effort: used at close and
    /// when creation fails; a missing file is not an error).
    public func remove() {
        for path in [producer, consumer, consumerDoorbell, producerDoorbell] { unlink(path.string) }
        rmdir(directory.string)
    }
}
