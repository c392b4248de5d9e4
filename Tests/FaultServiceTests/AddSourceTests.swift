import CFaultRingABI
import FaultControl
import FaultService
import FaultSys
import Foundation
import Glibc
import SystemPackage
import Testing
import VMMClient

/// ADD_SOURCE refuses what it cannot trust, names why, and leaves the
/// connection and every other source working.
@Suite struct AddSourceTests {
    static func refusal(_ body: () throws(VMMClientError) -> Void) -> (Errno, String)? {
        do {
            try body()
            return nil
        } catch {
            guard case .refused(_, let errno, let reason) = error else { return (.ioError, "\(error)") }
            return (errno, reason)
        }
    }

    @Test(arguments: ["io_uring", "poll"])
    func everyBadRequestIsRefusedByReason(backend: String) throws {
        let path = socketPath("add-source-\(backend)")
        let service = try startService(path, ["--devices", "2", "--backend", backend])
        let client = try VMMClient(socketPath: path, devices: [], client: "add-source test")
        let good = try Sys.seqpacketPair()
        let pipe = try Sys.pipe()
        // Unknown kind.
        var r = Self.refusal { () throws(VMMClientError) in
            try client.addSource(kind: 9, descriptor: good.remote.descriptor, devices: [50])
        }
        #expect(r?.0 == .invalidArgument && r?.1.contains("kind 9") == true, "\(String(describing: r))")
        // A device kind must be a SEQPACKET socket; a kernel kind an iommufd descriptor.
        r = Self.refusal { () throws(VMMClientError) in
            try client.addSource(kind: FAULTRING_SOURCE_DEVICE_FAULTS, descriptor: pipe.read.descriptor, devices: [50])
        }
        #expect(r?.0 == .badFileDescriptor && r?.1.contains("socket") == true, "\(String(describing: r))")
        r = Self.refusal { () throws(VMMClientError) in
            try client.addSource(kind: FAULTRING_SOURCE_FAULT_QUEUE, descriptor: good.remote.descriptor, devices: [50])
        }
        #expect(r?.0 == .badFileDescriptor && r?.1.contains("iommufd") == true, "\(String(describing: r))")
        // Device ids: one the service already has; one beyond the bound.
        r = Self.refusal { () throws(VMMClientError) in
            try client.addSource(kind: FAULTRING_SOURCE_DEVICE_FAULTS, descriptor: good.remote.descriptor, devices: [1])
        }
        #expect(r?.0 == .fileExists, "\(String(describing: r))")
        r = Self.refusal { () throws(VMMClientError) in
            try client.addSource(kind: FAULTRING_SOURCE_DEVICE_FAULTS, descriptor: good.remote.descriptor, devices: [70_000])
        }
        #expect(r?.0 == .invalidArgument, "\(String(describing: r))")
        // No descriptor, or two: refused before anything is read.
        let raw = try ControlSocket.connect(path: path)
        defer { try? raw.fd.close() }
        func send(_ message: ControlMessage) throws -> ControlMessage {
            try raw.send(message)
            for _ in 0..<100 {
                if case .message(let reply) = try raw.receive() { return reply }
                usleep(10_000)
            }
            throw ControlError(.timedOut, "no reply")
        }
        _ = try send(ControlMessage(id: 1, command: ControlCommand.hello.rawValue,
                                    payload: try JSONPayload.encode(Hello(client: "raw"))))
        let payload = AddSourceRequest(kind: FAULTRING_SOURCE_DEVICE_FAULTS, devices: [60]).bytes
        var reply = try send(ControlMessage(id: 2, command: ControlCommand.addSource.rawValue, payload: payload))
        #expect(reply.isError && reply.error == UInt32(Errno.badFileDescriptor.rawValue))
        reply = try send(ControlMessage(id: 3, command: ControlCommand.addSource.rawValue, payload: payload,
                                        fds: [good.remote.descriptor, good.remote.descriptor]))
        #expect(reply.isError && reply.error == UInt32(Errno.badFileDescriptor.rawValue))
        // After all that, a good one works, and its devices can be attached.
        try client.addSource(kind: FAULTRING_SOURCE_DEVICE_FAULTS, descriptor: good.remote.descriptor, devices: [60, 0])
        // Its event source may name them; another client's may not.
        let events = try Sys.seqpacketPair()
        try client.addSource(kind: FAULTRING_SOURCE_DEVICE_EVENTS, descriptor: events.remote.descriptor, devices: [60])
        let other = try VMMClient(socketPath: path, devices: [], client: "other")
        r = Self.refusal { () throws(VMMClientError) in
            try other.addSource(kind: FAULTRING_SOURCE_DEVICE_EVENTS, descriptor: events.remote.descriptor, devices: [60])
        }
        #expect(r?.0 == .fileExists, "\(String(describing: r))")
        let vmm = try VMMClient(socketPath: path, devices: [60, 0])
        #expect(vmm.consumer != nil)
        let stats = try serviceStats(path)
        #expect(stats.sources.count == 2)
        #expect(stats.protocolErrors >= 7)
        vmm.close()
        other.close()
        client.close()
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
    }
}
