import FaultABI
import FaultFD
import FaultFixtures
import FaultService
import FaultSimulation
import Foundation
import Glibc
import Testing
import VMMClient

/// Simulated devices in their own process (`faultring device`), speaking
/// the iommufd fault-queue record protocol to the service over a device
/// socket, and a VMM answering through the ring: the exactly-once proof
/// crosses three processes, and each side's books must balance even when
/// the other side dies.
@Suite(.serialized) struct DeviceProcessTests {
    static func report(_ output: String) throws -> RemoteDevices.Report {
        try JSONDecoder().decode(RemoteDevices.Report.self, from: Data(output.utf8))
    }

    /// Consumes until `stop` says so (bounded), answering SUCCESS when `answer` is set.
    static func consume(_ client: VMMClient, answer: Bool = true, rounds: Int = 4000, stop: () -> Bool) throws
        -> (groups: UInt64, lost: UInt64, faults: UInt64)
    {
        var counts: (groups: UInt64, lost: UInt64, faults: UInt64) = (0, 0, 0)
        for _ in 0..<rounds where !stop() {
            _ = client.wait(timeoutMilliseconds: 5)
            try client.consume { record in
                switch record {
                case .lost(let l): counts.lost += l.lostRecords
                case .event(.unrecoverable, _): counts.faults += 1
                case .event(.pageRequest(let r), _):
                    guard r.isLastPage else { return nil }
                    counts.groups += 1
                    guard answer else { return nil }
                    return PageResponse(code: .success, cookie: r.cookie, pasid: r.needsPASID ? r.pasid : nil, prgi: r.prgi)
                }
                return nil
            }
        }
        return counts
    }

    @Test(arguments: ["io_uring", "poll"])
    func booksBalanceAcrossThreeProcesses(backend: String) throws {
        let path = socketPath("device-\(backend)")
        let service = try startService(path, ["--devices", "0", "--backend", backend])
        let device = try Child(["device", "--socket-path", path, "--devices", "21", "22", "--rate", "4000",
                                "--groups", "300", "--events-every", "3", "--loss-every", "5", "--wait-for-consumer",
                                "--json"])
        guard let client = attachWhenReady(path, devices: [21, 22]) else {
            Issue.record("could not attach the device process's devices"); return
        }
        // Done once the device has exited and the service has read its event socket to the end
        // (on a slow run, a sanitizer build, events are still in flight when the device exits),
        // and a few more rounds have drained what it published.
        func eventBooks() -> FaultFDBooks? {
            (try? serviceStats(path))?.sources.first(where: { $0.kind == FaultFDKind.deviceEvents.description })?.books
        }
        var seen = try Self.consume(client) { !device.isRunning && eventBooks()?.closed == true }
        // Then read on until the ring has given up everything the service delivered into it
        // (bounded: at most 100 × 20 rounds).
        let delivered = eventBooks()?.eventsDelivered ?? 0
        for _ in 0..<100 where seen.faults < delivered {
            let more = try Self.consume(client, rounds: 20) { false }
            seen = (seen.groups + more.groups, seen.lost + more.lost, seen.faults + more.faults)
        }
        let (status, output) = device.finish()
        #expect(status == 0, "device: \(output)")
        let report = try Self.report(output)
        // The device process's own ledger: every group answered once, over the socket.
        #expect(report.balanced)
        #expect(report.unknownCookies == 0)
        for d in report.devices {
            #expect(d.issued == 300 && d.answered == 300 && d.answersBySource == ["service": 300], "\(d)")
        }
        #expect(seen.groups == 600)
        // vEVENTQ: every fault sent arrives; the losses the device simulated
        // (skipped sequence numbers, LOST_EVENTS headers) reach the ring as LOST records.
        #expect(report.eventsSent == 200)
        #expect(report.eventsLost > 0)
        #expect(seen.faults == report.eventsSent)
        #expect(seen.lost == report.eventsLost)
        // The service's books for the source agree.
        let stats = try serviceStats(path)
        let faults = stats.sources.first { $0.kind == FaultFDKind.deviceFaults.description }
        #expect(faults?.books.groups == 600)
        #expect(faults?.books.answersWritten == 600)
        #expect(faults?.books.answersBySource == ["consumer": 600])
        let events = stats.sources.first { $0.kind == FaultFDKind.deviceEvents.description }
        #expect(events?.books.eventsLost == report.eventsLost)
        // (The device process has gone, so its devices were forgotten: find the VMM's queue by pid.)
        #expect(stats.clients.first { $0.pid == UInt32(getpid()) && $0.queue != nil }?.queue?.recordsLost == report.eventsLost)
        client.close()
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
    }

    /// A service on `path`, a device process raising groups for `device`,
    /// and a VMM attached to it that answers nothing, until the service has
    /// seen at least 100 groups: all of them are outstanding. Nil (with the
    /// issue recorded) if the device could not be attached.
    static func withUnansweredGroups(_ path: String, backend: String, device id: UInt32) throws
        -> (service: Child, device: Child, client: VMMClient)?
    {
        // A timeout far beyond the test: on a slow run (a sanitizer build) no group may time out
        // before the test kills one side, or it would not be the kill that answered it.
        let service = try startService(path, ["--devices", "0", "--backend", backend, "--timeout-ms", "600000"])
        let device = try Child(["device", "--socket-path", path, "--devices", "\(id)", "--rate", "4000",
                                "--wait-for-consumer", "--json"])
        guard let client = attachWhenReady(path, devices: [id]) else {
            Issue.record("could not attach device \(id)")
            return nil
        }
        _ = try consume(client, answer: false) {
            ((try? serviceStats(path))?.sources.first?.books.groups ?? 0) >= 100
        }
        return (service, device, client)
    }

    /// The device process dies (SIGKILL) with groups outstanding: the
    /// service answers every one of them INVALID (device removed), and its
    /// books for the source balance.
    @Test(arguments: ["io_uring", "poll"])
    func aKilledDeviceProcessLeavesTheServiceBalanced(backend: String) throws {
        let path = socketPath("device-killed-\(backend)")
        guard let (service, device, client) = try Self.withUnansweredGroups(path, backend: backend, device: 31) else { return }
        device.signal(SIGKILL)
        _ = device.finish()
        let stats = try eventually(path) { $0.sources.first?.removed == true }
        guard let books = stats.sources.first?.books else { Issue.record("no source in \(stats)"); return }
        #expect(books.closed)
        #expect(books.groups >= 100)
        #expect(books.answersBySource == ["device_removed": books.groups], "\(books)")
        #expect(stats.pageRequests.auto(.deviceRemoved) == books.groups)
        #expect(!stats.devices.contains { $0.id == 31 })  // forgotten
        // And the service is idle again: the hung-up descriptor is no longer watched.
        let before = try IdleTests.cpuSeconds(service.pid)
        usleep(1_000_000)
        let used = try IdleTests.cpuSeconds(service.pid) - before
        #expect(used < 0.1, "after the device hung up the service used \(used) s of CPU in 1 s")
        client.close()
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
    }

    /// The service dies (SIGKILL) with groups outstanding: the device sees
    /// the hang-up and answers every pending group INVALID itself, as the
    /// kernel does when a fault queue is destroyed; its ledger balances.
    @Test(arguments: ["io_uring", "poll"])
    func aKilledServiceLeavesTheDeviceBalanced(backend: String) throws {
        let path = socketPath("service-killed-\(backend)")
        guard let (service, device, client) = try Self.withUnansweredGroups(path, backend: backend, device: 41) else { return }
        service.signal(SIGKILL)
        _ = service.finish()
        let (status, output) = device.finish()
        #expect(status == 0, "device: \(output)")
        let report = try Self.report(output)
        #expect(report.serviceHungUp)
        #expect(report.balanced)
        let d = report.devices[0]
        #expect(d.issued >= 100)
        #expect(d.answersBySource["closed"] == d.issued - (d.answersBySource["service"] ?? 0))
        client.close()
        unlink(path)
    }
}

/// `faultring device --storm`: a storm profile's arrival schedule raised by
/// a device process against a live service, answered through the ring.
@Suite(.serialized) struct StormDeviceTests {
    @Test func aDeviceProcessRaisesTheWholeScheduleAndBooksLatencyPerPhase() throws {
        let profilePath = NSTemporaryDirectory() + "storm-device-\(getpid()).json"
        try Data("""
            {"name": "small", "seed": 5,
             "phases": [{"kind": "steady", "name": "calm", "seconds": 0.5, "rate": 200},
                        {"kind": "burst", "name": "burst", "seconds": 0.25, "rate": 2000}],
             "devices": {"count": 2, "pasidsPerDevice": 3, "prgiBudget": 8, "allocation": 64,
                         "unrecoverableShare": 0.2, "groupSize": {"distribution": "uniform", "min": 1, "max": 2}},
             "consumers": [{"name": "vmm"}]}
            """.utf8).write(to: URL(fileURLWithPath: profilePath))
        defer { unlink(profilePath) }
        let path = socketPath("storm-device")
        let service = try startService(path, ["--devices", "0"])
        let device = try Child(["device", "--socket-path", path, "--storm", profilePath, "--wait-for-consumer", "--json"])
        guard let client = attachWhenReady(path, devices: [1, 2]) else {
            Issue.record("could not attach the storm's devices"); return
        }
        let seen = try DeviceProcessTests.consume(client, rounds: 20_000) { !device.isRunning }
        let (status, output) = device.finish()
        #expect(status == 0, "device: \(output)")
        let report = try DeviceProcessTests.report(output)
        // The schedule this profile makes, counted here independently of the device process.
        let profile = try StormProfileReader.read(path: profilePath)
        let arrivals = Array(ArrivalSchedule(phases: profile.phases, seed: profile.seed))
        #expect(arrivals.count == 600)  // 0.5 s × 200/s + 0.25 s × 2000/s
        #expect(report.offered == UInt64(arrivals.count))
        #expect(report.balanced)
        #expect(report.devices.reduce(0) { $0 + $1.issued } == UInt64(arrivals.count))
        #expect(seen.groups == UInt64(arrivals.count))
        // A 0.2 share of events is one per 4 groups, sent on the vEVENTQ socket and read from the ring.
        #expect(report.eventsSent == 150)
        #expect(seen.faults == 150)
        let phases = try #require(report.phases)
        #expect(phases.map(\.name) == ["calm", "burst"])
        #expect(phases[0].latency.count == arrivals.filter { $0.phase == 0 }.count)
        #expect(phases[1].latency.count == arrivals.filter { $0.phase == 1 }.count)
        #expect(phases.map(\.latency).allSatisfy { $0.p50 > 0 && $0.p50 <= $0.p99 && $0.p99 <= $0.max })
        client.close()
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
    }
}
