import CFaultRingABI
import FaultABI
import FaultLoopback
import FaultSimulation
import Foundation
import NestedIOMMU
import Testing
import VMMClient

/// A vSVA session end to end, in both binding styles: a correct guest
/// leaves no bug to report; each faulty guest is caught by name, and the
/// page-request books balance whatever the guest does.
@Suite struct NestedHarnessTests {
    /// A 2000-step session of `behaviour` in `style`: by default two PRI devices raising an
    /// interrupt every 50 answers; `devices`, `nonPRI` and `msiEvery` change that.
    static func run(_ style: NestedDomain.Style, _ behaviour: NestedGuest.Behaviour, devices: Int = 2, nonPRI: Int? = nil,
                    msiEvery: Int? = 50) throws -> NestedHarness.Report {
        var config = NestedHarness.Config()
        config.style = style
        config.behaviour = behaviour
        config.devices = devices
        config.nonPRIDevices = nonPRI
        config.steps = 2_000
        config.msiEvery = msiEvery
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
        // Its devices' interrupts reach the doorbell it bound.
        #expect(r.devices.msisDelivered > 0 && r.devices.msiFaults == 0, "\(r.devices)")
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

        let deaf = try Self.run(style, .forgetsMSI)
        #expect(deaf.problems.isEmpty, "\(deaf.problems)")
        #expect(deaf.guestBugs.keys.sorted() == ["MSI write with no doorbell bound"], "\(deaf.guestBugs)")
        #expect(deaf.devices.msisDelivered == 0 && deaf.devices.msiFaults > 0 && deaf.devices.unrecoverable == 0)
    }
}

/// Devices without PRI or ATS: a fault is an unrecoverable event through
/// the event path (the guest reads it as a vSMMUv3 event record), and a
/// translation comes from the IOTLB.
@Suite struct NonPRIDeviceTests {
    static func run(_ style: NestedDomain.Style, _ behaviour: NestedGuest.Behaviour) throws -> NestedHarness.Report {
        try NestedHarnessTests.run(style, behaviour, devices: 3, nonPRI: 1, msiEvery: nil)
    }

    @Test(arguments: [NestedDomain.Style.vtd, .smmuv3])
    func faultsAreEventsAndTranslationsComeFromTheIOTLB(style: NestedDomain.Style) throws {
        let r = try Self.run(style, .correct)
        #expect(r.problems.isEmpty && r.guestBugs.isEmpty, "\(r.problems) \(r.guestBugs)")
        let translation = r.events["pte-fetch"] ?? 0
        #expect(translation > 0 && r.devices.unrecoverable == translation, "\(r.events)")
        #expect(r.iommu.iotlbHits > 0, "a device with no ATC is served by the IOTLB")
        // The guest reads them in its own format: a vSMMUv3 event queue; VT-d's fault registers are not modelled.
        #expect(r.guestEvents == (style == .smmuv3 ? ["F_TRANSLATION": translation] : [:]), "\(r.guestEvents)")
        // Pages mapped read-only (a wrong-permissions guest) and written by the device: permission events.
        let readOnly = try Self.run(style, .wrongPermissions)
        let permission = readOnly.events["permission"] ?? 0
        #expect(permission > 0, "\(readOnly.events)")
        if style == .smmuv3 { #expect(readOnly.guestEvents["F_PERMISSION"] == permission) }
    }

    @Test func aBadContextIsAConfigurationEventInTheGuestsFormat() {
        let fault = UnrecoverableFault(deviceID: 3, reason: FAULTRING_REASON_BAD_PASID_ENTRY, pasid: 4, permissions: .read,
                                       address: 0x1000)
        #expect(GuestFormatPath(format: .smmuv3).presentEvent(fault, endpoint: 3) == "C_BAD_CD")
        #expect(GuestFormatPath(format: .vtd).presentEvent(fault, endpoint: 3) == nil)
        #expect(fault.reasonName == "bad-pasid-entry")
    }
}

/// A device's retries are owed to the VM that answered.
@Suite struct DMARetryTests {
    /// Answered SUCCESS through one domain, then attached to another VM (its
    /// guest killed and restarted between two steps): the owed retry is
    /// dropped with the old VM, not walked through the new guest's tables
    /// and charged to it as "answered SUCCESS but not mapped".
    @Test func aRetryOwedToAGoneVMIsDroppedNotChargedToTheNextOne() throws {
        let ram = try GuestRAM(gpa: 1 << 30, size: 8 << 20)
        let memory = GuestMemory()
        try memory.add(fd: ram.fd.descriptor, gpa: ram.gpa, size: ram.size)
        let guest = try NestedGuest(style: .vtd, ram: ram, pasids: [1], devices: [1], budget: 8, behaviour: .correct,
                                    invalidate: { (_) throws(NestedError) in })
        func domain() throws -> NestedDomain {
            let d = NestedDomain(style: .vtd, memory: memory)
            d.attach(device: 1, ats: true)
            for (pasid, entry) in guest.pasidEntries { try d.bind(devices: [1], pasid: pasid, entry: entry) }
            return d
        }
        let first = try domain()
        let device = DMADevice(DMADevice.Config(id: 1, streams: [DMAStream(pasid: 1, base: 1 << 32, pages: 16, pattern: .sequential)]),
                               seed: 1)
        var raised: [PageRequest] = []
        device.step(now: 1_000, domain: first) { if case .pageRequest(let r) = $0 { raised.append(r) } }
        let request = try #require(raised.first, "an unmapped page must raise a page request")
        device.complete(prgi: request.prgi, code: .success)   // the old guest answered, and never mapped it
        #expect(device.retriesOwed == 1)
        // The same device, a new VM with the same (empty) tables: the retry would miss there.
        device.step(now: 2_000, domain: try domain(), newAccesses: false) { _ in }
        #expect(device.counters.retriesDropped == 1 && device.counters.successNotMapped == 0)
        #expect(device.counters.retriesBalance() && device.retriesOwed == 0)
        // Through the domain that answered, the same miss is the guest's bug.
        let again = DMADevice(device.config, seed: 1)
        raised.removeAll()
        again.step(now: 1_000, domain: first) { if case .pageRequest(let r) = $0 { raised.append(r) } }
        again.complete(prgi: try #require(raised.first).prgi, code: .success)
        again.step(now: 2_000, domain: first, newAccesses: false) { _ in }
        #expect(again.counters.successNotMapped == 1 && again.counters.retriesDropped == 0)
    }

    /// A completion interrupt is owed to the VM whose guest answered: one
    /// moved to another VM is dropped, and the service's own answers
    /// (timeout, detach) owe none.
    @Test func anInterruptFollowsTheGuestsAnswerAndNotTheDevice() throws {
        let ram = try GuestRAM(gpa: 1 << 30, size: 8 << 20)
        let memory = GuestMemory()
        try memory.add(fd: ram.fd.descriptor, gpa: ram.gpa, size: ram.size)
        let guest = try NestedGuest(style: .vtd, ram: ram, pasids: [1], devices: [1], budget: 8, behaviour: .correct,
                                    invalidate: { (_) throws(NestedError) in })
        func domain(doorbell: Bool) throws -> NestedDomain {
            let d = NestedDomain(style: .vtd, memory: memory)
            d.attach(device: 1, ats: true)
            for (pasid, entry) in guest.pasidEntries { try d.bind(devices: [1], pasid: pasid, entry: entry) }
            if doorbell, let m = guest.msiBinding { try d.bindMSI(iova: m.iova, gpa: m.gpa, size: m.size) }
            return d
        }
        var config = DMADevice.Config(id: 1, streams: [DMAStream(pasid: 1, base: 1 << 32, pages: 16, pattern: .sequential)])
        config.msi = DMADevice.MSIWrites(iova: NestedGuest.msiDoorbell, every: 1)
        func answeredOnce(byGuest: Bool, thenThrough next: NestedDomain?) throws -> DMADevice.Counters {
            let device = DMADevice(config, seed: 1)
            let first = try domain(doorbell: true)
            var raised: [PageRequest] = []
            device.step(now: 1_000, domain: first) { if case .pageRequest(let r) = $0 { raised.append(r) } }
            device.complete(prgi: try #require(raised.first).prgi, code: .invalid, byGuest: byGuest)
            device.step(now: 2_000, domain: next ?? first, newAccesses: false) { _ in }
            return device.counters
        }
        let delivered = try answeredOnce(byGuest: true, thenThrough: nil)
        #expect(delivered.msisDelivered == 1 && delivered.msiFaults == 0)
        let moved = try answeredOnce(byGuest: true, thenThrough: try domain(doorbell: false))
        #expect(moved.msisDelivered == 0 && moved.msiFaults == 0, "an interrupt owed to another VM")
        let byService = try answeredOnce(byGuest: false, thenThrough: nil)
        #expect(byService.msisDelivered == 0 && byService.msiFaults == 0, "the service's answer owes no interrupt")
        // The doorbell lookup is pure: it walks nothing and counts nothing.
        let d = try domain(doorbell: false)
        #expect(d.doorbell(device: 1, iova: NestedGuest.msiDoorbell) == nil && d.counters.translations == 0)
    }
}

/// A vSVA session captured and replayed: the same outcome, or a verdict
/// naming what differs; a session file is input and is checked as such.
@Suite struct NestedSessionTests {
    static func captured(_ behaviour: NestedGuest.Behaviour, style: NestedDomain.Style = .vtd) throws -> NestedSession {
        var config = NestedHarness.Config()
        config.style = style
        config.behaviour = behaviour
        config.steps = 600
        return try NestedHarness(config).capture().session
    }

    @Test(arguments: [NestedGuest.Behaviour.correct, .forgetsInvalidate, .wrongPermissions, .slow])
    func aCapturedSessionReplaysToTheSameOutcome(behaviour: NestedGuest.Behaviour) throws {
        let session = try Self.captured(behaviour, style: behaviour == .slow ? .smmuv3 : .vtd)
        #expect(!session.handled.isEmpty)
        #expect(session.handled.contains { !$0.actions.isEmpty } || behaviour == .successWithoutMapping)
        // Through a file, as `faultring nested --capture` / `--replay` do.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vsva-\(getpid())-\(behaviour.rawValue).json").path
        defer { unlink(path) }
        try session.write(path)
        let (_, differences) = try NestedHarness.replay(try NestedSession.read(path))
        #expect(differences.isEmpty, "\(differences)")
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/vsva")

    /// The captured sessions shipped in `Fixtures/vsva/` (named `STYLE-BEHAVIOUR.json`)
    /// still replay to their recorded outcome, and show their behaviour's bug
    /// and no other: the file format and the model have not drifted.
    @Test func everyShippedSessionReplaysToItsRecordedOutcome() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.fixtures.path).filter { $0.hasSuffix(".json") }.sorted()
        let every = [NestedDomain.Style.vtd, .smmuv3].flatMap { style in
            NestedGuest.Behaviour.allCases.map { "\(style.rawValue)-\($0.rawValue).json" }
        }
        #expect(files == every.sorted(), "one session per style and behaviour")
        for file in files {
            let session = try NestedSession.read(Self.fixtures.appendingPathComponent(file).path)
            #expect(file == "\(session.config.style.rawValue)-\(session.config.behaviour.rawValue).json")
            let (report, differences) = try NestedHarness.replay(session)
            #expect(differences.isEmpty, "\(file): \(differences)")
            #expect(report.problems.isEmpty, "\(file): \(report.problems)")
            let expected = session.config.behaviour.expectedBug.map { [$0.rawValue] } ?? []
            #expect(report.guestBugs.keys.sorted() == expected, "\(file): \(report.guestBugs)")
        }
    }

    /// The binds are recorded as the IOMMU received them and replayed as
    /// recorded: a session edited to bind something else is judged on that,
    /// and a bind the IOMMU would refuse is named.
    @Test func theRecordedBindsAreWhatTheReplayBinds() throws {
        let session = try Self.captured(.correct)
        let setup = try #require(session.setup)
        #expect(setup.binds.count == session.config.pasids && setup.binds.allSatisfy { $0.words.count == 8 })
        #expect(setup.msi.count == 1, "a correct guest binds its doorbell")
        // PASID 1's first-stage root moved to another page: the guest maps its pages in the
        // tables it knows, the devices walk the recorded root, and every retry misses.
        // Either verdict is a verdict: an outcome that differs, or a replay that parts from the
        // recording (the misses change which requests come when).
        func judged(_ edited: NestedSession) -> String {
            do {
                let (report, differences) = try NestedHarness.replay(edited)
                return differences.isEmpty ? "the recorded outcome" : "differs: \(report.guestBugs)"
            } catch {
                return "diverges: \(error)"
            }
        }
        var moved = session
        moved.setup!.binds[0].words[2] &+= 0x1000
        let movedRoot = judged(moved)
        #expect(movedRoot != "the recorded outcome", "a moved root must change the outcome")
        #expect(!movedRoot.hasPrefix("differs") || movedRoot.contains("answered SUCCESS but not mapped"), "\(movedRoot)")
        // A reserved bit: refused by the PASID-entry decoder, before any DMA, naming the bind.
        var reserved = session
        reserved.setup!.binds[1].words[0] |= 1 << 5
        #expect(throws: NestedSessionError.self) { _ = try NestedHarness.replay(reserved) }
        do { _ = try NestedHarness.replay(reserved) } catch { #expect("\(error)".contains("setup.binds[1]"), "\(error)") }
        // A bind naming a device the configuration does not have: refused when read.
        var stranger = session
        stranger.setup!.binds[0].devices = [1, 99]
        #expect(throws: NestedSessionError.self) { try stranger.validate() }
        // The devices' streams are recorded too, and replayed as recorded: a stream moved elsewhere
        // is a different session, and a stream of no pages is refused when read, naming it.
        let devices = try #require(setup.devices)
        #expect(devices.count == session.config.devices && devices.allSatisfy { !$0.streams.isEmpty })
        var elsewhere = session
        elsewhere.setup!.devices![0].streams[0].base &+= 1 << 40
        #expect(judged(elsewhere) != "the recorded outcome", "the guest's recorded maps no longer cover the stream")
        var empty = session
        empty.setup!.devices![0].streams[0].pages = 0
        do { try empty.validate(); Issue.record("a stream of 0 pages was accepted") } catch {
            #expect(error.description.contains("setup.devices[0].streams[0].pages"), "\(error)")
        }
        var noDevices = session
        noDevices.setup!.devices = nil   // written before devices were recorded: rebuilt from the configuration
        #expect(try NestedHarness.replay(noDevices).differences.isEmpty)
        // A session from before setups were recorded replays the model's binds, to the same outcome.
        var old = session
        old.setup = nil
        #expect(try NestedHarness.replay(old).differences.isEmpty)
    }

    /// A session written before a device counter existed reads it as zero and still replays.
    @Test func aSessionOlderThanACounterStillReplays() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("vtd-correct.json"))
        var object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        var expected = object["expected"] as! [String: Any]
        var devices = expected["devices"] as! [String: Any]
        devices["retriesDropped"] = nil
        devices["unexpectedAnswers"] = nil
        expected["devices"] = devices
        object["expected"] = expected
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vsva-old-\(getpid()).json").path
        defer { unlink(path) }
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        let (_, differences) = try NestedHarness.replay(try NestedSession.read(path))
        #expect(differences.isEmpty, "\(differences)")
    }

    @Test func aChangedGuestIsAVerdictOrADivergence() throws {
        let session = try Self.captured(.correct)
        // The guest's recorded invalidations removed: devices keep translations the guest
        // unmapped, ask for fewer pages, and the replay parts from the recording where it does.
        var forgetful = session
        for i in forgetful.handled.indices {
            forgetful.handled[i].actions.removeAll { if case .invalidate = $0 { return true } else { return false } }
        }
        do {
            _ = try NestedHarness.replay(forgetful)
            Issue.record("a guest without its invalidations replayed as recorded")
        } catch let error as NestedSessionError {
            #expect(error.description.contains("recorded step"), "\(error)")
        }
        // An answer that was SUCCESS said INVALID: the device gives the access up instead of
        // retrying it, and the verdict says the devices' books differ.
        var changed = session
        changed.handled[0].code = "invalid"
        let (_, changedDifferences) = try NestedHarness.replay(changed)
        #expect(changedDifferences.contains { $0.hasPrefix("devices:") }, "\(changedDifferences)")
        // The same guest, but an outcome recorded differently: the verdict names the field.
        var claimed = session
        claimed.expected.staleTranslations = 5
        let (_, differences) = try NestedHarness.replay(claimed)
        #expect(differences == ["staleTranslations: recorded 5, replayed 0"], "\(differences)")
    }

    @Test func aHostileSessionFileIsRefusedNamingTheField() throws {
        var session = try Self.captured(.correct)
        let cases: [(WritableKeyPath<NestedSession, String>?, (inout NestedSession) -> Void, String)] = [
            (nil, { $0.format = "something-else" }, "format"),
            (nil, { $0.version = 2 }, "version"),
            (nil, { $0.config.steps = 1 << 40 }, "config.steps"),
            (nil, { $0.config.devices = 0 }, "config.devices"),
            (nil, { $0.config.budget = 0 }, "config.budget"),
            (nil, { $0.handled[1].step = 0; $0.handled[0].step = 9 }, "handled[1].step"),
            (nil, { $0.handled[0].code = "maybe" }, "handled[0].code"),
            (nil, { $0.handled[0].prgi = 512 }, "handled[0].prgi"),
        ]
        for (_, spoil, field) in cases {
            var s = session
            spoil(&s)
            do {
                try s.validate()
                Issue.record("\(field) accepted")
            } catch {
                #expect(error.description.hasPrefix(field), "\(error)")
            }
        }
        // An action outside guest RAM fails the replay at its place, not the service.
        session.handled[0].actions.insert(.map(pasid: 1, iova: 0x1000, frame: 0x10, writable: true), at: 0)
        do {
            _ = try NestedHarness.replay(session)
            Issue.record("a map to an unaligned frame replayed")
        } catch let error as NestedSessionError {
            #expect(error.description.contains("handled[0].actions[0]"), "\(error)")
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vsva-bad-\(getpid()).json").path
        defer { unlink(path) }
        try Data("{\"format\": 1}".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: NestedSessionError.self) { _ = try NestedSession.read(path) }
    }
}
