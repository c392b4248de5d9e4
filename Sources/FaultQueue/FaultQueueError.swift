import FaultSys
import Glibc
import SystemPackage

/// An error at the edge of the fault queue: a failed system call, a region
/// that does not hold what it claims, or a queue in the wrong state.
///
/// `code` says which; `errno` carries the system's error where there was one;
/// `detail` names the call, field or value, so the message alone locates it.
public struct FaultQueueError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The class of error. A struct rather than an enum so codes can be added
    /// without breaking callers that switch on them.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The code's name as messages print it, e.g. `bad-region`.
        public let rawValue: String
        /// A code named `rawValue`; the static members are the ones this module throws.
        public init(rawValue: String) { self.rawValue = rawValue }
        /// A system call failed; `errno` says why, `detail` names the call.
        public static let systemCall = Code(rawValue: "system-call")
        /// Ring sizes that are not powers of two in range, or an ABI out of range.
        public static let badGeometry = Code(rawValue: "bad-geometry")
        /// A mapped region whose header is not a faultring header of this layout.
        public static let badRegion = Code(rawValue: "bad-region")
        /// The operation needs an ABI in force and none is.
        public static let notNegotiated = Code(rawValue: "not-negotiated")
        /// The producer did not put the requested ABI in force in time.
        public static let negotiationTimedOut = Code(rawValue: "negotiation-timed-out")
        /// The consumer already asked for a different ABI.
        public static let alreadyRequested = Code(rawValue: "already-requested")
        /// The other side published an index that cannot be right.
        public static let corruptIndex = Code(rawValue: "corrupt-index")
        /// The producer marked the queue closed.
        public static let closed = Code(rawValue: "closed")
        /// Prints the raw value.
        public var description: String { rawValue }
    }

    /// Which kind of error.
    public let code: Code
    /// The system's error, for `.systemCall`.
    public let errno: Errno?
    /// What failed: the call, field and values involved.
    public let detail: String

    /// An error of `code`, located by `detail`, with the system's `errno` if any.
    public init(_ code: Code, _ detail: String, errno: Errno? = nil) {
        self.code = code
        self.detail = detail
        self.errno = errno
    }

    /// A `.systemCall` error from a failed `Sys` wrapper.
    static func system(_ error: SystemCallError) -> FaultQueueError {
        FaultQueueError(.systemCall, error.call, errno: error.errno)
    }

    /// Runs `body`, turning a `SystemCallError` into `.systemCall`.
    static func wrapping<T: ~Copyable>(_ body: () throws(SystemCallError) -> T) throws(FaultQueueError) -> T {
        do throws(SystemCallError) {
            return try body()
        } catch {
            throw .system(error)
        }
    }

    /// A `.systemCall` error for `call`, capturing the current `errno`.
    static func system(_ call: String, _ errno: Errno = .lastError) -> FaultQueueError {
        FaultQueueError(.systemCall, call, errno: errno)
    }

    /// Prints `code: detail`, then `: errno` when there is one.
    public var description: String {
        if let errno { return "\(code): \(detail): \(errno)" }
        return "\(code): \(detail)"
    }
}

extension Errno {
    /// The calling thread's `errno` after a failed call.
    static var lastError: Errno { Errno(rawValue: Glibc.errno) }
}
