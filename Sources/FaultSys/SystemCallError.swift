import SystemPackage

/// A system call that failed: which call (with the arguments that locate
/// it) and the `errno` it failed with.
///
/// Every wrapper in `Sys` throws this and nothing else, so a caller can wrap
/// it once into its own typed error (`FaultQueueError`, `ControlError`)
/// without losing the errno.
public struct SystemCallError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The call and what it was called on, e.g. `memfd_create(faultring-producer)`.
    public let call: String
    /// Why it failed.
    public let errno: Errno

    /// An error for `call` that failed with `errno`.
    public init(_ call: String, errno: Errno) {
        self.call = call
        self.errno = errno
    }

    /// An error for `call` from a `faultring_sys_*` result (`-errno`).
    public init(_ call: String, negated result: Int) {
        self.init(call, errno: Errno(rawValue: Int32(truncatingIfNeeded: -result)))
    }

    /// Prints the call, a colon, then the errno.
    public var description: String { "\(call): \(errno)" }
}
