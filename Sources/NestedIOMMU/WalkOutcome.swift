/// A successful stage-1 walk: the page and what it permits.
public struct Translation: Hashable, Sendable {
    /// The input address's page, aligned to `size`.
    public let iova: UInt64
    /// The guest-physical address the page maps to, aligned to `size`.
    public let gpa: UInt64
    /// The leaf's size: 4 KiB, 2 MiB or 1 GiB.
    public let size: UInt64
    /// Writes allowed (for the access's privilege).
    public let writable: Bool
    /// Instruction fetches allowed.
    public let executable: Bool

    /// A translation.
    public init(iova: UInt64, gpa: UInt64, size: UInt64, writable: Bool, executable: Bool) {
        self.iova = iova
        self.gpa = gpa
        self.size = size
        self.writable = writable
        self.executable = executable
    }

    /// The guest-physical address of `address` (inside this page).
    public func translate(_ address: UInt64) -> UInt64 { gpa | (address & (size - 1)) }
    /// Whether it permits `access`.
    public func permits(_ access: DMAAccess) -> Bool {
        (!access.write || writable) && (!access.execute || executable)
    }
}

/// Why a stage-1 walk failed, where, and whether the guest can fix it.
public struct WalkFault: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public enum Kind: String, Hashable, Sendable {
        /// An entry on the way is not present (VT-d P = 0; Arm invalid
        /// descriptor, or the input outside T0SZ): a page fault the guest
        /// fixes by mapping. PRI-recoverable.
        case notPresent = "not-present"
        /// The leaf does not allow the access (write to read-only, user to
        /// supervisor, execute to XD). PRI-recoverable (the guest upgrades).
        case permission
        /// Arm: AF clear, hardware AF update off, AFFD clear.
        case accessFlag = "access-flag"
        /// A present entry has reserved bits set.
        case reservedBits = "reserved-bits"
        /// A non-canonical input (VT-d) or an output above IPS (SMMUv3).
        case addressSize = "address-size"
        /// The PASID entry or context descriptor itself cannot be used
        /// (not present, V clear, a format the model does not walk).
        case badContext = "bad-context"
        /// The guest-physical address of a table or of the page is not
        /// backed by guest memory: the host's fault, never the guest's.
        case stage2Miss = "stage2-miss"
    }

    /// The kind.
    public let kind: Kind
    /// The level the walk stopped at (-1 for the context itself).
    public let level: Int
    /// The input address.
    public let iova: UInt64
    /// For `.stage2Miss`, the unbacked GPA; otherwise 0.
    public let gpa: UInt64
    /// Details: the entry, the bits, the reason.
    public let detail: String

    /// A fault.
    public init(_ kind: Kind, level: Int, iova: UInt64, gpa: UInt64 = 0, detail: String) {
        self.kind = kind
        self.level = level
        self.iova = iova
        self.gpa = gpa
        self.detail = detail
    }

    /// Whether a PRI-capable device asks for the page (a page request) rather
    /// than reporting an unrecoverable fault.
    public var isPageRequestable: Bool { kind == .notPresent || kind == .permission || kind == .accessFlag }

    /// `<kind> at level <n> for 0x<iova>: <detail>`.
    public var description: String { "\(kind.rawValue) at level \(level) for 0x\(String(iova, radix: 16)): \(detail)" }
}

/// The result of a stage-1 walk.
public enum WalkOutcome: Hashable, Sendable {
    /// The page translated, and the access is permitted.
    case translated(Translation)
    /// The walk failed.
    case fault(WalkFault)
}
