import FaultSimulation
import IOMMUFormats
import NestedIOMMU
import VMMClient

extension NestedSession {
    /// What the guest handed the IOMMU before the first DMA: its stage-1
    /// binds (VT-d PASID entries, or the SMMUv3 STE of its CD table) and its
    /// MSI doorbells, word for word as the IOMMU received them.
    ///
    /// A replay binds what is recorded here, checked as the IOMMU checks a
    /// BIND, not what the guest model would bind: a session can be edited
    /// to bind something else (another root, a reserved bit, a device left
    /// out) and the verdict says what that changed. Nil in sessions written
    /// before setups were recorded; those replay the model's own binds.
    public struct Setup: Codable, Sendable, Hashable {
        /// One BIND.
        public struct Bind: Codable, Sendable, Hashable {
            /// The devices, all or none of which take it.
            public var devices: [UInt32]
            /// VT-d: the PASID; SMMUv3: nil (the whole CD table).
            public var pasid: UInt32?
            /// VT-d: the PASID entry's 8 words; SMMUv3: the STE's 2.
            public var words: [UInt64]
        }

        /// One BIND_MSI.
        public struct MSI: Codable, Sendable, Hashable {
            /// The doorbell's input address.
            public var iova: UInt64
            /// Its guest-physical page.
            public var gpa: UInt64
            /// Its size.
            public var size: UInt64
        }

        /// The devices: their DMA streams (PASID, window, pattern, writes),
        /// PRI, ATS and interrupts. Replayed as recorded (nil: sessions
        /// written before devices were recorded; the configuration rebuilds them).
        public var devices: [DMADevice.Config]?
        /// The binds, in order.
        public var binds: [Bind]
        /// The doorbells, in order.
        public var msi: [MSI]

        /// What `guest` binds on `devices`, in its style, with the devices' configurations.
        public init(of guest: NestedGuest, style: NestedDomain.Style, devices: [UInt32], configs: [DMADevice.Config]) {
            self.devices = configs
            switch style {
            case .vtd: binds = guest.pasidEntries.map { Bind(devices: devices, pasid: $0.pasid, words: $0.entry.words) }
            case .smmuv3: binds = [Bind(devices: devices, pasid: nil, words: guest.tableSTE)]
            }
            msi = guest.msiBinding.map { [MSI(iova: $0.iova, gpa: $0.gpa, size: $0.size)] } ?? []
        }

        /// Binds it all in `domain`, in order.
        /// - Throws: `NestedSessionError` naming the bind (`setup.binds[2]`)
        ///   and what the format decoder or the IOMMU refused.
        public func apply(to domain: NestedDomain) throws(NestedSessionError) {
            for (i, bind) in binds.enumerated() {
                do {
                    if let pasid = bind.pasid {
                        try domain.bind(devices: bind.devices, pasid: pasid, entry: try VTdPASIDEntry(words: bind.words))
                    } else {
                        try domain.bind(devices: bind.devices, table: try SMMUv3NestedSTE(words: bind.words))
                    }
                } catch {
                    throw NestedSessionError("setup.binds[\(i)]: \(error)")
                }
            }
            for (i, m) in msi.enumerated() {
                do { try domain.bindMSI(iova: m.iova, gpa: m.gpa, size: m.size) } catch {
                    throw NestedSessionError("setup.msi[\(i)]: \(error.description)")
                }
            }
        }

        /// Checks what the replay would otherwise trust, against `config`.
        func validate(_ config: NestedHarness.Config) throws(NestedSessionError) {
            func bad(_ field: String, _ detail: String) -> NestedSessionError { NestedSessionError("\(field): \(detail)") }
            guard binds.count <= 64 else { throw bad("setup.binds", "\(binds.count) binds, at most 64") }
            if let devices { try Self.validate(devices, config) }
            guard msi.count <= NestedDomain.maxMSIBindings else {
                throw bad("setup.msi", "\(msi.count) doorbells, at most \(NestedDomain.maxMSIBindings)")
            }
            for (i, b) in binds.enumerated() {
                let at = "setup.binds[\(i)]"
                guard !b.devices.isEmpty, b.devices.count <= 64, Set(b.devices).count == b.devices.count,
                      b.devices.allSatisfy({ (1...UInt32(config.devices)).contains($0) }) else {
                    throw bad("\(at).devices", "\(b.devices) must be distinct devices of 1...\(config.devices)")
                }
                switch config.style {
                case .vtd:
                    guard let pasid = b.pasid, (1...UInt32(config.pasids)).contains(pasid) else {
                        throw bad("\(at).pasid", "\(b.pasid.map(String.init) ?? "none"): a VT-d bind names a PASID of 1...\(config.pasids)")
                    }
                    guard b.words.count == 8 else { throw bad("\(at).words", "\(b.words.count) words; a PASID entry has 8") }
                case .smmuv3:
                    guard b.pasid == nil else { throw bad("\(at).pasid", "an SMMUv3 bind names no PASID (it binds the CD table)") }
                    guard b.words.count == 2 else { throw bad("\(at).words", "\(b.words.count) words; an STE bind has 2") }
                }
            }
        }

        /// The recorded devices: ids 1...N in order, and every stream's
        /// numbers within what a walk and a step can take without trapping.
        static func validate(_ devices: [DMADevice.Config], _ config: NestedHarness.Config) throws(NestedSessionError) {
            func bad(_ field: String, _ detail: String) -> NestedSessionError { NestedSessionError("\(field): \(detail)") }
            guard devices.count == config.devices else {
                throw bad("setup.devices", "\(devices.count) devices; the configuration has \(config.devices)")
            }
            for (i, d) in devices.enumerated() {
                let at = "setup.devices[\(i)]"
                guard d.id == UInt32(i + 1) else { throw bad("\(at).id", "\(d.id); devices are 1...\(config.devices) in order") }
                guard (1...64).contains(d.streams.count) else { throw bad("\(at).streams", "\(d.streams.count) streams; 1...64") }
                guard (1...512).contains(d.outstanding) else { throw bad("\(at).outstanding", "\(d.outstanding) is not in 1...512") }
                guard (1...64).contains(d.accessesPerStep) else {
                    throw bad("\(at).accessesPerStep", "\(d.accessesPerStep) is not in 1...64")
                }
                if let msi = d.msi, !(1...1_000_000).contains(msi.every) {
                    throw bad("\(at).msi.every", "\(msi.every) is not in 1...1000000")
                }
                for (j, s) in d.streams.enumerated() {
                    let sat = "\(at).streams[\(j)]"
                    guard (1...0xF_FFFF).contains(s.pasid) else { throw bad("\(sat).pasid", "\(s.pasid) is not a PASID") }
                    guard (1...65_536).contains(s.pages) else { throw bad("\(sat).pages", "\(s.pages) is not in 1...65536") }
                    guard s.base % 4096 == 0, s.base <= (1 << 57) - UInt64(s.pages) * 4096 else {
                        throw bad("\(sat).base", "0x\(String(s.base, radix: 16)) must be 4 KiB aligned, the window below 2^57")
                    }
                    guard (0...1_000_000).contains(s.writeEvery) else { throw bad("\(sat).writeEvery", "\(s.writeEvery) is not in 0...1000000") }
                    switch s.pattern {
                    case .sequential, .random: break
                    case .strided(let n):
                        guard (1...65_536).contains(n) else { throw bad("\(sat).pattern", "stride \(n) is not in 1...65536") }
                    case .workingSet(let pages, let churn):
                        guard (1...65_536).contains(pages), (1...1_000_000).contains(churn) else {
                            throw bad("\(sat).pattern", "working set of \(pages) pages churning every \(churn) is out of range")
                        }
                    }
                }
            }
        }
    }
}
