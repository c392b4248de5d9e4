import FuzzDriver
import FaultABI
import FaultFixtures

/// Trace text of any bytes, line by line. Invariants: never a trap; every
/// line is an event, an unrecognised line or a comment; event times are
/// non-decreasing and within a day.
@_cdecl("fuzz_trace_importer_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    var importer = TraceImporter(name: "fuzz")
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    for line in lines { importer.add(line: line) }
    guard importer.events.count + importer.unrecognised.count <= lines.count else {
        fatalError("\(importer.events.count) events and \(importer.unrecognised.count) unrecognised from \(lines.count) lines")
    }
    var last: UInt64 = 0
    for event in importer.events {
        guard event.t >= last, event.t <= FixtureReader.maxMicroseconds else { fatalError("event time \(event.t) after \(last)") }
        last = event.t
    }
    return 0
}
