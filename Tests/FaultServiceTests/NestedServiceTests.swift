import FaultControl
import FaultService
import Foundation
import NestedIOMMU
import Testing
import VMMClient

/// A vSVA session across processes: `faultring serve --dma-devices` (the
/// devices DMA through the nested IOMMU of the client that holds them) and
/// `faultring guest` (a VMM whose guest owns stage 1, over the socket).
/// The verdict is the devices' books in STATS and the guest VM's own
/// counters; the runs last a fixed 1.5 s and nothing depends on speed.
@Suite(.serialized) struct NestedServiceTests {
    struct Run {
        var guest: NestedVMM.Summary
        var devices: [[String: UInt64]]
    }

    static func run(_ name: String, style: NestedDomain.Style, behaviour: NestedGuest.Behaviour) throws -> Run {
        let path = socketPath("nested-dma-\(name)")
        let service = try startService(path, ["--devices", "2", "--dma-devices", "--timeout-ms", "2000"])
        defer {
            service.signal(SIGTERM)
            _ = service.finish()
        }
        let guest = try Child(["guest", "--socket-path", path, "--devices", "1", "2", "--style", style.rawValue,
                               "--behaviour", behaviour.rawValue, "--seconds", "1.5", "--json"])
        let (status, output) = guest.finish()
        #expect(status == 0, "\(output)")
        let summary = try JSONDecoder().decode(NestedVMM.Summary.self, from: Data(output.utf8))
        let stats = try serviceStats(path)
        return Run(guest: summary, devices: stats.devices.compactMap(\.dma))
    }

    @Test(arguments: [NestedDomain.Style.vtd, .smmuv3])
    func aCorrectGuestOverTheSocketLeavesNoBug(style: NestedDomain.Style) throws {
        let r = try Self.run("correct-\(style.rawValue)", style: style, behaviour: .correct)
        #expect(r.guest.pageRequests > 0 && r.guest.guestAnswerErrors == 0)
        let iommu = try #require(r.guest.iommu)
        #expect(iommu.staleTranslations == 0 && iommu.invalidationsRefused == 0 && iommu.bindsRefused == 0)
        #expect(r.devices.count == 2)
        for d in r.devices {
            #expect(d["successNotMapped"] == 0 && d["stage2Misses"] == 0, "\(d)")
            // Every SUCCESS retried and translated, but for at most one owed retry per stream at the end.
            #expect((d["retriesTranslated"] ?? 0) + 2 >= (d["answeredSuccess"] ?? 0), "\(d)")
        }
    }

    @Test func aForgetfulGuestIsCaughtUsingStaleTranslations() throws {
        let r = try Self.run("forgets", style: .vtd, behaviour: .forgetsInvalidate)
        #expect((r.guest.iommu?.staleTranslations ?? 0) > 0, "\(String(describing: r.guest.iommu))")
        #expect(r.guest.guest.invalidationsSent == 0 && r.guest.guest.invalidationsOmitted > 0)
    }

    @Test func aGuestThatAnswersWithoutMappingIsCaughtOnEveryRetry() throws {
        let r = try Self.run("unmapped", style: .smmuv3, behaviour: .successWithoutMapping)
        for d in r.devices {
            #expect((d["successNotMapped"] ?? 0) > 0 && d["retriesTranslated"] == 0, "\(d)")
        }
    }
}
