import FaultABI
import FaultControl
import FaultFD
import FaultQueue
import PageRequests

/// One client connection and what it owns: its queue, its tracker channel,
/// its devices. A device belongs to at most one session.
final class Session {
    let socket: ControlSocket
    let pid: UInt32
    let uid: UInt32
    /// When it connected (monotonic ns): it must say HELLO within `ServiceConfig.helloTimeoutNS`.
    let connectedAt: UInt64
    /// Malformed messages it sent (logged only now and then: no log flood).
    var badMessages: UInt64 = 0
    var helloDone = false
    var queue: FaultProducer?
    var channel: ChannelID?
    var abi: ABIVersion?
    var devices: Set<UInt32> = []
    /// Fault sources this client handed over (ADD_SOURCE); they end with it.
    var sources: [FaultFDSource] = []

    init(socket: ControlSocket, pid: UInt32, uid: UInt32, connectedAt: UInt64) {
        self.connectedAt = connectedAt
        self.socket = socket
        self.pid = pid
        self.uid = uid
    }
}
