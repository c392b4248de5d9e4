import IOMMUFormats

/// Walks a guest's stage-1 tables in guest memory, bit-exactly, for one
/// access: the VT-d first stage (x86-64 paging, 4 or 5 levels) or SMMUv3
/// stage 1 (VMSAv8-64, 4 KiB granule). Each table read goes through guest
/// memory, which is stage 2: an unbacked table or page is a stage-2 miss.
///
/// What the model does not do, by design: it never writes guest memory (the
/// service maps guest RAM read-only), so it does not set A/D or AF. A VT-d
/// guest's A/D bits are not checked (the hardware would set them); an Arm
/// leaf with AF clear faults unless the CD has HA or AFFD, as the SMMU's
/// would without hardware updates.
public enum Stage1Walker {
    /// Walks `iova` for `access` under `context`.
    /// - Parameter addressWidth: the guest-physical address width of the
    ///   vIOMMU (VT-d: reserved bits at and above it in table entries).
    public static func walk(_ iova: UInt64, access: DMAAccess, context: Stage1Context, memory: GuestMemory,
                            addressWidth: Int = 48) -> WalkOutcome {
        switch context {
        case .vtd(let entry): walkVTd(iova, access: access, entry: entry, memory: memory, addressWidth: addressWidth)
        case .smmuv3(let cd): walkArm(iova, access: access, cd: cd, memory: memory)
        }
    }

    // MARK: VT-d first stage

    static func walkVTd(_ iova: UInt64, access: DMAAccess, entry: VTdPASIDEntry, memory: GuestMemory,
                        addressWidth: Int) -> WalkOutcome {
        func fault(_ kind: WalkFault.Kind, _ level: Int, gpa: UInt64 = 0, _ detail: String) -> WalkOutcome {
            .fault(WalkFault(kind, level: level, iova: iova, gpa: gpa, detail: detail))
        }
        guard entry.present else { return fault(.badContext, -1, "PASID entry not present") }
        guard entry.translationType == .firstStageOnly || entry.translationType == .nested else {
            return fault(.badContext, -1, "PGTT \(entry.translationType) has no first stage")
        }
        if access.privileged && !entry.supervisorRequests {
            return fault(.badContext, -1, "privileged request with SRE clear")
        }
        let mode = entry.firstStageMode
        guard mode.isCanonical(iova) else { return fault(.addressSize, mode.rootLevel, "non-canonical for \(mode.inputBits) bits") }
        var table = entry.firstStageRoot
        // Permissions accumulate down the walk: every level must allow.
        var writable = true, user = true, executable = true
        for level in stride(from: mode.rootLevel, through: 0, by: -1) {
            let slot = table + UInt64(X86PagingMode.index(of: iova, level: level)) * 8
            guard let raw = memory.load64(slot) else { return fault(.stage2Miss, level, gpa: slot, "table entry unbacked") }
            let e = X86PagingEntry(raw: raw)
            guard e.isPresent else { return fault(.notPresent, level, "entry 0x\(String(raw, radix: 16))") }
            let reserved = e.reservedBitsSet(level: level, addressWidth: addressWidth)
            guard reserved == 0 else { return fault(.reservedBits, level, "bits 0x\(String(reserved, radix: 16))") }
            writable = writable && e.isWritable
            user = user && e.isUser
            executable = executable && !e.isExecuteDisabled
            guard e.isLeaf(level: level) else {
                table = e.address
                continue
            }
            let size = X86PagingMode.leafSize(level: level)
            let gpa = e.frame(level: level)
            // Supervisor writes ignore R/W unless WPE (the CR0.WP analogue).
            let mayWrite = access.privileged ? (writable || !entry.writeProtect) : writable
            if !access.privileged && !user { return fault(.permission, level, "user request to a supervisor page") }
            if access.write && !mayWrite { return fault(.permission, level, "write to a read-only page") }
            if access.execute && !executable { return fault(.permission, level, "execute with XD set") }
            let out = gpa | (iova & (size - 1))
            guard memory.contains(out) else { return fault(.stage2Miss, level, gpa: out & ~0xFFF, "page unbacked") }
            return .translated(Translation(iova: iova & ~(size - 1), gpa: gpa, size: size, writable: mayWrite,
                                           executable: executable))
        }
        return fault(.notPresent, 0, "walk ended without a leaf")   // unreachable: level 0 is always a leaf
    }

    // MARK: SMMUv3 stage 1

    static func walkArm(_ iova: UInt64, access: DMAAccess, cd: SMMUv3ContextDescriptor, memory: GuestMemory) -> WalkOutcome {
        func fault(_ kind: WalkFault.Kind, _ level: Int, gpa: UInt64 = 0, _ detail: String) -> WalkOutcome {
            .fault(WalkFault(kind, level: level, iova: iova, gpa: gpa, detail: detail))
        }
        guard cd.isValid else { return fault(.badContext, -1, "CD V clear") }
        if let reason = cd.badDescriptorReason { return fault(.badContext, -1, reason) }
        guard let geometry = ArmStage1Geometry(t0sz: cd.t0sz), let outputBits = cd.outputBits else {
            return fault(.badContext, -1, "T0SZ or IPS")   // excluded by badDescriptorReason
        }
        guard !cd.ttb0Disabled else { return fault(.notPresent, geometry.startLevel, "EPD0 set") }
        guard geometry.fits(iova) else { return fault(.notPresent, geometry.startLevel, "above the \(geometry.inputBits)-bit input") }
        var table = cd.ttb0
        for level in geometry.startLevel...3 {
            let slot = table + UInt64(geometry.index(of: iova, level: level)) * 8
            guard let raw = memory.load64(slot) else { return fault(.stage2Miss, level, gpa: slot, "descriptor unbacked") }
            let d = ArmStage1Descriptor(raw: raw)
            guard d.isValid else { return fault(.notPresent, level, "descriptor 0x\(String(raw, radix: 16))") }
            if d.isTable(level: level) {
                guard outputBits >= 52 || d.address >> UInt64(outputBits) == 0 else {
                    return fault(.addressSize, level, "table 0x\(String(d.address, radix: 16)) above \(outputBits) bits")
                }
                table = d.address
                continue
            }
            guard d.isLeaf(level: level) else {
                return fault(.notPresent, level, "descriptor 0x\(String(raw, radix: 16)) is no valid type at level \(level)")
            }
            let size = ArmStage1Geometry.leafSize(level: level)
            let gpa = d.output(level: level)
            guard outputBits >= 52 || gpa >> UInt64(outputBits) == 0 else {
                return fault(.addressSize, level, "output 0x\(String(gpa, radix: 16)) above \(outputBits) bits")
            }
            guard d.hasAccessFlag || cd.hardwareAccessFlag || cd.accessFlagFaultDisabled else {
                return fault(.accessFlag, level, "AF clear")
            }
            guard d.permits(write: access.write, execute: access.execute, privileged: access.privileged) else {
                return fault(.permission, level, "AP/XN of 0x\(String(raw, radix: 16)) refuse \(access)")
            }
            let out = gpa | (iova & (size - 1))
            guard memory.contains(out) else { return fault(.stage2Miss, level, gpa: out & ~0xFFF, "page unbacked") }
            return .translated(Translation(
                iova: iova & ~(size - 1), gpa: gpa, size: size,
                writable: d.permits(write: true, execute: false, privileged: access.privileged),
                executable: d.permits(write: false, execute: true, privileged: access.privileged)))
        }
        return fault(.notPresent, 3, "walk ended without a leaf")   // unreachable: level 3 is a page or invalid
    }
}
