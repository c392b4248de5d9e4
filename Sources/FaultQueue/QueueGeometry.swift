import CFaultRingABI
import FaultABI

/// The shape of a queue pair: ring sizes and the highest ABI offered.
///
/// Fixed when the producer creates the regions; a consumer learns it from
/// the producer header and checks it against the sizes it actually mapped.
public struct QueueGeometry: Sendable, Hashable {
    /// Records in the fault ring (a power of two).
    public let entryCount: Int
    /// Slots in the response ring (a power of two).
    public let responseCount: Int
    /// The highest record ABI the producer offers.
    public let maxABI: ABIVersion
    /// The lowest record ABI the producer accepts (a request below it is
    /// refused as a bad ABI request). The service sets both bounds to the ABI
    /// the ATTACH named, so a queue is exactly the ABI its devices were
    /// attached for (an ABI 1 queue serves one device; see `FaultService`).
    /// A consumer does not see it: from a header it is `.v1`.
    public var minABI: ABIVersion = .v1

    /// Validates and creates a geometry.
    /// - Throws: `.badGeometry` if a count is not a power of two within
    ///   `ABILayout.entryCountRange`, or `minABI` is above `maxABI`.
    public init(entryCount: Int = 4096, responseCount: Int = 1024, maxABI: ABIVersion = .maximum,
                minABI: ABIVersion = .v1) throws(FaultQueueError)
    {
        guard minABI <= maxABI else {
            throw FaultQueueError(.badGeometry, "lowest ABI \(minABI.rawValue) is above the highest, \(maxABI.rawValue)")
        }
        self.minABI = minABI
        for (name, value) in [("entry count", entryCount), ("response count", responseCount)] {
            guard ABILayout.entryCountRange.contains(value), value & (value - 1) == 0 else {
                throw FaultQueueError(
                    .badGeometry,
                    "\(name) \(value) must be a power of two in \(ABILayout.entryCountRange)")
            }
        }
        self.entryCount = entryCount
        self.responseCount = responseCount
        self.maxABI = maxABI
    }

    /// Byte offset of the fault ring in the producer region.
    public static let ringOffset = ABILayout.regionAlign
    /// Byte offset of the response ring in the consumer region.
    public static let responseRingOffset = ABILayout.regionAlign

    /// Bytes to map for the producer region.
    public var producerRegionSize: Int { Self.ringOffset + entryCount * ABILayout.entrySize }
    /// Bytes to map for the consumer region.
    public var consumerRegionSize: Int { Self.responseRingOffset + responseCount * ABILayout.responseSlotSize }

    /// Reads and checks the geometry a producer header advertises.
    ///
    /// A consumer calls this before it trusts any offset: the ring must lie
    /// inside the regions it mapped, whatever the header says.
    /// - Throws: `.badRegion` naming the first field that is inconsistent.
    public init(header: UnsafePointer<faultring_producer_header>, producerSize: Int, consumerSize: Int)
        throws(FaultQueueError)
    {
        let h = header.pointee
        func bad(_ field: String, _ value: some BinaryInteger, _ why: String) -> FaultQueueError {
            FaultQueueError(.badRegion, "producer header \(field) = \(value): \(why)")
        }
        guard h.magic == FAULTRING_PRODUCER_MAGIC else { throw bad("magic", h.magic, "not a faultring producer region") }
        guard h.layout_version == FAULTRING_LAYOUT_VERSION else {
            throw bad("layout_version", h.layout_version, "this build reads layout \(FAULTRING_LAYOUT_VERSION)")
        }
        guard h.header_size == UInt32(MemoryLayout<faultring_producer_header>.size) else {
            throw bad("header_size", h.header_size, "expected \(MemoryLayout<faultring_producer_header>.size)")
        }
        guard h.entry_size == FAULTRING_ENTRY_SIZE else { throw bad("entry_size", h.entry_size, "expected 64") }
        guard h.response_slot_size == FAULTRING_RESPONSE_SLOT_SIZE else {
            throw bad("response_slot_size", h.response_slot_size, "expected 64")
        }
        guard h.ring_offset == UInt32(Self.ringOffset) else { throw bad("ring_offset", h.ring_offset, "expected 4096") }
        guard h.response_ring_offset == UInt32(Self.responseRingOffset) else {
            throw bad("response_ring_offset", h.response_ring_offset, "expected 4096")
        }
        guard let maxABI = ABIVersion(rawValue: h.max_abi) else { throw bad("max_abi", h.max_abi, "unknown ABI") }
        let geometry: QueueGeometry
        do {
            geometry = try QueueGeometry(
                entryCount: Int(h.entry_count), responseCount: Int(h.response_count), maxABI: maxABI)
        } catch {
            throw FaultQueueError(.badRegion, "producer header: \(error.detail)")
        }
        guard producerSize >= geometry.producerRegionSize else {
            throw bad("entry_count", h.entry_count, "ring needs \(geometry.producerRegionSize) bytes, region has \(producerSize)")
        }
        guard consumerSize >= geometry.consumerRegionSize else {
            throw bad("response_count", h.response_count,
                      "ring needs \(geometry.consumerRegionSize) bytes, consumer region has \(consumerSize)")
        }
        self = geometry
    }
}
