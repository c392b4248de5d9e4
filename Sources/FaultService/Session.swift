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
    var helloDone = false
    var queue: FaultProducer?
    var channel: ChannelID?
    var abi: ABIVersion?
    var devices: Set<UInt32> = []
    /// Fault sources this client handed over (ADD_SOURCE); they end with it.
    var sources: [FaultFDSource] = []

    init(socket: ControlSocket, pid: UInt32, uid: UInt32) {
        self.socket = socket
        self.pid = pid
        self.uid = uid
    }
}
