import ArgumentParser
import FaultSys
import Glibc
import FaultABI
import FaultFixtures
import Foundation
import IOMMUFormats
import VMMClient

/// A reference VMM: attaches devices, reinjects every record into a guest
/// format, and answers page requests by a policy. The VMM itself is
/// `VMMClient.ReferenceVMM`; this command only configures and runs it.
struct ConsumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume", abstract: "A reference VMM consumer: attach devices, reinject faults, answer page requests.")

    /// `--policy`: the behaviour's policies, plus `delay` (SUCCESS after `--delay-ms`).
    enum Policy: String, ExpressibleByArgument, CaseIterable {
        case success, invalid, random, never, delay
    }

    @Option(help: "The service's socket path.") var socketPath: String
    @Option(parsing: .upToNextOption, help: "Devices to attach.") var devices: [UInt32] = [1]
    @Option(help: "Record ABI (1 or 2).") var abi: ABIVersion = .v2
    @Option(help: "Guest format: \(GuestFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var format: GuestFormat = .smmuv3
    @Option(help: """
        How guest descriptors are laid out and read: \(HardwareDialect.named.map(\.name).joined(separator: ", ")) \
        (linux: VT-d 4, reserved bits ignored; linux-6.9: VT-d 3 private data; spec: reserved bits refused).
        """)
    var dialect: HardwareDialect = .linux
    @Option(help: "Answer policy: success, invalid, random (success/invalid/failure), never, delay.") var policy: Policy = .success
    @Option(help: "With --policy delay: answer after this many milliseconds.") var delayMs: UInt64 = 5
    @Option(help: "With --policy delay: the delay in microseconds (overrides --delay-ms); the least, or the mean.")
    var delayUs: UInt64?
    @Option(help: "With --policy delay: draw each delay uniformly from --delay-us to this many microseconds.")
    var delayMaxUs: UInt64?
    @Flag(help: "With --policy delay: draw each delay from an exponential distribution with mean --delay-us.")
    var delayExponential = false
    @Option(help: "Send an answer with a wrong PASID before the right one for every N-th group (0: never).")
    var wrongEvery = 0
    @Option(help: "Stop after this many page-request groups (0: run until the service stops or --seconds).")
    var groups: UInt64 = 0
    @Option(help: "Stop after this many seconds (0: no limit).") var seconds: Double = 0
    @Flag(help: "Reconnect when the service restarts, instead of stopping.") var reconnect = false
    @Option(help: "Behave as this fixture's consumer (devices, ABI, policy, delays, crash point, misbehaviour).")
    var fixture: String?
    @Option(help: "Spin this many times looking for records before sleeping on the doorbell.") var spins = 2000
    @Flag(help: "Do not reinject into a guest format: read and answer only (transport benchmarks).")
    var noReinject = false
    @Flag(help: "Print the final summary as JSON.") var json = false
    @Flag(help: "No live summary.") var quiet = false

    /// The VMM the options describe; a fixture's consumer section overrides them.
    func options() throws -> ReferenceVMM.Options {
        var options = ReferenceVMM.Options(socketPath: socketPath)
        options.devices = devices
        options.abi = abi
        options.format = format
        options.dialect = dialect
        options.groups = groups
        options.seconds = seconds
        options.reconnect = reconnect
        options.spins = spins
        options.reinject = !noReinject
        switch policy {
        case .success: options.behaviour.policy = .success
        case .invalid: options.behaviour.policy = .invalid
        case .random: options.behaviour.policy = .random
        case .never: options.behaviour.policy = .never
        case .delay:
            options.behaviour.delayMicroseconds = try delayUs ?? scaled(delayMs, by: 1000, "--delay-ms")
            if delayExponential {
                options.behaviour.delaySpread = .exponential
            } else if let delayMaxUs {
                guard delayMaxUs >= options.behaviour.delayMicroseconds else {
                    throw ValidationError("--delay-max-us must be at least the least delay")
                }
                options.behaviour.delaySpread = .uniform(maxMicroseconds: delayMaxUs)
            }
        }
        options.behaviour.mismatchEvery = wrongEvery
        if let fixture {
            let header = try FixtureReader(path: fixture).open()
            guard let version = ABIVersion(rawValue: header.consumer.abi) else {
                throw ValidationError("\(fixture): consumer ABI \(header.consumer.abi) is not 1 or 2")
            }
            options.behaviour = header.consumer.behaviour
            options.cookieTable = header.service.cookieTable
            options.devices = header.devices.map(\.id)
            options.abi = version
            options.dialect = header.service.decoding
        }
        return options
    }

    func run() throws {
        var options = try options()
        // SIGTERM or SIGINT ends the run with its summary (a storm runner stops its consumers so).
        let signals = try Sys.signalfd([SIGTERM, SIGINT]).release().rawValue
        options.stop = {
            var pfd = pollfd(fd: signals, events: Int16(POLLIN), revents: 0)
            return poll(&pfd, 1, 0) > 0
        }
        // A restarted VMM may reach the service before it has seen the old one's hangup
        // (its ATTACH is then EBUSY): with --reconnect, the first attach is retried too, for 5 s.
        var attempt = 0
        var made: ReferenceVMM?
        while made == nil {
            do {
                made = try ReferenceVMM(options)
            } catch {
                attempt += 1
                guard reconnect && attempt < 50 else { throw error }
                usleep(100_000)
            }
        }
        let vmm = made!
        let summary = try vmm.run { s in
            guard !quiet else { return }
            FileHandle.standardError.write(Data(String(
                format: "\rconsume: %llu records, %llu groups, answered %llu, lost %llu   ",
                s.records, s.groups, s.answered.values.reduce(0, +), s.lostReported).utf8))
        }
        vmm.close()
        if !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
        if json {
            print(String(decoding: try JSONEncoder().encode(summary), as: UTF8.self))
        } else {
            print("consume: \(summary.records) records, \(summary.groups) groups reinjected as \(format.rawValue) " +
                  "(\(summary.reinjectedBytes) bytes, \(summary.notRepresentable) not representable, " +
                  "\(summary.undecodable) undecodable), answered (\(Tally(summary.answered))), unanswered \(summary.unanswered), " +
                  "lost \(summary.lostReported), reconnects \(summary.reconnects), " +
                  "\(String(format: "%.2f", summary.seconds)) s")
        }
    }
}

extension GuestFormat: ExpressibleByArgument {}

extension HardwareDialect: ExpressibleByArgument {
    /// A dialect by name (`HardwareDialect.named`).
    public init?(argument: String) { self.init(named: argument) }
}
