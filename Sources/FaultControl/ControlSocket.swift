import CFaultRingABI
import CFaultRingSys
import Glibc
import SystemPackage

/// One end of a control connection: an AF_UNIX SOCK_SEQPACKET socket, so a
/// message is exactly one packet and never arrives in pieces.
///
/// A view of a descriptor, not its owner: whoever created or accepted it
/// closes it (the service when it drops a session, `VMMClient.close()`).
public struct ControlSocket: Sendable {
    /// The socket.
    public let fd: FileDescriptor

    /// A view of an already connected or listening SOCK_SEQPACKET socket.
    public init(fd: FileDescriptor) { self.fd = fd }

    /// What one `receive` produced.
    public enum Received: Sendable {
        /// A well-formed message (its descriptors are the caller's).
        case message(ControlMessage)
        /// A malformed message: answer with an error reply (its descriptors
        /// were already closed).
        case malformed(ControlMessage.ParseFailure)
        /// The peer closed the connection (or died).
        case closed
        /// Nothing to read now (non-blocking socket).
        case wouldBlock
    }

    /// Connects to a listening socket at `path`.
    public static func connect(path: String) throws(ControlError) -> ControlSocket {
        let raw = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard raw >= 0 else { throw ControlError(Errno(rawValue: errno), "socket(AF_UNIX, SOCK_SEQPACKET)") }
        var address = try unixAddress(path)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            let error = ControlError(Errno(rawValue: errno), "connect(\(path))")
            Glibc.close(raw)
            throw error
        }
        return ControlSocket(fd: FileDescriptor(rawValue: raw))
    }

    /// Creates, binds and listens on `path` (non-blocking), the socket file
    /// created with `mode` (not the umask's: who may connect is the
    /// caller's decision). An existing file at `path` is replaced only if it
    /// is a socket nothing listens on; any other file is refused (EEXIST).
    ///
    /// A listener that still takes connections is given `departing` to go
    /// away before the path counts as in use (EADDRINUSE). A service that
    /// has just exited can leave one behind for a moment: its io_uring held
    /// a reference to the listening socket, and the kernel drops the ring's
    /// references in a work item after the process is gone, so the socket
    /// keeps queueing connections nobody will accept. Found by the chaos
    /// storm, whose restart right after a SIGKILL then failed under load.
    public static func listen(path: String, backlog: Int32 = 16, mode: mode_t = 0o600,
                              departing: Duration = .seconds(2)) throws(ControlError) -> ControlSocket {
        let waitUntil = ContinuousClock.now + departing
        while let probe = try? connect(path: path) {
            try? probe.fd.close()
            guard ContinuousClock.now < waitUntil else {
                throw ControlError(.addressInUse, "a service already listens on \(path)")
            }
            usleep(20_000)
        }
        var existing = stat()
        if lstat(path, &existing) == 0 {
            guard existing.st_mode & S_IFMT == S_IFSOCK else {
                throw ControlError(.fileExists, "\(path) exists and is not a socket; not replacing it")
            }
            unlink(path)
        }
        let raw = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard raw >= 0 else { throw ControlError(Errno(rawValue: errno), "socket(AF_UNIX, SOCK_SEQPACKET)") }
        var address: sockaddr_un
        do {
            address = try unixAddress(path)
        } catch {
            Glibc.close(raw)
            throw error
        }
        // bind creates the file with mode & ~umask: the umask is set for that one call (the
        // process is single-threaded while it starts) so no other mode is ever visible.
        let previous = umask(~mode & 0o777)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        umask(previous)
        guard rc == 0, Glibc.listen(raw, backlog) == 0 else {
            let error = ControlError(Errno(rawValue: errno), "bind/listen(\(path))")
            Glibc.close(raw)
            throw error
        }
        return ControlSocket(fd: FileDescriptor(rawValue: raw))
    }

    static func unixAddress(_ path: String) throws(ControlError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw ControlError(.fileNameTooLong, "socket path \(path) is longer than sun_path")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        return address
    }

    /// Accepts one connection (non-blocking, close-on-exec), or nil if none is pending.
    public func accept() throws(ControlError) -> ControlSocket? {
        let raw = faultring_sys_accept(fd.rawValue)
        if raw < 0 {
            if -raw == EAGAIN || -raw == EWOULDBLOCK || -raw == EINTR { return nil }
            throw ControlError(Errno(rawValue: -raw), "accept4")
        }
        return ControlSocket(fd: FileDescriptor(rawValue: raw))
    }

    /// Sends a message and its descriptors in one packet.
    public func send(_ message: ControlMessage) throws(ControlError) {
        let bytes = message.bytes
        guard bytes.count <= ControlMessage.maxSize else {
            throw ControlError(.messageTooLong, "message of \(bytes.count) bytes exceeds \(ControlMessage.maxSize)")
        }
        let raw = message.fds.map(\.rawValue)
        let sent = bytes.withUnsafeBytes { buffer in
            raw.withUnsafeBufferPointer { fds in
                faultring_sys_send_fds(fd.rawValue, buffer.baseAddress, UInt(buffer.count), fds.baseAddress, UInt32(fds.count))
            }
        }
        guard sent >= 0 else { throw ControlError(Errno(rawValue: Int32(truncatingIfNeeded: -sent)), "sendmsg") }
        // SOCK_SEQPACKET sends a packet whole or not at all.
        guard sent == bytes.count else { throw ControlError(.ioError, "sendmsg sent \(sent) of \(bytes.count) bytes") }
    }

    /// Receives one message. Descriptors beyond `FAULTRING_MSG_FDS_MAX`, and
    /// those of a malformed message, are closed here.
    public func receive() throws(ControlError) -> Received {
        var buffer = [UInt8](repeating: 0, count: ControlMessage.maxSize)
        var fds = [Int32](repeating: -1, count: Int(FAULTRING_MSG_FDS_MAX))
        var count: UInt32 = 0
        var flags: Int32 = 0
        let n = buffer.withUnsafeMutableBytes { b in
            fds.withUnsafeMutableBufferPointer { f in
                faultring_sys_recv_fds(fd.rawValue, b.baseAddress, UInt(b.count), f.baseAddress, UInt32(f.count), &count, &flags)
            }
        }
        if n < 0 {
            let error = Int32(truncatingIfNeeded: -n)
            if error == EAGAIN || error == EWOULDBLOCK || error == EINTR { return .wouldBlock }
            if error == ECONNRESET { return .closed }
            throw ControlError(Errno(rawValue: error), "recvmsg")
        }
        let received = fds.prefix(Int(count)).map { FileDescriptor(rawValue: $0) }
        if n == 0 && received.isEmpty {
            // A SEQPACKET read of 0 is either the peer's end of stream or an empty packet: only
            // the former leaves the socket hung up. An empty packet is malformed (EINVAL), not a goodbye.
            let rdhup: Int16 = 0x2000  // POLLRDHUP (Linux; <poll.h> declares it only under _GNU_SOURCE)
            var pfd = pollfd(fd: fd.rawValue, events: Int16(POLLIN) | rdhup, revents: 0)
            let hungUp = poll(&pfd, 1, 0) == 1 && pfd.revents & (rdhup | Int16(POLLHUP)) != 0
            if hungUp { return .closed }
            return .malformed(ControlMessage.ParseFailure(id: 0, command: 0, error: ControlError(
                .invalidArgument, "an empty packet (0 bytes) is not a message; the header alone is 16")))
        }
        func refuse(_ failure: ControlMessage.ParseFailure) -> Received {
            for fd in received { try? fd.close() }
            return .malformed(failure)
        }
        if flags & faultring_sys_msg_ctrunc() != 0 {
            let header = buffer.withUnsafeBytes { $0.loadUnaligned(as: faultring_msg_header.self) }
            return refuse(ControlMessage.ParseFailure(id: header.id, command: header.command, error: ControlError(
                .badFileDescriptor, "more than \(FAULTRING_MSG_FDS_MAX) descriptors attached")))
        }
        if flags & faultring_sys_msg_trunc() != 0 || n > buffer.count {
            let header = buffer.withUnsafeBytes { $0.loadUnaligned(as: faultring_msg_header.self) }
            return refuse(ControlMessage.ParseFailure(id: header.id, command: header.command, error: ControlError(
                .messageTooLong, "message of \(n) bytes exceeds the \(ControlMessage.maxSize)-byte limit")))
        }
        do {
            return .message(try ControlMessage.parse(buffer[0..<n], fds: received))
        } catch {
            return refuse(error)
        }
    }

    /// The peer's process credentials (SO_PEERCRED).
    public func peerCredentials() throws(ControlError) -> (pid: UInt32, uid: UInt32, gid: UInt32) {
        var pid: UInt32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
        let rc = faultring_sys_peercred(fd.rawValue, &pid, &uid, &gid)
        guard rc == 0 else { throw ControlError(Errno(rawValue: -rc), "getsockopt(SO_PEERCRED)") }
        return (pid, uid, gid)
    }
}
