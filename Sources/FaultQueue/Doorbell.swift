import Atomics
import Glibc
import SystemPackage

/// One direction of wake-ups between the two sides: an eventfd (or, for a
/// queue at a filesystem path, a FIFO), non-blocking.
///
/// A doorbell is only a hint that an index moved; the waiter always re-reads
/// the index. The protocol that makes a lost wake-up impossible: the
/// sleeper publishes "sleeping" and re-checks the index (`FaultConsumer`,
/// `FaultProducer.prepareToSleep`); the waker publishes its index and rings
/// only if it sees "sleeping" (`ring(ifSleeping:)`, with the argument). Because eventfd and FIFO both keep a
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

    /// The waker's half of the protocol, after the caller has stored the
    /// index the sleeper watches: a seq_cst fence, then a load of the
    /// sleeper's `sleeping` flag; rings if it is set.
    /// - Returns: whether it rang.
    ///
    /// Why no wake-up is lost (C11/C++ [atomics.order], the fence rules):
    /// the sleeper seq_cst-stores its flag (F), then seq_cst-loads the index
    /// (L); F, L and this fence X all sit in the single total order S of
    /// seq_cst operations, F before L. If L follows X in S, L observes the
    /// caller's index store (sequenced before X) or a later one: the sleeper
    /// sees the work and does not block. If L precedes X, so does F, and the
    /// flag load, sequenced after X, observes F (or the sleeper's later
    /// store of 0, made only once it is awake): we ring. A ring that lands
    /// before the sleeper blocks stays in the eventfd (or FIFO).
    ///
    /// A fence, not a locked store of the index: a locked store would make
    /// the index line's transfer wait behind the slot's, serialising the
    /// two cache misses on the record's (or response's) path.
    @discardableResult
    func ring(ifSleeping sleeping: SharedWord) -> Bool {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        guard sleeping.loadRelaxed() != 0 else { return false }
        ring()
        return true
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
