import CFaultRingABI
import CFaultRingSys
import FaultSys
import Glibc
import SystemPackage

/// What a fault descriptor handed to the service is, and so how it is read.
///
/// The kernel's iommufd fault queue and vEVENTQ, and the SOCK_SEQPACKET
/// sockets through which a device process (or a vfio-user server) speaks
/// the same records, are read by one reader (`FaultFDSource`). The
/// transports differ only where they must: a kernel `read` returns many
/// whole groups and 0 when empty; a socket returns one packet, 0 at the
/// peer's close, and EAGAIN when empty; the kernel refuses a bad response
/// with EINVAL from `write`, a device with an 8-byte error packet.
public enum FaultFDKind: UInt32, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// An iommufd fault queue fd (IOMMU_FAULT_QUEUE_ALLOC): page requests
    /// in, page responses out.
    case faultQueue = 1  // FAULTRING_SOURCE_FAULT_QUEUE
    /// An iommufd vEVENTQ fd (IOMMU_VEVENTQ_ALLOC, type ARM SMMUv3):
    /// unrecoverable faults in, nothing out.
    case eventQueue = 2
    /// A SOCK_SEQPACKET socket carrying fault-queue records (whole groups per packet).
    case deviceFaults = 3
    /// A SOCK_SEQPACKET socket carrying vEVENTQ records (one per packet).
    case deviceEvents = 4

    /// Whether the descriptor is a socket (a device process) rather than the kernel's.
    public var isSocket: Bool { self == .deviceFaults || self == .deviceEvents }
    /// Whether it carries page requests (and takes responses).
    public var carriesPageRequests: Bool { self == .faultQueue || self == .deviceFaults }

    /// The name used in the protocol docs and logs.
    public var description: String {
        switch self {
        case .faultQueue: return "iommufd fault queue"
        case .eventQueue: return "iommufd vEVENTQ"
        case .deviceFaults: return "device fault socket"
        case .deviceEvents: return "device event socket"
        }
    }

    /// Checks that `fd` is what this kind says: an AF_UNIX SOCK_SEQPACKET
    /// socket for the device kinds; an iommufd anonymous inode
    /// (`anon_inode:[iommufd-…]`) for the kernel kinds.
    /// - Throws: a message naming what `fd` is instead.
    public func validate(_ fd: FileDescriptor) throws(FaultFDError) {
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else {
            throw FaultFDError(.badDescriptor, "fstat(fd \(fd.rawValue))", errno: Errno(rawValue: Glibc.errno))
        }
        if isSocket {
            guard info.st_mode & S_IFMT == S_IFSOCK else {
                throw FaultFDError(.badDescriptor, "a \(self) must be a socket; fd \(fd.rawValue) is not")
            }
            var type: Int32 = 0
            var domain: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd.rawValue, SOL_SOCKET, SO_TYPE, &type, &length) == 0,
                  getsockopt(fd.rawValue, SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0 else {
                throw FaultFDError(.badDescriptor, "getsockopt(fd \(fd.rawValue))", errno: Errno(rawValue: Glibc.errno))
            }
            guard type == Int32(SOCK_SEQPACKET.rawValue), domain == AF_UNIX else {
                throw FaultFDError(.badDescriptor,
                                   "a \(self) must be an AF_UNIX SOCK_SEQPACKET socket (type \(type), domain \(domain))")
            }
            return
        }
        var target = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/self/fd/\(fd.rawValue)", &target, target.count - 1)
        let name = n > 0 ? String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
        guard name.hasPrefix("anon_inode:[iommufd") else {
            throw FaultFDError(.badDescriptor, "a \(self) must be an iommufd descriptor; fd \(fd.rawValue) is \(name)")
        }
    }
}

/// Why a fault descriptor was refused or failed.
public struct FaultFDError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The class of error.
    public enum Code: String, Sendable, Hashable {
        /// Not the kind of descriptor claimed.
        case badDescriptor = "bad-descriptor"
        /// A device id is invalid or already served by another source.
        case badDevice = "bad-device"
    }

    /// Which class.
    public let code: Code
    /// What was wrong, naming the descriptor or the device.
    public let detail: String
    /// The system's error, if a call failed.
    public let errno: Errno?

    /// An error of `code` described by `detail`.
    public init(_ code: Code, _ detail: String, errno: Errno? = nil) {
        self.code = code
        self.detail = detail
        self.errno = errno
    }

    /// `code: detail (errno)`.
    public var description: String {
        errno.map { "\(code.rawValue): \(detail): \($0)" } ?? "\(code.rawValue): \(detail)"
    }
}
