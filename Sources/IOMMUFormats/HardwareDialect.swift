/// Which layout of the VT-d page request and page group response
/// descriptors a codec speaks. The two differ only in private data.
public enum VTdRevision: String, Sendable, Hashable, CaseIterable {
    /// VT-d 4.0 and Linux ≥ 6.10 (`drivers/iommu/intel/prq.c`): no private
    /// data. In a page request, qw0 bits 15:9, qw2 and qw3 are reserved; a
    /// page group response has no PDP (qw0 bit 5) and qw2 = qw3 = 0, which is
    /// what `intel_iommu_page_response()` writes.
    case v4
    /// VT-d ≤ 3.x and Linux ≤ 6.9 (`intel/svm.c`): qw0 bit 9 of a page
    /// request is Private Data Present, with the data in qw2/qw3. Such a
    /// request is owed a response even without LPIG (VT-d 3.0 §7.7; Linux
    /// marked it LAST_PAGE), and the response echoes the data with PDP set.
    /// Removed from the spec in 4.0; Intel shipped no product using it.
    case v3
}

/// How the hardware decoders read records: which VT-d revision, and whether
/// what the specifications reserve or forbid — but Linux reads anyway — is
/// refused.
///
/// The default, `.linux`, accepts what current Linux accepts:
/// - reserved bits are ignored (Linux's bitfields and `FIELD_GET`s never read
///   them): SMMUv3 PRI dw0 [57:52] and dw1 [11:9], VT-d page request qw0
///   bits 15:9 and [63:54] (and qw2/qw3 in VT-d 4), page group response PDP,
///   qw2/qw3 in VT-d 4 and the other reserved bits;
/// - SMMUv3 PRI Priv / Exec without a PASID are read as sent
///   (`arm_smmu_handle_ppr` prints them either way);
/// - a stalled SMMUv3 event is a page request for any of the eight event IDs
///   `arm_smmu_handle_event` handles (C_BAD_STE, F_STREAM_DISABLED,
///   C_BAD_SUBSTREAMID, C_BAD_CD, F_TRANSLATION, F_ADDR_SIZE, F_ACCESS,
///   F_PERMISSION);
/// - VT-d response code 2 is Response Failure: Linux guests write it, since
///   `intel_iommu_page_response()` puts `IOMMU_PAGE_RESP_FAILURE` (2) straight
///   into the 4-bit field.
///
/// `strict` refuses each of these with an error naming the field, for testing
/// a hardware model or a guest driver against the specifications.
///
/// What neither reading accepts, and why: a stall on an event ID outside those
/// eight (Linux returns -EOPNOTSUPP and never reports it, so the transaction
/// would stay stalled; here it is an error naming the ID rather than a silent
/// drop), and VT-d response codes 3 to 0xE (reserved; no driver writes them).
public struct HardwareDialect: Sendable, Hashable, CustomStringConvertible {
    /// The VT-d descriptor layout.
    public var vtd: VTdRevision
    /// Refuse what the specifications reserve or forbid, where Linux reads it.
    public var strict: Bool

    /// A dialect; `.linux` unless told otherwise.
    public init(vtd: VTdRevision = .v4, strict: Bool = false) {
        self.vtd = vtd
        self.strict = strict
    }

    /// Current Linux (≥ 6.10) and VT-d 4: the default everywhere.
    public static let linux = HardwareDialect()
    /// Linux ≤ 6.9 and VT-d 3.x: VT-d private data.
    public static let linux69 = HardwareDialect(vtd: .v3)
    /// The specifications to the letter, VT-d 4.
    public static let spec = HardwareDialect(strict: true)
    /// The specifications to the letter, VT-d 3.x.
    public static let specVTd3 = HardwareDialect(vtd: .v3, strict: true)

    /// The named dialects, as command lines and fixtures spell them.
    public static let named: [(name: String, dialect: HardwareDialect)] = [
        ("linux", .linux), ("linux-6.9", .linux69), ("spec", .spec), ("spec-vtd3", .specVTd3),
    ]

    /// The dialect called `name` (`linux`, `linux-6.9`, `spec`, `spec-vtd3`), or nil.
    public init?(named name: String) {
        guard let found = Self.named.first(where: { $0.name == name }) else { return nil }
        self = found.dialect
    }

    /// Its name in `named`.
    public var description: String { Self.named.first { $0.dialect == self }!.name }
}
