import FuzzDriver
import FaultControl

/// A control packet of any bytes, as the service parses it. Invariants:
/// parsing never traps; a message that parses re-encodes to the same bytes;
/// a payload that parses as ATTACH or DETACH re-encodes to the same payload,
/// and names at most 64 devices, none twice.
@_cdecl("fuzz_control_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let message = try? ControlMessage.parse(bytes[...], fds: []) {
        guard message.bytes == bytes else { fatalError("a parsed message re-encodes differently") }
        let payload = message.payload
        if let attach = try? AttachRequest(payload: payload) {
            guard attach.bytes == payload, attach.devices.count <= 64, Set(attach.devices).count == attach.devices.count else {
                fatalError("ATTACH \(attach) from \(payload)")
            }
        }
        if let detach = try? DetachRequest(payload: payload) {
            guard detach.bytes == payload, detach.devices.count <= 64, Set(detach.devices).count == detach.devices.count else {
                fatalError("DETACH \(detach) from \(payload)")
            }
        }
        _ = try? AddSourceRequest(payload: payload)
    }
    return 0
}
