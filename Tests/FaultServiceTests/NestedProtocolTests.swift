import CFaultRingABI
import FaultABI
import FaultControl
import FaultSys
import Foundation
import IOMMUFormats
import NestedIOMMU
import SystemPackage
import Testing
import VMMClient

/// The nested-IOMMU commands against a live service: every rule of
/// validation, binding, invalidation and revocation, each with its errno.
@Suite(.serialized) struct NestedProtocolTests {
    typealias Raw = ProtocolTests.RawClient

    /// A live service with 4 devices and a client that said HELLO and holds `devices`.
    struct Session {
        let service: Child
        var client: Raw
        let ram: GuestRAM
        let path: String

        init(_ name: String, devices: [UInt32] = [1, 2, 3, 4], extra: [String] = [], memory: Bool = true) throws {
            path = socketPath("nested-\(name)")
            service = try startService(path, ["--devices", "4", "--rate", "1"] + extra)
            client = try Raw(path)
            ram = try GuestRAM(gpa: 1 << 30, size: 1 << 20)
            client.send(ControlCommand.hello.rawValue, ProtocolTests.hello())
            #expect(try client.reply().0 == 0)
            if !devices.isEmpty {
                client.send(ControlCommand.attach.rawValue, AttachRequest(abi: 2, devices: devices).bytes)
                #expect(try client.reply().0 == 0)
            }
            if memory {
                #expect(try send(.addGuestMemory, GuestMemoryRequest(gpa: ram.gpa, size: ram.size).bytes,
                                 fds: [ram.fd.rawValue]) == 0)
            }
        }

        /// Sends a request and returns the errno of its reply (0: success).
        mutating func send(_ command: ControlCommand, _ payload: [UInt8], fds: [Int32] = []) throws -> Int32 {
            client.id += 1
            client.sendRaw(ControlMessage(id: client.id, command: command.rawValue, payload: payload).bytes, fds: fds)
            let (code, reason, reply) = try client.reply()
            #expect(reply.id == client.id, "\(reason)")
            return code
        }

        func stop() {
            service.signal(SIGTERM)
            _ = service.finish()
        }
    }

    static let EINVAL = Errno.invalidArgument.rawValue, EPERM = Errno.notPermitted.rawValue
    static let ENOENT = Errno.noSuchFileOrDirectory.rawValue, EBUSY = Errno.resourceBusy.rawValue
    static let EIO = Errno.ioError.rawValue, ENOSPC = Errno.noSpace.rawValue, EBADF = Errno.badFileDescriptor.rawValue

    /// A PASID entry whose first stage is a table in `ram`.
    static func pasidEntry(_ ram: GuestRAM) -> [UInt64] {
        var e = VTdPASIDEntry()
        e.present = true
        e.translationType = .nested
        e.firstStageRoot = ram.allocate()!
        return e.words
    }

    static func bind(pasid: UInt32, _ words: [UInt64], _ devices: [UInt32]) -> [UInt8] {
        BindRequest(format: .vtdPASID, pasid: pasid, data: words, devices: devices).bytes
    }

    static func deviceTLB(_ device: UInt32, pasid: UInt32) -> [UInt8] {
        InvalidateRequest(granularity: FAULTRING_INV_DEVICE_TLB, flags: FAULTRING_INV_FLAG_PASID, device: device,
                          pasid: pasid).bytes
    }

    @Test func aClientHoldingNoDeviceCanBindAndInvalidateNothing() throws {
        var s = try Session("nodevice", devices: [])
        defer { s.stop() }
        let entry = Self.pasidEntry(s.ram)
        #expect(try s.send(.bind, Self.bind(pasid: 1, entry, [1])) == Self.EPERM)
        #expect(try s.send(.invalidate, InvalidateRequest(granularity: FAULTRING_INV_GLOBAL).bytes) == Self.EPERM)
        #expect(try s.send(.bindMSI, BindMSIRequest(iova: 0xFEE0_0000, gpa: 0xFEE0_0000, size: 4096).bytes) == Self.EPERM)
        // Removing a doorbell cannot fail, even with nothing to remove it from.
        #expect(try s.send(.bindMSI, BindMSIRequest(unbind: true, iova: 0xFEE0_0000).bytes) == 0)
    }

    @Test func guestMemoryIsValidatedBeforeItIsMapped() throws {
        var s = try Session("memory", memory: false)
        defer { s.stop() }
        let ok = GuestMemoryRequest(gpa: s.ram.gpa, size: s.ram.size).bytes
        #expect(try s.send(.addGuestMemory, ok) == Self.EBADF)                           // no descriptor
        var badArgsz = ok
        badArgsz[0] = 33
        #expect(try s.send(.addGuestMemory, badArgsz, fds: [s.ram.fd.rawValue]) == Self.EINVAL)
        var flags = ok
        flags[4] = 1
        #expect(try s.send(.addGuestMemory, flags, fds: [s.ram.fd.rawValue]) == Self.EINVAL)
        #expect(try s.send(.addGuestMemory, GuestMemoryRequest(gpa: 0x1234, size: 4096).bytes,
                           fds: [s.ram.fd.rawValue]) == Self.EINVAL)                        // misaligned
        #expect(try s.send(.addGuestMemory, GuestMemoryRequest(gpa: 0, size: 2 << 20).bytes,
                           fds: [s.ram.fd.rawValue]) == Self.EINVAL)                        // past the file
        let unsealed = try Sys.memfd(name: "unsealed")
        try Sys.truncate(unsealed, to: 4096, name: "unsealed")
        #expect(try s.send(.addGuestMemory, GuestMemoryRequest(gpa: 0, size: 4096).bytes, fds: [unsealed.rawValue])
                == Self.EBADF)
        #expect(try s.send(.addGuestMemory, ok, fds: [s.ram.fd.rawValue]) == 0)
        #expect(try s.send(.addGuestMemory, GuestMemoryRequest(gpa: s.ram.gpa + 4096, size: 4096).bytes,
                           fds: [s.ram.fd.rawValue]) == Errno.fileExists.rawValue)           // overlap
        // At most 16 regions: 15 more fit, the 17th is refused.
        for k in 1...15 {
            #expect(try s.send(.addGuestMemory, GuestMemoryRequest(gpa: UInt64(k) << 32, size: 4096).bytes,
                               fds: [s.ram.fd.rawValue]) == 0)
        }
        #expect(try s.send(.addGuestMemory, GuestMemoryRequest(gpa: 16 << 32, size: 4096).bytes,
                           fds: [s.ram.fd.rawValue]) == Self.ENOSPC)
    }

    /// SMMUv3 over the socket: an STE the kernel refuses is EIO, as the
    /// kernel's; a CD table wider than the PASID quota is ENOSPC.
    @Test func smmuv3BindsAreCheckedAsTheKernelChecksThem() throws {
        var s = try Session("smmu", extra: ["--pasid-quota", "4"])
        defer { s.stop() }
        func ste(cdMax: Int, patch: (inout [UInt64]) -> Void = { _ in }) -> [UInt8] {
            var words = SMMUv3NestedSTE.words(config: .stage1, contextPointer: s.ram.gpa, s1CDMax: cdMax)
            patch(&words)
            return BindRequest(format: .smmuv3STE, pasid: 0, data: words, devices: [1]).bytes
        }
        #expect(try s.send(.bind, ste(cdMax: 2) { $0[0] |= 1 << 55 }) == Self.EIO)      // a reserved bit (58:52)
        #expect(try s.send(.bind, ste(cdMax: 3)) == Self.ENOSPC)                         // 8 CDs over a quota of 4
        #expect(try s.send(.bind, ste(cdMax: 2)) == 0)
        #expect(try s.send(.bind, ste(cdMax: 2)) == Self.EBUSY)                          // bound already
    }

    @Test func bindIsValidatedVFIOStyle() throws {
        var s = try Session("bindrules")
        defer { s.stop() }
        let entry = Self.pasidEntry(s.ram)
        let good = Self.bind(pasid: 7, entry, [1, 2])
        func patched(_ offset: Int, _ value: UInt32, in bytes: [UInt8] = good) -> [UInt8] {
            var b = bytes
            b.replaceSubrange(offset..<offset + 4, with: LittleEndian.bytes(value))
            return b
        }
        #expect(try s.send(.bind, patched(0, 200)) == Self.EINVAL)                       // argsz
        #expect(try s.send(.bind, patched(4, 1)) == Self.EINVAL)                         // flags
        #expect(try s.send(.bind, patched(20, 1)) == Self.EINVAL)                        // reserved
        #expect(try s.send(.bind, patched(8, 3)) == Self.EINVAL)                         // format
        #expect(try s.send(.bind, Self.bind(pasid: 0, entry, [1])) == Self.EINVAL)       // PASID 0
        #expect(try s.send(.bind, Self.bind(pasid: 1 << 20, entry, [1])) == Self.EINVAL)
        #expect(try s.send(.bind, Self.bind(pasid: 7, entry, [1, 1])) == Self.EINVAL)    // a device twice
        #expect(try s.send(.bind, Self.bind(pasid: 7, entry, [])) == Self.EINVAL)        // none
        #expect(try s.send(.bind, Self.bind(pasid: 7, entry, [1, 9])) == Self.EPERM)     // not held
        var reservedBit = entry
        reservedBit[0] |= 1 << 5
        #expect(try s.send(.bind, Self.bind(pasid: 7, reservedBit, [1])) == Self.EINVAL)
        var outside = VTdPASIDEntry()
        outside.present = true
        outside.firstStageRoot = 0x1000
        #expect(try s.send(.bind, Self.bind(pasid: 7, outside.words, [1])) == Self.EINVAL)
        let ste = BindRequest(format: .smmuv3STE, pasid: 0, data: SMMUv3NestedSTE.words(
            config: .stage1, contextPointer: s.ram.gpa, s1CDMax: 2), devices: [1]).bytes
        #expect(try s.send(.bind, patched(12, 5, in: ste)) == Self.EINVAL)              // a PASID with an STE
        #expect(try s.send(.bind, good) == 0)
        #expect(try s.send(.bind, good) == Self.EBUSY)
        #expect(try s.send(.bind, ste) == Self.EINVAL)                                  // this VM binds VT-d
    }

    /// A BIND that fails on the device at each index of its set in turn
    /// leaves no device bound; without a failure in reach, it binds them all.
    @Test(arguments: [0, 1, 2, 3])
    func bindRollsBackOnEveryDeviceWhenOneFails(failingAt: Int) throws {
        var s = try Session("rollback-\(failingAt)", extra: ["--fail-bind-at-device", "\(failingAt)"])
        defer { s.stop() }
        let entry = Self.pasidEntry(s.ram)
        #expect(try s.send(.bind, Self.bind(pasid: 3, entry, [1, 2, 3, 4])) == Self.EIO)
        for d: UInt32 in 1...4 {
            #expect(try s.send(.invalidate, Self.deviceTLB(d, pasid: 3)) == Self.ENOENT, "device \(d) kept a half bind")
        }
        guard failingAt > 0 else { return }
        let fits = (1...UInt32(failingAt)).map { $0 }
        #expect(try s.send(.bind, Self.bind(pasid: 3, entry, fits)) == 0)
        for d: UInt32 in 1...4 {
            #expect(try s.send(.invalidate, Self.deviceTLB(d, pasid: 3)) == (fits.contains(d) ? 0 : Self.ENOENT))
        }
    }

    @Test func unbindCannotFailOnceWellFormed() throws {
        var s = try Session("unbind")
        defer { s.stop() }
        let entry = Self.pasidEntry(s.ram)
        #expect(try s.send(.bind, Self.bind(pasid: 9, entry, [1, 2])) == 0)
        let unbind = BindRequest(format: .vtdPASID, pasid: 9, data: [], devices: [1, 2, 3, 99]).bytes
        #expect(try s.send(.unbind, unbind) == 0)
        #expect(try s.send(.unbind, unbind) == 0)                                        // twice
        #expect(try s.send(.invalidate, Self.deviceTLB(1, pasid: 9)) == Self.ENOENT)
        var malformed = unbind
        malformed[20] = 1                                                                // reserved
        #expect(try s.send(.unbind, malformed) == Self.EINVAL)
    }

    @Test func invalidationsAreCheckedForWhatTheyName() throws {
        var s = try Session("invalidate", devices: [1, 2])
        defer { s.stop() }
        #expect(try s.send(.invalidate, InvalidateRequest(granularity: FAULTRING_INV_GLOBAL).bytes) == Self.ENOENT)
        #expect(try s.send(.bind, Self.bind(pasid: 4, Self.pasidEntry(s.ram), [1])) == 0)
        let P = FAULTRING_INV_FLAG_PASID, R = FAULTRING_INV_FLAG_RANGE, L = FAULTRING_INV_FLAG_LEAF
        let cases: [(InvalidateRequest, Int32)] = [
            (InvalidateRequest(granularity: 5), Self.EINVAL),
            (InvalidateRequest(granularity: FAULTRING_INV_GLOBAL, flags: 1 << 7), Self.EINVAL),
            (InvalidateRequest(granularity: FAULTRING_INV_GLOBAL, flags: P, pasid: 4), Self.EINVAL),
            (InvalidateRequest(granularity: FAULTRING_INV_GLOBAL, device: 1), Self.EINVAL),
            (InvalidateRequest(granularity: FAULTRING_INV_PASID, pasid: 4), Self.EINVAL),            // no FLAG_PASID
            (InvalidateRequest(granularity: FAULTRING_INV_PASID, flags: P | L, pasid: 4), Self.EINVAL),
            (InvalidateRequest(granularity: FAULTRING_INV_RANGE, flags: P, pasid: 4), Self.EINVAL),  // no FLAG_RANGE
            (InvalidateRequest(granularity: FAULTRING_INV_RANGE, flags: P | R, pasid: 4, address: 0x1000, size: 0x2000),
             Self.EINVAL),                                                                          // misaligned
            (InvalidateRequest(granularity: FAULTRING_INV_RANGE, flags: P | R, pasid: 4, address: 0, size: 0x3000),
             Self.EINVAL),                                                                          // not a power of two
            (InvalidateRequest(granularity: FAULTRING_INV_PASID, flags: P, pasid: 5), Self.ENOENT),  // not bound
            (InvalidateRequest(granularity: FAULTRING_INV_DEVICE_TLB, device: 3), Self.EPERM),       // not held
            (InvalidateRequest(granularity: FAULTRING_INV_DEVICE_TLB, flags: P, device: 2, pasid: 4), Self.ENOENT),
            (InvalidateRequest(granularity: FAULTRING_INV_CONTEXT, flags: R, device: 1), Self.EINVAL),
            (InvalidateRequest(granularity: FAULTRING_INV_GLOBAL), 0),
            (InvalidateRequest(granularity: FAULTRING_INV_PASID, flags: P, pasid: 4), 0),
            (InvalidateRequest(granularity: FAULTRING_INV_RANGE, flags: P | R | L, pasid: 4, address: 0x20_0000,
                               size: 0x20_0000), 0),
            (InvalidateRequest(granularity: FAULTRING_INV_DEVICE_TLB, flags: P | R, device: 1, pasid: 4, address: 0,
                               size: 4096), 0),
            (InvalidateRequest(granularity: FAULTRING_INV_CONTEXT, device: 1), 0),
        ]
        for (request, errno) in cases {
            #expect(try s.send(.invalidate, request.bytes) == errno, "\(request)")
        }
        var argsz = InvalidateRequest(granularity: FAULTRING_INV_GLOBAL).bytes
        argsz[0] = 39
        #expect(try s.send(.invalidate, argsz) == Self.EINVAL)
    }

    @Test func msiDoorbellBindings() throws {
        var s = try Session("msi", devices: [1])
        defer { s.stop() }
        // Before any BIND the VM has no IOMMU to hold a doorbell: ENOENT; an unbind still succeeds.
        #expect(try s.send(.bindMSI, BindMSIRequest(iova: 0x800_0000, gpa: 0xFEE0_0000, size: 4096).bytes) == Self.ENOENT)
        #expect(try s.send(.bindMSI, BindMSIRequest(unbind: true, iova: 0x800_0000).bytes) == 0)
        #expect(try s.send(.bind, Self.bind(pasid: 1, Self.pasidEntry(s.ram), [1])) == 0)
        #expect(try s.send(.bindMSI, BindMSIRequest(iova: 0x800_0000, gpa: 0xFEE0_0000, size: 4096).bytes) == 0)
        #expect(try s.send(.bindMSI, BindMSIRequest(iova: 0x800_0000, gpa: 0xFEE0_1000, size: 4096).bytes) == Self.EBUSY)
        #expect(try s.send(.bindMSI, BindMSIRequest(iova: 0x900_0000, gpa: 0xFEE0_0000, size: 0x3000).bytes) == Self.EINVAL)
        #expect(try s.send(.bindMSI, BindMSIRequest(iova: 0x900_0800, gpa: 0xFEE0_0000, size: 4096).bytes) == Self.EINVAL)
        #expect(try s.send(.bindMSI, BindMSIRequest(unbind: true, iova: 0x800_0000, gpa: 1).bytes) == Self.EINVAL)
        // A doorbell at the very top of the address space: valid, and its overlap check with another
        // doorbell must not overflow (iova + size did, and trapped the service).
        #expect(try s.send(.bindMSI, BindMSIRequest(iova: 0x700_0000, gpa: 0xFEE0_0000, size: 4096).bytes) == 0)
        #expect(try s.send(.bindMSI, BindMSIRequest(iova: 0xFFFF_FFFF_FFFF_F000, gpa: 0, size: 4096).bytes) == 0)
        #expect(try s.send(.bindMSI, BindMSIRequest(iova: 0xFFFF_FFFF_FFF0_0000, gpa: 0, size: 1 << 20).bytes) == Self.EBUSY)
        for iova: UInt64 in [0x700_0000, 0xFFFF_FFFF_FFFF_F000] {
            #expect(try s.send(.bindMSI, BindMSIRequest(unbind: true, iova: iova).bytes) == 0)
        }
        #expect(try s.send(.bindMSI, BindMSIRequest(unbind: true, iova: 0x800_0000).bytes) == 0)
        #expect(try s.send(.bindMSI, BindMSIRequest(unbind: true, iova: 0x800_0000).bytes) == 0)   // cannot fail
        for i in 0..<UInt64(NestedDomain.maxMSIBindings) {
            #expect(try s.send(.bindMSI, BindMSIRequest(iova: 0x1000_0000 + i * 4096, gpa: 0xFEE0_0000, size: 4096).bytes) == 0)
        }
        #expect(try s.send(.bindMSI, BindMSIRequest(iova: 0x2000_0000, gpa: 0xFEE0_0000, size: 4096).bytes) == Self.ENOSPC)
    }

    /// DETACH revokes the rights that came from the device; another client
    /// can then take it, with nothing of the first VM's bindings.
    @Test func detachRevokesBindingsAndRights() throws {
        var s = try Session("revoke", devices: [1, 2])
        defer { s.stop() }
        let entry = Self.pasidEntry(s.ram)
        #expect(try s.send(.bind, Self.bind(pasid: 6, entry, [1, 2])) == 0)
        #expect(try s.send(.detach, ProtocolTests.u32(1, 1)) == 0)
        #expect(try s.send(.invalidate, Self.deviceTLB(1, pasid: 6)) == Self.EPERM)
        #expect(try s.send(.bind, Self.bind(pasid: 8, entry, [1])) == Self.EPERM)
        #expect(try s.send(.invalidate, Self.deviceTLB(2, pasid: 6)) == 0)             // device 2 keeps its bind
        var other = try Raw(s.path)
        other.send(ControlCommand.hello.rawValue, ProtocolTests.hello())
        #expect(try other.reply().0 == 0)
        other.send(ControlCommand.attach.rawValue, AttachRequest(abi: 2, devices: [1]).bytes)
        #expect(try other.reply().0 == 0)
        other.send(ControlCommand.invalidate.rawValue, Self.deviceTLB(1, pasid: 6))
        #expect(try other.reply().0 == Self.ENOENT)                                     // nothing bound in its VM
        #expect(try s.send(.detach, ProtocolTests.u32(0)) == 0)
        #expect(try s.send(.invalidate, InvalidateRequest(granularity: FAULTRING_INV_GLOBAL).bytes) == Self.EPERM)
    }

    /// A device that is removed (its fault source hangs up) revokes what came
    /// from it, as DETACH does: its holder's bindings and rights end, and the
    /// device coming back finds nothing of them.
    @Test func removingADeviceRevokesWhatCameFromIt() throws {
        var s = try Session("remove", devices: [1])
        defer { s.stop() }
        let source = try VMMClient(socketPath: s.path, devices: [], client: "device source")
        defer { source.close() }
        var pair = try Sys.seqpacketPair()
        try source.addSource(kind: FAULTRING_SOURCE_DEVICE_FAULTS, descriptor: pair.remote.descriptor, devices: [50])
        pair.remote.close()
        s.client.send(ControlCommand.attach.rawValue, AttachRequest(abi: 2, devices: [50]).bytes)
        #expect(try s.client.reply().0 == 0)
        let entry = Self.pasidEntry(s.ram)
        #expect(try s.send(.bind, Self.bind(pasid: 5, entry, [1, 50])) == 0)
        #expect(try s.send(.invalidate, Self.deviceTLB(50, pasid: 5)) == 0)
        pair.local.close()   // the device goes: its source hangs up
        _ = try eventually(s.path) { stats in !stats.devices.contains { $0.id == 50 } }
        #expect(try s.send(.invalidate, Self.deviceTLB(50, pasid: 5)) == Self.EPERM)   // the right went with it
        #expect(try s.send(.invalidate, Self.deviceTLB(1, pasid: 5)) == 0)             // device 1 keeps its bind
        let stats = try serviceStats(s.path)
        let me = try #require(stats.clients.first { $0.devices == [1] })
        #expect(me.nested?.revocations == 1, "\(String(describing: me.nested))")
        // The device comes back and is attached again: the old bind is gone, so binding PASID 5 works.
        pair = try Sys.seqpacketPair()
        try source.addSource(kind: FAULTRING_SOURCE_DEVICE_FAULTS, descriptor: pair.remote.descriptor, devices: [50])
        pair.remote.close()
        s.client.send(ControlCommand.attach.rawValue, AttachRequest(abi: 2, devices: [50]).bytes)
        #expect(try s.client.reply().0 == 0)
        #expect(try s.send(.bind, Self.bind(pasid: 5, entry, [50])) == 0)
        pair.local.close()
    }

    @Test func pasidQuotaPerClient() throws {
        var s = try Session("quota", extra: ["--pasid-quota", "2"])
        defer { s.stop() }
        let entry = Self.pasidEntry(s.ram)
        #expect(try s.send(.bind, Self.bind(pasid: 1, entry, [1])) == 0)
        #expect(try s.send(.bind, Self.bind(pasid: 2, entry, [1])) == 0)
        #expect(try s.send(.bind, Self.bind(pasid: 3, entry, [1])) == Self.ENOSPC)
        #expect(try s.send(.bind, Self.bind(pasid: 2, entry, [2])) == 0)                // PASID 2 again: within quota
    }
}
