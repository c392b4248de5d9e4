import FaultSys
import SystemPackage

/// A guest-memory region the service refuses, naming what was wrong.
public struct GuestMemoryError: Error, Sendable, CustomStringConvertible {
    /// What kind of refusal.
    public enum Code: Sendable, Hashable {
        /// GPA, size or file offset not a multiple of 4 KiB, or size 0.
        case misaligned
        /// The region overlaps one already registered.
        case overlap
        /// GPA + size wraps, or passes the 52-bit guest-physical space.
        case outOfRange
        /// More than `GuestMemory.maxRegions` regions, or one larger than
        /// `GuestMemory.maxRegionSize`.
        case tooLarge
        /// The descriptor is not a memfd sealed against shrinking (a file
        /// the VMM could truncate would turn the next read into SIGBUS).
        case notSealed
        /// offset + size runs past the end of the file.
        case beyondFile
        /// A system call failed.
        case system
    }

    /// The kind.
    public let code: Code
    /// The sentence: the field and the value.
    public let detail: String
    /// The underlying errno for `.system`.
    public let errno: Errno?

    /// An error of `code`.
    public init(_ code: Code, _ detail: String, errno: Errno? = nil) {
        self.code = code
        self.detail = detail
        self.errno = errno
    }

    /// The detail, with the errno if there is one.
    public var description: String { errno.map { "\(detail): \($0)" } ?? detail }
}
