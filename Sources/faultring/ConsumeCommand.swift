import ArgumentParser
import Devices
import FaultABI
import Foundation
import Glibc
import PageRequests
import Workloads
import VMMClient

/// A reference VMM: attaches devices, reinjects every record into a guest
/// format, and answers page requests by a policy — through the guest's own
/// response format where it has one (vSMMUv3 CMD_PRI_RESP, VT-d page group
/// response), decoded back into a page response.
struct ConsumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume", abstract: "A reference VMM consumer: attach devices, reinject faults, answer page requests.")

    enum Policy: String, ExpressibleByArgument, CaseIterable {
        case success, invalid, random, never, delay
    }

    @Option(help: "The service's socket path.") var socketPath: String
    @Option(parsing: .upToNextOption, help: "Devices to attach.") var devices: [UInt32] = [1]
    @Option(help: "Record ABI (1 or 2).") var abi: UInt32 = 2
    @Option(help: "Guest format: \(GuestFormat.allCases.map(\.rawValue).joined(separator: ", ")).") var format = "smmuv3"
    @Option(help: "Answer policy: success, invalid, random (success/invalid/failure), never, delay.") var policy: Policy = .success
    @Option(help: "With --policy delay: answer after this many milliseconds.") var delayMs: UInt64 = 5
    @Option(help: "Stop after this many page-request groups (0: run until the service stops or --seconds).")
    var groups: UInt64 = 0
    @Option(help: "Stop after this many seconds (0: no limit).") var seconds: Double = 0
    @Flag(help: "Reconnect when the service restarts, instead of stopping.") var reconnect = false
    @Option(help: "Behave as this fixture's consumer (devices, ABI, policy, delays, crash point, misbehaviour).")
    var fixture: String?
    @Flag(help: "Print the final summary as JSON.") var json = false
    @Flag(help: "No live summary.") var quiet = false

    struct Summary: Codable {
        var records: UInt64 = 0
        var groups: UInt64 = 0
        var lostReported: UInt64 = 0
        var reinjectedBytes: UInt64 = 0
        var notRepresentable: UInt64 = 0
        var answered: [String: UInt64] = [:]
        var unanswered: UInt64 = 0
        var reconnects: UInt64 = 0
        var seconds: Double = 0
    }

    func run() throws {
        guard let guest = GuestFormat(rawValue: format) else { throw ValidationError("unknown --format \(format)") }
        var behaviour = Fixture.Consumer()
        var cookieTable = 65_536
        var answeredCookies: [UInt64] = []
        var devices = self.devices
        var abi = self.abi
        if let fixture {
            let header = try FixtureReader(path: fixture).open()
            behaviour = header.consumer
            cookieTable = header.service.cookieTable
            devices = header.devices.map(\.id)
            abi = behaviour.abi
        }
        guard let version = ABIVersion(rawValue: abi) else { throw ValidationError("--abi must be 1 or 2") }
        // Foreign answers need a second connection: it takes the last device.
        var second: VMMClient?
        if behaviour.foreignEvery > 0 && devices.count >= 2 {
            second = try VMMClient(socketPath: socketPath, devices: [devices.removeLast()], abi: version,
                                   client: "faultring consume (second connection)")
        }
        var client = try VMMClient(socketPath: socketPath, devices: devices, abi: version, client: "faultring consume")
        if behaviour.startDelayMicroseconds > 0 { usleep(UInt32(behaviour.startDelayMicroseconds)) }
        var encoder = GuestEncoder(format: guest)
        var pending = GuestPendingGroups()
        var delayed: [(due: Date, response: PageResponse)] = []
        var secondGroups: UInt64 = 0
        var rng = SplitMix64(seed: UInt64(getpid()))
        var summary = Summary()
        let start = Date()
        var lastPrint = start
        // The device of an ABI 1 queue is the one attached; ABI 2 records name theirs.
        let soleDevice = devices.first ?? 0

        func code(_ n: UInt64) -> ResponseCode? {
            if fixture != nil {
                switch behaviour.policy {
                case .success: return .success
                case .invalid: return .invalid
                case .failure: return .failure
                case .never: return nil
                }
            }
            switch policy {
            case .success, .delay: return .success
            case .invalid: return .invalid
            case .never: return nil
            case .random:
                let pick = rng.next() % 10
                return pick < 7 ? .success : pick < 9 ? .invalid : .failure
            }
        }

        /// The guest answers in its own format; the VMM decodes that answer.
        func guestAnswer(_ request: PageRequest, endpoint: UInt32, _ code: ResponseCode) -> PageResponse? {
            let completion = DeviceCompletion(deviceID: endpoint, pasid: request.needsPASID ? request.pasid : nil,
                                              prgi: request.prgi, code: code, privateData: nil, cookie: 0,
                                              source: .consumer)
            switch guest {
            case .smmuv3:
                pending.note(request, endpoint: endpoint)
                let (dw0, dw1) = SMMUv3Command.priResponse(for: completion, streamID: endpoint).words
                return pending.decodeSMMUv3(dw0, dw1)
            case .vtd:
                pending.note(request, endpoint: endpoint)
                let (a, b, c, d) = VTdPageGroupResponse(completion, requesterID: UInt16(truncatingIfNeeded: endpoint)).words
                return pending.decodeVTd(a, b, c, d)
            case .virtio, .veventq:
                // No guest page-response path: the VMM answers on the guest's behalf.
                return PageResponse(code: code, cookie: request.cookie, pasid: request.needsPASID ? request.pasid : nil,
                                    prgi: request.prgi)
            }
        }

        loop: while true {
            if groups > 0 && summary.groups >= groups { break }
            if seconds > 0 && Date().timeIntervalSince(start) >= seconds { break }
            if client.serviceGone {
                guard reconnect else { break loop }
                client = try client.reconnect()
                summary.reconnects += 1
                continue
            }
            let now = Date()
            while let first = delayed.first, first.due <= now {
                delayed.removeFirst()
                client.queueResponse(first.response)
            }
            client.flush()
            if let second {
                // The second connection's groups: every N-th is first answered on the
                // first connection (a foreign answer), and only once the service has
                // read it does the right answer go out on the second.
                try second.consume(max: 256) { record in
                    guard case .event(.pageRequest(let request), _) = record, request.isLastPage else { return nil }
                    summary.groups += 1
                    secondGroups += 1
                    let response = PageResponse(code: .success, cookie: request.cookie,
                                                pasid: request.needsPASID ? request.pasid : nil, prgi: request.prgi)
                    summary.answered[response.code.description, default: 0] += 1
                    if secondGroups % UInt64(behaviour.foreignEvery) == 0 {
                        client.queueResponse(response)
                        client.flush()
                        for _ in 0..<10_000 where client.responsesUnread > 0 { usleep(100) }
                    }
                    return response
                }
            }
            guard client.wait(timeoutMilliseconds: second == nil ? 50 : 1) else { continue }
            try client.consume(max: 256) { record in
                summary.records += 1
                let endpoint: UInt32
                switch record {
                case .event(.pageRequest(let r), _): endpoint = version == .v1 ? soleDevice : r.deviceID
                case .event(.unrecoverable(let f), _): endpoint = version == .v1 ? soleDevice : f.deviceID
                case .lost(let l):
                    summary.lostReported += l.lostRecords
                    endpoint = soleDevice
                }
                if let bytes = encoder.encode(record, endpoint: endpoint) {
                    summary.reinjectedBytes += UInt64(bytes.count)
                } else {
                    summary.notRepresentable += 1
                }
                guard case .event(.pageRequest(let request), _) = record, request.isLastPage else { return nil }
                if let crash = behaviour.crashAfterGroups, summary.groups >= crash {
                    client.flush()
                    kill(getpid(), SIGKILL)  // a crash point: die mid-stream, answering nothing more
                }
                summary.groups += 1
                let n = summary.groups
                guard let code = code(summary.groups),
                      let response = guestAnswer(request, endpoint: endpoint, code) else {
                    summary.unanswered += 1
                    return nil
                }
                summary.answered[response.code.description, default: 0] += 1
                // Fixture misbehaviour, in front of the right answer.
                if behaviour.mismatchEvery > 0 && n % UInt64(behaviour.mismatchEvery) == 0 {
                    var wrong = response
                    wrong.pasid = response.pasid.map { $0 ^ 0x55 } ?? 7
                    client.queueResponse(wrong)
                }
                if behaviour.unknownEvery > 0 && n % UInt64(behaviour.unknownEvery) == 0 && version == .v2 {
                    client.queueResponse(PageResponse(code: .success, cookie: 0xFFFF_FFF0 << 32 | n))
                }
                if behaviour.staleEvery > 0 && n % UInt64(behaviour.staleEvery) == 0 && version == .v2,
                   answeredCookies.count > cookieTable {
                    // Answered more than a cookie table ago: its slot has been reused since.
                    client.queueResponse(PageResponse(code: .success, cookie: answeredCookies[answeredCookies.count - cookieTable - 1]))
                }
                answeredCookies.append(request.cookie)
                if behaviour.duplicateEvery > 0 && n % UInt64(behaviour.duplicateEvery) == 0 {
                    client.queueResponse(response)
                    client.queueResponse(response)
                    return nil
                }
                let delay = fixture != nil ? Double(behaviour.delayMicroseconds) / 1e6 : Double(delayMs) / 1000
                if policy == .delay || (fixture != nil && behaviour.delayMicroseconds > 0) {
                    delayed.append((Date().addingTimeInterval(delay), response))
                    return nil
                }
                return response
            }
            if !quiet && Date().timeIntervalSince(lastPrint) >= 0.5 {
                lastPrint = Date()
                FileHandle.standardError.write(Data(String(
                    format: "\rconsume: %llu records, %llu groups, answered %llu, lost %llu   ",
                    summary.records, summary.groups, summary.answered.values.reduce(0, +), summary.lostReported).utf8))
            }
        }
        summary.seconds = Date().timeIntervalSince(start)
        second?.close()
        client.close()
        if !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
        if json {
            print(String(decoding: try JSONEncoder().encode(summary), as: UTF8.self))
        } else {
            print("consume: \(summary.records) records, \(summary.groups) groups reinjected as \(guest.rawValue) " +
                  "(\(summary.reinjectedBytes) bytes, \(summary.notRepresentable) not representable), answered " +
                  "\(summary.answered), unanswered \(summary.unanswered), lost \(summary.lostReported), " +
                  "reconnects \(summary.reconnects), \(String(format: "%.2f", summary.seconds)) s")
        }
    }
}
