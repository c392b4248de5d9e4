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
              "automatic answers (\(Tally(pr.autoResponses))), rejected (\(Tally(pr.rejections))), protocol errors \(stats.protocolErrors)")
        if let latency = stats.latency {
            func us(_ ns: UInt64) -> String { String(format: "%.1f µs", Double(ns) / 1000) }
            print("  consumer-answered latency (\(latency.count) groups): p50 \(us(latency.p50)), p90 \(us(latency.p90)), " +
                  "p99 \(us(latency.p99)), p99.9 \(us(latency.p999)), max \(us(latency.max))")
        }
        if !stats.devices.isEmpty {
            var table = TextTable("device", "issued", "answered", "by", "outstanding", "answered twice", "wrong",
                                  "attached to pid")
            for d in stats.devices {
                table.add(String(d.id), String(d.issued), String(d.answered), Tally(d.answersBySource).description,
                          String(d.outstanding), String(d.answeredTwiceOrUnknown), String(d.wrong),
                          d.attachedTo.map(String.init) ?? "-")
            }
            print(table.render())
        }
        for source in stats.sources {
            let b = source.books
            print("  \(source.kind) of pid \(source.pid) (devices \(source.devices.map(String.init).joined(separator: ", "))\(source.removed ? "; gone" : "")): " +
                  "\(b.groups) groups read, \(b.answersWritten) answers written (\(Tally(b.answersBySource))), refused (\(Tally(b.answersRefused))), " +
                  "not written (\(Tally(b.answersNotWritten))), events \(b.events) (lost upstream \(b.eventsLost)), " +
                  "malformed \(b.malformed), foreign \(b.foreignDevice)")
        }
    }
}
