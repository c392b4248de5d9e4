import FaultABI
import FaultControl
import Glibc
import FaultQueue
import FaultSys
import IOMMUFormats
import NestedIOMMU
import SystemPackage

/// A VMM whose guest owns stage 1, against a live service started with
/// `--dma-devices`: it shares guest RAM, lets its guest driver
/// (`NestedGuest`) write tables and bind them, reinjects each page request
/// in the guest's vIOMMU format, forwards the guest's invalidations, and
/// returns the guest's answers. The devices' verdict (retries translated,
/// stale translations, SUCCESS but not mapped) is in the service's STATS.
public final class NestedVMM {
    /// What to run.
    public struct Options: Sendable {
        /// The service's control socket.
        public var socketPath: String
        /// The devices to attach (the service's DMA devices).
        public var devices: [UInt32] = [1]
        /// VT-d or SMMUv3 (tables, bind, and the guest's queue format).
        public var style = NestedDomain.Style.vtd
        /// The guest driver's behaviour.
        public var behaviour = NestedGuest.Behaviour.correct
        /// Devices among `devices` without an ATC (the service's `--dma-no-pri`
        /// devices): the guest sends no device-TLB invalidation for them.
        public var withoutATS: [UInt32] = []
        /// The PASIDs the guest binds (the devices' streams use them).
        public var pasids: [UInt32] = [1, 2]
        /// Resident pages per PASID.
        public var budget = 48
        /// Guest RAM, bytes (at GPA 1 GiB).
        public var ramBytes: UInt64 = 64 << 20
        /// A `.slow` guest answers this late (past the service's timeout).
        public var slowDelayNS: UInt64 = 12_000_000_000
        /// Stop after this many seconds (0: when the queue closes).
        public var seconds: Double = 0
        /// Options for `socketPath`.
        public init(socketPath: String) { self.socketPath = socketPath }
    }

    /// What the VMM and its guest did.
    public struct Summary: Sendable, Codable {
        /// Page requests the guest handled.
        public var pageRequests: UInt64 = 0
        /// Answers sent, by code.
        public var answered: [String: UInt64] = [:]
        /// The guest driver's counters.
        public var guest = NestedGuest.Counters()
        /// Guest answers that did not decode back to a request.
        public var guestAnswerErrors: UInt64 = 0
        /// This VM's nested IOMMU as the service's STATS showed it at the end
        /// (its judgement of the guest: stale translations, refusals).
        public var iommu: NestedCounters?
        /// This VMM's answers the service refused, by reason (`late`,
        /// `mismatch`, `unknown`, …; malformed ones by their rejection), as
        /// STATS showed them at the end. Nil if STATS could not be read.
        public var refused: [String: UInt64]?
        /// Unrecoverable faults read from the queue (devices without PRI), by reason.
        public var events: [String: UInt64] = [:]
        /// Those the guest's driver read from its event queue, by its format's name.
        public var guestEvents: [String: UInt64] = [:]
        /// Seconds run.
        public var seconds: Double = 0
    }

    /// The options.
    public let options: Options
    let client: VMMClient
    let ram: GuestRAM
    let guest: NestedGuest
    var path: GuestFormatPath
    var held: [(due: UInt64, response: PageResponse)] = []
    var summary = Summary()

    /// Connects, attaches, shares guest RAM, writes the guest's tables and binds them.
    /// - Throws: `VMMClientError` (a refusal carries the service's errno and reason).
    public init(_ options: Options) throws(VMMClientError) {
        self.options = options
        client = try VMMClient(socketPath: options.socketPath, devices: options.devices, abi: .v2, client: "faultring-nested-vmm")
        do { ram = try GuestRAM(gpa: 1 << 30, size: options.ramBytes) } catch {
            throw .refused(command: "guest RAM", errno: error.errno, reason: "\(error)")
        }
        try client.addGuestMemory(ram)
        let client = self.client
        do {
            guest = try NestedGuest(style: options.style, ram: ram, pasids: options.pasids,
                                    devices: options.devices.filter { !options.withoutATS.contains($0) },
                                    budget: options.budget, behaviour: options.behaviour,
                                    invalidate: { (inv) throws(NestedError) in try client.forward(inv) })
        } catch {
            throw .refused(command: "guest tables", errno: .noMemory, reason: "guest RAM too small for the tables")
        }
        switch options.style {
        case .vtd:
            for (pasid, entry) in guest.pasidEntries { try client.bind(pasid: pasid, entry: entry, devices: options.devices) }
        case .smmuv3:
            try client.bind(table: guest.tableSTE, devices: options.devices)
        }
        // The doorbell before any answer: the devices' completion interrupts go there.
        if let m = guest.msiBinding { try client.bindMSI(iova: m.iova, gpa: m.gpa, size: m.size) }
        path = GuestFormatPath(format: options.style == .vtd ? .vtd : .smmuv3)
    }

    /// Runs until `seconds` pass or the queue closes.
    @discardableResult
    public func run() throws(VMMClientError) -> Summary {
        let start = Sys.monotonicNS
        func elapsed() -> Double { Double(Sys.monotonicNS - start) / 1e9 }
        while !(options.seconds > 0 && elapsed() >= options.seconds) && !client.serviceGone {
            let now = Sys.monotonicNS
            while let first = held.first, first.due <= now {
                held.removeFirst()
                client.queueResponse(first.response)
            }
            client.flush()
            guard client.wait(spins: 2000, timeoutMilliseconds: 20) else { continue }
            try client.consume(max: 256) { record in handle(record) }
        }
        summary.seconds = elapsed()
        summary.guest = guest.counters
        if let entry = try? ownEntry() {
            summary.iommu = entry.iommu
            summary.refused = entry.refused
        }
        return summary
    }

    /// This connection's entry in STATS (the client with this process's pid):
    /// its VM's counters, and its answers the service refused, by reason.
    func ownEntry() throws(VMMClientError) -> (iommu: NestedCounters?, refused: [String: UInt64])? {
        struct Stats: Decodable {
            struct Client: Decodable {
                var pid: UInt32
                var nested: NestedCounters?
                var queue: QueueCounters?
            }
            var clients: [Client]
        }
        let json = try client.stats()
        guard let stats = try? JSONPayload.decode(Stats.self, Array(json.utf8)),
              let me = stats.clients.first(where: { $0.pid == UInt32(getpid()) }) else { return nil }
        return (me.nested, me.queue?.refusals ?? [:])
    }

    func handle(_ record: DecodedRecord) -> PageResponse? {
        if case .event(.unrecoverable(let fault), _) = record {
            // A device without PRI (or an MSI with no doorbell): reinjected into the guest's event queue if its format has one.
            summary.events[fault.reasonName, default: 0] += 1
            if let seen = path.presentEvent(fault, endpoint: fault.deviceID) { summary.guestEvents[seen, default: 0] += 1 }
            return nil
        }
        guard case .event(.pageRequest(let request), _) = record, request.isLastPage else { return nil }
        summary.pageRequests += 1
        let code: ResponseCode
        do { code = guest.handle(try path.present(request, endpoint: request.deviceID)) } catch {
            code = .invalid   // the guest's format cannot carry it: the VMM answers for it
        }
        let response: PageResponse
        do { response = try path.answer(request, endpoint: request.deviceID, code: code) } catch {
            summary.guestAnswerErrors += 1
            return nil
        }
        summary.answered[code.description, default: 0] += 1
        if options.behaviour == .slow {
            held.append((Sys.monotonicNS + options.slowDelayNS, response))
            return nil
        }
        return response
    }

    /// Says BYE.
    public func close() { client.close() }
}
