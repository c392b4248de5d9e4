import CFaultRingABI
import SystemPackage

/// The protocol's commands (`FAULTRING_CMD_*`).
public enum ControlCommand: UInt16, Sendable, Hashable, CaseIterable {
    case hello = 1, attach = 2, detach = 3, stats = 4, bye = 5, addSource = 6
    case addGuestMemory = 7, bind = 8, unbind = 9, invalidate = 10, bindMSI = 11
}

/// One control message: the fixed header, a payload, and any descriptors
/// that travelled with it (which the receiver owns and must close).
public struct ControlMessage: Sendable {
    /// Chosen by the requester and echoed in the reply, which is how a reply finds its request.
    public var id: UInt16
    /// The raw command number (kept raw so an unknown one can be refused by number).
    public var command: UInt16
    /// `FAULTRING_MSG_*` bits (REPLY, ERROR, TEXT); `parse` refuses unknown ones.
    public var flags: UInt32
    /// 0, or in an error reply the errno (its bit pattern).
    public var error: UInt32
    /// The bytes after the 16-byte header: JSON, a packed struct or an error's UTF-8 reason, by command.
    public var payload: [UInt8]
    /// Descriptors sent with the message (SCM_RIGHTS, at most `FAULTRING_MSG_FDS_MAX`). The
    /// receiver owns those it gets; `send` passes copies, so the sender still closes its own.
    public var fds: [FileDescriptor]

    /// A message from its parts; the header's size field is not one of them, `bytes` computes it.
    public init(id: UInt16, command: UInt16, flags: UInt32 = 0, error: UInt32 = 0, payload: [UInt8] = [],
                fds: [FileDescriptor] = []) {
        self.id = id
        self.command = command
        self.flags = flags
        self.error = error
        self.payload = payload
        self.fds = fds
    }

    /// Header size; every message is at least this long.
    public static let headerSize = MemoryLayout<faultring_msg_header>.size
    /// Largest message, header included.
    public static let maxSize = Int(FAULTRING_MSG_MAX)
    /// Flag bits this version knows.
    public static let knownFlags = FAULTRING_MSG_REPLY | FAULTRING_MSG_ERROR | FAULTRING_MSG_TEXT

    /// Whether the REPLY flag is set: this answers the request with the same id.
    public var isReply: Bool { flags & FAULTRING_MSG_REPLY != 0 }
    /// Whether the ERROR flag is set: `error` holds an errno and the payload a reason.
    public var isError: Bool { flags & FAULTRING_MSG_ERROR != 0 }
    /// The command, or nil for a number this version does not know (kept raw in `command`).
    public var knownCommand: ControlCommand? { ControlCommand(rawValue: command) }

    /// A reply to `request` carrying `payload` (and descriptors).
    public static func reply(to request: ControlMessage, payload: [UInt8] = [], fds: [FileDescriptor] = []) -> ControlMessage {
        ControlMessage(id: request.id, command: request.command, flags: FAULTRING_MSG_REPLY, payload: payload, fds: fds)
    }

    /// An error reply: the errno in the header, the reason as UTF-8 payload.
    public static func errorReply(id: UInt16, command: UInt16, _ error: ControlError) -> ControlMessage {
        ControlMessage(id: id, command: command, flags: FAULTRING_MSG_REPLY | FAULTRING_MSG_ERROR,
                       error: UInt32(bitPattern: error.errno.rawValue), payload: Array(error.reason.utf8))
    }

    /// The bytes on the wire.
    public var bytes: [UInt8] {
        var header = faultring_msg_header()
        header.id = id
        header.command = command
        header.size = UInt32(Self.headerSize + payload.count)
        header.flags = flags
        header.error = error
        return withUnsafeBytes(of: &header) { Array($0) } + payload
    }

    /// Parses `bytes`, the whole packet as received, with the descriptors
    /// that came with it (the message owns them from here).
    /// - Throws: a `ParseFailure` carrying the `ControlError` (EINVAL for a
    ///   short packet, a size field that disagrees with the packet, or
    ///   unknown flag bits) and the id and command, when the header was
    ///   readable, so the error reply can name them.
    public static func parse(_ bytes: ArraySlice<UInt8>, fds: [FileDescriptor]) throws(ParseFailure) -> ControlMessage {
        guard bytes.count >= headerSize else {
            throw ParseFailure(id: 0, command: 0, error: ControlError(.invalidArgument,
                "short message: \(bytes.count) bytes, the header alone is \(headerSize)"))
        }
        let header = bytes.withUnsafeBytes { $0.loadUnaligned(as: faultring_msg_header.self) }
        func fail(_ errno: Errno, _ reason: String) -> ParseFailure {
            ParseFailure(id: header.id, command: header.command, error: ControlError(errno, reason))
        }
        guard Int(header.size) == bytes.count else {
            throw fail(.invalidArgument, "header size field says \(header.size) bytes, the message has \(bytes.count)")
        }
        guard header.flags & ~knownFlags == 0 else {
            throw fail(.invalidArgument, "unknown flag bits 0x\(String(header.flags & ~knownFlags, radix: 16))")
        }
        return ControlMessage(id: header.id, command: header.command, flags: header.flags, error: header.error,
                              payload: Array(bytes.dropFirst(headerSize)), fds: fds)
    }

    /// A message that could not be parsed, with what could be read of it.
    public struct ParseFailure: Error, Sendable {
        /// The message's id, or 0 if the packet was too short to hold a header.
        public let id: UInt16
        /// The message's command number, or 0 if the packet was too short to hold a header.
        public let command: UInt16
        /// What was wrong, with the errno for the error reply.
        public let error: ControlError
    }
}
