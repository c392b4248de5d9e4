import ArgumentParser
import CFaultRingABI
import FaultQueue
import Foundation
import Glibc
import SystemPackage

/// Prints a queue's header, indices, state and counters, for whoever
/// debugs a VMM against it. Maps everything read-only; never writes.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a queue's header, indices, state and counters.",
        discussion: """
            PATH is a queue directory (from `stream --path` or a service at a path) or a producer region \
            file, such as /proc/PID/fd/N of a live service's memfd (consumer indices are then unknown).
            """)

    @Argument(help: "Queue directory or producer region file.") var path: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("\(path): no such file or directory")
        }
        let paths = isDirectory.boolValue ? QueuePaths(directory: FilePath(path)) : nil
        let producer = try Self.mapReadOnly(paths?.producer.string ?? path)
        let consumer = try paths.map { try Self.mapReadOnly($0.consumer.string) }
        guard producer.size >= MemoryLayout<faultring_producer_header>.size else {
            throw ValidationError("\(path): \(producer.size) bytes, too small for a producer header")
        }
        let header = UnsafePointer(producer.base.assumingMemoryBound(to: faultring_producer_header.self))
        let geometry = try QueueGeometry(
            header: header, producerSize: producer.size,
            consumerSize: consumer?.size ?? Int(header.pointee.consumer_region_size))
        let status = QueueStatus(producer: UnsafeRawPointer(producer.base), consumer: consumer.map { UnsafeRawPointer($0.base) })
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
            return
        }
        func show(_ value: UInt32?) -> String { value.map(String.init) ?? "?" }
        print("""
            faultring queue \(path)
              layout \(status.layoutVersion), ABI in force \(status.abi == 0 ? "none" : "v\(status.abi)") \
            (offered up to v\(status.maxABI), requested \(show(status.requestedABI))), state \(status.state), \
            producer pid \(status.producerPID)
              fault ring     \(geometry.entryCount) x 64 B   prod \(status.faultProducerIndex)  \
            cons \(show(status.faultConsumerIndex))  pending \(show(status.recordsPending))
              response ring  \(geometry.responseCount) x 64 B   prod \(show(status.responseProducerIndex))  \
            cons \(status.responseConsumerIndex)
              sleeping       producer \(status.producerSleeping)  consumer \(status.consumerSleeping.map(String.init) ?? "?")
              features       offered 0x\(String(status.featuresOffered, radix: 16))  \
            in force 0x\(String(status.featuresInForce, radix: 16))
            """)
        let c = status.counters
        let rows: [(String, UInt64)] = [
            ("records_published", c.recordsPublished), ("records_lost", c.recordsLost),
            ("groups_overflowed", c.groupsOverflowed), ("doorbells_rung", c.doorbellsRung),
            ("responses_valid", c.responsesValid), ("publish_refused", c.publishRefused),
            ("bad_consumer_index", c.badConsumerIndex), ("bad_response_index", c.badResponseIndex),
            ("renegotiations", c.renegotiations), ("bad_abi_requests", c.badABIRequests),
            ("bad_feature_requests", c.badFeatureRequests),
        ] + c.responsesRejected.sorted { $0.key < $1.key }.map { ("resp_\($0.key)", $0.value) }
          + ResponseMatch.allCases.map { ("match_\($0.rawValue)", c.responsesMatched[$0.rawValue] ?? 0) }
        print("  counters")
        for (name, value) in rows { print("    \(name.padding(toLength: 24, withPad: " ", startingAt: 0)) \(value)") }
    }

    /// Maps a whole file read-only (inspect never writes).
    static func mapReadOnly(_ path: String) throws -> MappedRegion {
        let raw = open(path, O_RDONLY | O_CLOEXEC)
        guard raw >= 0 else { throw ValidationError("\(path): \(Errno(rawValue: errno))") }
        let fd = FileDescriptor(rawValue: raw)
        defer { try? fd.close() }
        return try MappedRegion(fd: fd, size: MappedRegion.fileSize(fd), writable: false)
    }
}
