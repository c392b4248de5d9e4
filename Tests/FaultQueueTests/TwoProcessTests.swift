import FaultSys
import FaultABI
import FaultQueue
import Foundation
import Testing

/// The queue between two processes: the consumer is the real `faultring`
/// binary, given the queue by descriptor inheritance.
@Suite(.serialized) struct TwoProcessTests {
    /// `.build/<triple>/debug/faultring`, next to the test bundle.
    static var faultring: String {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundle.appendingPathComponent("faultring").path
    }

    struct Report: Decodable {
        var records: UInt64
        var lostReported: UInt64
        var lostRecords: UInt64
        var errors: UInt64
        var firstError: String?
        var checksum: UInt64
    }

    /// This process produces; a `faultring stream-consumer` process checks
    /// order and contents of every record and reports its books.
    @Test(arguments: [ABIVersion.v1, .v2])
    func streamToAConsumerProcess(abi: ABIVersion) throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.faultring), "build the faultring product first")
        let producer = try FaultProducer(geometry: QueueGeometry(entryCount: 512, responseCount: 16))
        let files = try producer.consumerFiles()
        let total: UInt64 = 200_000
        let child = try ChildProcess.spawn(
            Self.faultring,
            ["stream-consumer", "--abi", "\(abi.rawValue)", "--records", "\(total)",
             "--pause-every", "40000", "--pause-microseconds", "3000"],
            descriptors: files.all, stdout: .capture)
        files.close()
        for _ in 0..<100 where producer.abi == nil {
            producer.waitForConsumer(timeoutMilliseconds: 100)
            producer.poll()
        }
        #expect(producer.abi == abi)
        var n: UInt64 = 0
        var checksum: UInt64 = 0
        var spins = 0
        while n < total && spins < 50_000_000 {
            guard producer.hasRoom(for: 1) else {
                spins += 1
                continue
            }
            let event = FaultEvent.unrecoverable(UnrecoverableFault(
                deviceID: UInt32(n % 7 + 1), reason: 5, pasid: UInt32(n & 0xFFFFF), permissions: .read,
                address: n << 12, timestampNS: n))
            #expect(producer.publish(event) == .published)
            checksum &+= n
            n += 1
            // Go quiet now and then: the consumer runs dry, sleeps on its
            // doorbell, and must be woken by the flush that ends a run of
            // publishes (as the service flushes before it sleeps).
            if n % 25_000 == 0 {
                producer.flush()
                usleep(5_000)
            }
        }
        producer.flush()
        let output = child.readOutput()
        #expect(child.wait() == 0, "consumer failed: \(output)")
        let report = try JSONDecoder().decode(Report.self, from: Data(output.utf8))
        #expect(report.errors == 0, "\(report.firstError ?? "")")
        #expect(report.records == total)
        #expect(report.checksum == checksum)
        let counters = producer.countersSnapshot
        #expect(counters.recordsPublished == total)
        #expect(counters.recordsLost == 0)
        #expect(counters.doorbellsRung > 0)  // the consumer slept while we were quiet and was woken
        producer.close()
    }

    struct StreamReport: Decodable {
        var consistent: Bool
        var problems: [String]
        var records: UInt64
        var consumer: Report
        var producer: QueueCounters
    }

    /// `faultring stream` end to end with loss: both processes' books must
    /// add up (published = delivered + counted lost) and agree on the loss.
    @Test(arguments: [ABIVersion.v1, .v2])
    func lossyStreamBalancesItsBooks(abi: ABIVersion) throws {
        let process = try ChildProcess.spawn(
            Self.faultring,
            ["stream", "--records", "200000", "--lossy", "--entries", "128", "--abi", "\(abi.rawValue)",
             "--pause-every", "10000", "--pause-microseconds", "1000", "--json", "--quiet"],
            stdout: .capture)
        let data = Data(process.readOutput().utf8)
        let status = process.wait()
        let report = try JSONDecoder().decode(StreamReport.self, from: data)
        #expect(report.consistent, "\(report.problems)")
        #expect(status == 0)
        #expect(report.producer.recordsLost > 0)  // the pauses did overflow the ring
        #expect(report.consumer.records + report.producer.recordsLost == report.records)
        if abi == .v2 {
            #expect(report.consumer.lostReported == report.producer.recordsLost)
            #expect(report.consumer.lostRecords > 0)
        }
    }
}

/// `faultring stream` whose consumer process dies mid-stream stops with an
/// error naming it, instead of waiting for room forever.
@Suite struct StreamConsumerDeathTests {
    @Test func streamStopsWhenItsConsumerDies() throws {
        let stream = try ChildProcess.spawn(TwoProcessTests.faultring,
                                            ["stream", "--records", "100000000", "--entries", "64", "--quiet",
                                             "--pause-every", "1000", "--pause-microseconds", "100000"],
                                            stdout: .discard, stderr: .capture)
        // Find the consumer: the stream's child process.
        var child: Int32?
        for _ in 0..<200 where child == nil {
            let list = (try? String(contentsOfFile: "/proc/\(stream.pid)/task/\(stream.pid)/children", encoding: .utf8)) ?? ""
            child = list.split(separator: " ").first.flatMap { Int32($0) }
            if child == nil { usleep(10_000) }
        }
        guard let child else { Issue.record("no consumer process found"); return }
        usleep(200_000)
        kill(child, SIGKILL)
        var ended = false
        for _ in 0..<1000 where !ended {  // a bound, not a measurement: 10 s
            ended = !stream.isRunning
            if !ended { usleep(10_000) }
        }
        #expect(ended, "stream kept waiting for a dead consumer")
        if ended {
            #expect(stream.wait() != 0)
            #expect(stream.readErrors().contains("consumer process exited"))
        }
    }
}
