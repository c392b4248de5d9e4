import CFaultRingABI
import Devices
import FaultABI
import FaultControl
import FaultQueue
import Glibc
import Histogram
import Logging
import PageRequests
import SystemPackage
import Workloads

/// How a service runs.
public struct ServiceConfig: Sendable {
    /// Listen on this path (created; removed at exit), or ...
    public var socketPath: String?
    /// ... use this inherited, already-listening SOCK_SEQPACKET socket.
    public var inheritedFD: Int32?
    /// The simulated devices this service fronts.
    public var devices: [SimulatedDeviceConfig] = []
    /// Page-request groups each attached device tries to raise per tick.
    public var groupsPerTick = 4
    /// Stop raising after this many groups per device (nil: never).
    public var groupsPerDevice: UInt64?
    /// Tick period: device simulation, timeouts, negotiation.
    public var tickMilliseconds: Int32 = 1
    /// Page-request policy (timeout, FAILURE, caps).
    public var policy = PageRequestPolicy()
    /// Event loop backend (nil: io_uring if available, else poll).
    public var backend: EventLoop.Backend?
    /// Peer uids allowed to connect (nil: the service's own uid and root).
    public var allowedUIDs: Set<UInt32>?
    /// Ring sizes of each client's queue.
    public var entryCount = 4096
    public var responseCount = 1024
    /// Replay this fixture as the fault source instead of simulated devices
    /// (its devices, service settings and events), then stop.
    public var fixturePath: String?
    /// "fast" (as fast as possible) or "recorded" (the events' own timing).
    public var fixturePace = "fast"
    /// Where to write the fixture run's outcome (JSON) before stopping.
    public var outcomePath: String?
    /// Record what the simulated devices raise, and how each group ended,
    /// as a fixture at this path (written as it happens; finished at stop).
    public var capturePath: String?

    public init() {}
}

/// The faultring daemon: a UNIX control socket, one queue per client, the
/// page-request tracker, simulated devices, and an io_uring (or poll) loop.
///
/// Exits cleanly on SIGTERM or SIGINT: every outstanding group is answered
/// INVALID, every queue is marked closed, the socket file is removed.
public final class FaultService {
    public let config: ServiceConfig
    let logger: Logger
    let loop: EventLoop
    let listener: ControlSocket
    let signalFD: Int32
    var tracker: PageRequestTracker
    /// Simulated devices, by id.
    var devices: [UInt32: SimulatedPRIDevice] = [:]
    /// Which session owns each attached device.
    var owner: [UInt32: Int32] = [:]
    /// Sessions by control socket fd.
    var sessions: [Int32: Session] = [:]
    var rng = SplitMix64(seed: 0x5EED)
    var stopping = false
    var requests: [PageRequest] = []
    let metrics = ServiceMetrics()
    /// Request-to-answer latency of groups answered by consumers, in ns.
    var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    let started = ContinuousClock.now
    /// Device ids this service fronts (simulated or from a fixture).
    var knownDevices: Set<UInt32> = []
    /// The fixture being replayed, if any.
    var feed: FixtureFeed?
    /// Records lost on queues of sessions that have gone.
    var lostOnClosedQueues: UInt64 = 0
    /// A capture in progress, if any.
    var capture: Capture?
    /// Stop raising groups; stop once the outstanding ones are answered.
    var draining: UInt64?

    /// Sets up the socket, the signal handling and the loop.
    /// - Throws: `ControlError` if the socket cannot be created or inherited.
    public init(config: ServiceConfig, logger: Logger) throws(ControlError) {
        self.logger = logger
        if let fd = config.inheritedFD {
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            listener = ControlSocket(fd: FileDescriptor(rawValue: fd))
        } else if let path = config.socketPath {
            listener = try ControlSocket.listen(path: path)
        } else {
            throw ControlError(.invalidArgument, "neither --socket-path nor --fd given")
        }
        let signals: [Int32] = [SIGTERM, SIGINT]
        signalFD = signals.withUnsafeBufferPointer { faultring_shim_signalfd($0.baseAddress, UInt32($0.count)) }
        guard signalFD >= 0 else { throw ControlError(Errno(rawValue: errno), "signalfd") }
        var config = config
        if let path = config.fixturePath {
            do {
                let feed = try FixtureFeed(path: path, pace: FixtureFeed.Pace(rawValue: config.fixturePace) ?? .fast)
                config.policy.timeoutNS = feed.fixture.service.timeoutMicroseconds * 1000
                config.policy.passFailure = feed.fixture.service.passFailure
                config.policy.maxOutstandingGroups = feed.fixture.service.cookieTable
                config.entryCount = feed.fixture.service.entries
                config.devices = []
                self.feed = feed
            } catch {
                throw ControlError(.invalidArgument, "\(error)")
            }
        }
        self.config = config
        tracker = PageRequestTracker(policy: config.policy)
        for device in config.devices {
            devices[device.deviceID] = SimulatedPRIDevice(device)
            tracker.addDevice(device.deviceID, allocation: device.allocation)
            knownDevices.insert(device.deviceID)
        }
        for device in feed?.fixture.devices ?? [] {
            tracker.addDevice(device.id, allocation: device.allocation)
            knownDevices.insert(device.id)
        }
        loop = EventLoop(preferred: config.backend, logger: logger)
        if let path = config.capturePath {
            do {
                capture = try Capture(path: path, config: config)
            } catch {
                throw ControlError(.invalidArgument, "\(error)")
            }
        }
    }

    /// What HELLO answers.
    public var capabilities: Capabilities { Self.capabilities(for: config, eventLoop: loop.backend) }

    /// What a service with `config` offers; `eventLoop` defaults to what
    /// start-up would choose here (`--print-capabilities`).
    public static func capabilities(for config: ServiceConfig, eventLoop: EventLoop.Backend? = nil) -> Capabilities {
        Capabilities(
            protocolVersion: FAULTRING_PROTOCOL_VERSION, abis: [1, 2],
            features: ["page-requests", "unrecoverable-faults", "lost-records", "cookies", "auto-invalid-on-detach",
                       "timeouts", "prometheus-stats"],
            maxMessageSize: ControlMessage.maxSize, maxDevicesPerAttach: FaultControl.maxDevicesPerAttach,
            entryCount: config.entryCount, responseCount: config.responseCount,
            devices: config.devices.map(\.deviceID).sorted(),
            eventLoop: (eventLoop ?? EventLoop.probe(preferred: config.backend)).rawValue,
            pageRequestTimeoutMilliseconds: config.policy.timeoutNS / 1_000_000)
    }

    /// Runs until SIGTERM/SIGINT (or `stop()`), then shuts down cleanly.
    public func run() {
        loop.watch(listener.fd.rawValue) { [unowned self] in acceptAll() }
        loop.watch(signalFD) { [unowned self] in
            let signo = faultring_shim_signalfd_signo(signalFD)
            if signo > 0 {
                if capture != nil && draining == nil {
                    logger.info("signal \(signo): capture stops raising groups and drains the outstanding ones")
                    draining = monotonicNS()
                } else {
                    logger.info("signal \(signo): shutting down")
                    stopping = true
                }
            }
        }
        logger.info("serving \(devices.count) simulated devices on \(config.socketPath ?? "fd \(config.inheritedFD ?? -1)")")
        var nextTick = monotonicNS()
        let tickNS = UInt64(config.tickMilliseconds) * 1_000_000
        while !stopping {
            let now = monotonicNS()
            if now >= nextTick {
                tick(now: now)
                nextTick = now + tickNS
            }
            // Tell every consumer we are about to sleep (the doorbell
            // protocol); if one already has work, do not block.
            var timeout = Int32((nextTick - min(nextTick, monotonicNS())) / 1_000_000)
            for session in sessions.values {
                if let queue = session.queue, !queue.prepareToSleep() { timeout = 0 }
            }
            loop.runOnce(timeoutMilliseconds: timeout)
            for session in sessions.values {
                session.queue?.finishSleeping()
                serviceResponses(session)
            }
        }
        shutdown()
    }

    /// Asks the loop to stop at its next turn.
    public func stop() { stopping = true }

    func monotonicNS() -> UInt64 { faultring_shim_monotonic_ns() }

    // MARK: Devices and timers

    /// Every tick: attached devices raise page requests; timeouts fire;
    /// queues negotiate and write owed LOST records.
    func tick(now: UInt64) {
        if feed != nil {
            feedTick(now: now)
            tracker.tick(now: now) { complete($0) }
            for session in sessions.values { session.queue?.poll() }
            if let feed, feed.done { finishFixture() }
            return
        }
        if let since = draining {
            if tracker.outstandingGroups == 0 || now - since > 2 * config.policy.timeoutNS { stopping = true }
            tracker.tick(now: now) { complete($0) }
            return
        }
        for (id, _) in owner {
            guard var device = devices[id] else { continue }
            for _ in 0..<config.groupsPerTick {
                if let limit = config.groupsPerDevice, device.ledger.issued >= limit { break }
                requests.removeAll(keepingCapacity: true)
                device.nextGroup(now: now, using: &rng, into: &requests)
                if requests.isEmpty { break }
                devices[id] = device
                for request in requests {
                    capture?.raised(request, now: now)
                    tracker.receive(request, now: now) { complete($0) }
                }
                device = devices[id]!
            }
            devices[id] = device
        }
        tracker.tick(now: now) { complete($0) }
        for session in sessions.values { session.queue?.poll() }
    }

    /// The one answer to a group reaches its device.
    func complete(_ completion: DeviceCompletion) {
        devices[completion.deviceID]?.complete(completion)
        feed?.record(completion)
        capture?.recorder.record(completion)
        if completion.source == .consumer, completion.requestedAtNS > 0 {
            let now = monotonicNS()
            _ = latency.record(now > completion.requestedAtNS ? now - completion.requestedAtNS : 0)
        }
    }

    /// Reads and matches the responses a session's consumer wrote.
    func serviceResponses(_ session: Session) {
        guard let queue = session.queue, let channel = session.channel, let abi = queue.abi else { return }
        queue.readResponses { result in
            tracker.respond(result, channel: channel, abi: abi) { complete($0) }
        }
    }

    // MARK: Connections

    func acceptAll() {
        while true {
            let socket: ControlSocket
            do {
                guard let accepted = try listener.accept() else { return }
                socket = accepted
            } catch {
                logger.error("accept: \(error)")
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
            let session = Session(socket: socket, pid: peer.pid, uid: peer.uid)
            sessions[socket.fd.rawValue] = session
            loop.watch(socket.fd.rawValue) { [unowned self] in readMessages(session) }
            logger.info("client pid \(peer.pid) uid \(peer.uid) connected")
        }
    }

    func readMessages(_ session: Session) {
        while sessions[session.socket.fd.rawValue] === session {
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
                logger.notice("client pid \(session.pid): \(failure.error)")
                send(.errorReply(id: failure.id, command: failure.command, failure.error), to: session)
            case .message(let message):
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
    func drop(_ session: Session) {
        let fd = session.socket.fd.rawValue
        guard sessions[fd] === session else { return }
        serviceResponses(session)
        sessions.removeValue(forKey: fd)
        loop.unwatch(fd)
        if let queue = session.queue { loop.unwatch(queue.doorbellFD.rawValue) }
        if let channel = session.channel { tracker.removeChannel(channel) { complete($0) } }
        for id in session.devices { owner.removeValue(forKey: id) }
        lostOnClosedQueues += session.queue?.countersSnapshot.recordsLost ?? 0
        session.queue?.close()
        try? session.socket.fd.close()
        logger.info("client pid \(session.pid) gone; its devices' outstanding groups were answered INVALID")
    }

    func shutdown() {
        if let capture {
            capture.finish(tracker.snapshot, logger: logger)
            self.capture = nil
        }
        var answered = 0
        tracker.shutdown {
            answered += 1
            complete($0)
        }
        for session in Array(sessions.values) {
            loop.unwatch(session.socket.fd.rawValue)
            session.queue?.close()
            try? session.socket.fd.close()
        }
        sessions.removeAll()
        loop.unwatch(listener.fd.rawValue)
        try? listener.fd.close()
        if let path = config.socketPath { unlink(path) }
        logger.info("stopped: \(answered) outstanding groups answered INVALID on the way out")
    }
}
