import FaultSys
import Glibc
import NestedIOMMU
import SystemPackage
import Testing

/// How the service holds guest RAM: a read-only file description of its
/// own, so the kernel, not only the walker, keeps it from writing.
@Suite struct GuestMemoryTests {
    @Test func theServicesDescriptionOfGuestRAMCannotWrite() throws {
        let ram = try GuestRAM(gpa: 1 << 30, size: 1 << 20)
        let copy = try Sys.reopenReadOnly(ram.fd.descriptor)
        var byte: UInt8 = 0x5A
        // The VMM's own description writes; the reopened one is refused by the kernel.
        #expect(pwrite(ram.fd.descriptor.rawValue, &byte, 1, 0) == 1)
        #expect(pwrite(copy.descriptor.rawValue, &byte, 1, 0) == -1 && errno == EBADF)
        // It reads what the VMM wrote.
        var back: UInt8 = 0
        #expect(pread(copy.descriptor.rawValue, &back, 1, 0) == 1 && back == 0x5A)
        // And a region added to GuestMemory reads through such a description.
        let memory = GuestMemory()
        try memory.add(fd: ram.fd.descriptor, gpa: ram.gpa, size: ram.size)
        #expect(memory.contains(ram.gpa) && memory.contains(ram.gpa + ram.size - 1) && !memory.contains(ram.gpa + ram.size))
    }
}
