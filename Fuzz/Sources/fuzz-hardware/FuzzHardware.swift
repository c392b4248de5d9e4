import FaultABI
import FuzzDriver
import IOMMUFormats
import VMMClient

/// The hardware and guest formats the service and the VMM decode, from any
/// 40 bytes, in every dialect: SMMUv3 PRI queue entries and event records,
/// CMD_PRI_RESP (a vSMMUv3 guest's answer), VT-d page requests and page
/// group responses (a VT-d guest's answer), and the iommufd records
/// (`iommu_hwpt_pgfault`, `iommu_hwpt_page_response`, vEVENTQ headers).
/// Invariants: decoding never traps; whatever decodes encodes to words that
/// decode to the same value (decode ∘ encode is the identity on what decodes);
/// and the VMM's guest answer decoders (`GuestPendingGroups`) match a guest
/// answer that names a group shown to the guest to that group, exactly once.
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
    // The guest answer decoders: show the guest the group the answer names, then decode it twice.
    let cookie = w[3] | 1
    let needsPASID = w[2] & 1 == 1
    func shown(endpoint: UInt32, pasid: UInt32?, prgi: UInt32) -> GuestPendingGroups {
        var pending = GuestPendingGroups()
        pending.note(PageRequest(deviceID: 0, pasid: pasid, prgi: prgi, address: 0, isLastPage: true,
                                 needsPASID: needsPASID, cookie: cookie), endpoint: endpoint)
        return pending
    }
    func once(_ what: String, _ decode: () throws(GuestAnswerError) -> PageResponse) {
        guard let answer = try? decode(), answer.cookie == cookie else { fatalError("\(what): the group it names was not matched") }
        do {
            let again = try decode()
            fatalError("\(what): matched twice (\(again))")
        } catch {
            guard case .noPendingGroup = error else { fatalError("\(what): second decode failed as \(error)") }
        }
    }
    if let c = try? SMMUv3Command(words: w[0], w[1]) {
        var pending: GuestPendingGroups
        switch c {
        case .priResponse(let sid, let ssid, let prgi, _): pending = shown(endpoint: sid, pasid: ssid, prgi: prgi)
        case .resume(let sid, let stag, _): pending = shown(endpoint: sid, pasid: nil, prgi: UInt32(stag))
        }
        once("CMD_PRI_RESP / CMD_RESUME") { () throws(GuestAnswerError) in try pending.decodeSMMUv3(w[0], w[1]) }
    }
    if let r = try? VTdPageGroupResponse(words: w[0], w[1], w[2], w[3], dialect: .linux) {
        var pending = shown(endpoint: UInt32(r.requesterID), pasid: r.pasid, prgi: r.prgIndex)
        once("VT-d page group response") { () throws(GuestAnswerError) in try pending.decodeVTd(w[0], w[1], w[2], w[3]) }
    }
    let eight = UnsafeRawBufferPointer(rebasing: raw[0..<8])
    if let r = try? HWPTPageResponse(bytes: eight) {
        same("iommu_hwpt_page_response", r, r.bytes.withUnsafeBytes { try? HWPTPageResponse(bytes: $0) })
    }
    let header = VEventHeader(bytes: eight)
    same("vEVENTQ header", header, header.bytes.withUnsafeBytes { VEventHeader(bytes: $0) })
    return 0
}
