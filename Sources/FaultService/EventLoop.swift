import CURingShim
import Glibc
import Logging

/// The service's event loop: waits for readable descriptors (listening
/// socket, control connections, doorbells, source descriptors, the signalfd
/// and the one timerfd) and runs their handlers, on io_uring (one-shot
/// POLL_ADD, re-armed after each completion) or on poll(2). There is no
/// tick: the caller arms the timerfd for its next deadline. io_uring is preferred; it is often blocked in containers
/// (seccomp, `kernel.io_uring_disabled`), so start-up probes it and falls
/// back to poll, and says which in the log.
public final class EventLoop {
    /// Which mechanism waits.
    public enum Backend: String, Sendable, CaseIterable {
        case uring = "io_uring"
        case poll
    }

    /// The backend in use.
    public let backend: Backend
    let logger: Logger
    var ring: OpaquePointer?
    /// Watched descriptors by token; a token is never reused, so a stale
    /// completion for a closed and reused fd number cannot reach a new handler.
    var watches: [UInt64: (fd: Int32, handler: () -> Void)] = [:]
    var tokenByFD: [Int32: UInt64] = [:]
    var nextToken: UInt64 = 1
    var events = [curing_event](repeating: curing_event(), count: 64)

    /// Chooses a backend: `preferred` if given (io_uring falls back to poll
    /// if it cannot be set up), else io_uring if available.
    public init(preferred: Backend?, logger: Logger) {
        self.logger = logger
        if preferred == .poll {
            backend = .poll
            logger.info("event loop: poll(2), as requested")
            return
        }
        var handle: OpaquePointer?
        let rc = curing_create(256, &handle)
        if rc == 0, let handle {
            ring = handle
            backend = .uring
            logger.info("event loop: io_uring")
        } else {
            backend = .poll
            logger.warning("event loop: io_uring unavailable (\(String(cString: strerror(-rc)))), using poll(2)")
        }
    }

    deinit {
        if let ring { curing_destroy(ring) }
    }

    /// The backend `init(preferred:)` would choose, without keeping a ring.
    public static func probe(preferred: Backend?) -> Backend {
        if preferred == .poll { return .poll }
        var handle: OpaquePointer?
        guard curing_create(8, &handle) == 0, let handle else { return .poll }
        curing_destroy(handle)
        return .uring
    }

    /// Calls `handler` whenever `fd` is readable (or hung up), until `unwatch`.
    public func watch(_ fd: Int32, _ handler: @escaping () -> Void) {
        unwatch(fd)
        let token = nextToken
        nextToken += 1
        watches[token] = (fd, handler)
        tokenByFD[fd] = token
        if let ring { arm(ring, fd, token) }
    }

    /// Queues the one-shot poll; a failure is logged, never ignored: the
    /// descriptor would silently stop being watched.
    func arm(_ ring: OpaquePointer, _ fd: Int32, _ token: UInt64) {
        let rc = curing_poll(ring, fd, token)
        if rc < 0 { logger.error("io_uring poll on fd \(fd): \(String(cString: strerror(-rc)))") }
    }

    /// Stops watching `fd`. Call before closing it.
    public func unwatch(_ fd: Int32) {
        guard let token = tokenByFD.removeValue(forKey: fd) else { return }
        watches.removeValue(forKey: token)
        if let ring {
            // A failed cancel leaves a poll whose completion finds no watch
            // (tokens are never reused), so it is harmless; still say so.
            let rc = curing_cancel(ring, token)
            if rc < 0 { logger.debug("io_uring cancel of fd \(fd): \(String(cString: strerror(-rc)))") }
        }
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) and runs the handlers
    /// of the descriptors that became readable. Returns how many ran.
    @discardableResult
    public func runOnce(timeoutMilliseconds: Int32) -> Int {
        if let ring { return runOnceUring(ring, timeoutMilliseconds) }
        return runOncePoll(timeoutMilliseconds)
    }

    func runOnceUring(_ ring: OpaquePointer, _ timeout: Int32) -> Int {
        let n = events.withUnsafeMutableBufferPointer { curing_wait(ring, timeout, $0.baseAddress, UInt32($0.count)) }
        guard n > 0 else {
            if n < 0 { logger.error("io_uring wait failed: \(String(cString: strerror(-n)))") }
            return 0
        }
        var ran = 0
        for event in events.prefix(Int(n)) {
            guard let watch = watches[event.token] else { continue }  // cancelled
            if event.result < 0 {
                // The poll itself failed (EBADF: the fd was closed under its
                // watch). Re-arming would fail the same way at once, forever.
                forget(watch.fd, "io_uring poll: \(String(cString: strerror(-event.result)))")
                continue
            }
            // Re-arm first: the handler may unwatch, which cancels the new poll.
            arm(ring, watch.fd, event.token)
            watch.handler()
            ran += 1
        }
        return ran
    }

    /// Drops a watch whose descriptor is no longer open, and says so: a bug
    /// elsewhere (a close before unwatch), not something to spin on.
    func forget(_ fd: Int32, _ why: String) {
        logger.error("event loop: fd \(fd) is no longer watchable (\(why)); dropping its watch")
        unwatch(fd)
    }

    func runOncePoll(_ timeout: Int32) -> Int {
        let order = Array(watches.keys)
        var fds = order.map { pollfd(fd: watches[$0]!.fd, events: Int16(POLLIN), revents: 0) }
        let n = poll(&fds, nfds_t(fds.count), timeout)
        guard n > 0 else {
            if n < 0 && errno != EINTR { logger.error("poll: \(String(cString: strerror(errno)))") }
            return 0
        }
        var ran = 0
        for (i, token) in order.enumerated() where fds[i].revents != 0 {
            guard let watch = watches[token] else { continue }  // unwatched by an earlier handler
            if fds[i].revents & Int16(POLLNVAL) != 0 {
                // Not an open descriptor: it would be reported at once, forever.
                forget(watch.fd, "poll: POLLNVAL")
                continue
            }
            watch.handler()
            ran += 1
        }
        return ran
    }
}
