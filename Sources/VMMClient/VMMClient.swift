import CFaultRingABI
import CFaultRingSys
import FaultABI
import FaultControl
import FaultQueue
import Foundation
import Glibc
import SystemPackage

/// What a VMM links to consume faults from a faultring service: connect,
/// say hello, attach devices (receiving the queue's descriptors), map and
/// negotiate, then consume records in batches without copying and answer
/// page requests.
///
/// Ownership: one thread drives a client. `close()` (or deinit) says BYE;
/// the service answers INVALID whatever this client left unanswered.
public final class VMMClient {
    /// What the service offered in its HELLO reply.
    public let capabilities: Capabilities
    /// The socket path, for `reconnect`.
    public let socketPath: String
    /// The record ABI in force on the queue.
    public private(set) var abi: ABIVersion
    /// Devices attached through this connection.
    public private(set) var devices: [UInt32]
    /// The queue (nil until the first successful attach).
    public private(set) var consumer: FaultConsumer?
    let socket: ControlSocket
    var nextID: UInt16 = 1
    var responses: [PageResponse] = []
    var closed = false
    /// Records `consume` could not decode (skipped, and counted here).
    public private(set) var undecodableRecords: UInt64 = 0
    /// Why the first undecodable record could not be decoded.
    public private(set) var firstDecodeError: RecordDecodeError?

    /// Connects to the service at `socketPath`, says hello, attaches
    /// `devices` (all or nothing) and negotiates `abi` on the new queue.
    ///
    /// The service must run as a uid in `trustedServiceUIDs` (default: this
    /// process's uid and root), read with SO_PEERCRED before anything is
    /// sent: a VMM that reaches the wrong socket does not hand its devices
    /// to another user's process.
    public init(socketPath: String, devices: [UInt32], abi: ABIVersion = .v2, client: String = "faultring-vmmclient",
                trustedServiceUIDs: Set<UInt32>? = nil)
        throws(VMMClientError)
    {
        self.socketPath = socketPath
        self.abi = abi
        self.devices = []
        do {
            socket = try ControlSocket.connect(path: socketPath)
        } catch {
            throw .connection(error)
        }
        // Until `capabilities` is set a throw skips deinit: close here.
        let connected = socket
        do throws(VMMClientError) {
            let trusted = trustedServiceUIDs ?? [getuid(), 0]
            let peer: (pid: UInt32, uid: UInt32, gid: UInt32)
            do {
                peer = try connected.peerCredentials()
            } catch {
                throw .connection(error)
            }
            guard trusted.contains(peer.uid) else {
                throw .protocolViolation("the service on \(socketPath) runs as uid \(peer.uid), not one of \(trusted.sorted())")
            }
            let payload: [UInt8]
            do {
                payload = try JSONPayload.encode(Hello(client: client))
            } catch {
                throw .connection(error)
            }
            let hello = try Self.request(connected, id: 0, .hello, payload)
            do {
                capabilities = try JSONPayload.decode(Capabilities.self, hello.payload)
            } catch {
                throw .protocolViolation("HELLO reply: \(error.reason)")
            }
        } catch {
            try? connected.fd.close()
            throw error
        }
        if !devices.isEmpty { try attach(devices) }
    }

    deinit {
        if !closed { close() }
    }

    /// Sends one request and waits for its reply.
    static func request(_ socket: ControlSocket, id: UInt16, _ command: ControlCommand, _ payload: [UInt8] = [],
                        flags: UInt32 = 0, fds: [FileDescriptor] = [],
                        timeoutMilliseconds: Int32 = -1) throws(VMMClientError) -> ControlMessage {
        do {
            try socket.send(ControlMessage(id: id, command: command.rawValue, flags: flags, payload: payload, fds: fds))
            while true {
                switch try socket.receive() {
                case .message(let reply) where reply.isReply && reply.id == id:
                    if reply.isError {
                        for fd in reply.fds { try? fd.close() }
                        throw VMMClientError.refused(command: "\(command)", errno: Errno(rawValue: Int32(bitPattern: reply.error)),
                                                     reason: String(decoding: reply.payload, as: UTF8.self))
                    }
                    return reply
                case .message(let other):
                    for fd in other.fds { try? fd.close() }  // not ours: an answer to an earlier request
                case .malformed(let failure):
                    throw VMMClientError.protocolViolation("malformed reply: \(failure.error)")
                case .closed:
                    throw VMMClientError.closed
                case .wouldBlock:
                    guard timeoutMilliseconds >= 0 else { continue }
                    var pfd = pollfd(fd: socket.fd.rawValue, events: Int16(POLLIN), revents: 0)
                    if poll(&pfd, 1, timeoutMilliseconds) == 0 {
                        throw VMMClientError.connection(ControlError(
                            .timedOut, "no reply to \(command) within \(timeoutMilliseconds) ms"))
                    }
                }
            }
        } catch let error as VMMClientError {
            throw error
        } catch let error as ControlError {
            throw .connection(error)
        } catch {
            throw .protocolViolation("\(error)")
        }
    }

    func request(_ command: ControlCommand, _ payload: [UInt8] = [], flags: UInt32 = 0, fds: [FileDescriptor] = [])
        throws(VMMClientError) -> ControlMessage
    {
        nextID &+= 1
        return try Self.request(socket, id: nextID, command, payload, flags: flags, fds: fds,
                                timeoutMilliseconds: replyTimeoutMilliseconds)
    }

    /// Hands the service a fault source (ADD_SOURCE): an iommufd fault queue
    /// or vEVENTQ fd this VMM allocated, or a device socket, serving
    /// `devices` (`FAULTRING_SOURCE_*` says which `kind`). The service reads
    /// its own duplicate from then on; the caller still owns `descriptor`.
    /// The source lives until this connection ends.
    /// - Returns: the service's id for the source.
    /// - Throws: `.refused` with EEXIST (a device is served already), EBADF
    ///   (`descriptor` is not of `kind`), EINVAL (bad kind or devices).
    @discardableResult
    public func addSource(kind: UInt32, descriptor: FileDescriptor, devices: [UInt32]) throws(VMMClientError) -> UInt32 {
        let reply = try request(.addSource, AddSourceRequest(kind: kind, devices: devices).bytes, fds: [descriptor])
        do {
            return try AddSourceReply(payload: reply.payload).sourceID
        } catch {
            throw .protocolViolation(error.reason)
        }
    }

    /// Attaches more devices; the first attach maps the queue and negotiates.
    public func attach(_ more: [UInt32]) throws(VMMClientError) {
        let reply = try request(.attach, AttachRequest(abi: abi.rawValue, devices: more).bytes)
        let payload: AttachReply
        do {
            payload = try AttachReply(payload: reply.payload)
        } catch {
            throw .protocolViolation(error.reason)
        }
        if payload.queueCreated {
            guard reply.fds.count == 4, consumer == nil else {
                for fd in reply.fds { try? fd.close() }
                throw .protocolViolation("ATTACH reply created a queue with \(reply.fds.count) descriptors, 4 expected")
            }
            if let problem = Self.checkQueueDescriptors(reply.fds) {
                for fd in reply.fds { try? fd.close() }
                throw .protocolViolation("ATTACH reply: \(problem)")
            }
            let files = QueueFiles(adopting: reply.fds[0], consumerRegion: reply.fds[1],
                                   consumerDoorbell: reply.fds[2], producerDoorbell: reply.fds[3])
            do {
                let queue = try FaultConsumer(files: files)
                try queue.negotiate(abi, timeoutMilliseconds: 5000)
                consumer = queue
            } catch {
                throw .queue(error)
            }
        }
        devices += more
    }

    /// What is wrong with a service queue's four descriptors, or nil: the
    /// regions must be memfds sealed against shrinking, growing and new
    /// seals, the producer region also against writes and opened read-only
    /// (so what this VMM reads cannot change size under it, and it cannot
    /// write what it must only read); the doorbells must be sockets (each
    /// side its own end).
    static func checkQueueDescriptors(_ fds: [FileDescriptor]) -> String? {
        let sizeSeals = faultring_sys_seal_shrink() | faultring_sys_seal_grow() | faultring_sys_seal_seal()
        for (i, name) in [(0, "producer region"), (1, "consumer region")] {
            let seals = faultring_sys_get_seals(fds[i].rawValue)
            guard seals >= 0 else { return "the \(name) is not a memfd (F_GET_SEALS: \(Errno(rawValue: -seals)))" }
            guard seals & sizeSeals == sizeSeals else {
                return "the \(name) is not sealed against shrinking, growing and new seals (seals 0x\(String(seals, radix: 16)))"
            }
        }
        let producerSeals = faultring_sys_get_seals(fds[0].rawValue)
        guard producerSeals & faultring_sys_seal_future_write_bit() != 0 else {
            return "the producer region is not sealed against writes (seals 0x\(String(producerSeals, radix: 16)))"
        }
        guard fcntl(fds[0].rawValue, F_GETFL) & O_ACCMODE == O_RDONLY else { return "the producer region is not opened read-only" }
        for (i, name) in [(2, "consumer doorbell"), (3, "producer doorbell")] {
            var info = stat()
            guard fstat(fds[i].rawValue, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { return "the \(name) is not a socket" }
        }
        return nil
    }

    /// Detaches devices (all of them if empty). Cannot fail on the service
    /// side: their outstanding groups are answered INVALID.
    public func detach(_ which: [UInt32] = []) throws(VMMClientError) {
        _ = try request(.detach, DetachRequest(devices: which).bytes)
        devices = which.isEmpty ? [] : devices.filter { !which.contains($0) }
    }

    /// How long a request waits for its reply, ms (-1: for ever). A reply
    /// that does not come in time throws `.connection` with `ETIMEDOUT`, so
    /// an observer of a wedged service (a storm runner) is not wedged too.
    public var replyTimeoutMilliseconds: Int32 = -1

    /// The service's statistics: JSON, or Prometheus text.
    public func stats(prometheus: Bool = false) throws(VMMClientError) -> String {
        let reply = try request(.stats, flags: prometheus ? FAULTRING_MSG_TEXT : 0)
        return String(decoding: reply.payload, as: UTF8.self)
    }

    /// Says BYE and closes the connection (the queue mapping stays until
    /// the client is released).
    public func close() {
        guard !closed else { return }
        closed = true
        _ = try? request(.bye)
        try? socket.fd.close()
    }

    /// Responses in the ring the service has not read yet.
    public var responsesUnread: Int { consumer?.responsesUnread ?? 0 }

    /// Whether the service marked the queue closed (it stopped or restarted).
    /// A service that was killed never writes that mark: see `serviceHungUp`.
    public var serviceGone: Bool { consumer?.isClosed ?? true }

    /// Whether the service's end of the control connection has gone (the
    /// process died, SIGKILL included): a poll of the socket that never
    /// waits, so a caller asks it now and then (a system call), not per record.
    public var serviceHungUp: Bool {
        guard !closed else { return true }
        let rdhup: Int16 = 0x2000  // POLLRDHUP (Linux; <poll.h> declares it only under _GNU_SOURCE)
        var pfd = pollfd(fd: socket.fd.rawValue, events: rdhup, revents: 0)
        return poll(&pfd, 1, 0) == 1 && pfd.revents & (rdhup | Int16(POLLHUP) | Int16(POLLERR)) != 0
    }

    /// Waits for records: spins, then sleeps on the doorbell (see
    /// `FaultConsumer.waitForRecords`). False on timeout or when the
    /// service is gone.
    public func wait(spins: Int = 2000, timeoutMilliseconds: Int32) -> Bool {
        consumer?.waitForRecords(spins: spins, timeoutMilliseconds: timeoutMilliseconds) ?? false
    }

    /// Consumes up to `max` records in place: `body` sees each decoded
    /// record and returns the response to send, if any (typically for a
    /// LAST_PAGE page request). Responses go out in one batch; any that do
    /// not fit in the response ring are kept and sent by the next call.
    /// - Returns: records consumed.
    @discardableResult
    public func consume(max: Int = 256, _ body: (DecodedRecord) -> PageResponse?) throws(VMMClientError) -> Int {
        guard let consumer else { return 0 }
        let batch: RecordBatch
        do {
            batch = try consumer.peek(max: max)
        } catch {
            throw .queue(error)
        }
        for i in batch.indices {
            let record: DecodedRecord
            do {
                record = try batch.decode(i)
            } catch {
                // Counted, never silently skipped: a record the service wrote
                // that this client cannot read is a bug on one side.
                undecodableRecords += 1
                if firstDecodeError == nil { firstDecodeError = error }
                continue
            }
            if let response = body(record) { responses.append(response) }
        }
        consumer.release(batch.count)
        flush()
        return batch.count
    }

    /// Queues a response to go out with the next `flush` (or `consume`).
    public func queueResponse(_ response: PageResponse) { responses.append(response) }

    /// Sends responses held back by a full response ring; returns how many remain.
    @discardableResult
    public func flush() -> Int {
        guard let consumer, !responses.isEmpty else { return responses.count }
        let written = consumer.respond(batch: responses)
        responses.removeFirst(written)
        return responses.count
    }

    /// A new client for the same path, devices and ABI, retrying while the
    /// service restarts (`attempts` × `delayMilliseconds`).
    public func reconnect(attempts: Int = 50, delayMilliseconds: UInt32 = 100) throws(VMMClientError) -> VMMClient {
        close()
        var last = VMMClientError.closed
        for _ in 0..<attempts {
            do {
                return try VMMClient(socketPath: socketPath, devices: devices, abi: abi)
            } catch {
                last = error
                usleep(delayMilliseconds * 1000)
            }
        }
        throw last
    }
}
