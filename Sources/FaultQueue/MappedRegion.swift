import FaultSys
import Glibc
import SystemPackage

/// A shared memory region mapped from a file descriptor, unmapped on deinit.
///
/// The region owns neither the fd nor its lifetime beyond the mapping: the
/// mapping stays valid after the fd is closed, as mmap(2) guarantees.
public final class MappedRegion: @unchecked Sendable {
    /// First byte of the mapping.
    public let base: UnsafeMutableRawPointer
    /// Bytes mapped.
    public let size: Int
    /// Whether the mapping is writable (the producer region is never writable
    /// to a consumer: it maps it from a read-only fd with PROT_READ).
    public let writable: Bool

    /// Maps `size` bytes of `fd` shared.
    /// - Throws: `.systemCall` with the errno of mmap(2) (`EACCES` when asking
    ///   for a writable mapping of a read-only fd).
    public init(fd: FileDescriptor, size: Int, writable: Bool) throws(FaultQueueError) {
        self.base = try FaultQueueError.wrapping { () throws(SystemCallError) in
            try Sys.map(fd, size: size, writable: writable)
        }
        self.size = size
        self.writable = writable
    }

    deinit { munmap(base, size) }

    /// The size of the file behind `fd` (what a peer handed us may be smaller
    /// than its header claims; map only what exists).
    public static func fileSize(_ fd: FileDescriptor) throws(FaultQueueError) -> Int {
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else { throw .system("fstat(fd \(fd.rawValue))") }
        return Int(info.st_size)
    }

    /// Creates an anonymous, sealed memory file of `size` zero bytes.
    ///
    /// Seals: shrink and grow, so a consumer holding the fd can never
    /// truncate the region under the service (which would turn the service's
    /// next read into SIGBUS); and, if `final`, seal, so nobody can add or
    /// change seals. A region that only its creator may write is not final:
    /// it gets `F_SEAL_FUTURE_WRITE | F_SEAL_SEAL` once its creator has
    /// mapped it writable (`Sys.sealFutureWrite`).
    /// - Throws: `.systemCall` naming the call; the memfd is closed again.
    public static func createSealedMemfd(name: String, size: Int, final: Bool = true) throws(FaultQueueError) -> OwnedFD {
        try FaultQueueError.wrapping { () throws(SystemCallError) in
            let fd = try Sys.memfd(name: name)
            try Sys.truncate(fd, to: size, name: name)
            try Sys.sealSize(fd, name: name, final: final)
            return fd
        }
    }
}
