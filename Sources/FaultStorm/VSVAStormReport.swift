import FaultFixtures
import FaultSimulation
import Foundation
import NestedIOMMU
import VMMClient

/// What `faultring storm` writes for a vSVA profile (`VSVAStormProfile`)
/// to `DIR/report.json`: each guest process's work and bugs, each DMA
/// device's books, the samples behind `report.html`'s charts, the service's
/// descriptors and memory, the kills, and the verdict.
///
/// Where the figures come from: a device's books and DMA counters from the
/// service's STATS after every guest left (final); a guest's nested-IOMMU
/// counters from its own summary at exit (it reads them from STATS before
/// it says BYE), or, for an incarnation SIGKILLed, from the runner's last
/// STATS before the kill; late answers from the service's per-client
/// response counters.
public struct VSVAStormReport: Codable, Sendable {
    /// One guest process, every incarnation summed.
    public struct Guest: Codable, Sendable {
        /// `set-k`.
        public var name: String
        /// VT-d or SMMUv3.
        public var style: NestedDomain.Style
        /// Its driver's behaviour.
        public var behaviour: NestedGuest.Behaviour
        /// Its devices.
        public var devices: [UInt32]
        /// Each incarnation's pid, oldest first.
        public var pids: [Int32] = []
        /// Each incarnation's exit status (137: SIGKILLed by chaos).
        public var exitStatuses: [Int32] = []
        /// Page requests its last incarnation handled (0: the incarnation was never served).
        public var pageRequestsLastIncarnation: UInt64 = 0
        /// Page requests its driver handled, in the incarnations that lived to
        /// report (its devices raised `dma.pageRequests`, killed incarnations' included).
        public var pageRequests: UInt64 = 0
        /// Its answers by code.
        public var answered: [String: UInt64] = [:]
        /// Its driver's counters.
        public var guest = NestedGuest.Counters()
        /// Its VM's nested IOMMU, as the service counted.
        public var iommu = NestedCounters()
        /// Its devices' DMA counters, summed.
        public var dma = DMADevice.Counters()
        /// Whether its devices have PRI (without, its faults are events).
        public var pri = true
        /// Unrecoverable faults its VMM read, by reason (incarnations that lived to report).
        public var events: [String: UInt64] = [:]
        /// Those its guest read from its event queue, by its format's name.
        public var guestEvents: [String: UInt64] = [:]
        /// Its answers the service refused, by reason (`late`: after the
        /// group's timeout, a bug of a slow guest; any other reason — a
        /// mismatch, an unknown cookie, a malformed slot — fails any guest).
        public var refused: [String: UInt64] = [:]
        /// Refusals other than `late`.
        public var refusedOtherThanLate: [String: UInt64] { refused.filter { $0.key != "late" && $0.value > 0 } }
        /// The bugs the tool found, by name (`GuestBug`).
        public var bugs: [String: UInt64] = [:]
        /// The bug its behaviour must show (nil: none may).
        public var expectedBug: GuestBug?

        /// A row with nothing counted yet; the bug it must show follows from `behaviour`.
        public init(name: String, style: NestedDomain.Style, behaviour: NestedGuest.Behaviour, devices: [UInt32]) {
            self.name = name
            self.style = style
            self.behaviour = behaviour
            self.devices = devices
            expectedBug = behaviour.expectedBug
        }
    }

    /// One DMA device's books, from the service's final STATS.
    public struct Device: Codable, Sendable {
        /// The device.
        public var id: UInt32
        /// The guest process that held it.
        public var guest: String
        /// Page requests raised.
        public var issued: UInt64
        /// Answered, once each.
        public var answered: UInt64
        /// Not answered at the end.
        public var outstanding: Int
        /// Second answers, or answers for nothing in flight.
        public var answeredTwiceOrUnknown: UInt64
        /// Retries owed after SUCCESS and not made by the end (its VM left first).
        public var retriesOwed: UInt64
        /// Its DMA counters.
        public var dma: DMADevice.Counters

        /// A device's books as read from STATS.
        public init(id: UInt32, guest: String, issued: UInt64, answered: UInt64, outstanding: Int,
                    answeredTwiceOrUnknown: UInt64, retriesOwed: UInt64, dma: DMADevice.Counters) {
            self.id = id
            self.guest = guest
            self.issued = issued
            self.answered = answered
            self.outstanding = outstanding
            self.answeredTwiceOrUnknown = answeredTwiceOrUnknown
            self.retriesOwed = retriesOwed
            self.dma = dma
        }

        /// Every group answered exactly once; every SUCCESS retried (translated
        /// or missed) or its retry dropped with the VM that answered, none
        /// still owed once every VM has gone; no host stage-2 miss.
        public var balances: Bool {
            issued == answered && outstanding == 0 && answeredTwiceOrUnknown == 0 && dma.unexpectedAnswers == 0
                && retriesOwed == 0 && dma.retriesBalance() && dma.stage2Misses == 0
        }
    }

    /// The storm at one sample, per guest process.
    public struct Sample: Codable, Sendable {
        /// Seconds into the storm.
        public var t: Double
        /// DMAs per second since the last sample, by guest.
        public var dmasPerSecond: [String: Double] = [:]
        /// Page requests per second since the last sample, by guest.
        public var pageRequestsPerSecond: [String: Double] = [:]
        /// Guest bugs found so far (all kinds, as the last STATS showed them), by guest.
        public var bugs: [String: UInt64] = [:]
        /// The service's resident memory, KiB.
        public var residentKiB: UInt64?
    }

    /// One SIGKILL of a guest process.
    public struct Kill: Codable, Sendable {
        /// Seconds into the storm.
        public var atSeconds: Double
        /// The guest process, `set-k`.
        public var guest: String
        /// The pid killed.
        public var pid: Int32
        /// The next incarnation's pid (nil: it would not start).
        public var nextPid: Int32?
    }

    /// The service's descriptors and memory.
    public struct Service: Codable, Sendable {
        /// Descriptors with only the observer connected, before any guest.
        public var descriptorsAtStart: Int?
        /// The same after every guest left.
        public var descriptorsAtEnd: Int?
        /// Resident memory a quarter into the storm, KiB.
        public var residentAtQuarterKiB: UInt64?
        /// Resident memory at the storm's end (every guest still there), KiB.
        public var residentAtEndKiB: UInt64?
        /// Clients in STATS after every guest left (the observer only: 1).
        public var clientsAtEnd: Int?

        /// Figures as read (nil: not read).
        public init(descriptorsAtStart: Int? = nil, descriptorsAtEnd: Int? = nil, residentAtQuarterKiB: UInt64? = nil,
                    residentAtEndKiB: UInt64? = nil, clientsAtEnd: Int? = nil) {
            self.descriptorsAtStart = descriptorsAtStart
            self.descriptorsAtEnd = descriptorsAtEnd
            self.residentAtQuarterKiB = residentAtQuarterKiB
            self.residentAtEndKiB = residentAtEndKiB
            self.clientsAtEnd = clientsAtEnd
        }
    }

    /// The report format's version (this layout: 1).
    public var reportVersion = 1
    /// `vsva`: which kind of storm report this is (an arrival storm's is `StormReport`).
    public var kind = "vsva"
    /// The profile as run.
    public var profile: VSVAStormProfile
    /// The profile's file.
    public var profilePath: String
    /// When the storm started, ISO 8601 UTC.
    public var started: String
    /// Seconds from the first guest's start to the last guest's exit.
    public var seconds: Double = 0
    /// Every guest process, in profile order.
    public var guests: [Guest] = []
    /// Every device, by id.
    public var devices: [Device] = []
    /// Every 100 ms.
    public var samples: [Sample] = []
    /// The kills, in order.
    public var kills: [Kill] = []
    /// The service.
    public var service = Service()
    /// What went wrong with the run itself (a process that would not start, died or hung).
    public var problems: [String] = []
    /// Whether it passed, and why not.
    public var verdict = StormVerdict(checks: [])

    /// An empty report of `profile`, started now.
    public init(profile: VSVAStormProfile, profilePath: String, started: Date) {
        self.profile = profile
        self.profilePath = profilePath
        self.started = ISO8601DateFormatter().string(from: started)
    }

    /// Judges the report: the run; every device's books; each guest's bugs
    /// against its behaviour (a correct guest must show none and have had
    /// its retries translate; a faulty one must show its own bug and no
    /// other), and no guest's answer refused for any reason but lateness;
    /// with chaos, every kill made and every killed guest served again by
    /// its next incarnation; the service's descriptors back to their start
    /// and its memory within bounds.
    public mutating func judge() {
        typealias Check = StormVerdict.Check
        let run = "vsva"
        var checks: [Check] = []
        checks.append(Check(kind: .run, run: run, passed: problems.isEmpty,
                            detail: problems.isEmpty ? "every process started, ran and ended as planned"
                                : problems.joined(separator: "; ")))
        let unbalanced = devices.filter { !$0.balances }
        let idle = devices.filter { $0.dma.dmas == 0 }
        checks.append(Check(
            kind: .ledger, run: run, passed: unbalanced.isEmpty && idle.isEmpty && devices.count == profile.deviceCount,
            detail: devices.count != profile.deviceCount ? "\(devices.count) of \(profile.deviceCount) devices in the final STATS"
                : !unbalanced.isEmpty ? "books not balanced: " + unbalanced.map { d in
                    "device \(d.id) issued \(d.issued), answered \(d.answered), outstanding \(d.outstanding), twice or unknown "
                        + "\(d.answeredTwiceOrUnknown), SUCCESS \(d.dma.answeredSuccess) = retried \(d.dma.retriesTranslated) + "
                        + "missed \(d.dma.successNotMapped) + dropped \(d.dma.retriesDropped), owed at the end \(d.retriesOwed), "
                        + "stage-2 misses \(d.dma.stage2Misses)"
                }.joined(separator: "; ")
                : !idle.isEmpty ? "devices that made no DMA: \(idle.map(\.id))"
                : "\(devices.count) devices: every page request answered once "
                    + "(\(devices.reduce(0) { $0 &+ $1.issued }) in all), every SUCCESS retried or dropped with its VM "
                    + "(\(devices.reduce(0) { $0 &+ $1.dma.retriesDropped }) dropped)"))
        for g in guests {
            if let bug = g.expectedBug {
                let found = g.bugs[bug.rawValue] ?? 0
                checks.append(Check(kind: .guest, run: run, passed: found > 0,
                                    detail: "\(g.name) (\(g.behaviour.rawValue)): \(bug.rawValue) × \(found)"
                                        + (found > 0 ? " found" : " not found, with \(g.dma.pageRequests) page requests")))
                let others = g.bugs.filter { $0.key != bug.rawValue }
                if !others.isEmpty {
                    checks.append(Check(kind: .guest, run: run, passed: false,
                                        detail: "\(g.name) (\(g.behaviour.rawValue)): bugs not its behaviour's: \(GuestBug.list(others))"))
                }
            } else if !g.pri {
                // No page requests: its devices' faults are events, which its VMM must have read.
                let events = g.events.values.reduce(0, &+)
                checks.append(Check(
                    kind: .guest, run: run, passed: g.bugs.isEmpty && events > 0 && g.dma.pageRequests == 0,
                    detail: "\(g.name) (correct, no PRI): " + (g.bugs.isEmpty ? "no bug" : GuestBug.list(g.bugs))
                        + ", \(events) events read, \(g.guestEvents.values.reduce(0, &+)) through the guest's event queue, "
                        + "\(g.dma.pageRequests) page requests"))
            } else {
                let clean = g.bugs.isEmpty && g.dma.retriesTranslated > 0
                checks.append(Check(
                    kind: .guest, run: run, passed: clean,
                    detail: "\(g.name) (correct): " + (g.bugs.isEmpty ? "no bug" : GuestBug.list(g.bugs))
                        + ", \(g.dma.retriesTranslated) of \(g.dma.answeredSuccess) SUCCESS retries translated"
                        + ", \(g.iommu.staleUsesForgiven) stale uses forgiven inside the invalidation window"))
            }
            let refused = g.refusedOtherThanLate
            if !refused.isEmpty {
                checks.append(Check(kind: .guest, run: run, passed: false,
                                    detail: "\(g.name): answers refused by the service: "
                                        + GuestBug.list(refused)))
            }
        }
        if let chaos = profile.chaos {
            let made = kills.filter { $0.nextPid != nil }.count
            checks.append(Check(kind: .chaos, run: run, passed: made == chaos.guestKills,
                                detail: "\(made) of \(chaos.guestKills) guest kills made, each followed by a new incarnation"))
            let killed = Set(kills.map(\.guest))
            let unserved = guests.filter { killed.contains($0.name) && $0.pageRequestsLastIncarnation == 0 }
            checks.append(Check(kind: .chaos, run: run, passed: unserved.isEmpty,
                                detail: unserved.isEmpty
                                    ? "every killed guest bound again and was served (\(killed.count) guests)"
                                    : "not served after its kill: " + unserved.map(\.name).joined(separator: ", ")))
        }
        checks.append(Check(kind: .chaos, run: run, passed: service.clientsAtEnd == 1,
                            detail: "clients in STATS after every guest left: \(service.clientsAtEnd.map(String.init) ?? "?") "
                                + "(the observer only: 1)"))
        checks.append(StormVerdict.descriptors(start: service.descriptorsAtStart, end: service.descriptorsAtEnd, run: run))
        checks.append(StormVerdict.memory(quarter: service.residentAtQuarterKiB, end: service.residentAtEndKiB, run: run))
        verdict = StormVerdict(checks: checks)
    }

    /// The report as pretty JSON with sorted keys.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}
