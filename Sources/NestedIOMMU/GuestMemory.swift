import CFaultRingSys
import FaultSys
import Glibc
import SystemPackage

/// Guest RAM as the VMM shares it with the service, the vhost-user way:
/// memfd regions, each placed at a guest-physical address (GPA). This table
/// is stage 2: a GPA that no region backs is a stage-2 miss, the host's
/// fault, which never reaches the guest.
///
/// Every region is validated before it is kept: 4 KiB alignment of GPA,
/// size and file offset; no overlap; no wrap; a memfd (tmpfs) sealed
/// against shrinking; the file long enough.
///
/// Reads are `pread` on the service's own read-only reopening of the memfd
/// (`/proc/self/fd`: a file description that cannot write), never a
/// mapping. A mapping would let a tenant spend the service's address space
/// (a terabyte of sparse memfd costs it nothing), and a read fault on a
/// hole would allocate a page charged to the service; `pread` of a hole
/// returns zeros and allocates nothing, and a memfd never blocks it. A
/// table entry is 8 aligned bytes, copied by the kernel from the page the
/// guest writes with single 8-byte stores. Not thread-safe: one owner (the
/// service loop, or a test) adds and reads.
public final class GuestMemory: @unchecked Sendable {
    /// One region.
    public struct Region: Sendable, Hashable {
        /// Its first guest-physical address.
        public let gpa: UInt64
        /// Its size in bytes.
        public let size: UInt64
    }

    /// At most this many regions per VM (each holds a descriptor).
    public static let maxRegions = 16
    /// At most this many bytes per region (1 TiB).
    public static let maxRegionSize: UInt64 = 1 << 40
    /// Guest-physical addresses are below 2^52.
    public static let addressLimit: UInt64 = 1 << 52

    final class Backing {
        let gpa: UInt64
        let size: UInt64
        let offset: UInt64
        let fd: OwnedFD

        init(gpa: UInt64, size: UInt64, offset: UInt64, fd: consuming OwnedFD) {
            self.gpa = gpa
            self.size = size
            self.offset = offset
            self.fd = fd
        }
    }

    /// Sorted by GPA, disjoint.
    private var backings: [Backing] = []

    /// No regions: every GPA misses.
    public init() {}

    /// The regions, in GPA order.
    public var regions: [Region] { backings.map { Region(gpa: $0.gpa, size: $0.size) } }

    /// Validates `size` bytes of the memfd `fd` from `offset`, at `gpa`, and
    /// keeps a duplicate of the descriptor; the caller's may be closed.
    /// - Throws: `GuestMemoryError`, naming the field and value; nothing is
    ///   kept then.
    public func add(fd: FileDescriptor, gpa: UInt64, size: UInt64, offset: UInt64 = 0) throws(GuestMemoryError) {
        let page: UInt64 = 4096
        guard size > 0, gpa % page == 0, size % page == 0, offset % page == 0 else {
            throw GuestMemoryError(.misaligned, "region gpa 0x\(String(gpa, radix: 16)) size 0x\(String(size, radix: 16)) "
                                   + "offset 0x\(String(offset, radix: 16)): each must be a non-zero multiple of 4096")
        }
        guard size <= Self.maxRegionSize, backings.count < Self.maxRegions else {
            throw GuestMemoryError(.tooLarge, "region of 0x\(String(size, radix: 16)) bytes with \(backings.count) "
                                   + "regions: at most \(Self.maxRegions) regions of 2^40 bytes")
        }
        let (end, wraps) = gpa.addingReportingOverflow(size)
        guard !wraps, end <= Self.addressLimit else {
            throw GuestMemoryError(.outOfRange, "region gpa 0x\(String(gpa, radix: 16)) + 0x\(String(size, radix: 16)) "
                                   + "passes the 52-bit guest-physical space")
        }
        if let other = backings.first(where: { $0.gpa < end && gpa < $0.gpa + $0.size }) {
            throw GuestMemoryError(.overlap, "region [0x\(String(gpa, radix: 16)), 0x\(String(end, radix: 16))) overlaps "
                                   + "[0x\(String(other.gpa, radix: 16)), 0x\(String(other.gpa + other.size, radix: 16)))")
        }
        let seals: Int32
        do { seals = try Sys.seals(fd) } catch {
            throw GuestMemoryError(.notSealed, "region fd \(fd.rawValue) is not a memfd", errno: error.errno)
        }
        guard seals & faultring_sys_seal_shrink() != 0 else {
            throw GuestMemoryError(.notSealed, "region fd \(fd.rawValue) has seals 0x\(String(seals, radix: 16)): "
                                   + "F_SEAL_SHRINK is required")
        }
        guard faultring_sys_is_tmpfs(fd.rawValue) == 1 else {
            // A hugetlbfs memfd can have holes punched under its seal, and its reads differ.
            throw GuestMemoryError(.notSealed, "region fd \(fd.rawValue) is not a tmpfs memfd")
        }
        let fileSize: Int
        do { fileSize = try Sys.fileSize(fd) } catch {
            throw GuestMemoryError(.system, "fstat of region fd \(fd.rawValue)", errno: error.errno)
        }
        guard offset <= UInt64(fileSize), size <= UInt64(fileSize) - offset else {
            throw GuestMemoryError(.beyondFile, "region offset 0x\(String(offset, radix: 16)) + size 0x\(String(size, radix: 16)) "
                                   + "runs past the file's \(fileSize) bytes")
        }
        // A read-only file description of its own, not a duplicate of the VMM's read-write one:
        // the kernel, not only this code, keeps the service from writing guest RAM.
        let own: OwnedFD
        do { own = try Sys.reopenReadOnly(fd) } catch {
            throw GuestMemoryError(.system, "reopening region fd \(fd.rawValue) read-only", errno: error.errno)
        }
        let at = backings.firstIndex { $0.gpa > gpa } ?? backings.count
        backings.insert(Backing(gpa: gpa, size: size, offset: offset, fd: own), at: at)
    }

    /// Whether a region backs `gpa`.
    public func contains(_ gpa: UInt64) -> Bool { backing(of: gpa) != nil }

    /// Whether one region backs all of `[gpa, gpa + size)`.
    public func contains(_ gpa: UInt64, size: UInt64) -> Bool {
        guard size > 0, let b = backing(of: gpa) else { return false }
        return size <= b.size - (gpa - b.gpa)
    }

    /// The 8-byte little-endian word at `gpa` (8-byte aligned), or nil if no
    /// region backs it (a stage-2 miss).
    public func load64(_ gpa: UInt64) -> UInt64? {
        guard gpa & 7 == 0, let b = backing(of: gpa) else { return nil }
        var word: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &word) { pread(b.fd.rawValue, $0.baseAddress, 8, off_t(b.offset + (gpa - b.gpa))) }
        return n == 8 ? UInt64(littleEndian: word) : nil
    }

    private func backing(of gpa: UInt64) -> Backing? {
        // Few regions: a linear scan of a sorted array.
        for b in backings where gpa >= b.gpa {
            if gpa - b.gpa < b.size { return b }
        }
        return nil
    }
}
