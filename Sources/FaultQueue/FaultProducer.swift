import CFaultRingABI
import FaultABI
import FaultSys
import Glibc
import SystemPackage

/// The service's side of a queue pair: writes fault records, reads responses.
///
/// Ownership: one thread at a time drives a producer (it keeps private
/// cursors); the class is `Sendable` only so it can be handed to that thread.
///
/// Invariants the producer keeps (see Docs/ABI.md):
/// - It never waits for the consumer. A full ring drops the record, counts
///   it, and in ABI 2 writes a LOST record in the first slot that frees.
/// - Every value read from the consumer region is validated before use; a
///   bad one is ignored and counted, and can never steer a read or write
///   outside a ring (indices are masked, never used as offsets unchecked).
/// - No record is written before an ABI is in force.
public final class FaultProducer: @unchecked Sendable {
    /// Ring sizes and the ABI ceiling.
    public let geometry: QueueGeometry
    /// The service's own descriptors (read-write), as views. Valid until
    /// `close()`, which closes them.
    public let descriptors: QueueDescriptors
    /// The owner of `descriptors` (nil once closed).
    var owner: QueueFiles?
    /// The consumer's doorbell ends (memfd queues; nil for a path queue, whose FIFOs each side opens).
    var peers: DoorbellPeers?
    /// The directory holding the regions, for a queue created at a path.
    public let directory: FilePath?

    let producerRegion: MappedRegion
    let consumerRegion: MappedRegion
    @usableFromInline let header: UnsafeMutablePointer<faultring_producer_header>
    @usableFromInline let ring: UnsafeMutableRawPointer
    @usableFromInline let responseRing: UnsafeRawPointer
    @usableFromInline let counters: SharedCounters
    @usableFromInline let consumerDoorbell: Doorbell
    let producerDoorbell: Doorbell


    /// The queue's shared indices and flags.
    @usableFromInline let words: QueueWords
    @usableFromInline let mask: UInt32
    @usableFromInline let capacity: UInt32
    @usableFromInline let responseMask: UInt32

    /// The producer's private cursors. They live in memory the producer
    /// allocates rather than in stored properties: every access to a class's
    /// stored `var` costs a runtime exclusivity check, which on the
    /// per-record path cost more than the ring itself. On cache lines of
    /// their own (`CacheLines`), so the consumer's cursors never share one.
    @usableFromInline
    struct Cursors {
        /// The ABI in force, once negotiated.
        @usableFromInline var abi: ABIVersion?
        // The last values we published or accepted.
        @usableFromInline var prod: UInt32 = 0
        // The last index stored in `fault_prod`, and the last the doorbell check covered (`flush`).
        @usableFromInline var committedProd: UInt32 = 0
        @usableFromInline var checkedProd: UInt32 = 0
        @usableFromInline var consCache: UInt32 = 0
        @usableFromInline var respCons: UInt32 = 0
        @usableFromInline var sequence: UInt32 = 0
        // Loss not yet reported by a LOST record (ABI 2).
        @usableFromInline var pendingLost: UInt64 = 0
        @usableFromInline var firstLostSequence: UInt32 = 0
        @usableFromInline var totalLost: UInt64 = 0
        // Last bad values seen, so one bad write is counted once, not per poll.
        @usableFromInline var lastBadCons: UInt32?
        @usableFromInline var lastBadRespProd: UInt32?
        @usableFromInline var lastRequestSeen: UInt32 = 0
        @usableFromInline var closed = false
    }
    @usableFromInline let cursors: UnsafeMutablePointer<Cursors>
    /// Records of a batch are encoded here first (`stagingRecords` of them,
    /// private, L1-hot), then copied into the ring in one `copyIntoRing`.
    /// Storing a record's fields straight into a slot the consumer's core
    /// last read makes every line a read-for-ownership; a bulk copy writes
    /// whole lines (ring-bench, `FaultEvent` batches of 64: 43.8 -> 69.0
    /// Mrec/s; of 8: 36.8 -> 48.4).
    @usableFromInline let staging: UnsafeMutableRawPointer
    /// Records `staging` holds. (Computed, not `static let`: a stored static
    /// is a lazy global, behind `swift_once` on every read from inlined code.)
    @inlinable static var stagingRecords: Int { 64 }
    /// Batches at least this long go through `staging`; shorter ones are
    /// encoded in place (one or two lines: the copy would cost more).
    @inlinable static var stagingThreshold: Int { 4 }

    /// The ABI in force, once negotiated.
    @inlinable public internal(set) var abi: ABIVersion? {
        get { cursors.pointee.abi }
        set { cursors.pointee.abi = newValue }
    }
    @inlinable var prod: UInt32 {
        get { cursors.pointee.prod }
        set { cursors.pointee.prod = newValue }
    }
    @inlinable var committedProd: UInt32 {
        get { cursors.pointee.committedProd }
        set { cursors.pointee.committedProd = newValue }
    }
    @inlinable var checkedProd: UInt32 {
        get { cursors.pointee.checkedProd }
        set { cursors.pointee.checkedProd = newValue }
    }
    @inlinable var consCache: UInt32 {
        get { cursors.pointee.consCache }
        set { cursors.pointee.consCache = newValue }
    }
    @inlinable var respCons: UInt32 {
        get { cursors.pointee.respCons }
        set { cursors.pointee.respCons = newValue }
    }
    @inlinable var sequence: UInt32 {
        get { cursors.pointee.sequence }
        set { cursors.pointee.sequence = newValue }
    }
    @inlinable var pendingLost: UInt64 {
        get { cursors.pointee.pendingLost }
        set { cursors.pointee.pendingLost = newValue }
    }
    @inlinable var firstLostSequence: UInt32 {
        get { cursors.pointee.firstLostSequence }
        set { cursors.pointee.firstLostSequence = newValue }
    }
    @inlinable var totalLost: UInt64 {
        get { cursors.pointee.totalLost }
        set { cursors.pointee.totalLost = newValue }
    }
    @inlinable var lastBadCons: UInt32? {
        get { cursors.pointee.lastBadCons }
        set { cursors.pointee.lastBadCons = newValue }
    }
    @inlinable var lastBadRespProd: UInt32? {
        get { cursors.pointee.lastBadRespProd }
        set { cursors.pointee.lastBadRespProd = newValue }
    }
    @inlinable var lastRequestSeen: UInt32 {
        get { cursors.pointee.lastRequestSeen }
        set { cursors.pointee.lastRequestSeen = newValue }
    }
    @inlinable var closed: Bool {
        get { cursors.pointee.closed }
        set { cursors.pointee.closed = newValue }
    }

    /// Creates a queue pair on sealed memfds (the service's normal mode).
    /// - Throws: `.systemCall` if memfd, mmap or eventfd creation fails;
    ///   whatever was created before the failing call is closed.
    public convenience init(geometry: QueueGeometry, name: String = "faultring") throws(FaultQueueError) {
        let producerRegion = try MappedRegion.createSealedMemfd(name: "\(name)-producer", size: geometry.producerRegionSize,
                                                                final: false)
        let consumerRegion = try MappedRegion.createSealedMemfd(name: "\(name)-consumer", size: geometry.consumerRegionSize)
        // Each doorbell is a socket pair: the producer keeps `local`, the consumer gets copies of `remote`.
        let consumerBell = try FaultQueueError.wrapping(Sys.doorbellPair)
        let producerBell = try FaultQueueError.wrapping(Sys.doorbellPair)
        let files = QueueFiles(producerRegion: producerRegion, consumerRegion: consumerRegion,
                               consumerDoorbell: consumerBell.local, producerDoorbell: producerBell.local)
        try self.init(geometry: geometry, files: files, directory: nil,
                      peers: DoorbellPeers(consumerDoorbell: consumerBell.remote, producerDoorbell: producerBell.remote))
    }

    /// Creates a queue pair as files in a new directory (for example under
    /// /dev/shm), so any process with access can map it and
    /// `faultring inspect DIR` can read it. Doorbells are FIFOs there.
    ///
    /// The files cannot be sealed, so a consumer with write access to
    /// `consumer` could truncate it; use memfds where consumers are untrusted.
    /// - Throws: `.systemCall` naming the path that could not be created;
    ///   what was created before it is closed and removed, directory included.
    public convenience init(geometry: QueueGeometry, directory: FilePath) throws(FaultQueueError) {
        let paths = QueuePaths(directory: directory)
        let files = try paths.create(producerSize: geometry.producerRegionSize, consumerSize: geometry.consumerRegionSize)
        do {
            try self.init(geometry: geometry, files: files, directory: directory, peers: nil)
        } catch {
            paths.remove()
            throw error
        }
    }

    private init(geometry: QueueGeometry, files: consuming QueueFiles, directory: FilePath?,
                 peers: consuming DoorbellPeers?) throws(FaultQueueError) {
        self.geometry = geometry
        self.directory = directory
        descriptors = QueueDescriptors(files)
        // Mapped before the owner is stored: a failed mmap drops `files`
        // (closing all four) on the way out.
        let producerRegion = try MappedRegion(fd: files.producerRegion, size: geometry.producerRegionSize, writable: true)
        if directory == nil {
            // Trust boundary: from here on only this mapping can write the producer region. A
            // consumer that reopens its read-only copy through /proc/self/fd O_RDWR (the memfd's
            // inode is mode 0777) still cannot write(2) it or map it writable, so the counters,
            // indices and geometry the service reads back are the service's own.
            try FaultQueueError.wrapping { () throws(SystemCallError) in
                try Sys.sealFutureWrite(files.producerRegion, name: "producer region")
            }
        }
        let consumerRegion = try MappedRegion(fd: files.consumerRegion, size: geometry.consumerRegionSize, writable: true)
        self.producerRegion = producerRegion
        self.consumerRegion = consumerRegion
        owner = consume files
        self.peers = peers
        cursors = CacheLines.allocate(Cursors())
        staging = .allocate(byteCount: Self.stagingRecords * ABILayout.entrySize, alignment: 64)
        let p = producerRegion.base
        let c = consumerRegion.base
        header = p.assumingMemoryBound(to: faultring_producer_header.self)
        ring = p + QueueGeometry.ringOffset
        responseRing = UnsafeRawPointer(c + QueueGeometry.responseRingOffset)
        counters = SharedCounters(base: p + ProducerOffsets.counters)
        consumerDoorbell = Doorbell(fd: descriptors.consumerDoorbell)
        producerDoorbell = Doorbell(fd: descriptors.producerDoorbell)
        words = QueueWords(producer: p, consumer: c)
        capacity = UInt32(geometry.entryCount)
        mask = capacity - 1
        responseMask = UInt32(geometry.responseCount) - 1

        // Geometry is written once, before any other process can see the region.
        header.pointee.magic = FAULTRING_PRODUCER_MAGIC
        header.pointee.layout_version = FAULTRING_LAYOUT_VERSION
        header.pointee.header_size = UInt32(MemoryLayout<faultring_producer_header>.size)
        header.pointee.max_abi = geometry.maxABI.rawValue
        header.pointee.entry_size = FAULTRING_ENTRY_SIZE
        header.pointee.entry_count = UInt32(geometry.entryCount)
        header.pointee.ring_offset = UInt32(QueueGeometry.ringOffset)
        header.pointee.response_slot_size = FAULTRING_RESPONSE_SLOT_SIZE
        header.pointee.response_count = UInt32(geometry.responseCount)
        header.pointee.response_ring_offset = UInt32(QueueGeometry.responseRingOffset)
        header.pointee.producer_pid = UInt32(bitPattern: getpid())
        header.pointee.features_offered = FAULTRING_FEATURES_KNOWN
        header.pointee.producer_region_size = UInt64(geometry.producerRegionSize)
        header.pointee.consumer_region_size = UInt64(geometry.consumerRegionSize)
        words.state.storeRelease(FAULTRING_STATE_STARTING)
    }

    deinit {
        if !closed { close() }
        CacheLines.free(cursors)
        staging.deallocate()
    }

    /// The descriptors to hand to a consumer: the producer region reopened
    /// read-only (and sealed against writes), a duplicate of the consumer
    /// region, and duplicates of the consumer's own doorbell ends. The caller
    /// owns them (they close when the returned value is dropped, typically
    /// right after sending); if one cannot be made, those already made are
    /// closed.
    public func consumerFiles() throws(FaultQueueError) -> QueueFiles {
        let consumerDoorbell = peers?.consumerDoorbell.descriptor ?? descriptors.consumerDoorbell
        let producerDoorbell = peers?.producerDoorbell.descriptor ?? descriptors.producerDoorbell
        return try FaultQueueError.wrapping { () throws(SystemCallError) in
            QueueFiles(producerRegion: try Sys.reopen(descriptors.producerRegion, O_RDONLY),
                       consumerRegion: try Sys.duplicate(descriptors.consumerRegion),
                       consumerDoorbell: try Sys.duplicate(consumerDoorbell),
                       producerDoorbell: try Sys.duplicate(producerDoorbell))
        }
    }

    /// What the header and the consumer region say now.
    public var status: QueueStatus {
        QueueStatus(producer: UnsafeRawPointer(producerRegion.base), consumer: UnsafeRawPointer(consumerRegion.base))
    }

    /// The counters block of the header.
    public var countersSnapshot: QueueCounters { QueueCounters(counters) }

    /// Marks the queue closed and wakes the consumer so it sees it.
    /// Closes the service's descriptors; removes the files of a path queue.
    public func close() {
        guard !closed else { return }
        // The last LOST record is owed before the queue closes: if a slot is
        // free it goes out now, so every drop is reported in the ring (a
        // loss with no free slot left stays in records_lost and total_lost).
        refreshConsumerIndex()
        if writeLostRecord() { publishIndex() }
        closed = true
        words.state.storeRelease(FAULTRING_STATE_CLOSED)
        consumerDoorbell.ring()
        owner = nil
        peers = nil
        if let directory {
            QueuePaths(directory: directory).remove()
        }
    }
}

// MARK: - Fault ring

extension FaultProducer {
    /// What happened to a record handed to `publish`.
    public enum PublishOutcome: Sendable, Hashable {
        /// Written and visible to the consumer.
        case published
        /// The ring was full: dropped and counted (`records_lost`); ABI 2
        /// consumers will see a LOST record and a sequence gap.
        case dropped
        /// No ABI in force yet: not written, counted (`publish_refused`).
        case notNegotiated
    }

    /// What happened to a page-request group handed to `publishGroup`.
    public enum GroupOutcome: Sendable, Hashable {
        /// Every record of the group was written, contiguously.
        case published
        /// The group did not fit whole: nothing written, counted
        /// (`groups_overflowed`). The caller must answer it INVALID.
        case noRoom
        /// No ABI in force yet: nothing written.
        case notNegotiated
    }

    /// Slots free according to the last validated consumer index.
    @inlinable var freeSlots: UInt32 { capacity &- (prod &- consCache) }

    /// Re-reads the consumer index and accepts it only if it moved forward
    /// and not past what we published: `0 <= new - old <= prod - old`
    /// (mod 2^32). Anything else is ignored and counted once per value.
    @usableFromInline
    func refreshConsumerIndex() {
        let observed = words.consIndex.loadAcquire()  // pairs with the consumer's release after reading
        if observed == consCache { return }
        if observed &- consCache <= prod &- consCache {
            consCache = observed
        } else if observed != lastBadCons {
            lastBadCons = observed
            counters.add(QueueCounters.Offset.badConsumerIndex)
        }
    }

    @inlinable
    func reserve(_ slots: UInt32) -> Bool {
        if freeSlots >= slots { return true }
        refreshConsumerIndex()
        return freeSlots >= slots
    }

    @inlinable
    func slot(_ index: UInt32) -> UnsafeMutableRawPointer { ring + Int(index & mask) &* ABILayout.entrySize }

    /// Makes the records written so far visible: one release store of
    /// `fault_prod` (a plain store on x86), after the slots were written.
    /// A consumer that polls sees them at once. Waking a consumer that
    /// sleeps is `flush`'s job, once per run of publishes, not per record.
    @inlinable
    func publishIndex() {
        guard prod != committedProd else { return }
        words.prodIndex.storeRelease(prod)
        counters.add(at: counters.recordsPublished, UInt64(prod &- committedProd))
        committedProd = prod
    }

    /// Ends a run of publishes: wakes the consumer if it sleeps. Call it
    /// before the producer stops publishing for a while (the service does,
    /// in `poll` and `prepareToSleep`, once per loop turn); until then a
    /// sleeping consumer is not woken, though a polling one sees every
    /// record the moment `publish` returns. Cheap when nothing was
    /// published since the last call.
    ///
    /// The doorbell protocol (Dekker-style; Docs/ABI.md "Doorbells"):
    /// - producer: each publish release-stores `fault_prod`; here, once per
    ///   run, a seq_cst fence, then a load of `consumer_sleeping`; ring if 1;
    /// - consumer: seq_cst store `consumer_sleeping = 1`, then seq_cst load
    ///   of `fault_prod`; block only if it has not moved.
    ///
    /// Why no wake-up is lost is argued at `Doorbell.ring(ifSleeping:)`,
    /// which both wakers use. Deferring its fence, the protocol's one full
    /// barrier, to here keeps a publish to a slot write and a release store.
    public func flush() {
        guard prod != checkedProd else { return }
        checkedProd = prod
        if consumerDoorbell.ring(ifSleeping: words.consumerSleeping) {
            counters.add(QueueCounters.Offset.doorbellsRung)
        }
    }

    /// Counts what a valid response did when the service matched it, in
    /// the queue's shared counters, so the consumer sees its own mistakes
    /// without asking for STATS.
    public func countMatch(_ outcome: ResponseMatch) {
        counters.add(QueueCounters.Offset.match(outcome))
    }

    /// Accounts for `count` records lost before they reached this producer
    /// (a vEVENTQ overflow upstream) exactly as for its own drops: the
    /// header counter, and in ABI 2 a LOST record and a sequence gap.
    public func noteLost(_ count: UInt64) {
        guard count > 0 else { return }
        drop(UInt32(clamping: count))
        _ = writeLostRecord()  // now if a slot is free, else when one frees
        publishIndex()
    }

    /// Counts `count` records dropped for want of room.
    @usableFromInline
    func drop(_ count: UInt32) {
        counters.add(QueueCounters.Offset.recordsLost, UInt64(count))
        totalLost &+= UInt64(count)
        guard abi == .v2 else { return }
        if pendingLost == 0 { firstLostSequence = sequence }
        pendingLost &+= UInt64(count)
        sequence &+= count  // dropped records consume sequence numbers: the gap shows the loss
    }

    /// Writes the LOST record owed to an ABI 2 consumer, if any and if a
    /// slot is free. Returns false only if one is owed and there is no room.
    @usableFromInline
    func writeLostRecord() -> Bool {
        guard pendingLost > 0 else { return true }
        guard reserve(1) else { return false }
        let lost = LostRecord(lostRecords: pendingLost, firstLostSequence: firstLostSequence, totalLost: totalLost,
                              timestampNS: Sys.monotonicNS)
        lost.encode(into: slot(prod))
        prod &+= 1
        sequence &+= 1
        pendingLost = 0
        return true
    }

    /// Publishes one record, or drops and counts it if the ring is full.
    /// Never blocks and makes no system call: the record is visible to a
    /// polling consumer on return; a sleeping one is woken by `flush`.
    @inlinable
    public func publish(_ event: FaultEvent) -> PublishOutcome {
        guard let abi else {
            counters.add(QueueCounters.Offset.publishRefused)
            return .notNegotiated
        }
        guard writeLostRecord(), reserve(1) else {
            drop(1)
            publishIndex()  // a LOST record may have been written
            return .dropped
        }
        event.encode(into: slot(prod), abi: abi, sequence: sequence)
        prod &+= 1
        sequence &+= 1
        publishIndex()
        return .published
    }

    /// Publishes a batch with one index store (a sleeping consumer is woken
    /// by `flush`). Records that do not fit are dropped and counted like
    /// single ones.
    /// - Returns: how many were written.
    @inlinable
    @discardableResult
    public func publish(batch events: some Collection<FaultEvent>) -> Int {
        guard let abi else {
            counters.add(QueueCounters.Offset.publishRefused, UInt64(events.count))
            return 0
        }
        // One room check for the whole batch; the slow path only when short.
        let wanted = UInt32(clamping: events.count)
        guard pendingLost == 0, reserve(wanted) else { return publishSlowly(events, abi: abi) }
        encodeIntoRing(events, abi: abi)
        publishIndex()
        return Int(wanted)
    }

    /// Encodes `events` into their slots from `prod` on, and moves `prod`
    /// and `sequence` past them; the caller has reserved the room. A batch of
    /// `stagingThreshold` or more goes through `staging`
    /// (`encodeThroughStaging`); a shorter one is written in place.
    /// One loop per ABI, so the hot loop has no branch on it; the cursors are
    /// read once and written once (they sit behind a pointer, and the
    /// optimiser cannot keep them in registers across the slot stores).
    @inlinable
    func encodeIntoRing<Records: Collection>(_ events: Records, abi: ABIVersion) where Records.Element: RingRecord {
        if events.count >= Self.stagingThreshold {
            encodeThroughStaging(events, abi: abi)
            return
        }
        encodeInPlace(events, abi: abi)
    }

    /// `encodeIntoRing` slot by slot, without staging.
    @inlinable
    @inline(__always)
    func encodeInPlace<Records: Collection>(_ events: Records, abi: ABIVersion) where Records.Element: RingRecord {
        let first = prod
        let firstSequence = sequence
        var index = first
        if abi == .v2 {
            for event in events {
                slot(index).storeBytes(of: event.v2Record(sequence: firstSequence &+ (index &- first)),
                                       as: faultring_v2_fault.self)
                index &+= 1
            }
            sequence = firstSequence &+ (index &- first)
        } else {
            for event in events {
                slot(index).storeBytes(of: event.v1Record, as: faultring_v1_fault.self)
                index &+= 1
            }
        }
        prod = index
    }

    /// `encodeIntoRing` for a batch: encodes up to `stagingRecords` at a
    /// time into `staging`, then copies them into the ring whole. One loop
    /// per ABI, as in place.
    @inlinable
    func encodeThroughStaging<Records: Collection>(_ events: Records, abi: ABIVersion)
        where Records.Element: RingRecord
    {
        if abi == .v2 {
            stage(events, sequenced: true) { event, sequence, at in
                at.storeBytes(of: event.v2Record(sequence: sequence), as: faultring_v2_fault.self)
            }
        } else {
            stage(events, sequenced: false) { event, _, at in
                at.storeBytes(of: event.v1Record, as: faultring_v1_fault.self)
            }
        }
    }

    /// The staging loop: `encode` writes one event, with its sequence
    /// number, at a staging slot; full stagings and the rest are copied into
    /// the ring at `prod`. `sequenced`: the ABI numbers its records.
    @inlinable
    @inline(__always)
    func stage<Records: Collection>(_ events: Records, sequenced: Bool,
                                    _ encode: (Records.Element, UInt32, UnsafeMutableRawPointer) -> Void) {
        var index = prod
        let firstSequence = sequence
        var held = 0
        var written: UInt32 = 0
        for event in events {
            encode(event, firstSequence &+ written, staging + held &* ABILayout.entrySize)
            held &+= 1
            written &+= 1
            if held == Self.stagingRecords {
                copyIntoRing(at: index, from: staging, count: held)
                index &+= UInt32(held)
                held = 0
            }
        }
        if held > 0 {
            copyIntoRing(at: index, from: staging, count: held)
            index &+= UInt32(held)
        }
        if sequenced { sequence = firstSequence &+ written }
        prod = index
    }

    /// The batch path when a LOST record is owed or the batch does not fit:
    /// record by record, so each one that finds no room is counted.
    @usableFromInline
    func publishSlowly(_ events: some Collection<FaultEvent>, abi: ABIVersion) -> Int {
        var written = 0
        for event in events {
            guard writeLostRecord(), reserve(1) else {
                drop(1)
                continue
            }
            event.encode(into: slot(prod), abi: abi, sequence: sequence)
            prod &+= 1
            sequence &+= 1
            written += 1
        }
        publishIndex()
        return written
    }

    /// Copies `count` encoded records into the ring from ring index `first`,
    /// in at most two pieces (before and after the wrap). A large copy writes
    /// whole cache lines, so slots last read by the consumer's core need not
    /// be fetched back first, as field-by-field stores would.
    @inlinable
    func copyIntoRing(at first: UInt32, from source: UnsafeRawPointer, count: Int) {
        let size = ABILayout.entrySize
        let start = Int(first & mask)
        let head = Swift.min(count, Int(capacity) - start)
        (ring + start &* size).copyMemory(from: source, byteCount: head &* size)
        if head < count {
            ring.copyMemory(from: source + head &* size, byteCount: (count - head) &* size)
        }
    }

    /// Publishes records already encoded in the ABI in force (64 bytes
    /// each): for a caller that holds wire records (hardware records passed
    /// through, a replayed capture) rather than `FaultEvent`s. In ABI 2 the
    /// producer stamps each record's `sequence` in the caller's buffer
    /// before copying. Records that do not fit are dropped and counted like
    /// any others (LOST record, sequence gap). The records are not validated:
    /// this is the producer's own side of the ABI.
    ///
    /// Benchmark support (`Benchmarks/ring-bench`, the ring fed like its
    /// peers are), not yet used by the service: `@_spi(Benchmarks)`.
    /// - Returns: how many were written.
    @inlinable
    @discardableResult
    @_spi(Benchmarks) public func publish(encoded records: UnsafeMutableRawBufferPointer) -> Int {
        let count = records.count / ABILayout.entrySize
        guard let abi else {
            counters.add(QueueCounters.Offset.publishRefused, UInt64(count))
            return 0
        }
        guard writeLostRecord() else {
            drop(UInt32(clamping: count))
            return 0
        }
        _ = reserve(UInt32(clamping: count))
        let fit = Swift.min(count, Int(freeSlots))
        if fit > 0 {
            let first = prod
            if abi == .v2 {
                for i in 0..<fit {
                    records.storeBytes(of: sequence &+ UInt32(i), toByteOffset: i &* ABILayout.entrySize + 4, as: UInt32.self)
                }
            }
            copyIntoRing(at: first, from: UnsafeRawPointer(records.baseAddress!), count: fit)
            sequence &+= UInt32(fit)
            prod = first &+ UInt32(fit)
        }
        if fit < count { drop(UInt32(count - fit)) }
        publishIndex()
        return fit
    }

    /// Publishes a page-request group whole and contiguous, or not at all.
    ///
    /// A group that does not fit is not dropped silently: the outcome is
    /// `.noRoom`, it is counted, and the caller answers it INVALID at once.
    @inlinable
    public func publishGroup(_ events: some Collection<FaultEvent>) -> GroupOutcome {
        guard let abi else {
            counters.add(QueueCounters.Offset.publishRefused, UInt64(events.count))
            return .notNegotiated
        }
        let outcome = placeGroup(events, abi: abi)
        publishIndex()
        return outcome
    }

    /// Publishes several page-request groups, each as `publishGroup` would
    /// (whole and contiguous, or `.noRoom`), with one index store for all:
    /// a consumer sees the ones that fit together. `requests` holds the
    /// groups back to back; `sizes` gives their record counts, in order, and
    /// must sum to `requests.count`. `outcome` is called once per group, in
    /// order.
    @inlinable
    public func publishGroups(_ events: UnsafeBufferPointer<PageRequest>, sizes: UnsafeBufferPointer<Int>,
                              _ outcome: (GroupOutcome) -> Void) {
        guard let abi else {
            counters.add(QueueCounters.Offset.publishRefused, UInt64(events.count))
            for _ in sizes { outcome(.notNegotiated) }
            return
        }
        // The common case: the whole run fits and no LOST record is owed.
        // Then every group fits whole and contiguous, and the run is one
        // batch: one room check and one encoding loop, in place (groups one
        // at a time pay the loop's setup each, and those of 4 pages or more
        // go through staging; a run is encoded in place because, measured
        // by instructions, the staging copy cost more than it saved).
        if pendingLost == 0 && reserve(UInt32(clamping: events.count)) {
            encodeInPlace(events, abi: abi)
            for _ in sizes { outcome(.published) }
            publishIndex()
            return
        }
        var start = 0
        for size in sizes {
            let end = start + size
            outcome(placeGroup(events[start..<end], abi: abi))
            start = end
        }
        publishIndex()
    }

    /// `publishGroups` from arrays (the form before buffers were lent).
    public func publishGroups(_ events: [PageRequest], sizes: [Int], _ outcome: (GroupOutcome) -> Void) {
        events.withUnsafeBufferPointer { events in
            sizes.withUnsafeBufferPointer { sizes in publishGroups(events, sizes: sizes, outcome) }
        }
    }

    /// Writes one group into the ring after any LOST record owed, without
    /// publishing it, or counts it as overflowed if it does not fit whole.
    @inlinable
    func placeGroup<Records: Collection>(_ events: Records, abi: ABIVersion) -> GroupOutcome
        where Records.Element: RingRecord
    {
        let needed = UInt32(clamping: events.count) &+ (pendingLost > 0 ? 1 : 0)
        guard needed <= capacity, reserve(needed) else {
            counters.add(QueueCounters.Offset.groupsOverflowed)
            return .noRoom
        }
        if pendingLost > 0 { _ = writeLostRecord() }  // checked here: the call is out of line
        encodeIntoRing(events, abi: abi)
        return .published
    }

    /// Whether `count` records would fit now. Uses the cached consumer
    /// index and re-reads (and validates) the shared one only when the cache
    /// says no, so polling it does not bounce the consumer's cache line.
    ///
    /// When there is no room it `flush`es: a producer that waits for room
    /// needs a consumer that is awake to make it.
    ///
    /// For load generators that choose to pace themselves; the service never
    /// waits on it — a full ring drops, it does not block.
    public func hasRoom(for count: Int) -> Bool {
        if reserve(UInt32(clamping: count)) { return true }
        flush()
        return false
    }

    /// Dropped records not yet reported by a LOST record (ABI 2). Non-zero
    /// until a slot frees and `poll` or the next publish writes it.
    public var lostRecordsOwed: UInt64 { pendingLost }

    /// Housekeeping the service runs every loop turn: puts a requested ABI
    /// in force, writes an owed LOST record once a slot has freed, and
    /// `flush`es (wakes a sleeping consumer for what was published).
    public func poll() {
        negotiate()
        if pendingLost > 0, writeLostRecord() { publishIndex() }
        flush()
    }
}

// MARK: - Negotiation

extension FaultProducer {
    /// Reads the consumer's ABI request and, the first time it is valid,
    /// puts it in force.
    ///
    /// The consumer writes `requested_features`, then release-stores
    /// `requested_abi`; our acquire-load of the ABI makes the features
    /// visible. We write `features_in_force`, then release-store `abi`, then
    /// `state`, so a consumer that acquire-loads `abi` sees the features.
    func negotiate() {
        let requested = words.requestedABI.loadAcquire()
        if let abi {
            if requested != abi.rawValue && requested != lastRequestSeen {
                lastRequestSeen = requested
                counters.add(QueueCounters.Offset.renegotiations)
            }
            return
        }
        guard requested != 0, requested != lastRequestSeen else { return }
        lastRequestSeen = requested
        guard let version = ABIVersion(rawValue: requested), version <= geometry.maxABI, version >= geometry.minABI else {
            counters.add(QueueCounters.Offset.badABIRequests)
            return
        }
        let features = consumerRegion.base.load(fromByteOffset: ConsumerOffsets.requestedFeatures, as: UInt64.self)
        let offered = header.pointee.features_offered
        if features & ~offered != 0 { counters.add(QueueCounters.Offset.badFeatureRequests) }
        header.pointee.features_in_force = features & offered
        abi = version
        words.abi.storeRelease(version.rawValue)
        words.state.storeSeqCst(FAULTRING_STATE_RUNNING)
        if words.consumerSleeping.loadSeqCst() != 0 { consumerDoorbell.ring() }
    }
}

// MARK: - Response ring

extension FaultProducer {
    /// Reads up to `limit` response slots the consumer published, validates
    /// each (on a private copy) and hands the result to `body`; then frees
    /// the slots. Rejections are counted by reason before `body` sees them.
    ///
    /// A response producer index that is behind ours or more than a ring
    /// ahead is ignored and counted (`bad_response_index`); nothing is read.
    /// - Returns: how many slots were consumed.
    ///
    /// Inlinable, so that the caller's `body` is inlined into the loop.
    @inlinable
    @discardableResult
    public func readResponses(limit: Int = .max, _ body: (Result<PageResponse, ResponseRejection>) -> Void) -> Int {
        guard let abi else { return 0 }
        let observed = words.respProdIndex.loadAcquire()  // pairs with the consumer's release after writing slots
        let pending = observed &- respCons
        guard pending <= UInt32(geometry.responseCount) else {
            if observed != lastBadRespProd {
                lastBadRespProd = observed
                counters.add(QueueCounters.Offset.badResponseIndex)
            }
            return 0
        }
        let count = Int(pending) < limit ? Int(pending) : limit
        for i in 0..<count {
            let index = respCons &+ UInt32(i)
            let slot = responseRing + Int(index & responseMask) * ABILayout.responseSlotSize
            let result = PageResponse.validate(slot: slot, abi: abi)
            switch result {
            case .success: counters.add(at: counters.responsesValid)
            case .failure(let rejection): counters.add(QueueCounters.Offset.rejection(rejection.reason))
            }
            body(result)
        }
        respCons &+= UInt32(count)
        words.respConsIndex.storeRelease(respCons)  // the slots are copied out; the consumer may reuse them
        return count
    }

    /// Records were dropped and the LOST record that reports them waits for
    /// a free slot: a driver that sleeps should come back soon (the
    /// consumer does not ring when it frees slots).
    public var owesLostRecord: Bool { pendingLost > 0 }

    /// Whether the consumer has given us something to do: responses, or an
    /// ABI request not yet looked at.
    ///
    /// A `resp_prod` that `readResponses` refused is no work until the
    /// consumer writes another value, and before negotiation no response is
    /// read at all: a tenant that writes a bad index cannot keep an event
    /// loop spinning.
    public var consumerHasWork: Bool {
        let prod = words.respProdIndex.loadSeqCst()
        if abi != nil && prod != respCons && prod != lastBadRespProd { return true }
        let requested = words.requestedABI.loadSeqCst()
        return abi == nil && requested != 0 && requested != lastRequestSeen
    }

    /// Sleeps until the consumer publishes responses or an ABI request, or
    /// the timeout passes (the mirror of the consumer's wait; see `commit`).
    /// - Returns: whether there is work now.
    @discardableResult
    public func waitForConsumer(timeoutMilliseconds: Int32) -> Bool {
        if prepareToSleep() {
            producerDoorbell.wait(timeoutMilliseconds: timeoutMilliseconds)
        }
        finishSleeping()
        return consumerHasWork
    }

    /// The first half of a sleep, for an event loop that waits on many
    /// doorbells at once: `flush`es, stores `producer_sleeping = 1`
    /// seq_cst, then re-checks with seq_cst loads. Returns false if the consumer already
    /// has work (do not block); either way call `finishSleeping` after.
    public func prepareToSleep() -> Bool {
        flush()  // the consumer must not sleep through what we published before we do
        words.producerSleeping.storeSeqCst(1)
        return !consumerHasWork
    }

    /// The second half: clears `producer_sleeping` and drains the doorbell.
    public func finishSleeping() {
        words.producerSleeping.storeRelaxed(0)
        producerDoorbell.drain()
    }

    /// The descriptor the consumer rings (for an event loop to watch).
    public var doorbellFD: FileDescriptor { descriptors.producerDoorbell }
}
