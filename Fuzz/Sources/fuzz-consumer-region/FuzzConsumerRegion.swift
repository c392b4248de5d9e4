import FuzzDriver
import FaultABI
import FaultQueue
import Glibc

/// A live queue whose consumer region a hostile tenant writes: the input is
/// a sequence of 5-byte operations (an op, a u32 value) that store
/// `requested_abi`, `requested_features`, `fault_cons`, `resp_prod`,
/// `consumer_sleeping` or a whole response slot, interleaved with the
/// producer's own steps (poll, publish, read responses).
///
/// Invariants, checked after every operation: nothing traps or touches
/// memory outside the regions (ASan); the records waiting, by the
/// producer's own books, never exceed the ring; a read of responses never
/// returns more than the response ring holds; the counters never go down.
@_cdecl("fuzz_consumer_region_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let geometry = try? QueueGeometry(entryCount: 16, responseCount: 16),
          let producer = try? FaultProducer(geometry: geometry, name: "fuzz"),
          let files = try? producer.consumerFiles() else { return 0 }
    let consumerSize = geometry.consumerRegionSize
    guard let region = mmap(nil, consumerSize, PROT_READ | PROT_WRITE, MAP_SHARED, files.consumerRegion.rawValue, 0),
          region != MAP_FAILED else { return 0 }
    defer {
        munmap(region, consumerSize)
        producer.close()
    }
    func store(_ offset: Int, _ value: UInt32) { (region + offset).storeBytes(of: value, as: UInt32.self) }
    var published: UInt64 = 0
    var offset = 0
    var n: UInt32 = 0
    while offset + 5 <= size {
        let op = data[offset]
        let value = UInt32(data[offset + 1]) | UInt32(data[offset + 2]) << 8 | UInt32(data[offset + 3]) << 16
            | UInt32(data[offset + 4]) << 24
        offset += 5
        switch op % 10 {
        case 0: store(0, value)  // requested_abi
        case 1: store(8, value)  // requested_features (low word)
        case 2: store(64, value)  // fault_cons
        case 3: store(128, value)  // resp_prod
        case 4: store(192, value)  // consumer_sleeping
        case 5:
            // A response slot, filled with the value's bytes.
            let slot = region + QueueGeometry.responseRingOffset + Int(value % 16) * ABILayout.responseSlotSize
            for i in 0..<(ABILayout.responseSlotSize / 4) { (slot + 4 * i).storeBytes(of: value &* UInt32(i + 1), as: UInt32.self) }
        case 6: producer.poll()
        case 7:
            n &+= 1
            _ = producer.publish(.pageRequest(PageRequest(
                deviceID: 1, pasid: value & 0xfffff, prgi: n & 0x1ff, permissions: .read, address: UInt64(value) << 12,
                isLastPage: true, needsPASID: true, cookie: UInt64(n))))
        case 8:
            let read = producer.readResponses { _ in }
            guard read <= 16 else { fatalError("read \(read) responses from a 16-slot ring") }
        default: producer.flush()
        }
        let status = producer.status
        if let pending = status.recordsPending, pending > status.entryCount {
            fatalError("\(pending) records waiting in a \(status.entryCount)-entry ring")
        }
        guard status.counters.recordsPublished >= published else { fatalError("records_published went down") }
        published = status.counters.recordsPublished
    }
    return 0
}
