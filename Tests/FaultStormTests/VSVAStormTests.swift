import FaultFixtures
import FaultSimulation
import FaultStorm
import Foundation
import NestedIOMMU
import Testing
import VMMClient

/// vSVA storms: the shipped profile run as a user runs it (the service with
/// DMA devices, a guest process per tenant, two of them SIGKILLed and
/// started again), and the verdict on reports made up for the purpose.
/// What is checked is behaviour — books, bugs by name, revocation — never speed.
@Suite(.serialized) struct VSVAStormTests {
    @Test func correctGuestsShowNoBugAndEachFaultyGuestIsCaughtAtItsOwn() throws {
        let path = StormTests.storms.appendingPathComponent("vsva-guests.json").path
        let (status, report, html, errors) = try StormTests.storm([path, "--seconds", "3"], reading: VSVAStormReport.self)
        let r = try #require(report, "no report (status \(status)): \(errors)")
        #expect(status == 0 && r.verdict.passed, "\(r.verdict.failures.map(\.detail))")
        #expect(r.problems.isEmpty, "\(r.problems)")
        #expect(r.guests.map(\.name) == r.profile.processNames)
        for g in r.guests {
            if let bug = g.expectedBug {
                #expect((g.bugs[bug.rawValue] ?? 0) > 0, "\(g.name): \(g.bugs)")
            } else if !g.pri {
                // Devices without PRI: faults are events through the guest's (vSMMUv3) event queue.
                #expect(g.bugs.isEmpty && g.dma.pageRequests == 0, "\(g.name): \(g.bugs)")
                #expect((g.events["pte-fetch"] ?? 0) > 0 && g.guestEvents["F_TRANSLATION"] == g.events["pte-fetch"],
                        "\(g.name): \(g.events) \(g.guestEvents)")
            } else {
                #expect(g.bugs.isEmpty && g.dma.retriesTranslated > 0, "\(g.name): \(g.bugs)")
                #expect(g.dma.successNotMapped == 0 && g.iommu.staleTranslations == 0)
            }
        }
        // Revocation under load: each kill left a new incarnation that bound again and was served.
        #expect(r.kills.count == 2 && r.kills.allSatisfy { $0.nextPid != nil })
        for kill in r.kills {
            let g = try #require(r.guests.first { $0.name == kill.guest })
            #expect(g.pids.count >= 2 && g.exitStatuses.contains(128 + 9) && g.pageRequestsLastIncarnation > 0)
        }
        // Books: every page request answered once, every SUCCESS retried or dropped with its VM.
        #expect(r.devices.count == r.profile.deviceCount && r.devices.allSatisfy(\.balances))
        #expect(r.devices.reduce(0) { $0 + $1.issued } > 0)
        #expect(r.service.descriptorsAtStart == r.service.descriptorsAtEnd && r.service.clientsAtEnd == 1)
        let page = try #require(html)
        #expect(try StormTests.chartSections(page) == VSVAStormHTML.chartTitles.map { _ in 1 })
        for g in r.guests { #expect(page.contains(g.name)) }
    }

    /// A report of one correct and one faulty guest on one device each, balanced.
    static func report() throws -> VSVAStormReport {
        let path = StormTests.storms.appendingPathComponent("vsva-guests.json").path
        guard case .vsva(var p) = try StormProfileReader.readAny(path: path) else { throw CocoaError(.fileReadCorruptFile) }
        p.guests = [.init(name: "ok", count: 1, style: .vtd, behaviour: .correct, devicesPerProcess: 1),
                    .init(name: "bad", count: 1, style: .vtd, behaviour: .forgetsInvalidate, devicesPerProcess: 1)]
        p.chaos = nil
        var r = VSVAStormReport(profile: p, profilePath: path, started: Date())
        var dma = DMADevice.Counters()
        dma.dmas = 100
        dma.pageRequests = 10
        dma.answeredSuccess = 10
        dma.retriesTranslated = 10
        r.devices = [1, 2].map { VSVAStormReport.Device(id: $0, guest: "", issued: 10, answered: 10, outstanding: 0,
                                                        answeredTwiceOrUnknown: 0, retriesOwed: 0, dma: dma) }
        var ok = VSVAStormReport.Guest(name: "ok-1", style: .vtd, behaviour: .correct, devices: [1])
        ok.dma = dma
        var bad = VSVAStormReport.Guest(name: "bad-1", style: .vtd, behaviour: .forgetsInvalidate, devices: [2])
        bad.dma = dma
        bad.bugs = [GuestBug.staleTranslation.rawValue: 7]
        r.guests = [ok, bad]
        r.service = .init(descriptorsAtStart: 11, descriptorsAtEnd: 11, residentAtQuarterKiB: 1000, residentAtEndKiB: 1000,
                          clientsAtEnd: 1)
        return r
    }

    @Test func theMadeUpReportPasses() throws {
        var r = try Self.report()
        r.judge()
        #expect(r.verdict.passed && r.verdict.exitStatus == 0, "\(r.verdict.failures.map(\.detail))")
    }

    @Test func aCorrectGuestWithABugFailsTheGuestBitNamingIt() throws {
        var r = try Self.report()
        r.guests[0].bugs = [GuestBug.successNotMapped.rawValue: 3]
        r.judge()
        #expect(r.verdict.exitStatus == StormVerdict.Kind.guest.bit)
        #expect(r.verdict.failures.count == 1 && r.verdict.failures[0].detail.contains("answered SUCCESS but not mapped × 3"))
    }

    @Test func aFaultyGuestWhoseBugWentUnfoundFails() throws {
        var r = try Self.report()
        r.guests[1].bugs = [:]
        r.judge()
        #expect(r.verdict.exitStatus == StormVerdict.Kind.guest.bit)
        #expect(r.verdict.failures.first?.detail.contains("stale translation × 0 not found") == true)
    }

    @Test func aFaultyGuestShowingAnotherBugFails() throws {
        var r = try Self.report()
        r.guests[1].bugs[GuestBug.successNotMapped.rawValue] = 2
        r.judge()
        #expect(r.verdict.exitStatus == StormVerdict.Kind.guest.bit)
        #expect(r.verdict.failures.first?.detail.contains("not its behaviour's") == true)
    }

    @Test func anAnswerTheServiceRefusedFailsAnyGuest() throws {
        var r = try Self.report()
        r.guests[0].refused = ["mismatch": 1, "late": 0]
        r.judge()
        #expect(r.verdict.exitStatus == StormVerdict.Kind.guest.bit)
        #expect(r.verdict.failures.first?.detail.contains("mismatch × 1") == true)
    }

    @Test func unbalancedBooksFailTheLedgerBit() throws {
        var r = try Self.report()
        r.devices[1].dma.retriesTranslated = 9   // one SUCCESS neither retried, missed, dropped nor owed
        r.judge()
        #expect(r.verdict.exitStatus == StormVerdict.Kind.ledger.bit)
        r = try Self.report()
        r.devices[0].outstanding = 1
        r.devices[0].answered = 9
        r.judge()
        #expect(r.verdict.exitStatus == StormVerdict.Kind.ledger.bit)
        r = try Self.report()
        r.devices[0].retriesOwed = 1   // still owed once every VM had gone
        r.devices[0].dma.retriesTranslated = 9
        r.judge()
        #expect(r.verdict.exitStatus == StormVerdict.Kind.ledger.bit)
    }

    @Test func aServiceThatKeptADescriptorFailsTheChaosBit() throws {
        var r = try Self.report()
        r.service.descriptorsAtEnd = 12
        r.judge()
        #expect(r.verdict.exitStatus == StormVerdict.Kind.chaos.bit)
    }
}
