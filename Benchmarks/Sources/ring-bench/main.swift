// ring-bench: faultring's shared-memory ring next to Boost's spsc_queue and
// DPDK's rte_ring: the same 64-byte records built the same way and read
// whole, the same batch sizes, producer on CPU 0 and consumer on CPU 1.
// Contenders run interleaved (A B C A B C ...), each measurement labelled by
// a cache-line ping-pong probe run just before it, so the VM's slow phases
// hit all alike and can be told apart. Prints markdown tables: medians with
// ranges, and ratios against the best peer of each row.
// Build with -c release (Benchmarks/run.sh).
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
    while consumer.abi == nil {}  // requested by startConsumer; the producer puts it in force
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

/// A consumer on CPU 1, in a thread of this process.
func startConsumer(_ producer: FaultProducer, body: @escaping @Sendable (FaultConsumer) -> Void) throws -> () -> Void {
    let consumer = try FaultConsumer(files: producer.consumerFiles())
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

/// One throughput run: a consumer thread on CPU 1, `produce` on CPU 0
/// publishing `records` in batches of `batch`; the clock stops when the
/// consumer's single answer (sent after the last record) arrives.
func throughputRun(records: UInt64, batch: Int,
                   produce: (FaultProducer, _ first: UInt64, _ count: Int) -> Void) throws -> Double {
    let producer = try FaultProducer(geometry: QueueGeometry(entryCount: 4096, responseCount: 64))
    let join = try startConsumer(producer) { consumeAll($0, records: records, batch: batch) }
    negotiated(producer)
    bench_pin(0)
    let start = bench_now_ns()
    var n: UInt64 = 0
    while n < records {
        let count = Int(min(UInt64(batch), records - n))
        while !producer.hasRoom(for: count) {}
        produce(producer, n, count)
        n += UInt64(count)
        // The wake-up check, as a service makes it once per loop turn: per
        // batch, and every 64 records when publishing one at a time.
        if batch > 1 || n & 63 == 0 { producer.flush() }
    }
    producer.flush()
    var done = false
    while !done { producer.readResponses { _ in done = true } }
    let seconds = Double(bench_now_ns() - start) / 1e9
    join()
    producer.close()
    return seconds
}

/// The API a service uses: `FaultEvent` values, encoded by `publish`.
///
/// The batch is a buffer of `batch` events reused in place, as a service
/// fills a batch it keeps (and as the peers' records are built in place).
func faultringEventsThroughput(records: UInt64, batch: Int) throws -> Double {
    var events = [FaultEvent](repeating: event(0), count: batch)
    return try throughputRun(records: records, batch: batch) { producer, n, count in
        if count == 1 {
            _ = producer.publish(event(n))
            return
        }
        events.withUnsafeMutableBufferPointer { buffer in
            for i in 0..<count { buffer[i] = event(n + UInt64(i)) }
        }
        producer.publish(batch: events[0..<count])
    }
}

/// The ring with ready-made 64-byte records, built as the peers build
/// theirs (a template copied whole, the varying fields patched), then
/// `publish(encoded:)` (the producer stamps the sequence numbers).
func faultringEncodedThroughput(records: UInt64, batch: Int) throws -> Double {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 64, alignment: 64)
    defer { buffer.deallocate() }
    var template = event(0).v2Record(sequence: 0)
    return try throughputRun(records: records, batch: batch) { producer, n, count in
        for i in 0..<count {
            let slot = buffer.baseAddress! + i * 64
            withUnsafeBytes(of: &template) { slot.copyMemory(from: $0.baseAddress!, byteCount: 64) }
            slot.storeBytes(of: (n + UInt64(i)) << 12, toByteOffset: 32, as: UInt64.self)  // addr
            slot.storeBytes(of: n + UInt64(i), toByteOffset: 56, as: UInt64.self)  // timestamp
        }
        producer.publish(encoded: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(count * 64)]))
    }
}

func faultringRTT(rounds: UInt64) throws -> [UInt64] {
    let producer = try FaultProducer(geometry: QueueGeometry(entryCount: 4096, responseCount: 64))
    let join = try startConsumer(producer) { echoAll($0, rounds: rounds) }
    negotiated(producer)
    bench_pin(0)
    var samples = [UInt64](repeating: 0, count: Int(rounds))
    for n in 0..<Int(rounds) {
        let t0 = bench_now_ns()
        _ = producer.publish(event(UInt64(n)))
        producer.flush()
        var answered = false
        while !answered { producer.readResponses { _ in answered = true } }
        samples[n] = bench_now_ns() - t0
    }
    join()
    producer.close()
    return samples
}

// MARK: statistics

let repetitions = Int(ProcessInfo.processInfo.environment["BENCH_REPS"] ?? "21")!
/// BENCH_ONLY=throughput|rtt|loop runs one part (lifecycle: the lifecycle alone, to profile; BENCH_MAX pages).
let only = ProcessInfo.processInfo.environment["BENCH_ONLY"]
func part(_ name: String) -> Bool { only == nil || only == name }
let scale = Double(ProcessInfo.processInfo.environment["BENCH_SCALE"] ?? "1")!
/// A probe slower than this (ns per cache-line round trip) labels the VM slow.
let slowProbe = 300.0

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
func percentile(_ sorted: [UInt64], _ p: Double) -> UInt64 { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }

/// One measurement and the VM state the probe before it saw.
struct Sample {
    var value: Double
    var probeNS: Double
    var fast: Bool { probeNS < slowProbe }
}

/// "median [min–max]" of all samples; with a slow phase in the run, the
/// fast samples' median after a bar.
func summary(_ samples: [Sample], format: String = "%.1f") -> String {
    let values = samples.map(\.value)
    var text = String(format: "\(format) [\(format)–\(format)]", median(values), values.min()!, values.max()!)
    let fast = samples.filter(\.fast).map(\.value)
    if fast.count != samples.count && fast.count >= 3 { text += String(format: " · fast \(format)", median(fast)) }
    return text
}

/// Contender `i`'s value over the best peer's, repetition by repetition
/// (`better`: which of two values is the better one). The contenders of one
/// repetition run back to back, so the VM is most likely in one phase for
/// all of them: a paired ratio cancels the phase, where a ratio of medians
/// can compare one contender's fast runs with another's slow ones.
func pairedRatios(_ samples: [[Sample]], _ i: Int, peers: [Int], better: (Double, Double) -> Bool) -> [Double] {
    (0..<samples[i].count).map { r in
        let best = peers.map { samples[$0][r].value }.reduce(nil as Double?) { acc, v in acc.map { better($0, v) ? $0 : v } ?? v }!
        return samples[i][r].value / best
    }
}

/// "median× [min–max]" of paired ratios.
func ratioSummary(_ ratios: [Double]) -> String {
    String(format: "%.2f× [%.2f–%.2f]", median(ratios), ratios.min()!, ratios.max()!)
}

/// Runs every contender `repetitions` times, interleaved, each after a probe.
func interleaved(_ contenders: [() throws -> Double]) throws -> [[Sample]] {
    var samples = [[Sample]](repeating: [], count: contenders.count)
    for _ in 0..<repetitions {
        for (i, run) in contenders.enumerated() {
            let probe = bench_pingpong_ns(20_000)
            samples[i].append(Sample(value: try run(), probeNS: probe))
        }
    }
    return samples
}

// MARK: throughput

let records = UInt64(4_000_000 * scale)
let names = ["faultring enc.", "faultring events", "Boost spsc", "rte_ring", "rte_ring zc"]
let peers = 2..<5
if part("throughput") {
print("ring-bench: 64-byte records built from a template and read whole, 4096-slot rings, producer CPU 0, consumer CPU 1;")
print("\(repetitions) interleaved repetitions of \(records) records per contender and batch. Mrec/s: median [min–max];")
print("\"fast\" is the median over runs whose ping-pong probe was under \(Int(slowProbe)) ns (shown when some were not).")
print("Ratios: faultring over the best peer of the same repetition, median [min–max] over repetitions (paired),")
print("then the ratio of the medians.")
print("")
print("| batch | " + names.joined(separator: " | ") + " | enc. / best peer | events / best peer | VM fast runs (probe ns) |")
print("|---|" + String(repeating: "---|", count: names.count + 3))
}
for batch in [1, 8, 64] where part("throughput") {
    let rate = { (seconds: Double) in Double(records) / seconds / 1e6 }
    let samples = try interleaved([
        { rate(try faultringEncodedThroughput(records: records, batch: batch)) },
        { rate(try faultringEventsThroughput(records: records, batch: batch)) },
        { rate(bench_boost_throughput(records, Int32(batch))) },
        { rate(bench_rte_ring_throughput(records, Int32(batch), 0)) },
        { rate(bench_rte_ring_throughput(records, Int32(batch), 1)) },
    ])
    let medians = samples.map { median($0.map(\.value)) }
    let best = peers.max { medians[$0] < medians[$1] }!
    let fast = samples.joined().filter(\.fast).count
    let paired = (0...1).map { ratioSummary(pairedRatios(samples, $0, peers: Array(peers), better: >)) }
    print("| \(batch) | " + samples.map { summary($0) }.joined(separator: " | ")
          + " | \(paired[0])" + String(format: " · %.2f×", medians[0] / medians[best])
          + " | \(paired[1])" + String(format: " · %.2f×", medians[1] / medians[best])
          + String(format: " | %d/%d (%.0f) |", fast, samples.joined().count, median(samples.joined().map(\.probeNS))))
}

// MARK: round trip

if part("rtt") {
print("")
print("Round trip: one record out, one 32-byte response back, both sides polling; p50 / p99 ns, median over")
print("\(repetitions) interleaved runs of \(UInt64(100_000 * scale)) round trips.")
print("")
print("Ratio: faultring's p50 over the best peer's of the same repetition, median [min–max] (paired), then the")
print("ratio of the medians.")
print("")
print("| | faultring | Boost spsc | rte_ring | faultring / best peer (p50) |")
print("|---|---|---|---|---|")
}
let rounds = UInt64(100_000 * scale)
var p50s = [[Sample]](repeating: [], count: 3)
var p99s = [[Double]](repeating: [], count: 3)
for _ in 0..<(part("rtt") ? repetitions : 0) {
    for contender in 0..<3 {
        let probe = bench_pingpong_ns(20_000)
        var sorted: [UInt64]
        switch contender {
        case 0: sorted = try faultringRTT(rounds: rounds)
        case 1:
            sorted = [UInt64](repeating: 0, count: Int(rounds))
            _ = bench_boost_rtt(rounds, &sorted)
        default:
            sorted = [UInt64](repeating: 0, count: Int(rounds))
            _ = bench_rte_ring_rtt(rounds, &sorted)
        }
        sorted.sort()
        p50s[contender].append(Sample(value: Double(percentile(sorted, 0.5)), probeNS: probe))
        p99s[contender].append(Double(percentile(sorted, 0.99)))
    }
}
if part("rtt") {
let rttMedians = p50s.map { median($0.map(\.value)) }
let rttPaired = ratioSummary(pairedRatios(p50s, 0, peers: [1, 2], better: <))
print("| p50 | " + p50s.map { summary($0, format: "%.0f") }.joined(separator: " | ")
      + " | \(rttPaired)" + String(format: " · %.2f× |", rttMedians[0] / min(rttMedians[1], rttMedians[2])))
print("| p99 | " + p99s.map { String(format: "%.0f", median($0)) }.joined(separator: " | ") + " | |")
}

// MARK: the page-request loop next to the bare ring

/// The bare ring in the loop's shape, one thread: publish a group, read
/// it, answer it, read the answer. Group sizes are uniform in
/// 1 ... `maxSize` (at most 4), as the simulated devices draw them (a fixed
/// cycle of 4096 draws), so the ring carries the records the lifecycle's
/// does, with the same unpredictable sizes.
func bareLoop(groups: Int, maxSize: Int) throws -> Double {
    precondition((1...4).contains(maxSize))
    let producer = try FaultProducer(geometry: QueueGeometry(entryCount: 256, responseCount: 256))
    let consumer = try FaultConsumer(files: producer.consumerFiles())
    try consumer.requestABI(.v2)
    producer.poll()
    func group(_ size: Int) -> [FaultEvent] {
        (0..<size).map { i in
            FaultEvent.pageRequest(PageRequest(deviceID: 1, pasid: 3, prgi: 5, address: UInt64(i) << 12,
                                               isLastPage: i == size - 1, cookie: 42))
        }
    }
    var state: UInt64 = 1
    let sizes = (0..<4096).map { _ -> Int in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return 1 + Int((state >> 33) % UInt64(maxSize))
    }
    // One local array per size, chosen by a switch: measured, the fastest
    // way to vary the size. Taking the group out of an array of arrays
    // retains it, and a buffer slice cost 10 % of the one-page loop.
    let (one, two, three, four) = (group(1), group(2), group(3), group(4))
    let start = bench_now_ns()
    for g in 0..<groups {
        switch sizes[g & 4095] {
        case 1: _ = producer.publishGroup(one)
        case 2: _ = producer.publishGroup(two)
        case 3: _ = producer.publishGroup(three)
        default: _ = producer.publishGroup(four)
        }
        producer.flush()
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

// BENCH_ONLY=lifecycle: only the lifecycle, for a profiler (perf record, valgrind --tool=callgrind) to see
// nothing else; one-page groups, or up to BENCH_MAX pages.
if only == "lifecycle" {
    let largest = Int(ProcessInfo.processInfo.environment["BENCH_MAX"] ?? "1") ?? 1
    let rate = try lifecycleLoop(groups: UInt64(5_000_000 * scale), maxSize: largest)
    print(String(format: "lifecycle, groups of 1-%d pages: %.2f M groups/s", largest, rate / 1e6))
}

if part("loop") {
print("")
print("Page-request loop, one thread, M groups/s: the bare ring (publish group, read, answer, read answer) next to")
print("the whole lifecycle (simulated devices, tracker with cookies and timeouts, ring, responder, ledger).")
print("")
print("Ratio: the lifecycle over the bare ring run just before it (paired), median [min–max], then the ratio")
print("of the medians.")
print("")
print("| group size | bare ring | lifecycle | lifecycle / bare |")
print("|---|---|---|---|")
}
let loopGroups = Int(1_000_000 * scale)
let loopReps = max(3, repetitions / 4)
for (label, maxSize) in [("1", 1), ("1-4 (mean 2.5)", 4)] where part("loop") {
    var bare: [Sample] = []
    var life: [Sample] = []
    for _ in 0..<loopReps {
        bare.append(Sample(value: try bareLoop(groups: loopGroups, maxSize: maxSize) / 1e6, probeNS: bench_pingpong_ns(20_000)))
        life.append(Sample(value: try lifecycleLoop(groups: UInt64(loopGroups), maxSize: maxSize) / 1e6,
                           probeNS: bench_pingpong_ns(20_000)))
    }
    let paired = ratioSummary(pairedRatios([life, bare], 0, peers: [1], better: >))
    print("| \(label) | \(summary(bare, format: "%.2f")) | \(summary(life, format: "%.2f")) | \(paired)"
          + String(format: " · %.2f× |", median(life.map(\.value)) / median(bare.map(\.value))))
}
