import FaultControl
import FaultQueue
import SystemPackage

/// Why a VMMClient call failed: the service refused (its errno and reason),
/// the connection failed, or the queue it handed over is unusable.
public enum VMMClientError: Error, Sendable, CustomStringConvertible {
    /// The service answered with an error reply.
    case refused(command: String, errno: Errno, reason: String)
    /// The control connection failed (connect, send, receive).
    case connection(ControlError)
    /// The service closed the connection.
    case closed
    /// The queue could not be attached (mapping, negotiation).
    case queue(FaultQueueError)
    /// The service sent something this client does not understand.
    case protocolViolation(String)

    /// A one-line message: the command or stage that failed, then why.
    public var description: String {
        switch self {
        case .refused(let command, let errno, let reason): return "\(command) refused: \(reason) (\(errno))"
        case .connection(let error): return "connection: \(error)"
        case .closed: return "the service closed the connection"
        case .queue(let error): return "queue: \(error)"
        case .protocolViolation(let what): return "protocol violation: \(what)"
        }
    }
}
