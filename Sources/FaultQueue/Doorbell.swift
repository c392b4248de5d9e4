import Atomics
import Glibc
import SystemPackage

/// One direction of wake-ups between the two sides: one end of an AF_UNIX
/// datagram socket pair (or, for a queue at a filesystem path, a FIFO).
///
/// Trust boundary: each side holds its own end, its own open file
/// description, and every call on a socket end passes `MSG_DONTWAIT`, so
/// nothing a peer does to its end — clearing O_NONBLOCK, filling the pair's
/// buffer, draining it — can make a ring or a drain block. (An eventfd
/// copy shares its file status flags with the original: a tenant that
/// cleared O_NONBLOCK on its copy froze the service's next read.)
///
/// A doorbell is only a hint that an index moved; the waiter always re-reads
/// the index. The protocol that makes a lost wake-up impossible: the
/// sleeper publishes "sleeping" and re-checks the index (`FaultConsumer`,
/// `FaultProducer.prepareToSleep`); the waker publishes its index and rings
/// only if it sees "sleeping" (`ring(ifSleeping:)`, with the argument). Because a socket pair and a FIFO both keep a
/// ring that arrives before the sleeper blocks, the ring is never missed.
public struct Doorbell: Sendable {
    /// The descriptor: a view; the queue's `QueueFiles` owns and closes it.
    public let fd: FileDescriptor
    /// Whether `fd` is a socket (send/recv with MSG_DONTWAIT), not a FIFO or eventfd (read/write).
    let isSocket: Bool

    /// A doorbell on `fd`: a socket-pair end, or a FIFO or eventfd opened O_NONBLOCK.
    public init(fd: FileDescriptor) {
        self.fd = fd
        var info = stat()
        isSocket = fstat(fd.rawValue, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
    }

    /// Wakes the other side: an 8-byte `1` (what a peer writes too). Never
    /// blocks: a full socket buffer, eventfd counter or FIFO already holds a
    /// pending wake-up, which is all a ring means.
    public func ring() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { b in
            isSocket ? send(fd.rawValue, b.baseAddress, 8, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) : write(fd.rawValue, b.baseAddress, 8)
        }
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
    /// before the sleeper blocks stays queued in the socket pair (or FIFO).
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

    /// Consumes pending rings without blocking: at most `drainBudget`
    /// datagrams a call, so a peer that rings without pause cannot keep the
    /// caller here; what is left keeps the descriptor readable, and the next
    /// wait returns at once.
    public func drain() {
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        for _ in 0..<Self.drainBudget {
            let n = withUnsafeMutableBytes(of: &buffer) { b in
                isSocket ? recv(fd.rawValue, b.baseAddress, b.count, Int32(MSG_DONTWAIT)) : read(fd.rawValue, b.baseAddress, b.count)
            }
            guard n > 0 else { return }
        }
    }

    /// Rings consumed by one `drain`.
    static let drainBudget = 64
}
