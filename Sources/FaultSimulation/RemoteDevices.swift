import CFaultRingABI
import CFaultRingSys
import FaultABI
import FaultPipeline
import FaultSys
import Glibc
import IOMMUFormats
import PageRequests

/// Simulated PRI devices on the far side of a device socket: what
/// `faultring device` runs in its own process, and what a vfio-user server
/// with ATS/PRI would do. They speak the iommufd fault-queue record
/// protocol to the service: whole groups of 40-byte `iommu_hwpt_pgfault`
/// records (several per packet, never one split across two), each group
/// with a cookie the device chose; answers
/// come back as 8-byte `iommu_hwpt_page_response {cookie, code}`.
///
/// The device side's rules mirror the kernel's: an answer for an unknown
/// cookie is refused (counted, and reported back as an 8-byte error packet
/// `{cookie, EINVAL}`); when the service hangs up, every pending group is
/// answered INVALID (booked as `closed`). Each device's ledger checks every
/// answer, so the exactly-once proof crosses the process boundary.
///
/// A device whose service restarts can be handed new sockets (`adopt`, from
/// `run`'s `reconnect`): arrivals that came meanwhile wait with their
/// scheduled times, and `Report.answerGaps` shows the outage each device saw.
///
/// Optionally a second socket carries vEVENTQ records (header + SMMUv3
/// event) for unrecoverable faults, with deliberate loss: sequence gaps and
/// LOST_EVENTS headers, counted so the service's accounting can be checked.
public final class RemoteDevices {
    /// How the devices behave over the socket.
    public struct Options: Sendable {
        /// Groups each device raises per second.
        public var rate: Double = 1000
        /// Stop raising after this many groups per device (nil: until stopped).
        public var groupsPerDevice: UInt64?
        /// Send an unrecoverable fault on the event socket every N groups (0: never).
        public var eventEvery = 0
        /// Lose events on purpose every N events (0: never): alternately a
        /// sequence gap of 2 and a LOST_EVENTS header.
        public var lossEvery = 0
        /// Seed of the devices' choices.
        public var seed: UInt64 = 0xDE71CE
        /// Measure each group's latency from its scheduled time (open loop:
        /// a group that had to wait for a PRG index or allocation keeps its
        /// scheduled time, so waiting counts; nothing is skipped).
        public var measureLatency = false
        /// Arrivals from a storm's schedule instead of `rate`: arrival n
        /// goes to device n mod count and keeps its scheduled time while it
        /// waits for a PRG index or allocation (open loop). Latency is then
        /// measured for every group and kept per phase in `Report.phases`.
        public var schedule: ArrivalSchedule?
        /// With a `schedule`: call `run`'s `progress` this often, ns (0: never).
        public var progressEveryNS: UInt64 = 0
        /// With a `schedule`: latency is also kept per tenant, a tenant being
        /// the devices one consumer process attaches (`Report.tenants`).
        public var tenants: [Tenant] = []
        /// Options with these defaults.
        public init() {}
    }

    /// A named set of devices whose latency is kept together.
    public struct Tenant: Sendable, Hashable {
        /// Its name in reports.
        public var name: String
        /// Its device ids.
        public var devices: [UInt32]
        /// A tenant of these devices.
        public init(name: String, devices: [UInt32]) {
            self.name = name
            self.devices = devices
        }
    }

    /// What the device side saw: each device's ledger, and the protocol's counts.
    public struct Report: Codable, Sendable {
        /// Per device: issued, answered, outstanding, answers by source (`service`, `closed`), problems.
        public var devices: [DeviceBooks] = []
        /// Answers whose cookie named no pending group (refused, reported back).
        public var unknownCookies: UInt64 = 0
        /// Answers that were not whole 8-byte responses, or had a bad code.
        public var malformedAnswers: UInt64 = 0
        /// Group packets that could not be sent (the service's socket was full); retried.
        public var sendRetries: UInt64 = 0
        /// Unrecoverable faults sent on the event socket.
        public var eventsSent: UInt64 = 0
        /// Events lost on purpose (sequence numbers skipped, LOST headers included).
        public var eventsLost: UInt64 = 0
        /// Whether the service hung up first (and was not reconnected to).
        public var serviceHungUp = false
        /// Times new sockets were adopted after the service hung up.
        public var reconnects: UInt64 = 0
        /// Event packets still unsent when the service hung up (counted sent, never delivered).
        public var eventsUnsentAtHangUp: UInt64 = 0
        /// Per device, the longest wait for an answer with a group owed.
        public var answerGaps: [AnswerGap] = []
        /// Seconds from the first group to the end.
        public var seconds: Double = 0
        /// With `measureLatency`: answer latency from each group's scheduled time, ns.
        public var latency: LatencySummary?
        /// With a `schedule`: per phase, the groups scheduled in it and their
        /// answer latency from the scheduled time, ns.
        public var phases: [NamedLatency]?
        /// With a `schedule`: the latency of every group, whatever its phase.
        public var overall: NamedLatency?
        /// With a `schedule` and `Options.tenants`: latency per tenant.
        public var tenants: [NamedLatency]?
        /// With a `schedule`: arrivals the schedule offered (each a group for some device).
        public var offered: UInt64 = 0
        /// Every group answered exactly once, correctly, and nothing refused.
        public var balanced: Bool {
            devices.allSatisfy { $0.outstanding == 0 && $0.unexpected == 0 && $0.wrong == 0 && $0.answered == $0.issued }
        }
    }

    let options: Options
    var devices: [SimulatedPRIDevice]
    var faults: OwnedFD
    /// Wakes the devices when the next group is due (nanosecond precision;
    /// a poll timeout would round to milliseconds).
    let timer: OwnedFD?
    var events: OwnedFD?
    /// `events`' number, or -1.
    var eventsFD: Int32
    var rng: SplitMix64
    /// Pending groups by the cookie the device gave them: (device index, prgi, echoed pasid, scheduled ns).
    var pending: [UInt32: (device: Int, prgi: UInt32, pasid: UInt32?, scheduled: UInt64, phase: Int)] = [:]
    var latencies: [UInt64] = []
    /// The storm being raised (`options.schedule`): arrivals, backlogs and latency books.
    var storm: StormArrivals?
    var nextCookie: UInt32 = 1
    var dueAt: [UInt64]
    var blocked: [Bool]
    var unsent: [[UInt8]] = []
    /// Event packets the event socket had no room for yet, oldest first: sent before anything newer,
    /// so a slow service delays events but none is counted sent and then dropped.
    var unsentEvents: [[UInt8]] = []
    var sequence: UInt32 = 0
    var groupsSent: UInt64 = 0
    /// Per device: when its last answer came, and its longest wait so far (`AnswerGap`).
    var lastAnswerNS: [UInt64]
    var lastSuccessNS: [UInt64]
    /// Per device: the scheduled time of the oldest group answered otherwise than SUCCESS since the last SUCCESS.
    var firstUnservedNS: [UInt64?]
    var gaps: [AnswerGap]
    /// When `run` started.
    var startNS: UInt64 = 0
    /// The books so far.
    public private(set) var report = Report()

    /// Devices from `configs` (private data is forced off: the record
    /// protocol has none) on `faults`, and optionally `events`.
    public init(_ configs: [SimulatedDeviceConfig], faults: consuming OwnedFD, events: consuming OwnedFD?,
                options: Options = Options()) {
        devices = configs.map {
            var config = $0
            config.privateData = false
            return SimulatedPRIDevice(config)
        }
        self.faults = faults
        timer = try? Sys.timerfd()
        eventsFD = Self.number(events)
        self.events = events
        self.options = options
        rng = SplitMix64(seed: options.seed)
        dueAt = [UInt64](repeating: 0, count: configs.count)
        blocked = [Bool](repeating: false, count: configs.count)
        lastAnswerNS = [UInt64](repeating: 0, count: configs.count)
        lastSuccessNS = lastAnswerNS
        firstUnservedNS = [UInt64?](repeating: nil, count: configs.count)
        gaps = configs.map { AnswerGap(device: $0.deviceID) }
        storm = options.schedule.map { StormArrivals($0, deviceIDs: configs.map(\.deviceID), tenants: options.tenants) }
    }

    static func number(_ fd: borrowing OwnedFD?) -> Int32 {
        switch fd {
        case .some(let owned): return owned.rawValue
        case .none: return -1
        }
    }

    /// How long, once raising has stopped, the devices wait for the answers
    /// still owed before they report (what is still pending then is outstanding).
    public static let answerGraceNS: UInt64 = 5_000_000_000

    /// Whether every device has raised its `groupsPerDevice`.
    var doneRaising: Bool {
        if let storm { return storm.exhausted }
        guard let limit = options.groupsPerDevice else { return false }
        return devices.allSatisfy { $0.ledger.issued >= limit }
    }

    /// Raises until every device raised its groups, `seconds` passed or
    /// `stop()` returned true; then waits up to `answerGraceNS` for the
    /// answers still owed. Ends early if the service hangs up (then every
    /// pending group is answered INVALID, booked `closed`). With a schedule
    /// and `Options.progressEveryNS`, `progress` is called at each tick until
    /// the end. When the service hangs up, `reconnect` is asked to hand over
    /// new sockets (`adopt`) and say so; the run goes on if it did.
    public func run(seconds: Double = 0, stop: () -> Bool = { false },
                    progress: (DeviceProgress) -> Void = { _ in },
                    reconnect: (RemoteDevices) -> Bool = { _ in false }) -> Report {
        let start = Sys.monotonicNS
        startNS = start
        for d in lastAnswerNS.indices {
            lastAnswerNS[d] = start
            lastSuccessNS[d] = start
        }
        let tick = storm != nil ? options.progressEveryNS : 0
        storm?.start(at: start)
        var nextTick = tick > 0 ? start &+ tick : UInt64.max
        let end = seconds > 0 ? start &+ UInt64(seconds * 1e9) : UInt64.max
        let period = options.rate > 0 ? UInt64(1e9 / options.rate) : 0  // 0: as fast as indices allow
        for i in dueAt.indices { dueAt[i] = start }
        var stopped: UInt64?  // when raising stopped: then wait (bounded) for the last answers
        while true {
            if report.serviceHungUp {
                answerPendingClosed()
                guard reconnect(self) else { break }
                continue
            }
            let now = Sys.monotonicNS
            if stopped == nil && (now >= end || stop() || doneRaising) { stopped = now }
            if let since = stopped {
                if pending.isEmpty && unsent.isEmpty && unsentEvents.isEmpty { break }
                if now &- since > Self.answerGraceNS { break }
            } else if let storm {
                raiseScheduled(storm, now: now)
            } else {
                raiseDue(now: now, period: period)
            }
            flushUnsent()
            if now >= nextTick, let storm {
                progress(storm.progress(at: now, raised: groupsSent, pending: pending.count))
                nextTick = now &+ tick
            }
            // Sleep until the next device is due (rounded up to a millisecond:
            // never a busy wait), or an answer arrives.
            var next = UInt64.max
            if stopped == nil, let due = storm?.nextArrivalNS { next = due }
            for d in devices.indices where !blocked[d] && stopped == nil && storm == nil {
                if let limit = options.groupsPerDevice, devices[d].ledger.issued >= limit { continue }
                next = min(next, dueAt[d])
            }
            if !unsent.isEmpty || !unsentEvents.isEmpty { next = min(next, now &+ 1_000_000) }
            next = min(next, stopped.map { $0 &+ Self.answerGraceNS } ?? end, nextTick)
            let timerFD = Self.number(timer)
            var fds = [pollfd(fd: faults.rawValue, events: Int16(POLLIN), revents: 0)]
            var wait: Int32 = -1
            if timerFD >= 0 {
                _ = faultring_sys_timerfd_arm(timerFD, next == .max ? 0 : max(next, 1))
                fds.append(pollfd(fd: timerFD, events: Int16(POLLIN), revents: 0))
            } else if next != .max {
                wait = Int32(clamping: (next > now ? next - now : 0) / 1_000_000 + 1)  // rounded up: never a busy wait
            }
            let ready = poll(&fds, nfds_t(fds.count), wait)
            if timerFD >= 0 && fds[1].revents != 0 { _ = faultring_sys_timerfd_drain(timerFD) }
            if ready > 0 && fds[0].revents != 0 { readAnswers() }
        }
        // A device whose last answers were not SUCCESS has waited since the first of them.
        for d in devices.indices {
            if let owed = firstUnservedNS[d] { noteServedGap(d, since: owed, now: Sys.monotonicNS) }
        }
        report.answerGaps = gaps
        report.devices = devices.map { $0.ledger.books(device: $0.config.deviceID) }
        report.seconds = Double(Sys.monotonicNS &- start) / 1e9
        if options.measureLatency { report.latency = LatencySummary(latencies) }
        if let storm {
            storm.finish(into: &report)
            if tick > 0 { progress(storm.progress(at: Sys.monotonicNS, raised: groupsSent, pending: pending.count)) }
        }
        return report
    }

    /// The service is gone: every pending group is answered INVALID, as the
    /// kernel does on close, and what was waiting to be sent goes with it
    /// (those groups were pending, so they are among the answered).
    func answerPendingClosed() {
        let now = Sys.monotonicNS
        for (_, group) in pending {
            answered(group, code: .invalid, label: "closed", now: now)
        }
        pending.removeAll()
        unsent.removeAll()
        report.eventsUnsentAtHangUp &+= UInt64(unsentEvents.count)
        unsentEvents.removeAll()
    }

    /// New sockets to a (restarted) service, after a hang-up: the old ones
    /// are closed, and the devices raise again from where the schedule is.
    public func adopt(faults: consuming OwnedFD, events: consuming OwnedFD?) {
        self.faults = faults
        eventsFD = Self.number(events)
        self.events = events
        report.serviceHungUp = false
        report.reconnects &+= 1
        for d in blocked.indices { blocked[d] = false }
    }

    /// Books `group`'s answer on its device: the ledger, latency, and the device's answer gap.
    func answered(_ group: (device: Int, prgi: UInt32, pasid: UInt32?, scheduled: UInt64, phase: Int), code: ResponseCode,
                  label: String, now: UInt64) {
        let d = group.device
        if options.measureLatency { latencies.append(now > group.scheduled ? now - group.scheduled : 0) }
        storm?.answered(scheduledNS: group.scheduled, phase: group.phase, device: d, now: now)
        let since = max(lastAnswerNS[d], group.scheduled)
        if now > since && now - since > gaps[d].longestNS {
            gaps[d].longestNS = now - since
            gaps[d].endedAtNS = now &- startNS
        }
        lastAnswerNS[d] = max(lastAnswerNS[d], now)
        if code == .success {
            noteServedGap(d, since: min(firstUnservedNS[d] ?? group.scheduled, group.scheduled), now: now)
            lastSuccessNS[d] = max(lastSuccessNS[d], now)
            firstUnservedNS[d] = nil
        } else if firstUnservedNS[d] == nil {
            firstUnservedNS[d] = group.scheduled
        }
        devices[d].complete(
            DeviceCompletion(deviceID: devices[d].config.deviceID, pasid: group.pasid, prgi: group.prgi, code: code,
                             privateData: nil, cookie: 0, source: .consumer),
            label: label)
        blocked[d] = false
    }

    /// A wait for SUCCESS from `since` (a group owed from then on) to `now`.
    func noteServedGap(_ d: Int, since owed: UInt64, now: UInt64) {
        let since = max(lastSuccessNS[d], owed)
        if now > since && now - since > gaps[d].longestServedNS {
            gaps[d].longestServedNS = now - since
            gaps[d].servedEndedAtNS = now &- startNS
        }
    }

    func raiseDue(now: UInt64, period: UInt64) {
        var requests: [PageRequest] = []
        // Groups raised in one pass travel together, several whole groups per
        // packet, as a kernel fault-queue read returns them.
        var batch: [UInt8] = []
        for d in devices.indices {
            var burst = 0
            while dueAt[d] <= now && burst < 64 {
                if let limit = options.groupsPerDevice, devices[d].ledger.issued >= limit { break }
                requests.removeAll(keepingCapacity: true)
                devices[d].nextGroup(now: now, using: &rng, into: &requests)
                guard let last = requests.last else {
                    blocked[d] = true  // out of PRG indices or allocation: wait for an answer
                    break
                }
                blocked[d] = false
                let scheduled = period == 0 ? now : dueAt[d]
                dueAt[d] &+= period
                burst += 1
                if !last.isLastPage || last.isStopMarker { continue }  // abandoned or a lone stop marker: nothing owed
                enqueue(requests, device: d, scheduled: scheduled, phase: 0, into: &batch)
            }
            // Fell far behind: without latency measurement, do not flood; with it,
            // the schedule is the schedule (no coordinated omission).
            if !options.measureLatency && dueAt[d] &+ period &* 64 < now { dueAt[d] = now }
        }
        if !batch.isEmpty { unsent.append(batch) }
    }

    /// Gives the closed group in `requests` (device `d`) a cookie, appends
    /// its records to `batch` (cut into packets under `maxPacketBytes`),
    /// books it pending with its scheduled time and phase, and sends the
    /// event `eventEvery` asks for.
    func enqueue(_ requests: [PageRequest], device d: Int, scheduled: UInt64, phase: Int, into batch: inout [UInt8]) {
        guard let last = requests.last else { return }
        let cookie = nextCookie
        nextCookie = nextCookie == UInt32.max ? 1 : nextCookie + 1
        for request in requests where !request.isStopMarker {
            batch += HWPTPageFault(request, cookie: cookie).bytes
        }
        pending[cookie] = (d, last.prgi, last.needsPASID ? last.pasid : nil, scheduled, phase)
        if batch.count >= Self.maxPacketBytes {
            unsent.append(batch)
            batch.removeAll(keepingCapacity: true)
        }
        groupsSent += 1
        if options.eventEvery > 0 && groupsSent % UInt64(options.eventEvery) == 0 { sendEvent(device: d) }
    }

    /// Hands every arrival due by `now` to its device, then lets each device
    /// raise what its PRG indices and allocation allow, oldest arrival
    /// first. An arrival that must wait keeps its scheduled time: the wait
    /// is latency, not a skipped sample.
    func raiseScheduled(_ storm: StormArrivals, now: UInt64) {
        storm.admit(now: now)
        var requests: [PageRequest] = []
        var batch: [UInt8] = []
        for d in devices.indices {
            var burst = 0
            while let arrival = storm.first(of: d), burst < 256 {
                requests.removeAll(keepingCapacity: true)
                devices[d].nextGroup(now: arrival.atNS, using: &rng, into: &requests)
                guard let last = requests.last else {
                    blocked[d] = true
                    break
                }
                blocked[d] = false
                burst += 1
                if !last.isLastPage || last.isStopMarker { continue }  // the arrival raised a lone stop marker first
                storm.raisedFirst(of: d)
                enqueue(requests, device: d, scheduled: arrival.atNS, phase: arrival.phase, into: &batch)
            }
        }
        if !batch.isEmpty { unsent.append(batch) }
    }

    /// Packets of whole groups stay under this size (well below a SEQPACKET
    /// socket's send buffer and the service's read buffer).
    static let maxPacketBytes = 16 * 1024

    /// Sends the event packets waiting, in order, until the socket is full.
    func flushEvents() {
        while let packet = unsentEvents.first {
            let n = packet.withUnsafeBytes { send(eventsFD, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if n == packet.count {
                unsentEvents.removeFirst()
                continue
            }
            if n < 0 && (Glibc.errno == EAGAIN || Glibc.errno == EINTR) { report.sendRetries += 1 } else { unsentEvents.removeAll() }
            return
        }
    }

    func flushUnsent() {
        flushEvents()
        while let packet = unsent.first {
            let n = packet.withUnsafeBytes { send(faults.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if n == packet.count {
                unsent.removeFirst()
                continue
            }
            if n < 0 && (Glibc.errno == EAGAIN || Glibc.errno == EINTR) {
                report.sendRetries += 1
                return
            }
            report.serviceHungUp = true
            return
        }
    }

    func readAnswers() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(faults.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n == 0 {
                report.serviceHungUp = true
                return
            }
            if n < 0 {
                if Glibc.errno != EAGAIN && Glibc.errno != EINTR { report.serviceHungUp = true }
                return
            }
            guard n % HWPTPageResponse.size == 0 else {
                report.malformedAnswers += 1
                continue
            }
            buffer.withUnsafeBytes { b in
                for offset in stride(from: 0, to: n, by: HWPTPageResponse.size) {
                    let slice = UnsafeRawBufferPointer(rebasing: b[offset..<(offset + HWPTPageResponse.size)])
                    let response: HWPTPageResponse
                    do {
                        response = try HWPTPageResponse(bytes: slice)
                    } catch {
                        report.malformedAnswers += 1
                        refuse(slice.loadUnaligned(as: UInt32.self))
                        continue
                    }
                    guard let group = pending.removeValue(forKey: response.cookie) else {
                        report.unknownCookies += 1
                        refuse(response.cookie)
                        continue
                    }
                    answered(group, code: response.responseCode, label: "service", now: Sys.monotonicNS)
                }
            }
        }
    }

    /// Tells the service an answer was refused, as the kernel's EINVAL would.
    func refuse(_ cookie: UInt32) {
        let packet = DeviceRefusal(cookie: cookie, error: EINVAL).bytes
        _ = packet.withUnsafeBytes { send(faults.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
    }

    /// An unrecoverable translation fault for device `d` on the event
    /// socket, with the deliberate losses `lossEvery` asks for.
    func sendEvent(device d: Int) {
        guard eventsFD >= 0 else { return }
        let id = devices[d].config.deviceID
        report.eventsSent += 1
        if options.lossEvery > 0 && report.eventsSent % UInt64(options.lossEvery) == 0 {
            if (report.eventsSent / UInt64(options.lossEvery)) % 2 == 1 {
                // Two events lost: their sequence numbers are skipped.
                sequence = VEventHeader.next(VEventHeader.next(sequence))
                report.eventsLost += 2
            } else {
                // The queue overflowed: a LOST_EVENTS header stands for one lost event.
                let header = VEventHeader(flags: FAULTRING_IOMMU_VEVENTQ_FLAG_LOST_EVENTS, sequence: sequence).bytes
                sequence = VEventHeader.next(sequence)
                report.eventsLost += 1
                unsentEvents.append(header)
            }
        }
        let record = SMMUv3EventRecord(eventID: SMMUv3EventRecord.translation, substreamID: nil, streamID: id,
                                       privileged: false, instruction: false, read: true,
                                       inputAddress: 0x4000_0000 &+ UInt64(report.eventsSent) << 12, fetchAddress: 0)
        let (w0, w1, w2, w3) = record.words
        let packet = VEventHeader(flags: 0, sequence: sequence).bytes + [w0, w1, w2, w3].flatMap { LittleEndian.bytes($0) }
        sequence = VEventHeader.next(sequence)
        unsentEvents.append(packet)
        flushEvents()
    }
}
