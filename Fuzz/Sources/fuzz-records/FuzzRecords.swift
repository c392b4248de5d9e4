import FuzzDriver
import FaultABI

/// One 64-byte ring slot, read as both ABIs, and one 64-byte response slot.
/// Invariants: decoding never traps; whatever decodes as an event encodes
/// back to a slot that decodes to the same event (decode ∘ encode is the
/// identity on what decodes); response validation never traps.
@_cdecl("fuzz_records_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 64 else { return 0 }
    let slot = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
    let again = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
    defer {
        slot.deallocate()
        again.deallocate()
    }
    slot.copyMemory(from: data, byteCount: 64)
    for abi in [ABIVersion.v1, .v2] {
        guard let decoded = try? DecodedRecord.decode(UnsafeRawPointer(slot), abi: abi) else { continue }
        guard case .event(let event, let sequence) = decoded else { continue }
        again.initializeMemory(as: UInt8.self, repeating: 0, count: 64)
        event.encode(into: again, abi: abi, sequence: sequence ?? 0)
        guard let round = try? DecodedRecord.decode(UnsafeRawPointer(again), abi: abi) else {
            fatalError("ABI \(abi): \(event) encoded to a slot that does not decode")
        }
        guard case .event(let back, _) = round, back == event else {
            fatalError("ABI \(abi): \(event) came back as \(round)")
        }
        _ = PageResponse.validate(slot: UnsafeRawPointer(slot), abi: abi)
    }
    return 0
}
