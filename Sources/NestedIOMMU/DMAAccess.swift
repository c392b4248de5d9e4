/// What a DMA transaction asks of a translation: read or write, whether it
/// is an instruction fetch, and whether it is privileged (the PASID TLP
/// prefix's PMR bit; SMMUv3's PnU).
public struct DMAAccess: Hashable, Sendable, CustomStringConvertible {
    /// The transaction writes.
    public var write: Bool
    /// The transaction is an instruction fetch.
    public var execute: Bool
    /// The transaction is privileged (supervisor).
    public var privileged: Bool

    /// An access.
    public init(write: Bool, execute: Bool = false, privileged: Bool = false) {
        self.write = write
        self.execute = execute
        self.privileged = privileged
    }

    /// A user-mode read.
    public static let read = DMAAccess(write: false)
    /// A user-mode write.
    public static let write = DMAAccess(write: true)

    /// "read", "write", "exec", with "priv " in front for a privileged one.
    public var description: String {
        (privileged ? "priv " : "") + (execute ? "exec" : write ? "write" : "read")
    }
}
