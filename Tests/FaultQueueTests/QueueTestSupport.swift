import FaultABI
@_spi(Testing) import FaultQueue

/// A producer and an in-process consumer attached through the consumer's
/// own descriptors (read-only producer region), as a VMM would be.
struct QueuePair {
    let producer: FaultProducer
    let consumer: FaultConsumer

    init(entries: Int = 8, responses: Int = 8, abi: ABIVersion? = .v2) throws {
        producer = try FaultProducer(geometry: QueueGeometry(entryCount: entries, responseCount: responses))
        consumer = try FaultConsumer(files: producer.consumerFiles())
        if let abi {
            try consumer.requestABI(abi)
            producer.poll()
        }
    }

    /// Reads and releases everything available.
    func drain() throws -> [DecodedRecord] {
        let batch = try consumer.peek()
        var records: [DecodedRecord] = []
        for i in batch.indices { records.append(try batch.decode(i)) }
        consumer.release(batch.count)
        return records
    }
}

func unrecoverable(_ n: Int) -> FaultEvent {
    .unrecoverable(UnrecoverableFault(deviceID: 1, reason: 6, permissions: .write, address: UInt64(n) << 12))
}

func pageRequest(prgi: UInt32, last: Bool = true, cookie: UInt64 = 0) -> FaultEvent {
    .pageRequest(PageRequest(deviceID: 1, pasid: 4, prgi: prgi, address: 0x1000, isLastPage: last, cookie: cookie))
}

/// Writes a 32-bit word at `offset` of the consumer region, the way a buggy
/// or hostile VMM could.
func poke(_ consumer: FaultConsumer, _ offset: Int, _ value: UInt32) {
    consumer.unsafeConsumerRegion().storeBytes(of: value, toByteOffset: offset, as: UInt32.self)
}
