import SystemPackage

/// A control-protocol failure: a malformed or refused message (with the
/// errno that goes into the error reply), or a failed socket call.
public struct ControlError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The errno sent to the peer (or the one a socket call failed with).
    public let errno: Errno
    /// What was wrong, naming the field or the call.
    public let reason: String

    /// An error carrying `errno` and a reason that names the field or the call.
    public init(_ errno: Errno, _ reason: String) {
        self.errno = errno
        self.reason = reason
    }

    /// The reason, then the errno in parentheses.
    public var description: String { "\(reason) (\(errno))" }
}
