import ArgumentParser
import FaultABI
import FaultQueue
import Foundation

/// What the consumer half of a stream saw; printed as one JSON line.
struct ConsumerReport: Codable {
    var abi: UInt32 = 0
    /// Records received intact and in order.
    var records: UInt64 = 0
    /// Records ABI 2 LOST records said were dropped.
    var lostReported: UInt64 = 0
    /// LOST records seen.
    var lostRecords: UInt64 = 0
    /// ABI 1: records missing from the stream (no LOST records in ABI 1).
    var gapRecords: UInt64 = 0
    /// Out-of-order, malformed or wrong records.
    var errors: UInt64 = 0
    var firstError: String?
    /// Times the consumer went to sleep on its doorbell.
    var sleeps: UInt64 = 0
    /// Sum of the indices of the records received (must equal the producer's).
    var checksum: UInt64 = 0
    var seconds: Double = 0
}

/// The consumer half of `faultring stream`: attaches to a queue inherited at
/// fds 3...6, negotiates, checks every record, prints a `ConsumerReport`.
struct StreamConsumerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream-consumer",
        abstract: "Consume a stream from a queue inherited at fds 3-6 and print a JSON report.")

    @Option(help: "Record ABI to request (1 or 2).") var abi: ABIVersion = .v2
    @Option(help: "Records to expect (delivered plus reported lost).") var records: UInt64
    @Option(help: "Records per read batch.") var batch: Int = 256
    @Option(help: "Pause after every N records (0: never), to exercise sleep and wake-up.") var pauseEvery: UInt64 = 0
    @Option(help: "Length of each pause in microseconds.") var pauseMicroseconds: UInt32 = 2000
    @Option(help: "Spins before sleeping on the doorbell.") var spins: Int = 4000
    @Option(help: "First inherited descriptor.") var firstFD: Int32 = 3

    func run() throws {
        let consumer = try FaultConsumer(files: .inherited(from: firstFD))
        let inForce = try consumer.negotiate(abi, timeoutMilliseconds: 10_000)
        var report = ConsumerReport(abi: inForce.rawValue)
        let start = Date()
        var expected: UInt64 = 0
        var nextPause = pauseEvery
        while expected < records {
            if !consumer.waitForRecords(spins: spins, timeoutMilliseconds: 1000) {
                if consumer.isClosed { break }
                report.sleeps += 1
                continue
            }
            let view = try consumer.peek(max: batch)
            for i in view.indices {
                let record: DecodedRecord
                do {
                    record = try view.decode(i)
                } catch {
                    report.errors += 1
                    report.firstError = report.firstError ?? "record \(expected): \(error)"
                    expected += 1
                    continue
                }
                switch StreamPattern.check(
                    record, expected: expected, lostRecordsSeen: report.lostRecords, abi: inForce) {
                case .record(let n):
                    report.records += 1
                    report.checksum &+= n
                    expected += 1
                case .recordAfterGap(let n, let skipped):
                    report.records += 1
                    report.gapRecords += skipped
                    report.checksum &+= n
                    expected = n + 1
                case .lost(let count):
                    report.lostRecords += 1
                    report.lostReported += count
                    expected += count
                case .wrong(let why):
                    report.errors += 1
                    report.firstError = report.firstError ?? why
                    expected += 1
                }
            }
            consumer.release(view.count)
            if pauseEvery > 0 && report.records >= nextPause {
                nextPause += pauseEvery
                usleep(pauseMicroseconds)
            }
        }
        report.seconds = Date().timeIntervalSince(start)
        let json = try JSONEncoder().encode(report)
        print(String(decoding: json, as: UTF8.self))
    }
}
