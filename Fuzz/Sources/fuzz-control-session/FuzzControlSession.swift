import CFaultRingABI
import CFaultRingSys
import FaultControl
import FaultFD
@_spi(Driving) import FaultService
import FaultSimulation
import FaultSys
import FuzzDriver
import Glibc
import Logging
import SystemPackage

/// The control protocol as a stateful sequence against a live, in-process
/// service: the input is a script of operations (connect, HELLO, ATTACH,
/// DETACH, STATS, BYE, ADD_SOURCE with descriptors, descriptors on any
/// message, arbitrary, empty and oversized packets, reconnects), played by one
/// client on this thread while the same thread turns the service's loop.
///
/// Invariants, checked after every operation and at the end of each input:
/// - **exactly one reply per request**, carrying the REPLY flag and the
///   request's id and command (a packet too short for a header: id 0);
///   no reply is ever sent unasked;
/// - **bounded work per message**: the reply is there within `turnsPerReply`
///   non-sleeping turns of the loop (the per-turn budgets bound each turn);
/// - **no descriptor leaked**: once the client has gone and its session is
///   dropped, this process holds exactly the descriptors it held before the
///   input (every queue memfd, doorbell, passed descriptor and session
///   socket closed on both sides);
/// - nothing traps (and, under ASan, nothing touches freed or foreign memory).
@_cdecl("fuzz_control_session_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

/// Turns of the loop a reply may take: an accept, the read, and slack for
/// io_uring re-arming its poll between them.
let turnsPerReply = 4

/// The one service every input talks to, with four simulated devices
/// (device 4 owned by another uid) that raise groups on its clock.
nonisolated(unsafe) let harness: (service: FaultService, path: String) = {
    let path = "/tmp/faultring-fuzz-\(getpid()).sock"
    unlink(path)
    var config = ServiceConfig()
    config.socketPath = path
    config.entryCount = 64
    config.responseCount = 64
    config.deviceOwners = [4: 4242]
    var schedule = SimulationSchedule()
    schedule.rate = 2000
    let devices = SimulatedDevices((1...4).map { SimulatedDeviceConfig(deviceID: $0) }, schedule: schedule)
    var logger = Logger(label: "fuzz")
    logger.logLevel = .critical
    do {
        return (try FaultService(config: config, source: devices, logger: logger), path)
    } catch {
        fatalError("the service did not start: \(error)")
    }
}()

func openDescriptors() -> Int {
    guard let dir = opendir("/proc/self/fd") else { fatalError("opendir(/proc/self/fd): \(errno)") }
    defer { closedir(dir) }
    var count = 0
    while readdir(dir) != nil { count += 1 }
    return count
}

/// Reads the input as a stream of small numbers.
struct Script {
    let data: UnsafePointer<UInt8>
    let size: Int
    var at = 0
    var done: Bool { at >= size }
    mutating func byte() -> UInt8 {
        defer { at += 1 }
        return at < size ? data[at] : 0
    }
    mutating func u32() -> UInt32 { UInt32(byte()) | UInt32(byte()) << 8 | UInt32(byte()) << 16 | UInt32(byte()) << 24 }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in byte() } }
    /// A device id: mostly the service's own (1–4), sometimes anything.
    mutating func device() -> UInt32 {
        let b = byte()
        return b < 200 ? UInt32(b % 6) : u32()
    }
    mutating func devices() -> [UInt32] { (0..<Int(byte() % 70)).map { _ in device() } }
}

/// The client side: one connection at a time, and the descriptors this
/// input created or received, closed at the end.
struct Client {
    var socket: ControlSocket?
    var held: [Int32] = []
    var nextID: UInt16 = 1

    mutating func connect() {
        guard socket == nil else { return }
        do {
            let connected = try ControlSocket.connect(path: harness.path)
            // The client reads only what is there: a missing reply is a finding, not a hang.
            guard fcntl(connected.fd.rawValue, F_SETFL, fcntl(connected.fd.rawValue, F_GETFL) | O_NONBLOCK) == 0 else {
                fatalError("fcntl(O_NONBLOCK): \(errno)")
            }
            socket = connected
        } catch {
            fatalError("connect: \(error)")
        }
    }

    /// A descriptor of a kind the service may or may not accept.
    mutating func descriptor(_ kind: UInt8) -> Int32 {
        let fd: Int32
        do {
            switch kind % 4 {
            case 0:
                let pair = try Sys.seqpacketPair()
                held.append(pair.remote.release().rawValue)
                fd = pair.local.release().rawValue
            case 1: fd = try Sys.memfd(name: "fuzz").release().rawValue
            case 2: fd = try Sys.eventfd().release().rawValue
            default: fd = try Sys.open("/dev/null", O_RDONLY | O_CLOEXEC).release().rawValue
            }
        } catch {
            fatalError("creating a descriptor: \(error)")
        }
        held.append(fd)
        return fd
    }

    /// Sends one packet (a message, or raw bytes) and checks its one reply.
    mutating func request(_ bytes: [UInt8], fds: [Int32] = []) {
        connect()
        guard let socket else { return }
        let expectID: UInt16
        let expectCommand: UInt16
        if bytes.count >= ControlMessage.headerSize {
            expectID = UInt16(bytes[0]) | UInt16(bytes[1]) << 8
            expectCommand = UInt16(bytes[2]) | UInt16(bytes[3]) << 8
        } else {
            expectID = 0
            expectCommand = 0
        }
        let sent = bytes.withUnsafeBytes { buffer in
            fds.withUnsafeBufferPointer { f in
                faultring_sys_send_fds(socket.fd.rawValue, buffer.baseAddress, UInt(buffer.count), f.baseAddress,
                                       UInt32(f.count))
            }
        }
        if sent < 0 {
            // The service closed this connection (after BYE, or a failure it
            // hangs up on): the packet was never a request. Start again.
            guard -sent == EPIPE || -sent == ECONNRESET || -sent == EMSGSIZE else { fatalError("sendmsg: \(-sent)") }
            if -sent != EMSGSIZE { hangUp() }
            return
        }
        var reply: ControlMessage?
        for _ in 0..<turnsPerReply where reply == nil {
            harness.service.turn()
            reply = receive(socket)
        }
        guard let reply else {
            fatalError("no reply within \(turnsPerReply) turns to a \(bytes.count)-byte packet (id \(expectID), command \(expectCommand))")
        }
        guard reply.isReply, reply.id == expectID, reply.command == expectCommand else {
            fatalError("reply id \(reply.id) command \(reply.command) flags \(reply.flags) to request id \(expectID) command \(expectCommand)")
        }
        for fd in reply.fds { held.append(fd.rawValue) }
        harness.service.turn()
        if let extra = receive(socket) {
            fatalError("a second reply (id \(extra.id) command \(extra.command)) to one request")
        }
        if expectCommand == ControlCommand.bye.rawValue && !reply.isError { hangUp() }
    }

    /// The next reply, if one is waiting; a hang-up is not a reply.
    mutating func receive(_ socket: ControlSocket) -> ControlMessage? {
        switch try? socket.receive() {
        case .message(let message)?: return message
        case .malformed(let failure)?: fatalError("the service sent a malformed reply: \(failure.error)")
        case .closed?, .wouldBlock?, nil: return nil
        }
    }

    /// Closes this connection and turns the loop until the service has dropped its session.
    mutating func hangUp() {
        guard let socket else { return }
        try? socket.fd.close()
        self.socket = nil
        for _ in 0..<(2 * turnsPerReply) where harness.service.connectionCount > 0 { harness.service.turn() }
        guard harness.service.connectionCount == 0 else {
            fatalError("the service kept \(harness.service.connectionCount) sessions after their client left")
        }
    }

    mutating func message(_ command: ControlCommand, flags: UInt32 = 0, payload: [UInt8] = [], fds: [Int32] = []) {
        nextID &+= 1
        request(ControlMessage(id: nextID, command: command.rawValue, flags: flags, payload: payload).bytes, fds: fds)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let service = harness.service
    service.turn()
    let before = openDescriptors()
    var script = Script(data: data, size: size)
    var client = Client()
    var operations = 0
    while !script.done && operations < 64 {
        operations += 1
        switch script.byte() % 13 {
        case 0:
            client.message(.hello, payload: Array("{\"protocolVersion\":\(FAULTRING_PROTOCOL_VERSION),\"client\":\"fuzz\"}".utf8))
        case 1:
            client.message(.hello, payload: script.bytes(Int(script.byte())))
        case 2:
            client.message(.attach, payload: AttachRequest(abi: UInt32(script.byte() % 4), devices: script.devices()).bytes)
        case 3:
            client.message(.detach, payload: DetachRequest(devices: script.devices()).bytes)
        case 4:
            client.message(.stats, flags: script.byte() & 1 == 0 ? 0 : FAULTRING_MSG_TEXT)
        case 5:
            client.message(.bye)
        case 6:
            let kind = UInt32(script.byte() % 6)
            let devices = script.devices()
            let fds = (0..<Int(script.byte() % 3)).map { _ in client.descriptor(script.byte()) }
            client.message(.addSource, payload: AddSourceRequest(kind: kind, devices: devices).bytes, fds: fds)
        case 7:
            client.request(script.bytes(Int(script.byte()) + Int(script.byte() % 2) * 256))
        case 8:
            // A header the fuzzer chooses whole, and a payload of the length it claims or not.
            var bytes = script.bytes(ControlMessage.headerSize)
            bytes += script.bytes(Int(script.byte()))
            client.request(bytes)
        case 9:
            client.request([])
        case 10:
            let command = ControlCommand.allCases[Int(script.byte()) % ControlCommand.allCases.count]
            let fds = (0..<Int(script.byte() % 5)).map { _ in client.descriptor(script.byte()) }
            client.message(command, payload: script.bytes(Int(script.byte() % 32)), fds: fds)
        case 11:
            // Longer than any message may be: refused (EMSGSIZE) on one side or the other.
            client.request([UInt8](repeating: script.byte(), count: ControlMessage.maxSize + 1 + Int(script.byte())))
        default:
            client.hangUp()
        }
    }
    client.hangUp()
    for fd in client.held { close(fd) }
    let after = openDescriptors()
    guard after == before else { fatalError("\(after - before) descriptors leaked by \(operations) operations") }
    return 0
}
