import ArgumentParser
import FaultLoopback
import Foundation
import NestedIOMMU
import VMMClient

extension NestedDomain.Style: ExpressibleByArgument {}
extension NestedGuest.Behaviour: ExpressibleByArgument {}

/// A vSVA session with a simulated nested IOMMU and a guest model, and the
/// guest's bugs the tool finds.
struct NestedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nested",
        abstract: "A simulated nested IOMMU, DMA devices and a guest that answers by mapping (Docs/NESTED.md).",
        discussion: """
            The guest's RAM is a memfd the IOMMU reads (pread, never a mapping); the guest owns stage 1 (x86 tables under VT-d \
            PASID entries, or VMSAv8-64 tables under an SMMUv3 CD table). Devices run address streams; a stage-1 \
            miss is a page request, reinjected in the guest's vIOMMU format; the guest maps the page, invalidates \
            what it changed and answers; the device retries. Reports the guest's bugs by name and count: stale \
            translations, answered SUCCESS but not mapped, late answers, MSI writes with no doorbell bound. Exit status 1 if the page-request books \
            do not balance, 2 if the guest showed a bug.
            """)

    @Option(help: "Binding style and formats: vtd or smmuv3.") var style = NestedDomain.Style.vtd
    @Option(help: """
        The guest: correct, forgets-invalidate, success-without-mapping, wrong-permissions, slow, forgets-msi \
        (or all: one run each).
        """)
    var guest = "all"
    @Option(help: "Steps of virtual time (1 µs each).") var steps: UInt64 = 4_000
    @Option(help: "DMA devices.") var devices = 2
    @Option(help: "PASIDs per device.") var pasids = 2
    @Option(help: "Resident pages per PASID the guest keeps.") var budget = 48
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(help: "A device's MSI write after every N answered page requests (0: none).") var msiEvery = 100
    @Option(help: "The last N devices have neither PRI nor ATS: their faults are events, their translations come from the IOTLB.")
    var nonPri = 0
    @Flag(help: "Print the reports as JSON, one per line.") var json = false
    @Option(help: "Record the session (one --guest) to this file: its devices, every request the guest handled with its actions and answer, and the outcome.")
    var capture: String?
    @Option(help: "Replay a recorded session and judge it: exit 0 if the outcome is the recorded one, 1 naming each difference.")
    var replay: String?

    func run() throws {
        if let replay {
            let session = try NestedSession.read(replay)
            let (report, differences) = try NestedHarness.replay(session)
            print("replayed \(replay): \(session.handled.count) requests, \(report.devices.dmas) DMAs; guest bugs "
                  + (report.guestBugs.isEmpty ? "none" : GuestBug.list(report.guestBugs)))
            guard differences.isEmpty else {
                for d in differences { print("  differs: \(d)") }
                throw ExitCode(1)
            }
            print("  verdict: the recorded outcome")
            return
        }
        let behaviours: [NestedGuest.Behaviour]
        if guest == "all" {
            behaviours = NestedGuest.Behaviour.allCases
        } else if let b = NestedGuest.Behaviour(rawValue: guest) {
            behaviours = [b]
        } else {
            throw ValidationError("--guest must be all or one of \(NestedGuest.Behaviour.allCases.map(\.rawValue).joined(separator: ", ")), not \(guest)")
        }
        if msiEvery == 0 && behaviours.contains(.forgetsMSI) {
            throw ValidationError("--msi-every 0: the devices raise no interrupt, so a forgets-msi guest cannot show its bug")
        }
        var status: Int32 = 0
        for behaviour in behaviours {
            var config = NestedHarness.Config()
            config.style = style
            config.behaviour = behaviour
            config.steps = steps
            config.devices = devices
            config.pasids = pasids
            config.budget = budget
            config.seed = seed
            guard (0...1_000_000).contains(msiEvery) else { throw ValidationError("--msi-every must be in 0...1000000") }
            config.msiEvery = msiEvery > 0 ? msiEvery : nil
            guard nonPri >= 0 && nonPri < devices else { throw ValidationError("--non-pri must be in 0...\(devices - 1): device 1 has PRI") }
            config.nonPRIDevices = nonPri > 0 ? nonPri : nil
            let r: NestedHarness.Report
            if let capture {
                guard behaviours.count == 1 else { throw ValidationError("--capture records one session: name one --guest") }
                let (report, session) = try NestedHarness(config).capture()
                try session.write(capture)
                r = report
            } else {
                r = try NestedHarness(config).run()
            }
            if !r.problems.isEmpty { status |= 1 }
            if !r.guestBugs.isEmpty { status |= 2 }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(r), as: UTF8.self))
                continue
            }
            let d = r.devices
            print("\(style.rawValue) guest \(behaviour.rawValue): \(d.dmas) DMAs, \(d.pageRequests) page requests, "
                  + "\(d.answeredSuccess) answered SUCCESS, \(d.retriesTranslated) retries translated; guest mapped "
                  + "\(r.guest.pagesMapped), evicted \(r.guest.pagesEvicted), sent \(r.guest.invalidationsSent) invalidations "
                  + "(\(r.guest.invalidationsOmitted) omitted); IOTLB hits \(r.iommu.iotlbHits), ATC hits \(r.iommu.atcHits), "
                  + "walks \(r.iommu.walks); MSIs delivered \(d.msisDelivered), faulted \(d.msiFaults)")
            if r.guestBugs.isEmpty {
                print("  guest bugs: none")
            } else {
                for (bug, count) in r.guestBugs.sorted(by: { $0.key < $1.key }) { print("  guest bug: \(bug) × \(count)") }
            }
            if !r.events.isEmpty {
                print("  unrecoverable events: " + GuestBug.list(r.events) + "; the guest read "
                      + (r.guestEvents.isEmpty ? "none (its format has no event queue here)" : GuestBug.list(r.guestEvents)))
            }
            print("  books: " + (r.problems.isEmpty ? "balanced" : r.problems.joined(separator: "; ")))
        }
        if status != 0 { throw ExitCode(status) }
    }
}
