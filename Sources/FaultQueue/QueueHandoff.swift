import CFaultRingABI
import Glibc
import SystemPackage

/// Starts a consumer process that inherits a queue's four descriptors at
/// fds 3, 4, 5, 6 (the `QueueFiles.all` order) — the simplest way to hand a
/// queue to a child; the service hands it to strangers with SCM_RIGHTS.
public struct QueueHandoff: Sendable {
    /// A spawned child.
    public struct Child: Sendable {
        /// Its process id.
        public let pid: pid_t
        /// The read end of a pipe connected to its stdout, if captured.
        public let stdout: FileDescriptor?

        /// Reads the child's stdout to end of file (if captured).
        public func readOutput() -> String {
            guard let stdout else { return "" }
            var data: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(stdout.rawValue, $0.baseAddress, $0.count) }
                if n > 0 {
                    data += chunk[0..<n]
                } else if n < 0 && Glibc.errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            try? stdout.close()
            return String(decoding: data, as: UTF8.self)
        }

        /// Waits for the child to exit.
        /// - Returns: its exit status, or 128 + signal if it was killed.
        public func wait() -> Int32 {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && Glibc.errno == EINTR {}
            let signal = status & 0x7F
            return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
        }
    }

    /// Spawns `executable` with `arguments`, the queue's descriptors at
    /// fds 3...6, stdin/stderr shared with us, and stdout captured if asked.
    /// - Throws: `.systemCall` if pipe or posix_spawn fails.
    public static func spawn(executable: String, arguments: [String], files: QueueFiles, captureStdout: Bool = false)
        throws(FaultQueueError) -> Child
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Sources are first lifted above the target range, so a dup2 onto
        // itself (which would keep FD_CLOEXEC set) cannot happen.
        var lifted: [CInt] = []
        defer { for fd in lifted { Glibc.close(fd) } }
        for (index, fd) in files.all.enumerated() {
            let high = fcntl(fd.rawValue, F_DUPFD_CLOEXEC, CInt(64))
            guard high >= 0 else { throw .system("fcntl(F_DUPFD_CLOEXEC)") }
            lifted.append(high)
            posix_spawn_file_actions_adddup2(&actions, high, CInt(3 + index))
        }
        var pipeFDs: [CInt] = [-1, -1]
        if captureStdout {
            guard pipe(&pipeFDs) == 0 else { throw .system("pipe") }
            // Close-on-exec for both ends in the parent; the child gets the
            // write end only through the dup2 onto fd 1, which clears it.
            _ = faultring_shim_set_cloexec(pipeFDs[0], 1)
            _ = faultring_shim_set_cloexec(pipeFDs[1], 1)
            posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        if captureStdout { Glibc.close(pipeFDs[1]) }
        guard rc == 0 else {
            if captureStdout { Glibc.close(pipeFDs[0]) }
            throw .system("posix_spawn(\(executable))", Errno(rawValue: rc))
        }
        return Child(pid: pid, stdout: captureStdout ? FileDescriptor(rawValue: pipeFDs[0]) : nil)
    }
}
