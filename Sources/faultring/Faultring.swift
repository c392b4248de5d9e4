import ArgumentParser
import FaultABI

/// The `faultring` command: thin wrappers over the library modules.
@main
struct Faultring: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "faultring",
        abstract: "IOMMU fault reporting and page responses over a shared-memory ring.",
        subcommands: [ServeCommand.self, DeviceCommand.self, DirectVMMCommand.self, ConsumeCommand.self, StatsCommand.self, ReplayCommand.self, CaptureCommand.self,
                      ImportTraceCommand.self,
                      DemoCommand.self, NestedCommand.self, GuestCommand.self, StreamCommand.self, StormCommand.self, StormPlanCommand.self,
                      StreamConsumerCommand.self, InspectCommand.self, ScribbleCommand.self])
}

extension ABIVersion: ExpressibleByArgument {
    /// Parses `2` or `v2`; `nil` for anything that is not an ABI this build knows, so the option is refused.
    public init?(argument: String) {
        guard let raw = UInt32(argument.hasPrefix("v") ? String(argument.dropFirst()) : argument) else { return nil }
        self.init(rawValue: raw)
    }
}
