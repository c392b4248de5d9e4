import CFaultRingABI
import FaultABI

/// Everything a producer header says, plus the consumer's indices when the
/// consumer region is at hand: what `faultring inspect` prints.
public struct QueueStatus: Sendable, Hashable, Codable {
    /// `layout_version`: the shared-memory layout the producer wrote.
    public var layoutVersion: UInt32
    /// Highest record ABI the producer offers.
    public var maxABI: UInt32
    /// 0 until negotiated.
    public var abi: UInt32
    /// `FAULTRING_STATE_*` by name (`stateName`).
    public var state: String
    /// PID of the producing process (diagnostics only).
    public var producerPID: UInt32
    /// Records the fault ring holds (a power of two).
    public var entryCount: UInt32
    /// Slots the response ring holds (a power of two).
    public var responseCount: UInt32
    /// Feature bits the producer supports.
    public var featuresOffered: UInt64
    /// Feature bits granted at negotiation.
    public var featuresInForce: UInt64
    /// Fault-ring producer index (producer region).
    public var faultProducerIndex: UInt32
    /// Response-ring consumer index (producer region).
    public var responseConsumerIndex: UInt32
    /// Whether the producer has said it is about to block on its doorbell.
    public var producerSleeping: Bool
    /// Consumer-written values; `nil` when only the producer region was read.
    public var requestedABI: UInt32?
    /// Fault-ring consumer index (consumer region); `nil` without it.
    public var faultConsumerIndex: UInt32?
    /// Response-ring producer index (consumer region); `nil` without it.
    public var responseProducerIndex: UInt32?
    /// Whether the consumer has said it is about to block; `nil` without the consumer region.
    public var consumerSleeping: Bool?
    /// Records waiting in the fault ring, when the consumer index is known
    /// and sane (`prod - cons <= entry_count`).
    public var recordsPending: UInt32?
    /// The producer's statistics. Each is a separate relaxed load, so
    /// together they are not one consistent snapshot.
    public var counters: QueueCounters

    /// Reads a status from mapped regions.
    /// - Parameters:
    ///   - producer: the producer header (already validated with `QueueGeometry`).
    ///   - consumer: the consumer header, if mapped.
    public init(producer: UnsafeRawPointer, consumer: UnsafeRawPointer?) {
        let header = producer.load(as: faultring_producer_header.self)
        let mutableProducer = UnsafeMutableRawPointer(mutating: producer)
        func word(_ base: UnsafeMutableRawPointer, _ offset: Int) -> UInt32 { SharedWord(base + offset).loadAcquire() }
        layoutVersion = header.layout_version
        maxABI = header.max_abi
        abi = word(mutableProducer, MemoryLayout<faultring_producer_header>.offset(of: \.abi)!)
        let rawState = word(mutableProducer, MemoryLayout<faultring_producer_header>.offset(of: \.state)!)
        state = QueueStatus.stateName(rawState)
        producerPID = header.producer_pid
        entryCount = header.entry_count
        responseCount = header.response_count
        featuresOffered = header.features_offered
        featuresInForce = header.features_in_force
        faultProducerIndex = word(mutableProducer, ProducerOffsets.faultProd)
        responseConsumerIndex = word(mutableProducer, ProducerOffsets.respCons)
        producerSleeping = word(mutableProducer, ProducerOffsets.producerSleeping) != 0
        counters = QueueCounters(SharedCounters(base: mutableProducer + ProducerOffsets.counters))
        if let consumer {
            let mutableConsumer = UnsafeMutableRawPointer(mutating: consumer)
            requestedABI = word(mutableConsumer, ConsumerOffsets.requestedABI)
            let cons = word(mutableConsumer, ConsumerOffsets.faultCons)
            faultConsumerIndex = cons
            responseProducerIndex = word(mutableConsumer, ConsumerOffsets.respProd)
            consumerSleeping = word(mutableConsumer, ConsumerOffsets.consumerSleeping) != 0
            let pending = faultProducerIndex &- cons
            recordsPending = pending <= entryCount ? pending : nil
        }
    }

    /// The name of a `FAULTRING_STATE_*` value.
    public static func stateName(_ raw: UInt32) -> String {
        switch raw {
        case FAULTRING_STATE_STARTING: return "starting"
        case FAULTRING_STATE_RUNNING: return "running"
        case FAULTRING_STATE_CLOSED: return "closed"
        default: return "unknown(\(raw))"
        }
    }
}

/// Byte offsets of the shared words in the producer header, from the C struct.
@usableFromInline
enum ProducerOffsets {
    static let abi = MemoryLayout<faultring_producer_header>.offset(of: \.abi)!
    static let state = MemoryLayout<faultring_producer_header>.offset(of: \.state)!
    static let counters = MemoryLayout<faultring_producer_header>.offset(of: \.counters)!
    static let faultProd = MemoryLayout<faultring_producer_header>.offset(of: \.fault_prod)!
    static let respCons = MemoryLayout<faultring_producer_header>.offset(of: \.resp_cons)!
    static let producerSleeping = MemoryLayout<faultring_producer_header>.offset(of: \.producer_sleeping)!
}

/// Byte offsets of the shared words in the consumer header, from the C struct.
@usableFromInline
enum ConsumerOffsets {
    static let requestedABI = MemoryLayout<faultring_consumer_header>.offset(of: \.requested_abi)!
    static let requestedFeatures = MemoryLayout<faultring_consumer_header>.offset(of: \.requested_features)!
    static let faultCons = MemoryLayout<faultring_consumer_header>.offset(of: \.fault_cons)!
    static let respProd = MemoryLayout<faultring_consumer_header>.offset(of: \.resp_prod)!
    static let consumerSleeping = MemoryLayout<faultring_consumer_header>.offset(of: \.consumer_sleeping)!
}
