import CFaultRingABI
import CFaultRingSys
import FaultABI
import FaultControl
import FaultFD
import FaultPipeline
import FaultQueue
import FaultSys
import Glibc
import Histogram
import Logging
import PageRequests
import SystemPackage

/// The faultring daemon: a UNIX control socket, one queue per client, the
/// pipeline (page-request tracker) in front of one `FaultSource`, and an
/// io_uring (or poll) loop.
///
/// The service knows where faults come from only through `FaultSource`:
/// the command line decides (simulated devices, a fixture, a capture).
///
/// Exits cleanly on SIGTERM or SIGINT: every outstanding group is answered
/// INVALID, every queue is marked closed, the socket file is removed. A
/// source that `drainsBeforeStop` is first stopped and given up to twice
/// the page-request timeout for its groups to be answered.
public final class FaultService {
    /// The settings in force.
    public let config: ServiceConfig
    /// Where faults come from.
    public let source: any FaultSource
    let logger: Logger
    let loop: EventLoop
    let listener: ControlSocket
    let signals: OwnedFD
    /// The one timer: armed for the pipeline's next deadline.
    let timer: OwnedFD
    let pipeline: Pipeline
    /// Which session owns each attached device (by control socket fd).
    var owner: [UInt32: Int32] = [:]
    /// Sessions by control socket fd.
    var sessions: [Int32: Session] = [:]
    /// Held open so that, out of descriptors, one can be freed to accept and close a connection.
    var reserveFD: Int32 = open("/dev/null", O_RDONLY | O_CLOEXEC)
    /// Connections refused (caps, or no descriptor left), for rate-limited logging.
    var refusedConnections: UInt64 = 0
    var stopping = false
    /// Whether the loop watches the listener, signalfd and timer yet.
    var watching = false
    let metrics = ServiceMetrics()
    /// Request-to-answer latency of groups answered by consumers, in ns.
    var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    let started = ContinuousClock.now
    /// Stop raising groups; stop once the outstanding ones are answered.
    var draining: UInt64?
    /// Sources that have gone (their client left, or they hung up), with
    /// their final books, for stats: the last 32.
    /// Their final books as values, not the sources: a retired source (its
    /// closures, its weak-reference side table) is freed when it goes, and
    /// this history is all the memory a departed client leaves behind.
    var retiredSources: [ServiceStats.Source] = []
    /// The last source id handed out by ADD_SOURCE.
    var nextSourceID: UInt32 = 0

    /// Sets up the socket, the signal handling, the pipeline and the loop.
    /// - Throws: `ControlError` if the socket cannot be created or
    ///   inherited, or signals cannot be routed to a signalfd.
    public init(config: ServiceConfig, source: any FaultSource, logger: Logger) throws(ControlError) {
        self.logger = logger
        self.config = config
        self.source = source
        do {
            signals = try Sys.signalfd([SIGTERM, SIGINT])
            timer = try Sys.timerfd()
        } catch {
            throw ControlError(error.errno, error.call)
        }
        if let fd = config.inheritedFD {
            let flags = fcntl(fd, F_GETFL)
            guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
                throw ControlError(Errno(rawValue: errno), "fcntl(inherited fd \(fd), F_SETFL, O_NONBLOCK)")
            }
            listener = ControlSocket(fd: FileDescriptor(rawValue: fd))
        } else if let path = config.socketPath {
            listener = try ControlSocket.listen(path: path, mode: config.socketMode)
        } else {
            throw ControlError(.invalidArgument, "neither --socket-path nor --fd given")
        }
        pipeline = Pipeline(source: source, policy: config.policy)
        loop = EventLoop(preferred: config.backend, logger: logger)
        pipeline.observer = { [unowned self] completion in
            guard completion.source == .consumer, completion.requestedAtNS > 0 else { return }
            let now = Sys.monotonicNS
            _ = latency.record(now > completion.requestedAtNS ? now - completion.requestedAtNS : 0)
        }
    }

    /// What HELLO answers.
    public var capabilities: Capabilities {
        Self.capabilities(for: config, devices: Array(pipeline.knownDevices), eventLoop: loop.backend)
    }

    /// What a service with `config` fronting `devices` offers; `eventLoop`
    /// defaults to what start-up would choose here (`--print-capabilities`).
    public static func capabilities(for config: ServiceConfig, devices: [UInt32], eventLoop: EventLoop.Backend? = nil)
        -> Capabilities
    {
        Capabilities(
            protocolVersion: FAULTRING_PROTOCOL_VERSION, abis: [1, 2],
            features: ["page-requests", "unrecoverable-faults", "lost-records", "cookies", "auto-invalid-on-detach",
                       "timeouts", "prometheus-stats", "add-source"],
            maxMessageSize: ControlMessage.maxSize, maxDevicesPerAttach: FaultControl.maxDevicesPerAttach,
            entryCount: config.entryCount, responseCount: config.responseCount, devices: devices.sorted(),
            eventLoop: (eventLoop ?? EventLoop.probe(preferred: config.backend)).rawValue,
            pageRequestTimeoutMilliseconds: config.policy.timeoutNS / 1_000_000)
    }

    /// Runs until SIGTERM/SIGINT (or `stop()`, or a finished source), then
    /// shuts down cleanly.
    ///
    /// Event-driven: nothing waits for a clock tick. Each turn runs the
    /// pipeline's step, arms the one timer for the pipeline's next deadline
    /// (a timeout, the source's next raise), tells every producer it is
    /// about to sleep (so a consumer that answers rings its doorbell), and
    /// blocks in the kernel until a descriptor is readable: the listening
    /// socket, a control connection, a doorbell, the signalfd, the timer.
    /// With nothing outstanding and no clock-driven source the timer is
    /// disarmed and the service uses no CPU at all.
    public func run() {
        startWatching()
        var armed: UInt64 = 0
        var polledAt: UInt64 = 0
        while !stopping {
            let now = Sys.monotonicNS
            step(now: now)
            if stopping { break }
            var deadline = pipeline.nextDeadline(after: now)
            let silent = dropSilentConnections(now: now)
            if let silent { deadline = min(deadline ?? .max, silent) }
            if config.pollNS > 0 {
                // Spin for answers; a deadline inside the window is waited for
                // here too, rather than through a timer wake-up, and the next
                // step follows without a system call. Descriptors are still
                // polled, without blocking, once per window, so a spinning
                // service never starves its control connections.
                let end = now &+ config.pollNS
                if let due = deadline, due <= end {
                    spin(until: due)
                    if Sys.monotonicNS &- polledAt < config.pollNS { continue }
                    polledAt = Sys.monotonicNS
                    loop.runOnce(timeoutMilliseconds: 0)
                    continue
                }
                spin(until: end)
                deadline = pipeline.nextDeadline(after: Sys.monotonicNS)
                if let silent { deadline = min(deadline ?? .max, silent) }  // HELLO and idle deadlines still stand
                polledAt = Sys.monotonicNS
            }
            if let since = draining { deadline = min(deadline ?? .max, since &+ 2 * config.policy.timeoutNS) }
            let wanted = deadline ?? 0
            if wanted != armed {
                let rc = faultring_sys_timerfd_arm(timer.rawValue, wanted)
                if rc < 0 { logger.error("arming the timerfd: \(Errno(rawValue: -rc))") }
                armed = wanted
            }
            // The doorbell protocol: tell every producer we are about to
            // sleep; a consumer that already has work means no sleep.
            var block = deadline.map { $0 > Sys.monotonicNS } ?? true
            for session in sessions.values {
                if let queue = session.queue, !queue.prepareToSleep() { block = false }
            }
            loop.runOnce(timeoutMilliseconds: block ? -1 : 0)
            for session in sessions.values { session.queue?.finishSleeping() }
        }
        shutdown()
    }

    /// Watches the listener, the signalfd and the timer (once: `run` and
    /// `turn` both start here).
    func startWatching() {
        guard !watching else { return }
        watching = true
        loop.watch(listener.fd.rawValue) { [unowned self] in acceptAll() }
        loop.watch(signals.rawValue) { [unowned self] in takeSignal() }
        loop.watch(timer.rawValue) { [unowned self] in
            let rc = faultring_sys_timerfd_drain(timer.rawValue)
            if rc < 0 { logger.error("reading the timerfd: \(Errno(rawValue: Int32(truncatingIfNeeded: -rc)))") }
        }
        logger.info("serving \(source.devices.count) devices on \(config.socketPath ?? "fd \(config.inheritedFD ?? -1)")")
    }

    /// One turn of the loop that never sleeps: the pipeline's step, the
    /// HELLO deadlines, and every descriptor ready now, each within its
    /// per-turn budget.
    ///
    /// For a driver that owns the thread and plays the clients itself (the
    /// stateful control-protocol fuzzer): `run` is this with a sleep
    /// between turns. Not to be mixed with `run`.
    @_spi(Driving) public func turn() {
        startWatching()
        let now = Sys.monotonicNS
        step(now: now)
        _ = dropSilentConnections(now: now)
        loop.runOnce(timeoutMilliseconds: 0)
    }

    /// Control connections open now (each a session, HELLO said or not).
    @_spi(Driving) public var connectionCount: Int { sessions.count }

    /// Spins (`--poll-us`) until a consumer has written something or
    /// `end` passes, so a busy consumer's answers (and deadlines due within
    /// the window) are taken without a sleep and a wake-up in between.
    func spin(until end: UInt64) {
        while Sys.monotonicNS < end {
            for session in sessions.values where session.queue?.consumerHasWork == true { return }
            Sys.relax()
        }
    }

    /// Asks the loop to stop at its next turn.
    public func stop() { stopping = true }

    func takeSignal() {
        let signo = faultring_sys_signalfd_signo(signals.rawValue)
        if signo < 0 {
            logger.error("reading the signalfd: \(Errno(rawValue: -signo))")
            return
        }
        guard signo > 0 else { return }
        if source.drainsBeforeStop && draining == nil {
            logger.info("signal \(signo): the source stops raising groups; draining the outstanding ones")
            source.stopRaising()
            draining = Sys.monotonicNS
        } else {
            logger.info("signal \(signo): shutting down")
            stopping = true
        }
    }

    // MARK: The step

    /// Every turn: the pipeline's step (the source raises, responses are
    /// read and matched, timeouts fire); a finished source or a finished
    /// drain stops.
    func step(now: UInt64) {
        if let since = draining {
            if pipeline.tracker.outstandingGroups == 0 || now - since > 2 * config.policy.timeoutNS { stopping = true }
            pipeline.serviceQueues(now: now)
            return
        }
        pipeline.step(now: now)
        if source.isFinished {
            logger.info("the source has finished: stopping")
            stopping = true
        }
    }

    /// Reads and matches the responses a session's consumer wrote.
    func serviceResponses(_ session: Session) {
        guard let channel = session.channel else { return }
        pipeline.readResponses(channel)
    }

    // MARK: Connections

    /// Accepts up to `acceptsPerTurn` connections: checks the peer's uid
    /// and the connection caps, then watches each for messages.
    ///
    /// Out of descriptors (EMFILE, ENFILE), the listener would stay readable
    /// and the loop spin: the reserve descriptor is closed, the waiting
    /// connection accepted and closed at once, the reserve reopened.
    func acceptAll() {
        for _ in 0..<config.acceptsPerTurn {
            let socket: ControlSocket
            do {
                guard let accepted = try listener.accept() else { return }
                socket = accepted
            } catch {
                if error.errno == .tooManyOpenFiles || error.errno == .tooManyOpenFilesInSystem {
                    shedConnection()
                } else {
                    logger.error("accept: \(error)")
                }
                return
            }
            let peer: (pid: UInt32, uid: UInt32, gid: UInt32)
            do {
                peer = try socket.peerCredentials()
            } catch {
                logger.error("\(error)")
                try? socket.fd.close()
                continue
            }
            let allowed = config.allowedUIDs ?? [getuid(), 0]
            guard allowed.contains(peer.uid) else {
                logger.warning("refused pid \(peer.pid): uid \(peer.uid) not allowed")
                try? socket.send(.errorReply(id: 0, command: ControlCommand.hello.rawValue,
                                             ControlError(.permissionDenied, "uid \(peer.uid) is not allowed to connect")))
                try? socket.fd.close()
                continue
            }
            let fromUID = sessions.values.reduce(0) { $0 + ($1.uid == peer.uid ? 1 : 0) }
            if sessions.count >= config.maxSessions || fromUID >= config.maxSessionsPerUID {
                let why = sessions.count >= config.maxSessions
                    ? "\(sessions.count) connections, the most this service takes"
                    : "\(fromUID) connections from uid \(peer.uid), the most one uid may have"
                refusedConnections &+= 1
                if refusedConnections <= 10 || refusedConnections % 1000 == 0 {
                    logger.warning("refused pid \(peer.pid): \(why) (\(refusedConnections) refused so far)")
                }
                try? socket.send(.errorReply(id: 0, command: ControlCommand.hello.rawValue,
                                             ControlError(.resourceTemporarilyUnavailable, why)))
                try? socket.fd.close()
                continue
            }
            let session = Session(socket: socket, pid: peer.pid, uid: peer.uid, connectedAt: Sys.monotonicNS)
            sessions[socket.fd.rawValue] = session
            loop.watch(socket.fd.rawValue) { [unowned self] in readMessages(session) }
            logger.info("client pid \(peer.pid) uid \(peer.uid) connected")
        }
    }

    /// Takes up to `messagesPerTurn` messages from `session` (the rest wait,
    /// readable, for the next turn).
    func readMessages(_ session: Session) {
        var taken = 0
        while sessions[session.socket.fd.rawValue] === session && taken < config.messagesPerTurn {
            taken += 1
            let received: ControlSocket.Received
            do {
                received = try session.socket.receive()
            } catch {
                logger.warning("client pid \(session.pid): \(error)")
                drop(session)
                return
            }
            switch received {
            case .wouldBlock:
                return
            case .closed:
                drop(session)
                return
            case .malformed(let failure):
                metrics.protocolError()
                session.badMessages &+= 1
                if session.badMessages <= 10 || session.badMessages % 1000 == 0 {
                    logger.notice("client pid \(session.pid): \(failure.error) (\(session.badMessages) malformed so far)")
                }
                send(.errorReply(id: failure.id, command: failure.command, failure.error), to: session)
            case .message(let message):
                // Only a well-formed message keeps a session that holds nothing alive.
                session.lastHeardAt = Sys.monotonicNS
                handle(message, from: session)
            }
        }
    }

    func send(_ message: ControlMessage, to session: Session) {
        do {
            try session.socket.send(message)
        } catch {
            logger.warning("client pid \(session.pid): send failed: \(error)")
        }
    }

    /// Ends a session: its devices' outstanding groups are answered INVALID
    /// (detach), its queue is marked closed, its devices become free.
    ///
    /// Answers the consumer wrote before it left (BYE, close, or death) are
    /// read first: they were given while it was attached, and the control
    /// socket and the response ring are separate paths, so the goodbye can
    /// overtake them.
    /// The EMFILE escape: frees the reserve descriptor, accepts the
    /// connection that is waiting and closes it, takes the reserve back.
    func shedConnection() {
        if reserveFD >= 0 { Glibc.close(reserveFD) }
        if let socket = try? listener.accept() { try? socket.fd.close() }
        reserveFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        refusedConnections &+= 1
        if refusedConnections <= 10 || refusedConnections % 1000 == 0 {
            logger.error("out of descriptors: a connection was closed unserved (\(refusedConnections) refused so far)")
        }
    }

    /// Drops every connection that has not said HELLO in time, and every
    /// one that holds nothing and has been silent for the idle timeout;
    /// returns when the next one is due (nil: none).
    func dropSilentConnections(now: UInt64) -> UInt64? {
        var next: UInt64?
        for session in sessions.values {  // iterates a snapshot: `drop` may remove from `sessions`
            let due: UInt64
            let why: String
            if !session.helloDone {
                due = session.connectedAt &+ config.helloTimeoutNS
                why = "no HELLO within \(config.helloTimeoutNS / 1_000_000) ms"
            } else if config.idleTimeoutNS > 0 && session.holdsNothing {
                due = session.lastHeardAt &+ config.idleTimeoutNS
                why = "idle for \(config.idleTimeoutNS / 1_000_000) ms holding nothing"
            } else {
                continue
            }
            if due <= now {
                logger.notice("client pid \(session.pid): \(why); dropped")
                drop(session)
            } else {
                next = min(next ?? due, due)
            }
        }
        return next
    }

    func drop(_ session: Session) {
        let fd = session.socket.fd.rawValue
        guard sessions[fd] === session else { return }
        sessions.removeValue(forKey: fd)
        loop.unwatch(fd)
        if let queue = session.queue { loop.unwatch(queue.doorbellFD.rawValue) }
        if let channel = session.channel { pipeline.removeQueue(channel) }  // reads its last answers first
        // Everything its sources' peers sent is read first, while all of their devices still
        // exist: removing a device's fault socket first would leave its queued events nowhere to go.
        let now = Sys.monotonicNS
        for source in session.sources { source.drainQueued(now: now, into: pipeline) }
        pipeline.flush()
        for source in session.sources { remove(source, of: session) }
        for id in session.devices { owner.removeValue(forKey: id) }
        session.queue?.close()
        try? session.socket.fd.close()
        logger.info("client pid \(session.pid) gone; its devices' outstanding groups were answered INVALID")
    }

    /// The way out: the source writes its books, every outstanding group
    /// is answered INVALID, every queue is marked closed.
    func shutdown() {
        if reserveFD >= 0 { Glibc.close(reserveFD) }
        reserveFD = -1
        source.finish(pipeline.summary)
        let outstanding = pipeline.tracker.outstandingGroups
        pipeline.shutdown()
        for session in sessions.values {  // iterates a snapshot: `drop` may remove from `sessions`
            loop.unwatch(session.socket.fd.rawValue)
            session.queue?.close()
            try? session.socket.fd.close()
        }
        sessions.removeAll()
        loop.unwatch(listener.fd.rawValue)
        try? listener.fd.close()
        if let path = config.socketPath { unlink(path) }
        logger.info("stopped: \(outstanding) outstanding groups answered INVALID on the way out")
    }
}
