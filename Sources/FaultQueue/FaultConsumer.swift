import CFaultRingABI
import FaultABI
import FaultSys
import Glibc
import SystemPackage

/// A consumer's side of a queue pair: negotiates an ABI, reads records
/// without copying, advances its index, writes responses.
///
/// This is the reference consumer a Swift VMM links; a C or Python consumer
/// does the same steps from `faultring_abi.h` and Docs/ABI.md.
///
/// Ownership: one thread at a time drives a consumer.
public final class FaultConsumer: @unchecked Sendable {
    /// Ring sizes, as validated against the mapped regions.
    public let geometry: QueueGeometry
    /// The queue's descriptors (views of `owner`'s).
    public let descriptors: QueueDescriptors
    let owner: QueueFiles
    let producerRegion: MappedRegion
    let consumerRegion: MappedRegion
    @usableFromInline let ring: UnsafeRawPointer
    let responseRing: UnsafeMutableRawPointer
    /// The queue's shared indices and flags.
    @usableFromInline let words: QueueWords
    @usableFromInline let mask: UInt32
    @usableFromInline let capacity: UInt32
    let responseMask: UInt32
    let responseCapacity: UInt32
    let consumerDoorbell: Doorbell
    let producerDoorbell: Doorbell


    /// The consumer's private cursors, on cache lines of their own (`CacheLines`): stored `var`s
    /// of a class cost a runtime exclusivity check per access.
    @usableFromInline
    struct Cursors {
        @usableFromInline var cons: UInt32 = 0
        // The last `fault_prod` read (validated): records up to it are known
        // to be there, so `peek` reads the producer's line only when it needs more.
        @usableFromInline var prodCache: UInt32 = 0
        @usableFromInline var respProd: UInt32 = 0
        @usableFromInline var respConsCache: UInt32 = 0
        @usableFromInline var abiCache: ABIVersion?
    }
    @usableFromInline let cursors: UnsafeMutablePointer<Cursors>
    @inlinable var cons: UInt32 {
        get { cursors.pointee.cons }
        set { cursors.pointee.cons = newValue }
    }
    @inlinable var prodCache: UInt32 {
        get { cursors.pointee.prodCache }
        set { cursors.pointee.prodCache = newValue }
    }
    @inlinable var respProd: UInt32 {
        get { cursors.pointee.respProd }
        set { cursors.pointee.respProd = newValue }
    }
    @inlinable var respConsCache: UInt32 {
        get { cursors.pointee.respConsCache }
        set { cursors.pointee.respConsCache = newValue }
    }
    @inlinable var abiCache: ABIVersion? {
        get { cursors.pointee.abiCache }
        set { cursors.pointee.abiCache = newValue }
    }

    /// Attaches to a queue from its four descriptors (taking ownership).
    ///
    /// Maps the producer region read-only and checks its header against the
    /// sizes actually mapped before trusting any offset.
    /// - Throws: `.systemCall` (mmap, fstat) or `.badRegion` naming the field.
    public init(files: consuming QueueFiles) throws(FaultQueueError) {
        descriptors = QueueDescriptors(files)
        // Until `owner` is stored, a throw drops `files`, closing all four.
        let producerSize = try MappedRegion.fileSize(files.producerRegion)
        let consumerSize = try MappedRegion.fileSize(files.consumerRegion)
        guard producerSize >= MemoryLayout<faultring_producer_header>.size else {
            throw FaultQueueError(.badRegion, "producer region is \(producerSize) bytes, smaller than its header")
        }
        guard consumerSize >= MemoryLayout<faultring_consumer_header>.size else {
            throw FaultQueueError(.badRegion, "consumer region is \(consumerSize) bytes, smaller than its header")
        }
        producerRegion = try MappedRegion(fd: files.producerRegion, size: producerSize, writable: false)
        consumerRegion = try MappedRegion(fd: files.consumerRegion, size: consumerSize, writable: true)
        geometry = try QueueGeometry(
            header: UnsafePointer(producerRegion.base.assumingMemoryBound(to: faultring_producer_header.self)),
            producerSize: producerSize, consumerSize: consumerSize)
        owner = consume files
        cursors = CacheLines.allocate(Cursors())
        let p = producerRegion.base
        let c = consumerRegion.base
        ring = UnsafeRawPointer(p + QueueGeometry.ringOffset)
        responseRing = c + QueueGeometry.responseRingOffset
        capacity = UInt32(geometry.entryCount)
        mask = capacity - 1
        responseCapacity = UInt32(geometry.responseCount)
        responseMask = responseCapacity - 1
        consumerDoorbell = Doorbell(fd: descriptors.consumerDoorbell)
        producerDoorbell = Doorbell(fd: descriptors.producerDoorbell)
        words = QueueWords(producer: p, consumer: c)
        // Resume from what the region says: a consumer may re-attach.
        cons = words.consIndex.loadRelaxed()
        prodCache = cons
        respProd = words.respProdIndex.loadRelaxed()
        respConsCache = words.respConsIndex.loadAcquire()
    }

    /// Attaches to a queue created at a filesystem path.
    public convenience init(directory: FilePath) throws(FaultQueueError) {
        try self.init(files: QueuePaths(directory: directory).openForConsumer())
    }

    deinit {
        CacheLines.free(cursors)
    }

    /// The ABI in force, or `nil` before negotiation (acquire-load).
    @inlinable
    public var abi: ABIVersion? {
        if let abiCache { return abiCache }
        abiCache = ABIVersion(rawValue: words.abi.loadAcquire())
        return abiCache
    }

    /// The producer's state (`FAULTRING_STATE_*`).
    public var isClosed: Bool { words.state.loadAcquire() == FAULTRING_STATE_CLOSED }

    /// Header, indices and counters as they are now.
    public var status: QueueStatus {
        QueueStatus(producer: UnsafeRawPointer(producerRegion.base), consumer: UnsafeRawPointer(consumerRegion.base))
    }

    /// Asks for `abi` (and `features`), once, and rings the producer.
    /// - Throws: `.badGeometry` if the producer does not offer `abi`;
    ///   `.alreadyRequested` if a different ABI was requested before.
    public func requestABI(_ abi: ABIVersion, features: UInt64 = 0) throws(FaultQueueError) {
        guard abi <= geometry.maxABI else {
            throw FaultQueueError(.badGeometry, "ABI \(abi) requested, producer offers up to \(geometry.maxABI)")
        }
        let previous = words.requestedABI.loadRelaxed()
        guard previous == 0 || previous == abi.rawValue else {
            throw FaultQueueError(.alreadyRequested, "requested_abi is already \(previous)")
        }
        consumerRegion.base.storeBytes(of: features, toByteOffset: ConsumerOffsets.requestedFeatures, as: UInt64.self)
        words.requestedABI.storeSeqCst(abi.rawValue)  // releases the features too
        wakeProducerIfSleeping()
    }

    /// Requests `abi` and waits until the producer puts it in force.
    /// - Throws: `.negotiationTimedOut` if it is not in force after
    ///   `timeoutMilliseconds`; `.closed` if the producer closed.
    @discardableResult
    public func negotiate(_ abi: ABIVersion, features: UInt64 = 0, timeoutMilliseconds: Int32 = 5000)
        throws(FaultQueueError) -> ABIVersion
    {
        try requestABI(abi, features: features)
        var waited: Int32 = 0
        while true {
            if let inForce = self.abi { return inForce }
            if isClosed { throw FaultQueueError(.closed, "producer closed during negotiation") }
            guard waited < timeoutMilliseconds else {
                throw FaultQueueError(.negotiationTimedOut, "ABI \(abi) not in force after \(timeoutMilliseconds) ms")
            }
            // The producer stores `abi` (release), then `state` = RUNNING
            // (seq_cst), then looks at our flag and rings. The re-check loads
            // `state`: only that seq_cst store is in the total order the
            // no-lost-wake-up argument needs (ABI.md section 5, step 3). Short
            // sleeps bound the wait even if the producer never looks.
            sleepUntilRung(timeoutMilliseconds: 10) { self.words.state.loadSeqCst() != FAULTRING_STATE_STARTING }
            waited += 10
        }
    }

    // MARK: Records

    /// Records published and not yet released.
    /// - Throws: `.corruptIndex` if the producer index is more than a ring
    ///   ahead of ours (a producer bug or a foreign writer).
    @inlinable
    public func available() throws(FaultQueueError) -> Int {
        let prod = words.prodIndex.loadAcquire()  // pairs with the producer's release after writing records
        let ready = prod &- cons
        guard ready <= capacity else {
            throw FaultQueueError(.corruptIndex, "fault_prod \(prod) is \(ready) ahead of fault_cons \(cons)")
        }
        prodCache = prod
        return Int(ready)
    }

    /// Up to `max` records, in place. Read them, then `release` them.
    ///
    /// `fault_prod` is read (acquire) only when the records already known
    /// to be published are fewer than `max`: a consumer that keeps up takes
    /// one look at the producer's cache line per run of records, not one
    /// per record.
    /// - Throws: `.notNegotiated` before negotiation; `.corruptIndex`.
    @inlinable
    public func peek(max: Int = .max) throws(FaultQueueError) -> RecordBatch {
        guard let abi else { throw FaultQueueError(.notNegotiated, "no ABI in force") }
        var ready = Int(truncatingIfNeeded: prodCache &- cons)
        // Cached and still ahead of us (a release past it wraps far above the capacity).
        if ready < max || ready > Int(capacity) { ready = try available() }
        return RecordBatch(ring: ring, mask: mask, firstIndex: cons, count: Swift.min(ready, max), abi: abi)
    }

    /// Gives `count` records back to the producer (release-store of
    /// `fault_cons`: our reads of them happen before the producer reuses them).
    @inlinable
    public func release(_ count: Int) {
        cons &+= UInt32(truncatingIfNeeded: count)
        words.consIndex.storeRelease(cons)
    }

    /// Waits for records: spins `spins` times, then sleeps on the doorbell
    /// until records arrive, the producer closes, or `timeoutMilliseconds`
    /// pass (-1: no limit). A stale ring wakes the sleep early; the wait
    /// then sleeps again for the time left, so `false` means timeout or close.
    ///
    /// The sleep protocol: seq_cst store of `consumer_sleeping = 1`, seq_cst
    /// re-load of `fault_prod`; only then block. The producer stores the
    /// index seq_cst and loads our flag seq_cst; in the single total order
    /// of the four, one of us must see the other.
    /// - Returns: whether records are available.
    public func waitForRecords(spins: Int = 1000, timeoutMilliseconds: Int32) -> Bool {
        for _ in 0..<spins {
            if words.prodIndex.loadAcquire() != cons { return true }
        }
        let deadline = timeoutMilliseconds < 0
            ? UInt64.max : Sys.monotonicNS &+ UInt64(timeoutMilliseconds) * 1_000_000
        while words.prodIndex.loadAcquire() == cons && !isClosed {
            let now = Sys.monotonicNS
            guard now < deadline else { break }
            let left = deadline == .max ? Int32(-1) : Int32(min((deadline - now) / 1_000_000 + 1, UInt64(Int32.max)))
            sleepUntilRung(timeoutMilliseconds: left) {
                self.words.prodIndex.loadSeqCst() != self.cons || self.isClosed
            }
        }
        return words.prodIndex.loadAcquire() != cons
    }

    /// Store our flag seq_cst, re-check (with seq_cst loads), block only if
    /// still nothing to do. The producer's half is `FaultProducer.commit`.
    func sleepUntilRung(timeoutMilliseconds: Int32, ready: () -> Bool) {
        words.consumerSleeping.storeSeqCst(1)
        if !ready() {
            consumerDoorbell.wait(timeoutMilliseconds: timeoutMilliseconds)
        }
        words.consumerSleeping.storeRelaxed(0)
    }

    // MARK: Responses

    /// Responses written and not yet read by the producer (acquire-load of
    /// `resp_cons`).
    public var responsesUnread: Int { Int(respProd &- words.respConsIndex.loadAcquire()) }

    /// Writes one response. Returns false if the response ring is full.
    public func respond(_ response: PageResponse) -> Bool {
        withUnsafePointer(to: response) { respond(contiguous: UnsafeBufferPointer(start: $0, count: 1)) } == 1
    }

    /// Writes as many responses as fit, with one index store and at most one
    /// doorbell. - Returns: how many were written.
    ///
    /// Inlinable only to reach contiguous storage: the writing loop itself
    /// (`respond(contiguous:)`) is compiled once, not generically per call.
    @inlinable
    @discardableResult
    public func respond(batch responses: some Sequence<PageResponse>) -> Int {
        if let written = responses.withContiguousStorageIfAvailable({ respond(contiguous: $0) }) { return written }
        return Array(responses).withUnsafeBufferPointer { respond(contiguous: $0) }
    }

    /// `respond(batch:)` on contiguous responses.
    @usableFromInline
    func respond(contiguous responses: UnsafeBufferPointer<PageResponse>) -> Int {
        guard let abi else { return 0 }
        var written = 0
        for response in responses {
            if respProd &- respConsCache >= responseCapacity {
                respConsCache = words.respConsIndex.loadAcquire()  // the producer copied those slots out
                if respProd &- respConsCache >= responseCapacity { break }
            }
            let slot = responseRing + Int(respProd & responseMask) * ABILayout.responseSlotSize
            response.encode(into: slot, abi: abi)
            respProd &+= 1
            written += 1
        }
        if written > 0 {
            words.respProdIndex.storeRelease(respProd)  // the slots are written before the index that covers them
            wakeProducerIfSleeping()
        }
        return written
    }

    /// After a store of ours, the waker's half of the doorbell protocol
    /// (`Doorbell.ring(ifSleeping:)`): ring if the producer said it sleeps.
    func wakeProducerIfSleeping() {
        producerDoorbell.ring(ifSleeping: words.producerSleeping)
    }

    /// Writes raw bytes into the consumer header or a response slot, bypassing
    /// every check: for tests and fault injection that play a hostile VMM.
    @_spi(Testing) public func unsafeConsumerRegion() -> UnsafeMutableRawPointer { consumerRegion.base }
}
