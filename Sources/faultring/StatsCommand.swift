import ArgumentParser
import FaultService
import Foundation
import VMMClient

/// Asks a running service for its statistics.
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Print a running service's statistics (JSON, Prometheus text, or a summary).")

    @Option(help: "The service's socket path.") var socketPath: String
    @Flag(help: "Prometheus text format instead of JSON.") var prometheus = false
    @Flag(help: "A short human summary instead of JSON.") var summary = false

    func run() throws {
        let client = try VMMClient(socketPath: socketPath, devices: [], client: "faultring stats")
        defer { client.close() }
        let text = try client.stats(prometheus: prometheus)
        guard summary, !prometheus else {
            print(text)
            return
        }
        let stats = try JSONDecoder().decode(ServiceStats.self, from: Data(text.utf8))
        let pr = stats.pageRequests
        print("service (\(stats.eventLoop), up \(String(format: "%.1f", stats.uptimeSeconds)) s): " +
              "\(pr.groupsClosed) groups, \(pr.completedByConsumer) answered by consumers, " +
              "auto \(pr.autoResponses), rejected \(pr.rejections), protocol errors \(stats.protocolErrors)")
        if let latency = stats.latency {
            print("  consumer-answered latency: p50 \(latency.p50) ns, p90 \(latency.p90) ns, p99 \(latency.p99) ns, " +
                  "p99.9 \(latency.p999) ns, max \(latency.max) ns")
        }
        for device in stats.devices {
            print("  device \(device.id): issued \(device.issued), answered \(device.answered), unanswered \(device.unanswered), " +
                  "answered twice \(device.answeredTwiceOrUnknown), wrong \(device.wrong)" +
                  (device.attachedTo.map { ", attached to pid \($0)" } ?? ""))
        }
        for source in stats.sources {
            let b = source.books
            print("  \(source.kind) of pid \(source.pid) (devices \(source.devices)\(source.removed ? ", gone" : "")): " +
                  "\(b.groups) groups read, \(b.answersWritten) answers written \(b.answersBySource), refused \(b.answersRefused), " +
                  "not written \(b.answersNotWritten), events \(b.events) (lost upstream \(b.eventsLost)), " +
                  "malformed \(b.malformed), foreign \(b.foreignDevice)")
        }
    }
}
