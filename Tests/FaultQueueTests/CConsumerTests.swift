import FaultSys
import FaultABI
import FaultQueue
import Foundation
import Testing

/// Examples/c-consumer/consumer.c is a consumer on libfaultring-client
/// (clients/c), which was written from faultring_abi.h and Docs/ABI.md.
/// Compile both with the system C compiler and run the example as the
/// consumer process: if the contract or the library is wrong, this fails.
@Suite(.serialized) struct CConsumerTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func buildConsumer() throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("faultring-c-consumer-\(getpid())").path
        let process = try ChildProcess.spawn(
            "/usr/bin/env",
            ["cc", "-std=c11", "-D_DEFAULT_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic",
             "-I", root.appendingPathComponent("Sources/CFaultRingABI/include").path,
             "-I", root.appendingPathComponent("clients/c/include").path,
             root.appendingPathComponent("Examples/c-consumer/consumer.c").path,
             root.appendingPathComponent("clients/c/src/frc_control.c").path,
             root.appendingPathComponent("clients/c/src/frc_queue.c").path, "-o", output])
        #expect(process.wait() == 0, "consumer.c does not compile")
        return output
    }

    struct Report: Decodable {
        var records: UInt64
        var lost: UInt64
        var responses: UInt64
        var errors: UInt64
        var sleeps: UInt64
    }

    static func run(_ consumer: String, producer: FaultProducer, want: UInt64, _ body: () -> Void) throws -> Report {
        let files = try producer.consumerFiles()
        let child = try ChildProcess.spawn(consumer, ["\(want)"], descriptors: files.all, stdout: .capture)
        files.close()
        for _ in 0..<100 where producer.abi == nil {
            producer.waitForConsumer(timeoutMilliseconds: 100)
            producer.poll()
        }
        #expect(producer.abi == .v2)
        body()
        let output = child.readOutput()
        #expect(child.wait() == 0, "\(output)")
        return try JSONDecoder().decode(Report.self, from: Data(output.utf8))
    }

    /// Page-request groups of 1–3 records; the C consumer answers each group
    /// by cookie; every cookie comes back exactly once, SUCCESS.
    @Test func cConsumerAnswersEveryGroupByCookie() throws {
        let consumer = try Self.buildConsumer()
        var published: UInt64 = 0
        var answered: [UInt64: Int] = [:]
        var rejected = 0
        let groups: UInt64 = 20_000
        let producer2 = try FaultProducer(geometry: QueueGeometry(entryCount: 256, responseCount: 32))
        var sizes = SplitMix(seed: 7)
        var plan: [Int] = []
        for _ in 0..<groups { plan.append(Int(sizes.next() % 3) + 1) }
        let total = UInt64(plan.reduce(0, +))
        let result = try Self.run(consumer, producer: producer2, want: total) {
            func collect() {
                producer2.readResponses { response in
                    switch response {
                    case .success(let r):
                        #expect(r.code == .success)
                        answered[r.cookie, default: 0] += 1
                    case .failure: rejected += 1
                    }
                }
            }
            for (g, size) in plan.enumerated() {
                let cookie = UInt64(g + 1)
                let group = (0..<size).map { i in
                    FaultEvent.pageRequest(PageRequest(deviceID: 2, pasid: UInt32(g % 8), prgi: UInt32(g % 512),
                                                       address: UInt64(g) << 12 | UInt64(i), isLastPage: i == size - 1,
                                                       needsPASID: g % 2 == 0, cookie: cookie))
                }
                var tries = 0
                while producer2.publishGroup(group) != .published && tries < 10_000_000 {
                    producer2.flush()  // full: the consumer must be awake to make room
                    collect()
                    tries += 1
                }
                published += UInt64(size)
                if g % 5000 == 4999 {  // let the C consumer sleep on its doorbell
                    producer2.flush()
                    usleep(5000)
                }
                collect()
            }
            var tries = 0
            while answered.count < Int(groups) && tries < 5000 {
                producer2.waitForConsumer(timeoutMilliseconds: 2)
                collect()
                tries += 1
            }
        }
        #expect(result.errors == 0)
        #expect(result.records == total)
        #expect(result.responses == groups)
        #expect(answered.count == Int(groups))
        #expect(answered.values.allSatisfy { $0 == 1 })
        #expect(rejected == 0)
        #expect(producer2.countersSnapshot.responsesValid == groups)
        #expect(published == total)
    }

    /// Loss seen from C: LOST records and sequence gaps add up.
    @Test func cConsumerAccountsForLoss() throws {
        let consumer = try Self.buildConsumer()
        let producer = try FaultProducer(geometry: QueueGeometry(entryCount: 64, responseCount: 8))
        let total: UInt64 = 100_000
        let report = try Self.run(consumer, producer: producer, want: total) {
            for n in 0..<total {
                _ = producer.publish(.unrecoverable(UnrecoverableFault(deviceID: 1, reason: 5, address: n << 12)))
                if n % 10_000 == 0 {
                    producer.flush()
                    usleep(1000)
                }
            }
            producer.flush()
            var tries = 0
            while producer.lostRecordsOwed > 0 && tries < 10_000 {
                usleep(100)
                producer.poll()
                tries += 1
            }
        }
        #expect(report.errors == 0)
        #expect(report.records + report.lost == total)
        #expect(report.lost == producer.countersSnapshot.recordsLost)
    }
}
