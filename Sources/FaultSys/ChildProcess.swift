import CFaultRingSys
import Glibc
import SystemPackage

/// A child process: spawned with chosen descriptors at chosen numbers, its
/// output captured or not, reaped exactly once.
///
/// The one way this project starts a process (a queue's consumer inheriting
/// fds 3…6, the service and consumer of a replay, test peers). If the owner
/// lets go of a child that is still running, `deinit` kills it with SIGKILL
/// and reaps it, so no test or command leaves a stray process behind.
public final class ChildProcess {
    /// What a child's stdout or stderr is connected to.
    public enum Output: Sendable {
        /// The parent's own stream.
        case inherit
        /// /dev/null.
        case discard
        /// A pipe the parent reads with `readOutput()` / `readErrors()`.
        case capture
    }

    /// The child's process id.
    public let pid: pid_t
    var stdoutPipe: OwnedFD?
    var stderrPipe: OwnedFD?
    var status: Int32?

    init(pid: pid_t, stdout: consuming OwnedFD?, stderr: consuming OwnedFD?) {
        self.pid = pid
        stdoutPipe = stdout
        stderrPipe = stderr
    }

    /// Starts `executable` with `arguments` and the parent's environment.
    ///
    /// `descriptors[i]` becomes the child's fd `firstDescriptor + i` (with
    /// close-on-exec cleared); every other descriptor of the parent that is
    /// close-on-exec stays behind. The parent keeps its own copies.
    /// - Throws: `SystemCallError` for pipe, fcntl or posix_spawn.
    public static func spawn(
        _ executable: String, _ arguments: [String], descriptors: [FileDescriptor] = [], firstDescriptor: Int32 = 3,
        stdout: Output = .inherit, stderr: Output = .inherit
    ) throws(SystemCallError) -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Sources are first lifted above the target range, so a dup2 onto
        // itself (which would keep FD_CLOEXEC set) cannot happen. The lifted
        // copies are owned here and closed on every path out.
        var lifted: [FileDescriptor] = []
        defer { for fd in lifted { Sys.close(fd) } }
        for (index, fd) in descriptors.enumerated() {
            let high = try Sys.duplicate(fd, lowest: firstDescriptor + Int32(descriptors.count) + 64)
            posix_spawn_file_actions_adddup2(&actions, high.rawValue, firstDescriptor + Int32(index))
            lifted.append(high.release())
        }
        func connect(_ output: Output, to target: Int32) throws(SystemCallError) -> OwnedFD? {
            switch output {
            case .inherit:
                return nil
            case .discard:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
                return nil
            case .capture:
                let ends = try Sys.pipe()
                // The write end reaches the child only through the dup2, which
                // clears close-on-exec there; the parent's copy closes below.
                posix_spawn_file_actions_adddup2(&actions, ends.write.rawValue, target)
                lifted.append(ends.write.release())
                return ends.read
            }
        }
        let out = try connect(stdout, to: 1)
        let err = try connect(stderr, to: 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        // The child starts with no signal blocked and every signal at its
        // default action, whatever this process (a test runner, a service
        // with a signalfd) blocks or ignores: SIGTERM must stop a child.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        var all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else { throw SystemCallError("posix_spawn(\(executable))", errno: Errno(rawValue: rc)) }
        return ChildProcess(pid: pid, stdout: out, stderr: err)
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            _ = wait()
        }
    }

    /// Sends `signal` to the child (nothing once it has been reaped).
    public func signal(_ signal: Int32) {
        if status == nil { kill(pid, signal) }
    }

    /// Whether the child has not exited yet (reaps it if it has).
    public var isRunning: Bool {
        guard status == nil else { return false }
        var raw: Int32 = 0
        let rc = waitpid(pid, &raw, WNOHANG)
        if rc == pid { status = Self.decode(raw) }
        return status == nil
    }

    /// Waits for the child to exit.
    /// - Returns: its exit status, or 128 + the signal that killed it.
    @discardableResult
    public func wait() -> Int32 {
        if let status { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 {
            guard Glibc.errno == EINTR else { return -1 }
        }
        let decoded = Self.decode(raw)
        status = decoded
        return decoded
    }

    /// Reads the captured stdout to end of file ("" if not captured).
    public func readOutput() -> String { Self.drain(&stdoutPipe) }

    /// Reads the captured stderr to end of file ("" if not captured).
    public func readErrors() -> String { Self.drain(&stderrPipe) }

    /// Reads what the captured stdout holds now, without blocking: the bytes
    /// (possibly none), or nil once the child has closed it and all is read.
    public func readAvailableOutput() -> [UInt8]? { Self.readAvailable(&stdoutPipe) }

    /// Reads what the captured stderr holds now, without blocking (as `readAvailableOutput`).
    public func readAvailableErrors() -> [UInt8]? { Self.readAvailable(&stderrPipe) }

    static func readAvailable(_ pipe: inout OwnedFD?) -> [UInt8]? {
        guard let raw = pipe?.rawValue else { return nil }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            var pfd = pollfd(fd: raw, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 0) > 0 else { return data }  // nothing more now
            let n = chunk.withUnsafeMutableBytes { Glibc.read(raw, $0.baseAddress, $0.count) }
            if n > 0 {
                data += chunk[0..<n]
            } else if n < 0 && (Glibc.errno == EINTR || Glibc.errno == EAGAIN) {
                continue
            } else {
                _ = pipe.take()  // end of file (or a broken pipe): closed here
                return data.isEmpty ? nil : data
            }
        }
    }

    static func drain(_ pipe: inout OwnedFD?) -> String {
        guard let fd = pipe.take() else { return "" }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd.rawValue, $0.baseAddress, $0.count) }
            if n > 0 {
                data += chunk[0..<n]
            } else if n < 0 && Glibc.errno == EINTR {
                continue
            } else {
                break
            }
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func decode(_ raw: Int32) -> Int32 {
        let signal = raw & 0x7F
        return signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
    }
}
