import CFaultRingSys
import Glibc
import SystemPackage

/// Thin typed wrappers over the system calls that create and configure the
/// service's descriptors and files. Each returns an `OwnedFD` for what it
/// opens and throws `SystemCallError` naming the call and its errno.
///
/// These are the creation paths, not the data path: each call consults
/// `SyscallFaultPlan.current`, so tests can fail any one of them.
public enum Sys {
    /// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`.
    public static func memfd(name: String) throws(SystemCallError) -> OwnedFD {
        try opening("memfd_create(\(name))") { Int(faultring_sys_memfd_create(name)) }
    }

    /// The width of the terminal on `fd`, or nil if it is not a terminal.
    public static func terminalColumns(_ fd: Int32) -> Int? {
        let columns = faultring_sys_terminal_columns(fd)
        return columns > 0 ? Int(columns) : nil
    }

    /// `prctl(PR_SET_PDEATHSIG, signal)`: this process gets `signal` when
    /// its parent exits (a helper that must not outlive its runner).
    public static func dieWithParent(signal: Int32) throws(SystemCallError) {
        try checked("prctl(PR_SET_PDEATHSIG)") { Int(faultring_sys_die_with_parent(signal)) }
    }

    /// A doorbell: a connected pair of non-blocking, close-on-exec AF_UNIX
    /// datagram sockets, `local` for the producer, `remote` for its
    /// consumer. Unlike a duplicated eventfd, each end is its own open file
    /// description: what a peer does to its end (clear O_NONBLOCK, fill it,
    /// drain it) cannot make a call on the other end block.
    public static func doorbellPair() throws(SystemCallError) -> SocketPair {
        try socketPair("socketpair(AF_UNIX, SOCK_DGRAM)") { faultring_sys_doorbell_pair($0) }
    }

    /// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`.
    public static func eventfd() throws(SystemCallError) -> OwnedFD {
        try opening("eventfd") { Int(faultring_sys_eventfd()) }
    }

    /// `open(path, flags | O_CLOEXEC, mode)`.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(SystemCallError) -> OwnedFD {
        try opening("open(\(path))") {
            let raw = Glibc.open(path, flags | O_CLOEXEC, mode)
            return raw >= 0 ? Int(raw) : -Int(Glibc.errno)
        }
    }

    /// A second, independent open file description of `fd` (through
    /// /proc/self/fd) with `flags`: e.g. the read-only copy of a region.
    public static func reopen(_ fd: FileDescriptor, _ flags: Int32) throws(SystemCallError) -> OwnedFD {
        try open("/proc/self/fd/\(fd.rawValue)", flags)
    }

    /// `fcntl(fd, F_DUPFD_CLOEXEC, lowest)`: a new number for the same file
    /// description (it shares file status flags such as O_NONBLOCK).
    public static func duplicate(_ fd: FileDescriptor, lowest: Int32 = 16) throws(SystemCallError) -> OwnedFD {
        try opening("fcntl(\(fd.rawValue), F_DUPFD_CLOEXEC)") {
            let raw = fcntl(fd.rawValue, F_DUPFD_CLOEXEC, lowest)
            return raw >= 0 ? Int(raw) : -Int(Glibc.errno)
        }
    }

    /// The file open on `fd`, opened again read-only (through
    /// `/proc/self/fd`): a new file description that cannot write, whatever
    /// mode the one passed in has. Close-on-exec.
    public static func reopenReadOnly(_ fd: FileDescriptor) throws(SystemCallError) -> OwnedFD {
        try opening("open(/proc/self/fd/\(fd.rawValue), O_RDONLY)") {
            let raw = Glibc.open("/proc/self/fd/\(fd.rawValue)", O_RDONLY | O_CLOEXEC)
            return raw >= 0 ? Int(raw) : -Int(Glibc.errno)
        }
    }

    /// A signalfd (non-blocking, close-on-exec) for `signals`, which are
    /// blocked in the calling thread from now on.
    public static func signalfd(_ signals: [Int32]) throws(SystemCallError) -> OwnedFD {
        try opening("signalfd") {
            Int(signals.withUnsafeBufferPointer { faultring_sys_signalfd($0.baseAddress, UInt32($0.count)) })
        }
    }

    /// `timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)`: arm it
    /// with `faultring_sys_timerfd_arm` (an absolute monotonic deadline).
    public static func timerfd() throws(SystemCallError) -> OwnedFD {
        try opening("timerfd_create") { Int(faultring_sys_timerfd()) }
    }

    /// `ftruncate(fd, size)`.
    public static func truncate(_ fd: borrowing OwnedFD, to size: Int, name: String) throws(SystemCallError) {
        try checked("ftruncate(\(name), \(size))") { Glibc.ftruncate(fd.rawValue, off_t(size)) == 0 ? 0 : -Int(Glibc.errno) }
    }

    /// Seals a memfd's size (F_SEAL_SHRINK | F_SEAL_GROW) and, if `final`,
    /// its seals (F_SEAL_SEAL); a region still to get `sealFutureWrite` is not final.
    public static func sealSize(_ fd: borrowing OwnedFD, name: String, final: Bool = true) throws(SystemCallError) {
        try checked("fcntl(\(name), F_ADD_SEALS)") { Int(faultring_sys_seal_size(fd.rawValue, final ? 1 : 0)) }
    }

    /// Adds `F_SEAL_FUTURE_WRITE | F_SEAL_SEAL` to a memfd: no new write or
    /// writable shared mapping through any descriptor (the caller's own
    /// writable mapping, made before, stays writable).
    public static func sealFutureWrite(_ fd: FileDescriptor, name: String) throws(SystemCallError) {
        try checked("fcntl(\(name), F_ADD_SEALS, F_SEAL_FUTURE_WRITE)") { Int(faultring_sys_seal_future_write(fd.rawValue)) }
    }

    /// `mkdir(path, mode)`.
    public static func makeDirectory(_ path: String, mode: mode_t) throws(SystemCallError) {
        try checked("mkdir(\(path))") { Glibc.mkdir(path, mode) == 0 ? 0 : -Int(Glibc.errno) }
    }

    /// `mkfifo(path, mode)`.
    public static func makeFIFO(_ path: String, mode: mode_t) throws(SystemCallError) {
        try checked("mkfifo(\(path))") { Glibc.mkfifo(path, mode) == 0 ? 0 : -Int(Glibc.errno) }
    }

    /// `mmap(nil, size, PROT_READ [| PROT_WRITE], MAP_SHARED, fd, offset)`.
    /// The caller unmaps (`munmap`) what it gets; `offset` is page aligned.
    public static func map(_ fd: FileDescriptor, size: Int, writable: Bool, offset: Int = 0)
        throws(SystemCallError) -> UnsafeMutableRawPointer
    {
        let call = "mmap(fd \(fd.rawValue), \(size) bytes at \(offset), \(writable ? "rw" : "ro"))"
        try SyscallFaultPlan.current?.check(call)
        let address = mmap(nil, size, writable ? (PROT_READ | PROT_WRITE) : PROT_READ, MAP_SHARED, fd.rawValue,
                           off_t(offset))
        guard let address, address != MAP_FAILED else { throw SystemCallError(call, errno: Errno(rawValue: Glibc.errno)) }
        return address
    }

    /// `fstat(fd).st_size`: the file's size in bytes.
    public static func fileSize(_ fd: FileDescriptor) throws(SystemCallError) -> Int {
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else { throw SystemCallError("fstat(fd \(fd.rawValue))", errno: Errno(rawValue: Glibc.errno)) }
        return Int(st.st_size)
    }

    /// `fcntl(fd, F_GET_SEALS)`: the memfd's seal bits; `EINVAL` if it is not a memfd.
    public static func seals(_ fd: FileDescriptor) throws(SystemCallError) -> Int32 {
        let rc = faultring_sys_get_seals(fd.rawValue)
        guard rc >= 0 else { throw SystemCallError("F_GET_SEALS(fd \(fd.rawValue))", errno: Errno(rawValue: -rc)) }
        return rc
    }

    /// The two ends of a pipe.
    @frozen public struct Pipe: ~Copyable, Sendable {
        /// The read end.
        public let read: OwnedFD
        /// The write end.
        public let write: OwnedFD
    }

    /// `pipe2(O_CLOEXEC)`.
    public static func pipe() throws(SystemCallError) -> Pipe {
        try SyscallFaultPlan.current?.check("pipe2")
        var ends: [Int32] = [-1, -1]
        let rc = faultring_sys_pipe(&ends)
        guard rc == 0 else { throw SystemCallError("pipe2", negated: Int(rc)) }
        SyscallFaultPlan.current?.noteOpened(ends[0])
        SyscallFaultPlan.current?.noteOpened(ends[1])
        return Pipe(read: OwnedFD(adopting: ends[0]), write: OwnedFD(adopting: ends[1]))
    }

    /// Two connected AF_UNIX SOCK_SEQPACKET sockets (close-on-exec): one
    /// end to keep, one to hand over.
    @frozen public struct SocketPair: ~Copyable, Sendable {
        /// The end to keep.
        public let local: OwnedFD
        /// The end to hand over (SCM_RIGHTS, or a child's fd table).
        public let remote: OwnedFD

        /// Hands the remote end to `body` (which passes it on), closes this
        /// process's copy of it at once (so the local end sees the peer's
        /// hang-up when the receiver closes), and returns the local end.
        /// If `body` throws, both ends are closed.
        public consuming func keepLocal<E: Error>(handingOver body: (FileDescriptor) throws(E) -> Void) throws(E) -> OwnedFD {
            let mine = local
            let theirs = remote
            try body(theirs.descriptor)
            theirs.close()
            return mine
        }
    }

    /// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)`.
    public static func seqpacketPair() throws(SystemCallError) -> SocketPair {
        try socketPair("socketpair(AF_UNIX, SOCK_SEQPACKET)") { ends in
            socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, ends) == 0 ? 0 : -Glibc.errno
        }
    }

    /// The one socket-pair path: `make` fills two descriptors (0, or -errno), which become a `SocketPair`.
    static func socketPair(_ call: String, _ make: (UnsafeMutablePointer<Int32>) -> Int32) throws(SystemCallError) -> SocketPair {
        try SyscallFaultPlan.current?.check(call)
        var ends: [Int32] = [-1, -1]
        let rc = ends.withUnsafeMutableBufferPointer { make($0.baseAddress!) }
        guard rc == 0 else { throw SystemCallError(call, negated: Int(rc)) }
        SyscallFaultPlan.current?.noteOpened(ends[0])
        SyscallFaultPlan.current?.noteOpened(ends[1])
        return SocketPair(local: OwnedFD(adopting: ends[0]), remote: OwnedFD(adopting: ends[1]))
    }

    /// Closes a descriptor whose ownership was released (`OwnedFD.release()`).
    public static func close(_ fd: FileDescriptor) { OwnedFD.close(fd) }

    /// The spin-wait hint (x86 PAUSE, arm64 YIELD): call it in every busy-wait loop.
    @inlinable public static func relax() { faultring_sys_cpu_relax() }

    /// CPU time (user + system) this process has used so far, seconds.
    public static var cpuSeconds: Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// CLOCK_MONOTONIC in nanoseconds.
    @inlinable public static var monotonicNS: UInt64 { faultring_sys_monotonic_ns() }

    static func checked(_ call: String, _ body: () -> Int) throws(SystemCallError) {
        try SyscallFaultPlan.current?.check(call)
        let rc = body()
        guard rc >= 0 else { throw SystemCallError(call, negated: rc) }
    }

    static func opening(_ call: String, _ body: () -> Int) throws(SystemCallError) -> OwnedFD {
        try SyscallFaultPlan.current?.check(call)
        let rc = body()
        guard rc >= 0 else { throw SystemCallError(call, negated: rc) }
        SyscallFaultPlan.current?.noteOpened(Int32(rc))
        return OwnedFD(adopting: Int32(rc))
    }
}
