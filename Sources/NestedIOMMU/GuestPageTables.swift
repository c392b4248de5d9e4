import IOMMUFormats

/// A guest's stage-1 page tables, written into its RAM the way a guest OS
/// writes them: x86-64 paging (for a VT-d PASID entry's FLPTR) or Arm
/// VMSAv8-64 4 KiB (for an SMMUv3 CD's TTB0). Tables come from the RAM's
/// allocator; entries are stored atomically, so a walker racing a change
/// sees the old or the new entry, never half of one.
///
/// This is the guest's side (the guest model and the tests); the service
/// only reads, through `Stage1Walker`.
public final class GuestPageTables: @unchecked Sendable {
    /// The table format.
    public enum Format: Hashable, Sendable {
        /// x86-64 paging, 4 or 5 levels.
        case x86(X86PagingMode)
        /// VMSAv8-64, 4 KiB granule, with this many input bits (T0SZ = 64 − bits).
        case arm(inputBits: Int)
    }

    /// Why a mapping could not be written.
    public enum MapError: Error, Hashable, Sendable {
        /// The guest RAM has no free page for a table.
        case outOfMemory
        /// A leaf is in the way (the address is inside a larger page).
        case largerPageMapped(level: Int)
        /// The size is not a leaf size of the format, or an address is not
        /// aligned to it.
        case badSize
    }

    /// The format.
    public let format: Format
    /// The root table's guest-physical address.
    public let root: UInt64
    private let ram: GuestRAM

    /// Empty tables in `ram` (the root table is allocated now).
    /// - Throws: `MapError.outOfMemory`.
    public init(_ format: Format, in ram: GuestRAM) throws(MapError) {
        guard let root = ram.allocate() else { throw .outOfMemory }
        self.format = format
        self.ram = ram
        self.root = root
    }

    private var rootLevel: Int {
        switch format {
        case .x86(let mode): mode.rootLevel
        case .arm(let bits): ArmStage1Geometry(t0sz: 64 - bits)!.startLevel
        }
    }

    /// The leaf level of `size` (x86 counts up from 0 = 4 KiB; Arm down to 3 = 4 KiB).
    private func leafLevel(_ size: UInt64) -> Int? {
        switch (format, size) {
        case (.x86, 4096): 0
        case (.x86, 2 << 20): 1
        case (.x86, 1 << 30): 2
        case (.arm, 4096): 3
        case (.arm, 2 << 20): 2
        case (.arm, 1 << 30): 1
        default: nil
        }
    }

    /// The slot of `iova` in the table at `level` whose address is `table`.
    private func slot(_ table: UInt64, _ iova: UInt64, level: Int) -> UInt64 {
        switch format {
        case .x86: table + UInt64(X86PagingMode.index(of: iova, level: level)) * 8
        case .arm(let bits): table + UInt64(ArmStage1Geometry(t0sz: 64 - bits)!.index(of: iova, level: level)) * 8
        }
    }

    /// Levels from the root towards `leaf` (x86 descends 4…0, Arm 0…3).
    private func path(to leaf: Int) -> [Int] {
        switch format {
        case .x86: Array(stride(from: rootLevel, to: leaf, by: -1))
        case .arm: Array(stride(from: rootLevel, to: leaf, by: 1))
        }
    }

    /// What an entry is, read in the tables' format.
    private enum Entry {
        /// Not present (x86 P clear; Arm invalid).
        case absent
        /// A table at this address.
        case table(UInt64)
        /// A leaf (a page or block).
        case leaf
        /// Arm: valid, but no type that `level` allows.
        case invalid
    }

    /// The entry `raw` at `level`.
    private func decode(_ raw: UInt64, level: Int) -> Entry {
        switch format {
        case .x86:
            let e = X86PagingEntry(raw: raw)
            guard e.isPresent else { return .absent }
            return e.isLeaf(level: level) ? .leaf : .table(e.address)
        case .arm:
            let d = ArmStage1Descriptor(raw: raw)
            guard d.isValid else { return .absent }
            if d.isTable(level: level) { return .table(d.address) }
            return d.isLeaf(level: level) ? .leaf : .invalid
        }
    }

    /// Maps the page of `size` at `iova` to `gpa`, allocating tables on the
    /// way. Replaces an existing leaf of the same size (the caller then owes
    /// an invalidation, as a guest does).
    /// - Throws: `MapError`.
    public func map(_ iova: UInt64, to gpa: UInt64, size: UInt64 = 4096, writable: Bool, user: Bool = true,
                    executable: Bool = false) throws(MapError) {
        guard let leaf = leafLevel(size), iova % size == 0, gpa % size == 0 else { throw .badSize }
        var table = root
        for level in path(to: leaf) {
            let at = slot(table, iova, level: level)
            switch decode(ram.load64(at), level: level) {
            case .table(let next):
                table = next
            case .leaf, .invalid:
                throw .largerPageMapped(level: level)
            case .absent:
                guard let next = ram.allocate() else { throw .outOfMemory }
                let raw: UInt64 = switch format {
                case .x86: X86PagingEntry.table(at: next).raw
                case .arm: ArmStage1Descriptor.table(at: next).raw
                }
                ram.store64(raw, at: at)
                table = next
            }
        }
        let raw: UInt64 = switch format {
        case .x86: X86PagingEntry.leaf(gpa, level: leaf, writable: writable, user: user, executable: executable).raw
        case .arm: ArmStage1Descriptor.leaf(gpa, level: leaf, writable: writable, unprivileged: user,
                                           executable: executable).raw
        }
        ram.store64(raw, at: slot(table, iova, level: leaf))
    }

    /// Stores `raw` as the entry for `iova` at `level`, allocating nothing:
    /// for tests and for the faulty guest behaviours (stale entries,
    /// reserved bits). Returns false if the tables do not reach that level.
    @discardableResult
    public func setEntry(_ iova: UInt64, level: Int, raw: UInt64) -> Bool {
        guard let at = entryAddress(iova, level: level) else { return false }
        ram.store64(raw, at: at)
        return true
    }

    /// Clears the leaf that maps `iova` (any size); returns whether there
    /// was one. The caller owes an invalidation.
    @discardableResult
    public func unmap(_ iova: UInt64) -> Bool {
        var table = root
        // Every level down to the smallest leaf: past level 0 (x86) or 3 (Arm).
        let beyondLastLevel: Int = if case .x86 = format { -1 } else { 4 }
        for level in path(to: beyondLastLevel) {
            let at = slot(table, iova, level: level)
            switch decode(ram.load64(at), level: level) {
            case .table(let next): table = next
            case .leaf:
                ram.store64(0, at: at)
                return true
            case .absent, .invalid: return false
            }
        }
        return false
    }

    /// The guest-physical address of the entry for `iova` at `level`, if the
    /// tables above it exist.
    public func entryAddress(_ iova: UInt64, level: Int) -> UInt64? {
        var table = root
        for l in path(to: level) {
            guard case .table(let next) = decode(ram.load64(slot(table, iova, level: l)), level: l) else { return nil }
            table = next
        }
        return slot(table, iova, level: level)
    }
}
