import Glibc
import SystemPackage

/// Fault injection for creation paths: makes the `n`-th call through `Sys`
/// fail, and records every descriptor `Sys` opened and `OwnedFD` closed while
/// the plan is in force, so a test can prove that a path failing at any
/// point releases everything it made.
///
/// Scoped to the current task (`$current.withValue(plan) { … }`), so tests
/// running in parallel do not see each other's plans. Test-only.
@_spi(Testing) public final class SyscallFaultPlan: @unchecked Sendable {
    /// The plan of the current task, if any.
    @TaskLocal public static var current: SyscallFaultPlan?

    /// The call to fail (1: the first), or nil to fail none and only record.
    public let failingCall: Int?
    /// The errno the failing call reports.
    public let errno: Errno
    /// Calls made so far.
    public private(set) var calls: [String] = []
    /// Descriptors opened by `Sys` under this plan.
    public private(set) var opened: [Int32] = []
    /// Descriptors closed by an `OwnedFD` under this plan.
    public private(set) var closed: [Int32] = []
    /// The call that was made to fail, once it has.
    public private(set) var failed: String?

    /// A plan that fails call number `failingCall` (nil: none) with `errno`.
    public init(failingCall: Int?, errno: Errno = .noMemory) {
        self.failingCall = failingCall
        self.errno = errno
    }

    /// Descriptors opened and never closed.
    public var leaked: [Int32] {
        var open = opened
        for fd in closed { if let i = open.firstIndex(of: fd) { open.remove(at: i) } }
        return open
    }

    func check(_ call: String) throws(SystemCallError) {
        calls.append(call)
        if calls.count == failingCall {
            failed = call
            throw SystemCallError(call, errno: errno)
        }
    }

    func noteOpened(_ fd: Int32) { opened.append(fd) }
    func noteClosed(_ fd: Int32) { closed.append(fd) }
}
