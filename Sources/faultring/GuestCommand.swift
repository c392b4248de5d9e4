import ArgumentParser
import Foundation
import NestedIOMMU
import VMMClient

/// A VMM whose guest owns stage 1, against `faultring serve --dma-devices`.
struct GuestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guest",
        abstract: "A VMM with a guest that owns stage 1, against `faultring serve --dma-devices` (Docs/NESTED.md).",
        discussion: """
            Shares guest RAM (a sealed memfd) with the service, binds the guest's stage-1 tables (VT-d PASID entries \
            or an SMMUv3 CD table) on the devices it attaches, reinjects each page request in the guest's vIOMMU \
            format, forwards the guest's invalidations, and returns its answers. The devices' verdict (retries \
            translated, stale translations, SUCCESS but not mapped) is in `faultring stats`.
            """)

    @Option(help: "The service's control socket.") var socketPath: String
    @Option(parsing: .upToNextOption, help: "Devices to attach.") var devices: [UInt32] = [1]
    @Option(help: "vtd or smmuv3.") var style = NestedDomain.Style.vtd
    @Option(help: "correct, forgets-invalidate, success-without-mapping, wrong-permissions, slow, forgets-msi.")
    var behaviour = NestedGuest.Behaviour.correct
    @Option(parsing: .upToNextOption, help: "PASIDs the guest binds (the devices' streams use them).") var pasids: [UInt32] = [1, 2]
    @Option(help: "Resident pages per PASID.") var budget = 48
    @Option(parsing: .upToNextOption, help: "Devices without an ATC (serve --dma-no-pri): no device-TLB invalidation for them.")
    var noAts: [UInt32] = []
    @Option(help: "Seconds to run (0: until the queue closes).") var seconds: Double = 0
    @Option(help: "A slow guest answers this many ms late (past the service's timeout to be a bug).")
    var slowDelayMs: UInt64 = 12_000
    @Flag(help: "Print the summary as JSON.") var json = false

    func run() throws {
        var options = NestedVMM.Options(socketPath: socketPath)
        options.devices = devices
        options.style = style
        options.behaviour = behaviour
        options.pasids = pasids
        options.budget = budget
        options.withoutATS = noAts
        options.seconds = seconds
        guard slowDelayMs <= 3_600_000 else { throw ValidationError("--slow-delay-ms must be at most 3600000 (an hour)") }
        options.slowDelayNS = slowDelayMs * 1_000_000
        let vmm = try NestedVMM(options)
        let summary = try vmm.run()
        vmm.close()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print("\(style.rawValue) guest \(behaviour.rawValue): \(summary.pageRequests) page requests, answered \(summary.answered), "
                  + "mapped \(summary.guest.pagesMapped), evicted \(summary.guest.pagesEvicted), "
                  + "invalidations sent \(summary.guest.invalidationsSent) (omitted \(summary.guest.invalidationsOmitted)) "
                  + "in \(String(format: "%.1f", summary.seconds)) s")
        }
    }
}
