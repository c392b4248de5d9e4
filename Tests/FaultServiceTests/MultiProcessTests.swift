import FaultSys
import FaultService
import Foundation
import Testing
import VMMClient

/// The service and its consumers as separate processes.
@Suite(.serialized) struct MultiProcessTests {
    /// Two consumers each see only their devices; SIGKILL of one gets all its
    /// outstanding groups answered INVALID and leaves the other untouched;
    /// its devices can then be attached again.
    @Test func killedConsumerIsAnsweredForAndTheOtherIsUntouched() throws {
        let path = socketPath("kill")
        let service = try startService(path, ["--devices", "4", "--rate", "2000", "--timeout-ms", "60000"])
        // A never answers, so its groups stay outstanding until it dies.
        let a = try Child(["consume", "--socket-path", path, "--devices", "1", "2", "--policy", "never", "--quiet"])
        let b = try Child(["consume", "--socket-path", path, "--devices", "3", "--quiet", "--json"])
        var stats = try eventually(path) { s in
            s.clients.filter { !$0.devices.isEmpty }.count == 2 && s.devices.first { $0.id == 1 }!.outstanding >= 20
                && s.devices.first { $0.id == 3 }!.answered >= 20
        }
        #expect(Set(stats.clients.map(\.devices).filter { !$0.isEmpty }) == [[1, 2], [3]])
        let bDevice = stats.devices.first { $0.id == 3 }!
        #expect(bDevice.attachedTo == UInt32(b.pid))
        let before = stats.devices.first { $0.id == 1 }!.outstanding
        #expect(before >= 20)

        a.signal(SIGKILL)
        _ = a.finish()
        stats = try eventually(path) { s in s.clients.filter { !$0.devices.isEmpty }.count == 1 && s.devices.filter { [1, 2].contains($0.id) }.allSatisfy { $0.outstanding == 0 } }
        for id: UInt32 in [1, 2] {
            let device = stats.devices.first { $0.id == id }!
            #expect(device.outstanding == 0, "device \(id)")
            #expect(device.answeredTwiceOrUnknown == 0)
            #expect(device.wrong == 0)
            #expect((device.answersBySource["detach"] ?? 0) >= (id == 1 ? UInt64(before) : 1))
            #expect(device.attachedTo == nil)
        }
        // B carries on: still attached, still answered by its consumer.
        let answeredThen = stats.devices.first { $0.id == 3 }!.answered
        stats = try eventually(path) { s in s.devices.first { $0.id == 3 }!.answered > answeredThen + 20 }
        #expect(stats.devices.first { $0.id == 3 }!.attachedTo == UInt32(b.pid))
        #expect(stats.devices.first { $0.id == 3 }!.answeredTwiceOrUnknown == 0)

        // The freed devices can be attached again.
        let again = try VMMClient(socketPath: path, devices: [1, 2])
        #expect(again.devices == [1, 2])
        again.close()
        b.signal(SIGTERM)
        service.signal(SIGTERM)
        let (status, _) = service.finish()
        #expect(status == 0)
    }

    /// SIGTERM answers every outstanding group and marks queues closed; a
    /// consumer with --reconnect resumes on the restarted service.
    @Test func consumerReconnectsAfterAServiceRestart() throws {
        let path = socketPath("restart")
        // Each service raises only 100 groups per device, so 150 cannot be
        // reached without the restart.
        let args = ["--devices", "1", "--rate", "1000", "--groups-per-device", "100"]
        var service = try startService(path, args)
        let consumer = try Child(["consume", "--socket-path", path, "--devices", "1", "--groups", "150", "--reconnect",
                                  "--quiet", "--json"])
        _ = try eventually(path) { s in s.devices.first!.issued >= 100 && s.devices.first!.outstanding == 0 }
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
        service = try startService(path, args)
        let (status, output) = consumer.finish()
        #expect(status == 0, "\(output)")
        struct Summary: Decodable { var groups: UInt64; var reconnects: UInt64 }
        let summary = try JSONDecoder().decode(Summary.self, from: Data(output.utf8))
        #expect(summary.groups >= 150)
        #expect(summary.reconnects >= 1)
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
    }

    /// SIGTERM answers every outstanding group INVALID and marks the queue
    /// closed, which ends a consumer waiting on it.
    @Test func sigtermAnswersOutstandingGroupsAndClosesQueues() throws {
        let path = socketPath("term")
        unlink(path)
        let service = try Child(["serve", "--socket-path", path, "--devices", "2", "--rate", "1000",
                                 "--timeout-ms", "60000"], stderr: true)
        for _ in 0..<200 where access(path, F_OK) != 0 { usleep(25_000) }
        let consumer = try Child(["consume", "--socket-path", path, "--devices", "1", "2", "--policy", "never",
                                  "--quiet", "--json"])
        let stats = try eventually(path) { s in s.devices.allSatisfy { $0.outstanding >= 10 } }
        let outstanding = stats.devices.reduce(0) { $0 + $1.outstanding }
        #expect(outstanding >= 20)
        service.signal(SIGTERM)
        let (status, log) = service.finish()
        #expect(status == 0)
        let answered = log.split(separator: "\n").first { $0.contains("stopped:") }
            .flatMap { line in line.split(separator: " ").compactMap { Int($0) }.last }
        #expect((answered ?? 0) >= outstanding)  // at least those we saw; more were raised meanwhile
        #expect(access(path, F_OK) != 0)  // socket file removed
        let (consumerStatus, _) = consumer.finish()  // the closed queue ends it
        #expect(consumerStatus == 0)
    }

    /// `--fd`: the service serves on an inherited, already-listening socket.
    @Test func servesAnInheritedSocket() throws {
        let path = socketPath("fd")
        let listener = try ControlSocket.listen(path: path)
        let child = try ChildProcess.spawn(Child.binary, ["serve", "--fd", "3", "--devices", "1", "--log-level", "error"],
                                           descriptors: [listener.fd], stdout: .discard, stderr: .discard)
        try? listener.fd.close()
        let client = try VMMClient(socketPath: path, devices: [1])
        #expect(client.consumer != nil)
        client.close()
        child.signal(SIGTERM)
        #expect(child.wait() == 0)
        unlink(path)
    }

    @Test func printCapabilitiesNeedsNoSocket() throws {
        let child = try Child(["serve", "--print-capabilities", "--devices", "3"])
        let (status, output) = child.finish()
        #expect(status == 0)
        let caps = try JSONDecoder().decode(Capabilities.self, from: Data(output.utf8))
        #expect(caps.devices == [1, 2, 3])
        #expect(caps.abis == [1, 2])
        #expect(["io_uring", "poll"].contains(caps.eventLoop))
    }
}

import FaultControl
import FaultQueue
import SystemPackage
