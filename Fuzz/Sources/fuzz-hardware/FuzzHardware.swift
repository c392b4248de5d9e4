import FuzzDriver
import IOMMUFormats

/// The hardware and guest formats the service and the VMM decode, from any
/// 40 bytes, in every dialect: SMMUv3 PRI queue entries and event records,
/// CMD_PRI_RESP (a vSMMUv3 guest's answer), VT-d page requests and page
/// group responses (a VT-d guest's answer), and the iommufd records
/// (`iommu_hwpt_pgfault`, `iommu_hwpt_page_response`, vEVENTQ headers).
/// Invariants: decoding never traps; whatever decodes encodes to words that
/// decode to the same value (decode ∘ encode is the identity on what decodes).
@_cdecl("fuzz_hardware_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 40 else { return 0 }
    let raw = UnsafeRawBufferPointer(start: data, count: 40)
    let w = (0..<4).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) }
    func same<T: Equatable>(_ what: String, _ a: T, _ b: T?) {
        guard let b, a == b else { fatalError("\(what): \(a) encoded to words that decode to \(String(describing: b))") }
    }
    for (name, dialect) in HardwareDialect.named {
        if let r = try? SMMUv3PRIRecord(words: w[0], w[1], dialect: dialect) {
            let (a, b) = r.words
            same("SMMUv3 PRI (\(name))", r, try? SMMUv3PRIRecord(words: a, b, dialect: dialect))
        }
        if let r = try? SMMUv3EventRecord(words: w[0], w[1], w[2], w[3], dialect: dialect) {
            let (a, b, c, d) = r.words
            same("SMMUv3 event (\(name))", r, try? SMMUv3EventRecord(words: a, b, c, d, dialect: dialect))
        }
        if let r = try? VTdPageRequest(words: w[0], w[1], w[2], w[3], dialect: dialect) {
            let (a, b, c, d) = r.words(dialect.vtd)
            same("VT-d page request (\(name))", r, try? VTdPageRequest(words: a, b, c, d, dialect: dialect))
        }
        if let r = try? VTdPageGroupResponse(words: w[0], w[1], w[2], w[3], dialect: dialect) {
            let (a, b, c, d) = r.words(dialect.vtd)
            same("VT-d page group response (\(name))", r, try? VTdPageGroupResponse(words: a, b, c, d, dialect: dialect))
        }
    }
    if let c = try? SMMUv3Command(words: w[0], w[1]) {
        let (a, b) = c.words
        same("SMMUv3 command", c, try? SMMUv3Command(words: a, b))
    }
    if let f = try? HWPTPageFault(bytes: raw) {
        same("iommu_hwpt_pgfault", f, f.bytes.withUnsafeBytes { try? HWPTPageFault(bytes: $0) })
    }
    let eight = UnsafeRawBufferPointer(rebasing: raw[0..<8])
    if let r = try? HWPTPageResponse(bytes: eight) {
        same("iommu_hwpt_page_response", r, r.bytes.withUnsafeBytes { try? HWPTPageResponse(bytes: $0) })
    }
    let header = VEventHeader(bytes: eight)
    same("vEVENTQ header", header, header.bytes.withUnsafeBytes { VEventHeader(bytes: $0) })
    return 0
}
