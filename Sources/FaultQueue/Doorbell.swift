import Glibc
import SystemPackage

/// One direction of wake-ups between the two sides: an eventfd (or, for a
/// queue at a filesystem path, a FIFO), non-blocking.
///
/// A doorbell is only a hint that an index moved; the waiter always re-reads
/// the index. The protocol that makes a lost wake-up impossible lives with
/// the indices (`FaultProducer`, `FaultConsumer`): the sleeper publishes
/// "sleeping" and re-checks the index, the waker publishes its index and
/// rings only if it sees "sleeping". Because eventfd and FIFO both keep a
/// ring that arrives before the sleeper blocks, the ring is never missed.
public struct Doorbell: Sendable {
    /// The descriptor: a view; the queue's `QueueFiles` owns and closes it.
    public let fd: FileDescriptor

    /// A doorbell on `fd` (an eventfd or a FIFO opened O_RDWR | O_NONBLOCK).
    public init(fd: FileDescriptor) { self.fd = fd }

    /// Wakes the other side. Never blocks: a full eventfd counter or FIFO
    /// already holds a pending wake-up, which is all a ring means.
    public func ring() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(fd.rawValue, $0.baseAddress, 8) }
    }

    /// Blocks until rung or until `timeoutMilliseconds` pass (-1: forever),
    /// then drains pending rings.
    /// - Returns: `true` if it was rung.
    @discardableResult
    public func wait(timeoutMilliseconds: Int32) -> Bool {
        var pfd = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
        var ready: Int32
        repeat { ready = poll(&pfd, 1, timeoutMilliseconds) } while ready < 0 && Glibc.errno == EINTR
        guard ready > 0 else { return false }
        drain()
        return true
    }

    /// Consumes pending rings without blocking.
    public func drain() {
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while withUnsafeMutableBytes(of: &buffer, { read(fd.rawValue, $0.baseAddress, $0.count) }) > 0 {}
    }
}
