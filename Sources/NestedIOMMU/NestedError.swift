import SystemPackage

/// A bind, unbind, invalidation or attach the nested IOMMU refuses, with the
/// errno a VFIO or iommufd ioctl would return and a sentence naming the
/// field and the value.
public struct NestedError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The errno: EINVAL (a malformed request), EPERM (a device the client
    /// does not hold), ENOENT (nothing bound there), EBUSY (already bound),
    /// ENOSPC (over the PASID quota), EIO (a device failed to take a bind).
    public let errno: Errno
    /// What was wrong.
    public let detail: String

    /// An error.
    public init(_ errno: Errno, _ detail: String) {
        self.errno = errno
        self.detail = detail
    }

    /// The detail and the errno's name.
    public var description: String { "\(detail) (\(errno))" }
}
