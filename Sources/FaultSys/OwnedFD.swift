import Glibc
import SystemPackage

/// The one owner of an open file descriptor: closes it when it goes away.
///
/// Noncopyable, so ownership is explicit: a function that takes an
/// `OwnedFD` by `consuming` takes the duty to close it, one that takes it
/// `borrowing` only uses it. A creation path that fails half-way therefore
/// releases what it already made just by returning: the owners it made go
/// out of scope. Hand the number to something that closes it itself (a
/// child's fd table, an SCM_RIGHTS message that is then dropped) through
/// `descriptor`; give up ownership entirely with `release()`.
public struct OwnedFD: ~Copyable, Sendable {
    /// The descriptor, valid while this owner lives.
    public let descriptor: FileDescriptor

    /// Takes ownership of `descriptor` (closed by this owner from now on).
    public init(adopting descriptor: FileDescriptor) {
        self.descriptor = descriptor
    }

    /// Takes ownership of the raw descriptor `raw`.
    public init(adopting raw: Int32) {
        self.init(adopting: FileDescriptor(rawValue: raw))
    }

    /// The raw number, for system calls.
    public var rawValue: Int32 { descriptor.rawValue }

    /// Gives up ownership without closing: the caller now owns the number.
    public consuming func release() -> FileDescriptor {
        let fd = descriptor
        discard self
        return fd
    }

    /// Closes now. `close(2)` always releases the number, even when it
    /// reports an error (Linux), so there is nothing to retry.
    public consuming func close() {
        Self.close(descriptor)
        discard self
    }

    deinit { Self.close(descriptor) }

    static func close(_ fd: FileDescriptor) {
        SyscallFaultPlan.current?.noteClosed(fd.rawValue)
        _ = Glibc.close(fd.rawValue)
    }
}
