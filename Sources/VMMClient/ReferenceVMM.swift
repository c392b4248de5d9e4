import FaultABI
import FaultSys
import Glibc
import IOMMUFormats

/// A reference VMM: attaches devices, reinjects every record into a guest
/// format, and answers page requests as a `ConsumerBehaviour` says —
/// through the guest's own response format where it has one (vSMMUv3
/// CMD_PRI_RESP, VT-d page group response), decoded back into a page
/// response, as a real VMM would.
///
/// `faultring consume` only configures and runs one. One thread drives it.
public final class ReferenceVMM {
    /// What to run.
    public struct Options: Sendable {
        /// The service's socket.
        public var socketPath: String
        /// Devices to attach.
        public var devices: [UInt32] = [1]
        /// Record ABI to negotiate.
        public var abi = ABIVersion.v2
        /// The guest's view of faults.
        public var format = GuestFormat.smmuv3
        /// How the guest's descriptors are laid out and read: the VT-d
        /// revision, and whether reserved bits in its answers are refused.
        public var dialect = HardwareDialect.linux
        /// How to answer.
        public var behaviour = ConsumerBehaviour()
        /// The service's cookie table size (for stale injections).
        public var cookieTable = 65_536
        /// Stop after this many groups (0: no limit).
        public var groups: UInt64 = 0
        /// Stop after this many seconds (0: no limit).
        public var seconds: Double = 0
        /// Reconnect when the service restarts, instead of stopping.
        public var reconnect = false
        /// Spin this many times looking for records before sleeping on the
        /// doorbell (a polling VMM spins for long; a sleeping one briefly).
        public var spins = 2000
        /// Reinject records into the guest format (off: read and answer only,
        /// to measure the transport).
        public var reinject = true
        /// Asked about every 10 ms: when it says true, the VMM stops and
        /// reports (a signal handled by the caller, a storm's end).
        public var stop: (@Sendable () -> Bool)?

        /// Options for a VMM on `socketPath`; everything else defaults.
        public init(socketPath: String) { self.socketPath = socketPath }
    }

    /// What the VMM saw and did.
    public struct Summary: Codable, Sendable {
        /// Records read.
        public var records: UInt64 = 0
        /// Page-request groups read (LAST_PAGE requests).
        public var groups: UInt64 = 0
        /// Records ABI 2 LOST records said were dropped.
        public var lostReported: UInt64 = 0
        /// Bytes reinjected into the guest.
        public var reinjectedBytes: UInt64 = 0
        /// Records the guest format cannot carry.
        public var notRepresentable: UInt64 = 0
        /// Records the client could not decode (counted by the client).
        public var undecodable: UInt64 = 0
        /// Guest answers that did not decode back to a pending group.
        public var guestAnswerErrors: UInt64 = 0
        /// The first such error, in words.
        public var firstGuestAnswerError: String?
        /// Right answers by code.
        public var answered: [String: UInt64] = [:]
        /// Groups left unanswered by policy (never) or by the guest format.
        public var unanswered: UInt64 = 0
        /// Reconnections after a service restart.
        public var reconnects: UInt64 = 0
        /// Seconds run.
        public var seconds: Double = 0
        /// What was injected.
        public var injected = InjectedCounts()
        /// CPU time this process used (user + system), seconds.
        public var cpuSeconds: Double = 0
    }

    /// The options in force.
    public let options: Options
    /// The books so far.
    public private(set) var summary = Summary()

    var client: VMMClient
    /// The second connection foreign answers need: it holds the last device.
    var second: VMMClient?
    var script: AnswerScript
    var secondScript: AnswerScript?
    var encoder: GuestEncoder
    var path: GuestFormatPath
    var delayed: [(due: UInt64, response: PageResponse)] = []
    var rng = SystemRandomNumberGenerator()

    /// Connects, attaches and negotiates (a second connection for the last
    /// device when the behaviour injects foreign answers).
    public init(_ options: Options) throws(VMMClientError) {
        self.options = options
        var devices = options.devices
        var behaviour = options.behaviour
        if behaviour.foreignEvery > 0 && devices.count >= 2 {
            var foreign = ConsumerBehaviour()
            foreign.foreignEvery = behaviour.foreignEvery
            secondScript = AnswerScript(foreign, abi: options.abi, cookieTable: options.cookieTable)
            second = try VMMClient(socketPath: options.socketPath, devices: [devices.removeLast()], abi: options.abi,
                                   client: "faultring consume (second connection)")
        }
        // Foreign answers travel from the second connection's groups to the first.
        behaviour.foreignEvery = 0
        script = AnswerScript(behaviour, abi: options.abi, cookieTable: options.cookieTable)
        client = try VMMClient(socketPath: options.socketPath, devices: devices, abi: options.abi,
                               client: "faultring consume")
        encoder = GuestEncoder(format: options.format, vtdRevision: options.dialect.vtd)
        path = GuestFormatPath(format: options.format, dialect: options.dialect)
    }

    /// Runs until the limits in `options` are reached or the service goes
    /// away (unless reconnecting); `progress` is called about twice a second.
    @discardableResult
    public func run(progress: (Summary) -> Void = { _ in }) throws(VMMClientError) -> Summary {
        let start = Sys.monotonicNS
        var lastProgress = start
        func elapsed() -> Double { Double(Sys.monotonicNS - start) / 1e9 }
        if options.behaviour.startDelayMicroseconds > 0 { usleep(UInt32(clamping: options.behaviour.startDelayMicroseconds)) }
        var lastStopCheck = start
        while true {
            if options.groups > 0 && summary.groups >= options.groups { break }
            // Every 10 ms: a stop asked for, and a service that died without marking the queue closed.
            var hungUp = false
            if Sys.monotonicNS &- lastStopCheck >= 10_000_000 {
                lastStopCheck = Sys.monotonicNS
                if options.stop?() == true { break }
                hungUp = client.serviceHungUp
            }
            if options.seconds > 0 && elapsed() >= options.seconds { break }
            if client.serviceGone || hungUp {
                guard options.reconnect else { break }
                client = try client.reconnect()
                summary.reconnects += 1
                continue
            }
            let now = Sys.monotonicNS
            while let first = delayed.first, first.due <= now {
                delayed.removeFirst()
                client.queueResponse(first.response)
            }
            client.flush()
            if second != nil { try serveSecondConnection() }
            // Sleep no longer than the next delayed answer is due: its latency is the guest's delay, not our nap.
            var nap: Int32 = second == nil ? 50 : 1
            if let first = delayed.first { nap = min(nap, Int32(clamping: (first.due &- min(first.due, now)) / 1_000_000)) }
            guard client.wait(spins: options.spins, timeoutMilliseconds: nap) else { continue }
            try client.consume(max: 256) { record in handle(record) }
            if Sys.monotonicNS - lastProgress >= 500_000_000 {
                lastProgress = Sys.monotonicNS
                summary.seconds = elapsed()
                progress(summary)
            }
        }
        summary.seconds = elapsed()
        summary.cpuSeconds = Sys.cpuSeconds
        summary.undecodable = client.undecodableRecords + (second?.undecodableRecords ?? 0)
        summary.injected = script.injected + (secondScript?.injected ?? InjectedCounts())
        return summary
    }

    /// Says BYE on every connection.
    public func close() {
        second?.close()
        client.close()
    }

    /// One record from the first connection: reinject it, and answer it if
    /// it closes a group.
    func handle(_ record: DecodedRecord) -> PageResponse? {
        summary.records += 1
        let soleDevice = client.devices.first ?? 0  // an ABI 1 queue serves the one device attached
        let endpoint: UInt32
        switch record {
        case .event(.pageRequest(let r), _): endpoint = options.abi == .v1 ? soleDevice : r.deviceID
        case .event(.unrecoverable(let f), _): endpoint = options.abi == .v1 ? soleDevice : f.deviceID
        case .lost(let l):
            summary.lostReported += l.lostRecords
            endpoint = soleDevice
        }
        if !options.reinject {
            // Transport only: no guest encoding.
        } else if let bytes = encoder.encode(record, endpoint: endpoint) {
            summary.reinjectedBytes += UInt64(bytes.count)
        } else {
            summary.notRepresentable += 1
        }
        guard case .event(.pageRequest(let request), _) = record, request.isLastPage else { return nil }
        if let crash = options.behaviour.crashAfterGroups, summary.groups >= crash {
            client.flush()
            kill(getpid(), SIGKILL)  // a crash point: die mid-stream, answering nothing more
        }
        summary.groups += 1
        var responses: [PageResponse] = []
        let answers = script.answer(request, using: &rng, right: { code in guestAnswer(request, endpoint: endpoint, code) },
                                    into: &responses)
        guard let right = answers.right, let last = responses.last else {
            summary.unanswered += 1
            return nil
        }
        summary.answered[right.code.description, default: 0] += 1
        if options.behaviour.delayMicroseconds > 0 || options.behaviour.delaySpread != nil {
            let due = Sys.monotonicNS + options.behaviour.drawDelayMicroseconds(using: &rng) * 1000
            // Kept in due order (delays vary): the answers of one group stay in their order.
            var at = delayed.count
            while at > 0 && delayed[at - 1].due > due { at -= 1 }
            delayed.insert(contentsOf: responses.map { (due, $0) }, at: at)
            return nil
        }
        for response in responses.dropLast() { client.queueResponse(response) }
        return last
    }

    /// The second connection's groups: every N-th is first answered on the
    /// first connection (a foreign answer), and only once the service has
    /// read it does the right answer go out on the second.
    func serveSecondConnection() throws(VMMClientError) {
        guard let second, var secondScript else { return }
        defer { self.secondScript = secondScript }
        try second.consume(max: 256) { record in
            guard case .event(.pageRequest(let request), _) = record, request.isLastPage else { return nil }
            summary.groups += 1
            var unsent: [PageResponse] = []
            let answers = secondScript.answer(request, using: &rng, right: { code in
                PageResponse(code: code, cookie: request.cookie, pasid: request.needsPASID ? request.pasid : nil,
                             prgi: request.prgi)
            }, into: &unsent)  // only the right answer goes out here, returned below
            if let foreign = answers.foreign {
                client.queueResponse(foreign)
                client.flush()
                for _ in 0..<10_000 where client.responsesUnread > 0 { usleep(100) }
            }
            guard let right = answers.right else { return nil }
            summary.answered[right.code.description, default: 0] += 1
            return right
        }
    }

    /// A guest answer that failed to decode is counted, and the group is
    /// left unanswered (the service answers it on timeout).
    func counted(_ decode: () throws(GuestAnswerError) -> PageResponse) -> PageResponse? {
        do {
            return try decode()
        } catch {
            summary.guestAnswerErrors += 1
            if summary.firstGuestAnswerError == nil { summary.firstGuestAnswerError = "\(error)" }
            return nil
        }
    }

    /// The guest answers `code` in its own format; the VMM decodes that
    /// answer back into a page response.
    func guestAnswer(_ request: PageRequest, endpoint: UInt32, _ code: ResponseCode) -> PageResponse? {
        counted { () throws(GuestAnswerError) in try path.answer(request, endpoint: endpoint, code: code) }
    }
}
