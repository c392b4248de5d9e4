import Glibc
import FaultABI
import PageRequests

/// How a simulated device behaves.
public struct SimulatedDeviceConfig: Sendable, Hashable {
    /// Service-assigned device id.
    public var deviceID: UInt32
    /// PASIDs its requests use (empty: requests without PASID).
    public var pasids: [UInt32]
    /// PCIe PRI outstanding page request allocation (pages in flight).
    public var allocation: Int
    /// Largest page request group (pages); sizes are 1 ... this.
    public var maxGroupSize: Int
    /// Attach random private data to groups (VT-d ≤ 3.x behaviour). It rides
    /// on the group's last request only: in VT-d 3 every request with private
    /// data is owed a response of its own.
    public var privateData: Bool
    /// Set NEEDS_PASID (PCIe "PRG Response PASID Required") on PASID groups.
    public var needsPASID: Bool
    /// Send a stop marker after every N groups (0: never).
    public var stopMarkerEvery: Int
    /// Misbehaviour: reuse an outstanding PRG index every N groups (0: never).
    public var reusePRGIEvery: Int
    /// Misbehaviour: start a group and never close it every N groups (0: never).
    public var abandonGroupEvery: Int
    /// Smallest group (pages), 1 ... `maxGroupSize`: sizes are uniform in
    /// `minGroupSize ... maxGroupSize` unless `geometricMeanGroupSize` is set.
    public var minGroupSize = 1
    /// Draw group sizes from a geometric distribution with this mean (≥ 1),
    /// capped at `maxGroupSize`: mostly small groups, a long tail (nil: uniform).
    public var geometricMeanGroupSize: Double?
    /// PRG indices the device uses, 1 ... `PRILimits.prgiCount` (a storm's PRGI budget).
    public var prgiBudget = PRILimits.prgiCount

    /// A well-behaved device unless told otherwise: PASIDs 1–4, allocation 256,
    /// groups of up to 4 pages with private data and NEEDS_PASID, no stop markers, no misbehaviour.
    public init(
        deviceID: UInt32, pasids: [UInt32] = [1, 2, 3, 4], allocation: Int = 256, maxGroupSize: Int = 4,
        privateData: Bool = true, needsPASID: Bool = true, stopMarkerEvery: Int = 0, reusePRGIEvery: Int = 0,
        abandonGroupEvery: Int = 0
    ) {
        self.deviceID = deviceID
        self.pasids = pasids
        self.allocation = allocation
        self.maxGroupSize = maxGroupSize
        self.privateData = privateData
        self.needsPASID = needsPASID
        self.stopMarkerEvery = stopMarkerEvery
        self.reusePRGIEvery = reusePRGIEvery
        self.abandonGroupEvery = abandonGroupEvery
    }
}

/// One PRG index's entry in `SimulatedPRIDevice.prgis`.
struct PRGIEntry: Sendable {
    /// Pages in flight on this index.
    var pages: Int32 = 0
    /// The free-stack entry at this position (see `prgis`).
    var free: UInt32 = 0
}

/// A PCIe function with PRI: it faults on pages, sends page request groups
/// within its outstanding-request allocation and its `PRILimits.prgiCount` PRG indices, and
/// checks every response in its `ledger`. On SUCCESS it retries the access.
public struct SimulatedPRIDevice: Sendable {
    /// How the device behaves; fixed for its life.
    public let config: SimulatedDeviceConfig
    /// Everything the device sent and received.
    public private(set) var ledger = DeviceLedger()
    /// Accesses retried after a SUCCESS response.
    public private(set) var retries: UInt64 = 0
    /// Stop markers sent.
    public private(set) var stopMarkers: UInt64 = 0
    /// Groups started and deliberately never closed.
    public private(set) var abandoned: UInt64 = 0
    /// One entry per PRG index: its pages in flight; and, in the same table
    /// (one copy-on-write check per call, not one per store), the stack of
    /// free indices: entry i's `free` is the i-th from the bottom, and
    /// `freeCount` entries are on it. Each index is on it at most once.
    var prgis = PlainTable(repeating: PRGIEntry(), count: PRILimits.prgiCount)
    var freeCount = 0
    var inFlight = 0
    var groupsSent: UInt64 = 0
    var nextPage: UInt64 = 0x10_0000

    /// A device that has sent nothing yet, with the first `config.prgiBudget` PRG indices free.
    public init(_ config: SimulatedDeviceConfig) {
        self.config = config
        let budget = UInt32(min(max(1, config.prgiBudget), PRILimits.prgiCount))
        for prgi in (0..<budget).reversed() { pushFree(prgi) }  // index 0 is taken first
    }

    /// Appends the requests of the next group to `out` (a caller's buffer:
    /// no allocation per group), or nothing if the device is out of PRG
    /// indices or allocation (a well-behaved device waits). A `PlainTable`
    /// is written as any store into one is, unchecked: its owner unshares
    /// it first (`makeUnique`). It may get up to four pages written past
    /// its end and not counted (`PageRequestOutput`).
    @inline(__always)
    public mutating func nextGroup(now: UInt64, using rng: inout SplitMix64, into out: inout some PageRequestOutput) {
        makeTableUnique()
        nextGroupUnshared(now: now, using: &rng, into: &out)
    }

    /// Unshares the device's tables (its PRG indices and its books) if a
    /// copy of the device shares them. A fleet calls it once per burst or
    /// batch of answers, then the `…Unshared` forms, which skip the checks
    /// each group would cost.
    mutating func makeTableUnique() {
        prgis.makeUnique()
        ledger.makeUnique()
    }

    /// `nextGroup` after `makeTableUnique()` (the caller's exclusive access
    /// to this device has not ended since).
    @inline(__always)
    mutating func nextGroupUnshared(now: UInt64, using rng: inout SplitMix64, into out: inout some PageRequestOutput) {
        let size = Self.groupSize(config, using: &rng)
        groupsSent += 1
        if config.stopMarkerEvery > 0 && groupsSent % UInt64(config.stopMarkerEvery) == 0, let pasid = config.pasids.first {
            stopMarkers += 1
            out.append(PageRequest(deviceID: config.deviceID, pasid: pasid, prgi: 0, permissions: [], address: 0,
                                   isLastPage: true, timestampNS: now))
        }
        let reuse = config.reusePRGIEvery > 0 && groupsSent % UInt64(config.reusePRGIEvery) == 0
        guard inFlight + size <= config.allocation, reuse || freeCount > 0 else { return }
        let prgi: UInt32
        if reuse, let busy = prgis.firstIndex(where: { $0.pages > 0 }) {
            prgi = UInt32(busy)  // misbehaving: this index still has a group outstanding
        } else if freeCount > 0 {
            freeCount -= 1
            prgi = prgis[freeCount].free
        } else {
            return
        }
        let pasid = config.pasids.isEmpty ? nil : config.pasids[Int(rng.next(below: UInt64(config.pasids.count)))]
        let data = config.privateData ? PrivateData(low: rng.next(), high: UInt64(prgi)) : nil
        let needs = config.needsPASID && pasid != nil
        let abandon = config.abandonGroupEvery > 0 && groupsSent % UInt64(config.abandonGroupEvery) == 0
        // The fields every page shares, once; each page sets its own. A
        // misbehaving device that abandons the group never sends its last page.
        var request = PageRequest(deviceID: config.deviceID, pasid: pasid, prgi: prgi, address: 0, isLastPage: false,
                                  needsPASID: needs, timestampNS: now)
        let first = nextPage
        out.append(pages: abandon ? size - 1 : size, largest: config.maxGroupSize) { index in
            request.address = (first &+ UInt64(truncatingIfNeeded: index) &+ 1) << 12
            request.permissions = index % 3 == 0 ? [.read, .write] : .read
            request.isLastPage = index == size - 1
            request.privateData = index == size - 1 ? data : nil
            return request
        }
        nextPage = first &+ UInt64(size)  // an abandoned last page was drawn all the same
        if abandon {
            abandoned += 1
            if prgis[Int(prgi)].pages == 0 { pushFree(prgi) }  // given up; nothing will be answered
            return
        }
        prgis[Int(prgi)].pages += Int32(size)
        inFlight += size
        ledger.issueUnshared(prgi: prgi, pasid: pasid, needsPASID: needs, privateData: data)
    }

    /// Puts `prgi` on the free stack (the table is unshared, or new).
    mutating func pushFree(_ prgi: UInt32) {
        prgis[freeCount].free = prgi
        freeCount += 1
    }

    /// The next group's size, in pages, as `config` distributes them.
    @inline(__always)
    static func groupSize(_ config: SimulatedDeviceConfig, using rng: inout SplitMix64) -> Int {
        let largest = max(1, config.maxGroupSize)
        if let mean = config.geometricMeanGroupSize {
            guard mean > 1 else { return 1 }  // a mean of 1 page is every group a single page
            // Inversion: the number of trials to the first success, with success probability 1 / mean.
            let trials = 1 + (Glibc.log(rng.nextUnitInterval()) / Glibc.log(1 - 1 / mean)).rounded(.down)
            return Int(min(Double(largest), max(1, trials)))
        }
        let smallest = min(max(1, config.minGroupSize), largest)
        guard largest > smallest else { return smallest }   // one size: no draw
        return smallest + Int(rng.next(below: UInt64(largest - smallest + 1)))
    }

    /// Takes the one answer to a group: checks it in the ledger, frees the
    /// PRG index and allocation, and retries the access on SUCCESS.
    /// `label` books the answer under a source of the caller's (see `DeviceLedger.receive`).
    @inline(__always) public mutating func complete(_ completion: DeviceCompletion, label: String? = nil) {
        makeTableUnique()
        completeUnshared(completion, label: label)
    }

    /// `complete` after `makeTableUnique()` (see `nextGroupUnshared`).
    @inline(__always)
    mutating func completeUnshared(_ completion: DeviceCompletion, label: String? = nil) {
        guard ledger.receiveUnshared(completion, label: label) else { return }
        let prgi = PRILimits.slot(completion.prgi)
        // A reused index carries several groups' pages; free it once all are answered.
        if prgis[prgi].pages > 0 && !ledger.isWaiting(prgi: completion.prgi) {
            inFlight -= Int(prgis[prgi].pages)
            prgis[prgi].pages = 0
            pushFree(completion.prgi)
        }
        if completion.code == .success { retries += 1 }
    }
}
