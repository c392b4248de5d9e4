// ring-bench: faultring's shared-memory ring next to Boost's spsc_queue and
// the socketpair syscall path, same 64-byte records, same batch sizes,
// producer on CPU 0 and consumer on CPU 1, threads and processes.
// Prints a markdown table with ratios. Build with -c release (Benchmarks/run.sh).
import BenchPeers
import FaultABI
@_spi(Benchmarks) import FaultQueue
import Foundation
import Glibc
import FaultLoopback
import FaultSys
import VMMClient

// MARK: faultring sides

/// Record n, the same fields the C++ peers fill.
@inline(__always)
func event(_ n: UInt64) -> FaultEvent {
    .unrecoverable(UnrecoverableFault(deviceID: 1, reason: 0, permissions: [], address: n << 12, timestampNS: n))
}

/// Reads all 64 bytes of every record (Boost's pop copies whole records too).
@inline(__always)
func touch(_ slot: UnsafeRawPointer) -> UInt64 {
    var sum: UInt64 = 0
    for word in 0..<8 { sum &+= slot.load(fromByteOffset: word * 8, as: UInt64.self) }
    return sum
}

/// The consumer of a throughput run: busy-polls, reads, releases, and
/// answers once at the end so the producer can stop its clock.
func consumeAll(_ consumer: FaultConsumer, records: UInt64, batch: Int) {
    while consumer.abi == nil {}  // requested by startConsumer or the child; the producer puts it in force
    var got: UInt64 = 0
    var sum: UInt64 = 0
    while got < records {
        guard let view = try? consumer.peek(max: batch), !view.isEmpty else { continue }
        for i in view.indices { sum &+= touch(view[i]) }
        consumer.release(view.count)
        got += UInt64(view.count)
    }
    while !consumer.respond(PageResponse(code: .success, cookie: sum)) {}
}

/// The consumer of a round-trip run: one record in, one response out.
func echoAll(_ consumer: FaultConsumer, rounds: UInt64) {
    while consumer.abi == nil {}
    for _ in 0..<rounds {
        var view = try! consumer.peek(max: 1)
        while view.isEmpty { view = try! consumer.peek(max: 1) }
        let cookie = view[0].load(fromByteOffset: 32, as: UInt64.self)
        consumer.release(1)
        while !consumer.respond(PageResponse(code: .success, cookie: cookie)) {}
    }
}

/// A consumer on CPU 1: a thread of this process, or a child process that
/// inherits the queue (this binary in `--child` mode).
func startConsumer(_ producer: FaultProducer, crossProcess: Bool, mode: [String], body: @escaping @Sendable (FaultConsumer) -> Void)
    throws -> () -> Void
{
    let files = try producer.consumerFiles()
    if crossProcess {
        let child = try ChildProcess.spawn("/proc/self/exe", ["--child"] + mode, descriptors: files.all)
        files.close()
        return { child.wait() }
    }
    let consumer = try FaultConsumer(files: files)
    try consumer.requestABI(.v2)
    let box = Unmanaged.passRetained(ThreadBody {
        bench_pin(1)
        body(consumer)
    }).toOpaque()
    var thread = pthread_t()
    pthread_create(&thread, nil, { raw in
        Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, box)
    return { pthread_join(thread, nil) }
}

final class ThreadBody: @unchecked Sendable {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

func negotiated(_ producer: FaultProducer) {
    while producer.abi == nil {
        producer.waitForConsumer(timeoutMilliseconds: 100)
        producer.poll()
    }
}

/// One throughput run: a consumer on CPU 1 (thread or process), `produce`
/// on CPU 0 publishing `records` in batches of `batch`; the clock stops when
/// the consumer's single answer (sent after the last record) arrives.
func throughputRun(records: UInt64, batch: Int, crossProcess: Bool,
                   produce: (FaultProducer, _ first: UInt64, _ count: Int) -> Void) throws -> Double {
    let producer = try FaultProducer(geometry: QueueGeometry(entryCount: 4096, responseCount: 64))
    let join = try startConsumer(producer, crossProcess: crossProcess,
                                 mode: ["throughput", "\(records)", "\(batch)"]) {
        consumeAll($0, records: records, batch: batch)
    }
    negotiated(producer)
    bench_pin(0)
    let start = bench_now_ns()
    var n: UInt64 = 0
    while n < records {
        let count = Int(min(UInt64(batch), records - n))
        while !producer.hasRoom(for: count) {}
        produce(producer, n, count)
        n += UInt64(count)
    }
    var done = false
    while !done { producer.readResponses { _ in done = true } }
    let seconds = Double(bench_now_ns() - start) / 1e9
    join()
    producer.close()
    return seconds
}

/// The API a service uses: `FaultEvent` values, encoded by `publish`.
func faultringThroughput(records: UInt64, batch: Int, crossProcess: Bool) throws -> Double {
    var events: [FaultEvent] = []
    events.reserveCapacity(batch)
    return try throughputRun(records: records, batch: batch, crossProcess: crossProcess) { producer, n, count in
        if count == 1 {
            _ = producer.publish(event(n))
            return
        }
        events.removeAll(keepingCapacity: true)
        for i in 0..<UInt64(count) { events.append(event(n + i)) }
        producer.publish(batch: events)
    }
}

/// The ring with ready-made 64-byte records, as Boost gets them: a record
/// template copied and two fields patched per record, then
/// `publish(encoded:)` (the producer stamps the sequence numbers).
func faultringEncodedThroughput(records: UInt64, batch: Int, crossProcess: Bool) throws -> Double {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 64, alignment: 64)
    defer { buffer.deallocate() }
    var template = event(0).v2Record(sequence: 0)
    return try throughputRun(records: records, batch: batch, crossProcess: crossProcess) { producer, n, count in
        for i in 0..<count {
            let slot = buffer.baseAddress! + i * 64
            withUnsafeBytes(of: &template) { slot.copyMemory(from: $0.baseAddress!, byteCount: 64) }
            slot.storeBytes(of: (n + UInt64(i)) << 12, toByteOffset: 32, as: UInt64.self)  // addr
            slot.storeBytes(of: n + UInt64(i), toByteOffset: 56, as: UInt64.self)  // timestamp
        }
        producer.publish(encoded: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(count * 64)]))
    }
}

func faultringRTT(rounds: UInt64, crossProcess: Bool) throws -> [UInt64] {
    let producer = try FaultProducer(geometry: QueueGeometry(entryCount: 4096, responseCount: 64))
    let join = try startConsumer(producer, crossProcess: crossProcess, mode: ["rtt", "\(rounds)"]) {
        echoAll($0, rounds: rounds)
    }
    negotiated(producer)
    bench_pin(0)
    var samples = [UInt64](repeating: 0, count: Int(rounds))
    for n in 0..<Int(rounds) {
        let t0 = bench_now_ns()
        _ = producer.publish(event(UInt64(n)))
        var answered = false
        while !answered { producer.readResponses { _ in answered = true } }
        samples[n] = bench_now_ns() - t0
    }
    join()
    producer.close()
    return samples
}

// MARK: child mode

let arguments = CommandLine.arguments
if arguments.count > 1 && arguments[1] == "--child" {
    bench_pin(1)
    let consumer = try FaultConsumer(files: .inherited())
    try consumer.requestABI(.v2)
    if arguments[2] == "throughput" {
        consumeAll(consumer, records: UInt64(arguments[3])!, batch: Int(arguments[4])!)
    } else {
        echoAll(consumer, rounds: UInt64(arguments[3])!)
    }
    exit(0)
}

// MARK: the run

let repetitions = Int(ProcessInfo.processInfo.environment["BENCH_REPS"] ?? "3")!
let scale = Double(ProcessInfo.processInfo.environment["BENCH_SCALE"] ?? "1")!

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func throughput(_ run: () throws -> Double, records: UInt64) rethrows -> Double {
    var rates: [Double] = []
    for _ in 0..<repetitions { rates.append(Double(records) / (try run()) / 1e6) }
    return median(rates)
}

func percentile(_ sorted: [UInt64], _ p: Double) -> UInt64 { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }


print("ring-bench: 64-byte records, 4096-slot rings, producer CPU 0, consumer CPU 1, median of \(repetitions) runs")
print("")
print("faultring: FaultEvent values encoded by publish(); faultring enc.: ready 64-byte records via publish(encoded:)")
print("")
print("| placement | batch | faultring Mrec/s | faultring enc. Mrec/s | Boost spsc Mrec/s | socketpair Mrec/s | faultring/Boost | enc./Boost | faultring/socketpair | enc./socketpair |")
print("|---|---|---|---|---|---|---|---|---|---|")
for crossProcess in [false, true] {
    for batch in [1, 64] {
        let ringRecords = UInt64((batch == 1 ? 10_000_000 : 40_000_000) * scale)
        let socketRecords = UInt64((batch == 1 ? 1_000_000 : 4_000_000) * scale)
        let ring = try throughput({ try faultringThroughput(records: ringRecords, batch: batch, crossProcess: crossProcess) },
                                  records: ringRecords)
        let encoded = try throughput({ try faultringEncodedThroughput(records: ringRecords, batch: batch, crossProcess: crossProcess) },
                                     records: ringRecords)
        let boost = throughput({ bench_boost_throughput(ringRecords, Int32(batch), crossProcess ? 1 : 0) }, records: ringRecords)
        let socket = throughput({ bench_socketpair_throughput(socketRecords, Int32(batch), crossProcess ? 1 : 0) },
                                records: socketRecords)
        print(String(format: "| %@ | %d | %.1f | %.1f | %.1f | %.2f | %.2f× | %.2f× | %.1f× | %.1f× |",
                     crossProcess ? "processes" : "threads", batch, ring, encoded, boost, socket, ring / boost, encoded / boost,
                     ring / socket, encoded / socket))
    }
}
print("")
print("Round trip: one record out, one response back, both sides polling (socketpair: blocking read).")
print("")
print("| placement | faultring p50 / p99 ns | Boost p50 / p99 ns | socketpair p50 / p99 ns | faultring/socketpair p50 |")
print("|---|---|---|---|---|")
let rounds = UInt64(200_000 * scale)
for crossProcess in [false, true] {
    let ring = try faultringRTT(rounds: rounds, crossProcess: crossProcess).sorted()
    var boost = [UInt64](repeating: 0, count: Int(rounds))
    var socket = [UInt64](repeating: 0, count: Int(rounds))
    _ = bench_boost_rtt(rounds, crossProcess ? 1 : 0, &boost)
    _ = bench_socketpair_rtt(rounds, crossProcess ? 1 : 0, &socket)
    boost.sort()
    socket.sort()
    print(String(format: "| %@ | %llu / %llu | %llu / %llu | %llu / %llu | %.3f× |",
                 crossProcess ? "processes" : "threads",
                 percentile(ring, 0.5), percentile(ring, 0.99), percentile(boost, 0.5), percentile(boost, 0.99),
                 percentile(socket, 0.5), percentile(socket, 0.99),
                 Double(percentile(ring, 0.5)) / Double(percentile(socket, 0.5))))
}

// MARK: the page-request loop next to the bare ring (issue 3)

/// The bare ring in the loop's shape, one thread: publish a group of
/// `size` records, read it, answer it, read the answer.
func bareLoop(groups: Int, size: Int) throws -> Double {
    let producer = try FaultProducer(geometry: QueueGeometry(entryCount: 256, responseCount: 256))
    let consumer = try FaultConsumer(files: producer.consumerFiles())
    try consumer.requestABI(.v2)
    producer.poll()
    let events = (0..<size).map { i in
        FaultEvent.pageRequest(PageRequest(deviceID: 1, pasid: 3, prgi: 5, address: UInt64(i) << 12,
                                           isLastPage: i == size - 1, cookie: 42))
    }
    let start = bench_now_ns()
    for _ in 0..<groups {
        _ = producer.publishGroup(events)
        let view = try consumer.peek()
        var cookie: UInt64 = 0
        for i in view.indices { cookie = view[i].load(fromByteOffset: 48, as: UInt64.self) }
        consumer.release(view.count)
        _ = consumer.respond(PageResponse(code: .success, cookie: cookie))
        producer.readResponses { _ in }
    }
    return Double(groups) / (Double(bench_now_ns() - start) / 1e9)
}

/// The whole lifecycle, one thread: devices, tracker, ring, responder, tracker, devices.
func lifecycleLoop(groups: UInt64, maxSize: Int) throws -> Double {
    var config = LoopbackConfig()
    config.groups = groups
    config.maxGroupSize = maxSize
    config.behaviour = ConsumerBehaviour()
    let report = try LoopbackHarness(config).run()
    precondition(report.balanced, "\(report.problems)")
    return report.groupsPerSecond
}

print("")
print("Page-request loop, one thread, groups/s (M): the bare ring (publish group, read, answer, read answer) next to")
print("the whole lifecycle (simulated devices, tracker with cookies and timeouts, ring, responder, ledger).")
print("")
print("| group size | bare ring M groups/s | lifecycle M groups/s | lifecycle / bare |")
print("|---|---|---|---|")
let loopGroups = Int(2_000_000 * scale)
for (label, bareSize, maxSize) in [("1", 1, 1), ("1-4 (mean 2.5)", 3, 4)] {
    var bare: [Double] = []
    var life: [Double] = []
    for _ in 0..<repetitions {
        bare.append(try bareLoop(groups: loopGroups, size: bareSize) / 1e6)
        life.append(try lifecycleLoop(groups: UInt64(loopGroups), maxSize: maxSize) / 1e6)
    }
    print(String(format: "| %@ | %.2f | %.2f | %.2f× |", label, median(bare), median(life), median(life) / median(bare)))
}
