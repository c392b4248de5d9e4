import Atomics
import FaultSys
import Glibc
import SystemPackage

/// One region of guest RAM on the VMM's side: a memfd the VMM creates,
/// sealed against resizing, mapped read-write here, and handed (its
/// descriptor) to the service, which reopens it read-only and reads it with
/// `pread` as `GuestMemory`.
/// The guest model and the tests write their page tables through it.
///
/// A bump allocator hands out zeroed 4 KiB pages for tables and data.
/// Not thread-safe.
public final class GuestRAM: @unchecked Sendable {
    /// The region's first guest-physical address.
    public let gpa: UInt64
    /// Its size in bytes.
    public let size: UInt64
    /// The memfd (sealed SHRINK | GROW | SEAL); share it with the service.
    public let fd: OwnedFD
    private let base: UnsafeMutableRawPointer
    private var next: UInt64

    /// Creates `size` bytes of guest RAM at `gpa` (both 4 KiB multiples).
    /// - Throws: `SystemCallError` from memfd_create, ftruncate, sealing or mmap.
    public init(gpa: UInt64, size: UInt64, name: String = "faultring-guest-ram") throws(SystemCallError) {
        precondition(gpa % 4096 == 0 && size % 4096 == 0 && size > 0, "guest RAM is whole 4 KiB pages")
        self.gpa = gpa
        self.size = size
        let fd = try Sys.memfd(name: name)
        try Sys.truncate(fd, to: Int(size), name: name)
        try Sys.sealSize(fd, name: name, final: true)
        base = try Sys.map(fd.descriptor, size: Int(size), writable: true)
        self.fd = fd
        next = gpa
    }

    deinit { munmap(base, Int(size)) }

    /// Whether `address` is in this region.
    public func contains(_ address: UInt64) -> Bool { address >= gpa && address - gpa < size }

    /// Stores `value` little-endian at `address` (8-byte aligned, inside),
    /// atomically: the service may be walking the table at that moment.
    public func store64(_ value: UInt64, at address: UInt64) {
        precondition(address & 7 == 0 && contains(address) && contains(address + 7), "store outside guest RAM")
        UnsafeAtomic<UInt64>(at: (base + Int(address - gpa)).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
            .store(value.littleEndian, ordering: .releasing)
    }

    /// The 8-byte word at `address`.
    public func load64(_ address: UInt64) -> UInt64 {
        precondition(address & 7 == 0 && contains(address) && contains(address + 7), "load outside guest RAM")
        return UInt64(littleEndian: UnsafeAtomic<UInt64>(
            at: (base + Int(address - gpa)).assumingMemoryBound(to: UInt64.AtomicRepresentation.self)).load(ordering: .relaxed))
    }

    /// A zeroed, 4 KiB-aligned page (`pages` of them, contiguous), or nil
    /// if the region is full.
    public func allocate(pages: Int = 1, alignment: UInt64 = 4096) -> UInt64? {
        let start = (next + alignment - 1) & ~(alignment - 1)
        let bytes = UInt64(pages) * 4096
        guard start >= next, start - gpa <= size, bytes <= size - (start - gpa) else { return nil }
        next = start + bytes
        memset(base + Int(start - gpa), 0, Int(bytes))
        return start
    }
}
