import FaultABI
import FaultQueue
import Foundation
import SystemPackage
import Testing

@Suite struct PathQueueTests {
    @Test func queueAtAPathCanBeMappedByName() throws {
        let directory = FilePath("/dev/shm/faultring-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let producer = try FaultProducer(geometry: QueueGeometry(entryCount: 16, responseCount: 8), directory: directory)
        let consumer = try FaultConsumer(directory: directory)
        try consumer.requestABI(.v2)
        producer.poll()
        #expect(producer.publish(batch: (0..<5).map(unrecoverable)) == 5)
        let batch = try consumer.peek()
        #expect(batch.count == 5)
        consumer.release(batch.count)
        #expect(consumer.status.faultConsumerIndex == 5)
        // The producer file is not writable through the consumer's fd.
        #expect(access(QueuePaths(directory: directory).producer.string, F_OK) == 0)
        producer.close()
        #expect(access(directory.string, F_OK) != 0)  // removed at close
        #expect(consumer.isClosed)
    }

    @Test func creatingOverAnExistingQueueFails() throws {
        let directory = FilePath("/dev/shm/faultring-test-dup-\(getpid())")
        let first = try FaultProducer(geometry: QueueGeometry(entryCount: 8, responseCount: 8), directory: directory)
        defer { first.close() }
        #expect(throws: FaultQueueError.self) {
            _ = try FaultProducer(geometry: QueueGeometry(entryCount: 8, responseCount: 8), directory: directory)
        }
    }

    @Test func badGeometryIsRejectedWithItsValue() {
        do {
            _ = try QueueGeometry(entryCount: 12)
            Issue.record("12 accepted")
        } catch {
            #expect(error.code == .badGeometry)
            #expect(error.detail.contains("12"))
        }
    }
}
