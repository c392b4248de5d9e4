import ArgumentParser
import VMMClient

/// Asks a running service for its statistics.
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Print a running service's statistics (JSON, or Prometheus text).")

    @Option(help: "The service's socket path.") var socketPath: String
    @Flag(help: "Prometheus text format instead of JSON.") var prometheus = false

    func run() throws {
        let client = try VMMClient(socketPath: socketPath, devices: [], client: "faultring stats")
        print(try client.stats(prometheus: prometheus))
        client.close()
    }
}
