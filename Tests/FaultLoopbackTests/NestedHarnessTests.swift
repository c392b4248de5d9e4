import FaultLoopback
import NestedIOMMU
import Testing
import VMMClient

/// A vSVA session end to end, in both binding styles: a correct guest
/// leaves no bug to report; each faulty guest is caught by name, and the
/// page-request books balance whatever the guest does.
@Suite struct NestedHarnessTests {
    static func run(_ style: NestedDomain.Style, _ behaviour: NestedGuest.Behaviour) throws -> NestedHarness.Report {
        var config = NestedHarness.Config()
        config.style = style
        config.behaviour = behaviour
        config.steps = 2_000
        return try NestedHarness(config).run()
    }

    @Test(arguments: [NestedDomain.Style.vtd, .smmuv3])
    func aCorrectGuestMapsEverythingAndEveryRetryTranslates(style: NestedDomain.Style) throws {
        let r = try Self.run(style, .correct)
        #expect(r.problems.isEmpty, "\(r.problems)")
        #expect(r.guestBugs.isEmpty, "\(r.guestBugs)")
        #expect(r.devices.pageRequests > 100, "too few page requests to mean anything: \(r.devices)")
        #expect(r.devices.answeredSuccess == r.devices.pageRequests)
        #expect(r.devices.retriesTranslated == r.devices.answeredSuccess)
        #expect(r.guest.pagesEvicted > 0 && r.guest.invalidationsSent > 0, "the budget never made the guest evict")
        #expect(r.iommu.staleTranslations == 0 && r.iommu.staleUsesPending == 0 && r.devices.stage2Misses == 0)
    }

    @Test(arguments: [NestedDomain.Style.vtd, .smmuv3])
    func eachFaultyGuestIsReportedByName(style: NestedDomain.Style) throws {
        let forgets = try Self.run(style, .forgetsInvalidate)
        #expect(forgets.problems.isEmpty, "\(forgets.problems)")
        #expect((forgets.guestBugs["stale translation"] ?? 0) > 0, "\(forgets.guestBugs)")
        #expect(forgets.guest.invalidationsSent == 0 && forgets.guest.invalidationsOmitted > 0)

        let unmapped = try Self.run(style, .successWithoutMapping)
        #expect(unmapped.problems.isEmpty, "\(unmapped.problems)")
        #expect(unmapped.guestBugs["answered SUCCESS but not mapped"] == unmapped.devices.answeredSuccess)
        #expect(unmapped.devices.retriesTranslated == 0)

        let readOnly = try Self.run(style, .wrongPermissions)
        #expect(readOnly.problems.isEmpty, "\(readOnly.problems)")
        #expect((readOnly.guestBugs["answered SUCCESS but not mapped"] ?? 0) > 0, "\(readOnly.guestBugs)")
        #expect(readOnly.guestBugs["stale translation"] == nil)

        let slow = try Self.run(style, .slow)
        #expect(slow.problems.isEmpty, "\(slow.problems)")
        #expect((slow.guestBugs["answered after the timeout"] ?? 0) > 0 && slow.devices.answeredSuccess == 0)
        #expect(slow.tracker.auto(.timeout) == slow.devices.pageRequests)
    }
}
