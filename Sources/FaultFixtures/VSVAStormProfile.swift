import NestedIOMMU
import VMMClient

/// A storm of vSVA sessions, as a profile under `Fixtures/storms/` with a
/// `vsva` section describes it (Docs/STORMS.md §vSVA storms): the service
/// runs DMA devices behind its nested IOMMU (`serve --dma-devices`), and
/// each guest process (`faultring guest`) shares its RAM, binds its stage-1
/// tables, answers the page requests by mapping, and invalidates — or, by
/// its behaviour, gets one of those wrong. The storm is judged on the
/// devices' books, on every guest's bugs (none for a correct guest; its
/// own bug, found, for a faulty one), and, with chaos, on revocation: a
/// guest SIGKILLed mid-storm loses its bindings, its devices' groups are
/// answered, and its next incarnation binds again.
///
/// Checked when read (`StormProfileReader`): names, counts and ranges,
/// and that guests' devices and PASIDs fit the service's limits.
public struct VSVAStormProfile: Sendable, Hashable, Codable {
    /// A set of identical guest processes.
    public struct Guests: Sendable, Hashable, Codable {
        /// Name in reports (the processes are `name-1`, `name-2`, …).
        public var name: String
        /// Processes.
        public var count: Int
        /// VT-d (per-PASID first-stage tables, PRQ) or SMMUv3 (a CD table, PRI queue).
        public var style: NestedDomain.Style
        /// What each guest's driver does.
        public var behaviour: NestedGuest.Behaviour
        /// DMA devices each process attaches.
        public var devicesPerProcess: Int
        /// Whether its devices have PRI (and ATS). Without, every fault is an
        /// unrecoverable event the guest reads from its event queue, and no
        /// page request is raised; only a correct guest may be so.
        public var pri = true

        /// A set of `count` processes.
        public init(name: String, count: Int, style: NestedDomain.Style, behaviour: NestedGuest.Behaviour, devicesPerProcess: Int) {
            self.name = name
            self.count = count
            self.style = style
            self.behaviour = behaviour
            self.devicesPerProcess = devicesPerProcess
        }
    }

    /// SIGKILLs of guest processes during the storm, each followed at once
    /// by a new incarnation that binds again (spread evenly over the first
    /// 70 % of the storm, targets chosen with the seed).
    public struct Chaos: Sendable, Hashable, Codable {
        /// Kills, 0 ... 1,000.
        public var guestKills: Int
        /// The guest sets (by name) whose processes may be killed.
        public var killAmong: [String]
    }

    /// The profile's name (lower-case letters, digits and dashes).
    public var name: String
    /// What the storm is for.
    public var description: String
    /// Seed of every random choice (the devices' streams, kill targets).
    public var seed: UInt64
    /// How long the guests run, s.
    public var seconds: Double
    /// The devices' step period (`serve --dma-step-us`), µs.
    public var stepMicroseconds: UInt64
    /// Answered page requests per MSI write of each device (`serve --dma-msi-every`).
    public var msiEvery: Int = 100
    /// The PASIDs every device's streams use, and every guest binds.
    public var pasids: [UInt32]
    /// Resident pages per PASID each guest keeps (it evicts beyond).
    public var budget: Int
    /// The service's page-request timeout, ms.
    public var timeoutMilliseconds: UInt64
    /// PASIDs a client may bind (`serve --pasid-quota`).
    public var pasidQuota: Int
    /// How long a DMA through a changed translation waits for the guest's
    /// invalidation before it is a stale translation (`serve --stale-grace-ms`), ms.
    public var staleGraceMilliseconds: UInt64
    /// The guests.
    public var guests: [Guests]
    /// Kills during the storm (nil: none).
    public var chaos: Chaos?

    /// Devices in all: every guest process's devices, consecutive from 1.
    public var deviceCount: Int { guests.reduce(0) { $0 + $1.count * $1.devicesPerProcess } }

    /// Every guest process's name, in profile order.
    public var processNames: [String] { guests.flatMap { g in (1...max(1, g.count)).map { "\(g.name)-\($0)" } } }

    /// Each guest process's set, in profile order.
    public var processGuests: [Guests] { guests.flatMap { g in Array(repeating: g, count: max(1, g.count)) } }

    /// The devices guest process `index` (0-based, profile order) attaches:
    /// `devicesPerProcess` consecutive ids after the previous process's.
    public func devices(ofProcess index: Int) -> [UInt32] {
        let sets = processGuests
        guard sets.indices.contains(index) else { return [] }
        let first = sets[..<index].reduce(0) { $0 + $1.devicesPerProcess } + 1
        return (0..<sets[index].devicesPerProcess).map { UInt32(first + $0) }
    }

    /// How late a `slow` guest answers: a quarter past the timeout, so its
    /// answers are late by a margin and still arrive within the storm, ms.
    public var slowDelayMilliseconds: UInt64 { timeoutMilliseconds &+ timeoutMilliseconds / 4 }

    /// Why the storm's length cannot show a slow guest's bug (nil: it can):
    /// its answers come `slowDelayMilliseconds` after each request, so the
    /// storm must last at least twice that. Checked when read and again
    /// after `--seconds`.
    public var timingProblem: String? {
        guard guests.contains(where: { $0.behaviour == .slow }) else { return nil }
        let needed = 2 * Double(slowDelayMilliseconds) / 1000
        guard seconds < needed else { return nil }
        return "a slow guest answers \(slowDelayMilliseconds) ms late (the timeout and a quarter): the storm must last at "
            + "least \(needed) s to see it, it lasts \(seconds) s"
    }

    /// The devices of every guest process whose set has no PRI.
    public var devicesWithoutPRI: [UInt32] {
        processGuests.indices.filter { !processGuests[$0].pri }.flatMap { devices(ofProcess: $0) }
    }

    /// The profile lasting `seconds` instead (`--seconds`).
    public func scaled(toSeconds seconds: Double) -> VSVAStormProfile {
        var copy = self
        copy.seconds = seconds
        return copy
    }
}
