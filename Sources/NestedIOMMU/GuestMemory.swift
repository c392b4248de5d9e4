import Atomics
import CFaultRingSys
import FaultSys
import Glibc
import SystemPackage

/// Guest RAM as the VMM shares it with the service, the vhost-user way:
/// memfd regions, each placed at a guest-physical address (GPA) and mapped
/// **read-only** here. This table is stage 2: a GPA that no region backs is
/// a stage-2 miss, the host's fault, which never reaches the guest.
///
/// Every region is validated before it is mapped: 4 KiB alignment of GPA,
/// size and file offset; no overlap; no wrap; a memfd sealed against
/// shrinking (otherwise the VMM could truncate it under the service and
/// turn the next read into SIGBUS); the file long enough.
///
/// Reads are relaxed atomic 8-byte loads: the guest may rewrite its tables
/// at any time, and a torn entry must not be seen. Not thread-safe: one
/// owner (the service loop, or a test) adds and reads.
public final class GuestMemory: @unchecked Sendable {
    /// One mapped region.
    public struct Region: Sendable, Hashable {
        /// Its first guest-physical address.
        public let gpa: UInt64
        /// Its size in bytes.
        public let size: UInt64
    }

    /// At most this many regions per VM.
    public static let maxRegions = 64
    /// At most this many bytes per region (1 TiB).
    public static let maxRegionSize: UInt64 = 1 << 40
    /// Guest-physical addresses are below 2^52.
    public static let addressLimit: UInt64 = 1 << 52

    struct Mapping {
        let gpa: UInt64
        let size: UInt64
        let base: UnsafeMutableRawPointer
    }

    /// Sorted by GPA, disjoint.
    private var mappings: [Mapping] = []

    /// No regions: every GPA misses.
    public init() {}

    deinit {
        for m in mappings { munmap(m.base, Int(m.size)) }
    }

    /// The regions, in GPA order.
    public var regions: [Region] { mappings.map { Region(gpa: $0.gpa, size: $0.size) } }

    /// Validates and maps `size` bytes of the memfd `fd` from `offset`, at
    /// `gpa`. The descriptor may be closed afterwards: the mapping keeps the
    /// file.
    /// - Throws: `GuestMemoryError`, naming the field and value; nothing is
    ///   mapped then.
    public func add(fd: FileDescriptor, gpa: UInt64, size: UInt64, offset: UInt64 = 0) throws(GuestMemoryError) {
        let page: UInt64 = 4096
        guard size > 0, gpa % page == 0, size % page == 0, offset % page == 0 else {
            throw GuestMemoryError(.misaligned, "region gpa 0x\(String(gpa, radix: 16)) size 0x\(String(size, radix: 16)) "
                                   + "offset 0x\(String(offset, radix: 16)): each must be a non-zero multiple of 4096")
        }
        guard size <= Self.maxRegionSize, mappings.count < Self.maxRegions else {
            throw GuestMemoryError(.tooLarge, "region of 0x\(String(size, radix: 16)) bytes with \(mappings.count) "
                                   + "regions: at most \(Self.maxRegions) regions of 2^40 bytes")
        }
        let (end, wraps) = gpa.addingReportingOverflow(size)
        guard !wraps, end <= Self.addressLimit else {
            throw GuestMemoryError(.outOfRange, "region gpa 0x\(String(gpa, radix: 16)) + 0x\(String(size, radix: 16)) "
                                   + "passes the 52-bit guest-physical space")
        }
        if let other = mappings.first(where: { $0.gpa < end && gpa < $0.gpa + $0.size }) {
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
        let fileSize: Int
        do { fileSize = try Sys.fileSize(fd) } catch {
            throw GuestMemoryError(.system, "fstat of region fd \(fd.rawValue)", errno: error.errno)
        }
        guard offset <= UInt64(fileSize), size <= UInt64(fileSize) - offset else {
            throw GuestMemoryError(.beyondFile, "region offset 0x\(String(offset, radix: 16)) + size 0x\(String(size, radix: 16)) "
                                   + "runs past the file's \(fileSize) bytes")
        }
        let base: UnsafeMutableRawPointer
        do { base = try Sys.map(fd, size: Int(size), writable: false, offset: Int(offset)) } catch {
            throw GuestMemoryError(.system, "mapping region fd \(fd.rawValue)", errno: error.errno)
        }
        let at = mappings.firstIndex { $0.gpa > gpa } ?? mappings.count
        mappings.insert(Mapping(gpa: gpa, size: size, base: base), at: at)
    }

    /// Whether a region backs `gpa`.
    public func contains(_ gpa: UInt64) -> Bool { mapping(of: gpa) != nil }

    /// The 8-byte little-endian word at `gpa` (8-byte aligned), or nil if no
    /// region backs it (a stage-2 miss).
    public func load64(_ gpa: UInt64) -> UInt64? {
        guard gpa & 7 == 0, let m = mapping(of: gpa) else { return nil }
        let word = UnsafeAtomic<UInt64>(at: (m.base + Int(gpa - m.gpa)).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
        return UInt64(littleEndian: word.load(ordering: .relaxed))
    }

    private func mapping(of gpa: UInt64) -> Mapping? {
        // Few regions: a linear scan of a sorted array beats a tree here.
        for m in mappings where gpa >= m.gpa {
            if gpa - m.gpa < m.size { return m }
        }
        return nil
    }
}
