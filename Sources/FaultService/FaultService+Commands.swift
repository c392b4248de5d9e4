import CFaultRingABI
import FaultFD
import FaultPipeline
import FaultSys
import FaultABI
import FaultControl
import FaultQueue
import PageRequests
import SystemPackage

extension FaultService {
    /// Dispatches one well-formed message. Every refusal is an error reply
    /// naming the problem; the connection survives it, and nothing another
    /// session owns is touched.
    func handle(_ message: ControlMessage, from session: Session) {
        do {
            let reply = try process(message, from: session)
            send(reply, to: session)
            for fd in reply.fds { try? fd.close() }  // the peer has its own copies now
            for fd in message.fds { try? fd.close() }  // a source keeps its own duplicate
            if message.knownCommand == .bye { drop(session) }
        } catch {
            metrics.protocolError()
            for fd in message.fds { try? fd.close() }
            logger.notice("client pid \(session.pid): \(error)")
            send(.errorReply(id: message.id, command: message.command, error), to: session)
        }
    }

    func process(_ message: ControlMessage, from session: Session) throws(ControlError) -> ControlMessage {
        guard !message.isReply else {
            throw ControlError(.invalidArgument, "a request must not carry the REPLY flag")
        }
        guard let command = message.knownCommand else {
            throw ControlError(.noFunction, "unknown command \(message.command)")
        }
        guard message.fds.isEmpty || command == .addSource || command == .addGuestMemory else {
            throw ControlError(.badFileDescriptor, "\(command) takes no descriptors; \(message.fds.count) received")
        }
        guard message.flags & FAULTRING_MSG_TEXT == 0 || command == .stats else {
            throw ControlError(.invalidArgument, "flag TEXT is for STATS only")
        }
        guard session.helloDone || command == .hello else {
            throw ControlError(.protocolError, "HELLO must come first, got \(command)")
        }
        switch command {
        case .hello:
            guard !session.helloDone else { throw ControlError(.protocolError, "HELLO sent twice") }
            let hello = try JSONPayload.decode(Hello.self, message.payload)
            guard hello.protocolVersion == FAULTRING_PROTOCOL_VERSION else {
                throw ControlError(.protocolNotSupported,
                                   "protocol version \(hello.protocolVersion); this service speaks \(FAULTRING_PROTOCOL_VERSION)")
            }
            session.helloDone = true
            // The client's name is the client's: logged escaped, so it cannot forge log lines.
            let name = String(hello.client.unicodeScalars.prefix(128).map {
                $0.properties.generalCategory == .control ? "\\u{\(String($0.value, radix: 16))}" : String($0)
            }.joined())
            logger.info("client pid \(session.pid) is \(name)")
            return .reply(to: message, payload: try JSONPayload.encode(capabilities))
        case .attach:
            return try attach(AttachRequest(payload: message.payload), message: message, session: session)
        case .detach:
            let request = try DetachRequest(payload: message.payload)
            let targets = request.devices.isEmpty ? Array(session.devices) : request.devices.filter(session.devices.contains)
            for id in targets {
                pipeline.detach(id)
                owner.removeValue(forKey: id)
                session.devices.remove(id)
                revokeNested(id, of: session)
            }
            return .reply(to: message)
        case .stats:
            let stats = statistics(for: session)
            let text = message.flags & FAULTRING_MSG_TEXT != 0
            let payload = text ? Array(metrics.prometheusText(stats).utf8) : try JSONPayload.encode(stats)
            // A reply that cannot be one message is refused in words, never dropped without one:
            // every request gets exactly one reply, whatever its format.
            guard payload.count <= ControlMessage.maxSize - ControlMessage.headerSize else {
                throw ControlError(.messageTooLong, "the STATS reply (\(text ? "Prometheus text" : "JSON")) is "
                                   + "\(payload.count) bytes, above the \(ControlMessage.maxSize)-byte message limit "
                                   + "(too many devices, clients or sources to list)")
            }
            return .reply(to: message, payload: payload)
        case .bye:
            return .reply(to: message)
        case .addSource:
            return try addSource(AddSourceRequest(payload: message.payload), message: message, session: session)
        case .addGuestMemory, .bind, .unbind, .invalidate, .bindMSI:
            return try processNested(command, message, session: session)
        }
    }

    /// Takes a fault source the client hands over: validated (one
    /// descriptor, of the kind claimed; devices new to the service, or, for
    /// an event source, this connection's own), then read by the loop.
    func addSource(_ request: AddSourceRequest, message: ControlMessage, session: Session) throws(ControlError) -> ControlMessage {
        guard let kind = FaultFDKind(rawValue: request.kind) else {
            throw ControlError(.invalidArgument, "ADD_SOURCE kind \(request.kind) is not one of \(FaultFDKind.allCases.map(\.rawValue))")
        }
        guard message.fds.count == 1 else {
            throw ControlError(.badFileDescriptor, "ADD_SOURCE takes exactly one descriptor; \(message.fds.count) received")
        }
        let own = session.sources.filter { $0.kind.carriesPageRequests }
        let ownDevices = Set(own.flatMap { $0.devices.map(\.id) })
        for id in request.devices where pipeline.knownDevices.contains(id) {
            guard !kind.carriesPageRequests && ownDevices.contains(id) else {
                throw ControlError(.fileExists, "device \(id) is already served by another source")
            }
        }
        let source: FaultFDSource
        do {
            // Our own duplicate: the message's copy is closed after the reply.
            let fd = try Sys.duplicate(message.fds[0], lowest: 3)
            source = try FaultFDSource(kind: kind, fd: fd, devices: request.devices.map {
                SourceDevice(id: $0, allocation: PRILimits.prgiCount * 4)
            })
        } catch let error as FaultFDError {
            throw ControlError(error.code == .badDevice ? .invalidArgument : .badFileDescriptor, "ADD_SOURCE: \(error)")
        } catch let error as SystemCallError {
            throw ControlError(error.errno, "ADD_SOURCE: \(error)")
        } catch {
            throw ControlError(.ioError, "ADD_SOURCE: \(error)")
        }
        guard pipeline.add(source, sharing: own) else {
            source.close()
            throw ControlError(.fileExists, "ADD_SOURCE: a device is already served by another source")
        }
        nextSourceID &+= 1
        session.sources.append(source)
        source.onClose = { [unowned self, unowned session] gone in remove(gone, of: session) }
        loop.watch(source.number) { [unowned self, weak source] in
            guard let source else { return }
            pipeline.readable(source.number, of: source, now: Sys.monotonicNS)
        }
        logger.info("client pid \(session.pid) added a \(kind) for devices \(request.devices)")
        let reply = AddSourceReply(sourceID: nextSourceID, devices: UInt32(request.devices.count))
        return .reply(to: message, payload: reply.bytes)
    }

    /// A source is gone (its descriptor hung up, or its client left): its
    /// devices' outstanding groups are answered INVALID, written back while
    /// the descriptor is still open, and the devices are forgotten.
    func remove(_ source: FaultFDSource, of session: Session) {
        loop.unwatch(source.number)  // before the number can be closed and reused
        // What the peer sent before it left is taken first: a device whose control connection
        // closes right after its last events loses none of them unread.
        source.drainQueued(now: Sys.monotonicNS, into: pipeline)
        pipeline.flush()
        pipeline.remove(source)  // answers its groups while the descriptor is open
        source.close()
        session.sources.removeAll { $0 === source }
        source.onClose = nil
        retiredSources.append(ServiceStats.Source(source, of: session.pid, removed: true))
        if retiredSources.count > 32 { retiredSources.removeFirst() }
        let known = pipeline.knownDevices  // an event source's devices may live on in their fault source
        for device in source.devices.map(\.id) where !known.contains(device) {
            guard let holder = owner.removeValue(forKey: device), let client = sessions[holder] else { continue }
            client.devices.remove(device)
            // A removed device takes with it what came from it, as a DETACH does: its bindings,
            // cached translations and doorbells in its holder's VM, and the rights it gave.
            revokeNested(device, of: client)
        }
        logger.info("a \(source.kind) of client pid \(session.pid) is gone: its outstanding groups were answered INVALID")
    }

    /// All or nothing: every device must exist and be free (or already this
    /// session's) before any is attached.
    func attach(_ request: AttachRequest, message: ControlMessage, session: Session) throws(ControlError) -> ControlMessage {
        guard let abi = ABIVersion(rawValue: request.abi) else {
            throw ControlError(.invalidArgument, "ATTACH abi \(request.abi) is not 1 or 2")
        }
        if let current = session.abi, current != abi {
            throw ControlError(.invalidArgument, "this connection's queue is ABI \(current.rawValue), ATTACH asks \(abi.rawValue)")
        }
        for id in request.devices {
            guard pipeline.knownDevices.contains(id) else { throw ControlError(.noSuchFileOrDirectory, "device \(id) does not exist") }
            // Ownership is identity: while its tenant restarts, another allowed uid cannot take a device and read
            // its addresses and PASIDs.
            if let uid = config.deviceOwners[id], uid != session.uid {
                throw ControlError(.permissionDenied, "device \(id) belongs to uid \(uid); this connection is uid \(session.uid)")
            }
            if let holder = owner[id], holder != session.socket.fd.rawValue {
                let pid = sessions[holder]?.pid ?? 0
                throw ControlError(.resourceBusy, "device \(id) is attached to another client (pid \(pid))")
            }
        }
        let total = session.devices.union(request.devices)
        guard abi == .v2 || total.count == 1 else {
            throw ControlError(.invalidArgument, "an ABI 1 queue serves one device (\(total.count) requested)")
        }
        var fds: [FileDescriptor] = []
        var created = false
        if session.queue == nil {
            let queue: FaultProducer
            do {
                queue = try FaultProducer(
                    // Exactly the ABI this ATTACH named: a consumer cannot attach 64 devices as ABI 2 and
                    // then negotiate ABI 1, whose answers carry no device and would match across them.
                    geometry: QueueGeometry(entryCount: config.entryCount, responseCount: config.responseCount,
                                            maxABI: abi, minABI: abi),
                    name: "faultring-client-\(session.pid)")
                // The reply owns the copies from here; `handle` closes them once sent.
                fds = try queue.consumerFiles().release()
            } catch {
                throw ControlError(error.errno ?? .ioError, "creating the queue: \(error)")
            }
            session.queue = queue
            session.abi = abi
            session.channel = pipeline.addQueue(queue)
            loop.watch(queue.doorbellFD.rawValue) { [unowned self] in
                queue.finishSleeping()
                serviceResponses(session)
            }
            created = true
        }
        for id in request.devices {
            owner[id] = session.socket.fd.rawValue
            session.devices.insert(id)
            pipeline.attach(id, to: session.channel!)
            session.nested?.domain?.attach(device: id, ats: !config.devicesWithoutATS.contains(id))
        }
        let reply = AttachReply(queueCreated: created, entryCount: UInt32(config.entryCount),
                                responseCount: UInt32(config.responseCount), attached: UInt32(session.devices.count))
        logger.info("client pid \(session.pid) attached \(request.devices) (ABI \(abi.rawValue))")
        return .reply(to: message, payload: reply.bytes, fds: fds)
    }
}
