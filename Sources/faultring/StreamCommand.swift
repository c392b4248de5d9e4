import ArgumentParser
import FaultABI
import FaultQueue
import FaultSys
import Foundation
import SystemPackage

/// The outcome of `faultring stream`: both sides' books, side by side.
struct StreamReport: Codable {
    var abi: UInt32
    var records: UInt64
    var seconds: Double
    var recordsPerSecond: Double
    var producer: QueueCounters
    var consumer: ConsumerReport
    var producerChecksum: UInt64
    /// Everything agrees: order, contents, and published = delivered + lost.
    var consistent: Bool
    var problems: [String]
}

/// Streams records from this process to a consumer process through a queue,
/// with a live summary, and checks both sides' books at the end.
struct StreamCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Stream fault records to a consumer process and check order, contents and counts.")

    @Option(help: "Records to stream.") var records: UInt64 = 1_000_000
    @Option(help: "Record ABI the consumer requests (1 or 2).") var abi: ABIVersion = .v2
    @Option(help: "Fault ring entries (power of two).") var entries: Int = 4096
    @Option(help: "Records per publish batch (1: publish each record on its own).") var batch: Int = 64
    @Flag(help: "Do not wait for room: a full ring drops records and ABI 2 reports them with LOST records.")
    var lossy = false
    @Option(help: "Consumer pauses after every N records (0: never).") var pauseEvery: UInt64 = 0
    @Option(help: "Consumer pause length in microseconds.") var pauseMicroseconds: UInt32 = 2000
    @Option(help: "Create the queue as files in this new directory (e.g. /dev/shm/fr) so `faultring inspect` can read it.")
    var path: String?
    @Flag(help: "Print the final report as JSON.") var json = false
    @Flag(help: "No live summary.") var quiet = false

    func run() throws {
        let geometry = try QueueGeometry(entryCount: entries, responseCount: 64)
        let producer = try path.map { try FaultProducer(geometry: geometry, directory: FilePath($0)) }
            ?? FaultProducer(geometry: geometry, name: "faultring-stream")
        defer { producer.close() }
        // The child inherits the queue at fds 3...6; our copies close once it has them.
        let files = try producer.consumerFiles()
        let child = try ChildProcess.spawn(
            "/proc/self/exe",
            ["stream-consumer", "--abi", "\(abi.rawValue)", "--records", "\(records)",
             "--pause-every", "\(pauseEvery)", "--pause-microseconds", "\(pauseMicroseconds)"],
            descriptors: files.all, stdout: .capture)
        files.close()

        // Negotiation: the consumer asks, we put it in force. Bounded.
        var waited = 0
        while producer.abi == nil && waited < 100 {
            producer.waitForConsumer(timeoutMilliseconds: 100)
            producer.poll()
            waited += 1
        }
        guard let inForce = producer.abi else {
            child.wait()
            throw ValidationError("the consumer did not negotiate within 10 s")
        }

        let start = Date()
        var lastReport = start
        var n: UInt64 = 0
        var checksum: UInt64 = 0
        var events: [FaultEvent] = []
        events.reserveCapacity(batch)
        while n < records {
            let count = Int(min(UInt64(batch), records - n))
            events.removeAll(keepingCapacity: true)
            for i in 0..<UInt64(count) { events.append(StreamPattern.event(n + i)) }
            if !lossy {
                // A load generator may pace itself; the service never does.
                var waited = 0
                while !producer.hasRoom(for: count + 1) {
                    producer.poll()
                    waited += 1
                    // A consumer that died frees nothing: say so rather than wait forever.
                    if waited % 65_536 == 0 && !child.isRunning {
                        throw ValidationError("the consumer process exited (status \(child.wait())) after \(n) of \(records) records")
                    }
                }
            }
            let written = count == 1
                ? (producer.publish(events[0]) == .published ? 1 : 0) : producer.publish(batch: events)
            producer.flush()  // the consumer may be asleep
            if written == count {
                for i in 0..<UInt64(count) { checksum &+= n + i }
            } else if !lossy {
                throw ValidationError("publish wrote \(written) of \(count) with room reserved")
            }
            n += UInt64(count)
            if !quiet && n & 0xFFFF < UInt64(count) {
                let now = Date()
                if now.timeIntervalSince(lastReport) >= 0.5 {
                    lastReport = now
                    let c = producer.countersSnapshot
                    let rate = Double(n) / now.timeIntervalSince(start) / 1e6
                    FileHandle.standardError.write(Data(String(
                        format: "\rstream: %llu/%llu records  %.1f Mrec/s  lost %llu  doorbells %llu   ",
                        n, records, rate, c.recordsLost, c.doorbellsRung).utf8))
                }
            }
        }
        // Let the consumer drain, and write the LOST record still owed once a
        // slot frees (checked after each poll, so none is left behind).
        producer.poll()
        var settle = 0
        while (producer.lostRecordsOwed > 0 || producer.status.recordsPending.map({ $0 > 0 }) ?? false)
            && settle < 10_000
        {
            usleep(1000)
            producer.poll()
            settle += 1
        }
        let seconds = Date().timeIntervalSince(start)
        producer.close()  // wakes the consumer if it waits for LOST accounting that ABI 1 cannot give
        let output = child.readOutput()
        let status = child.wait()
        if !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
        guard status == 0, let line = output.split(separator: "\n").last,
              let consumer = try? JSONDecoder().decode(ConsumerReport.self, from: Data(line.utf8))
        else {
            throw ValidationError("consumer process exited with status \(status): \(output)")
        }
        let counters = producer.countersSnapshot
        var problems: [String] = []
        if consumer.errors > 0 { problems.append("consumer saw \(consumer.errors) bad records: \(consumer.firstError ?? "")") }
        // Records after the last delivered one that were dropped leave no
        // gap an ABI 1 consumer can see; the header counter covers them.
        let lostSeen = inForce == .v2 ? consumer.lostReported : counters.recordsLost
        if consumer.records + lostSeen != records {
            problems.append("delivered \(consumer.records) + lost \(lostSeen) != published \(records)")
        }
        if inForce == .v1 && consumer.gapRecords > counters.recordsLost {
            problems.append("consumer saw \(consumer.gapRecords) records missing, header counts \(counters.recordsLost)")
        }
        if inForce == .v2 && consumer.lostReported != counters.recordsLost {
            problems.append("LOST records report \(consumer.lostReported), header counts \(counters.recordsLost)")
        }
        if !lossy && consumer.checksum != checksum { problems.append("checksums differ") }
        let report = StreamReport(
            abi: inForce.rawValue, records: records, seconds: seconds, recordsPerSecond: Double(records) / seconds,
            producer: counters, consumer: consumer, producerChecksum: checksum, consistent: problems.isEmpty,
            problems: problems)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("""
                stream: \(records) records, ABI v\(inForce.rawValue), \(entries)-entry ring, batch \(batch), \
                consumer in pid \(child.pid)
                  time \(String(format: "%.3f", seconds)) s, \(String(format: "%.2f", report.recordsPerSecond / 1e6)) Mrec/s
                  producer: published \(counters.recordsPublished), lost \(counters.recordsLost), \
                doorbells \(counters.doorbellsRung)
                  consumer: received \(consumer.records), LOST records \(consumer.lostRecords) reporting \
                \(consumer.lostReported), gaps \(consumer.gapRecords), sleeps \(consumer.sleeps), errors \(consumer.errors)
                  verdict: \(problems.isEmpty ? "consistent" : problems.joined(separator: "; "))
                """)
        }
        if !problems.isEmpty { throw ExitCode(1) }
    }
}
