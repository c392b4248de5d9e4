import FuzzDriver
import FaultABI
import FaultFixtures
import Glibc

/// A fixture file of any bytes. Invariants: reading ends in a fixture or a
/// `FixtureError` naming the file, never a trap; the events of a fixture
/// that reads have non-decreasing times within a day.
@_cdecl("fuzz_fixture_reader_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data!, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = "/dev/shm/faultring-fuzz-fixture-\(getpid()).json"
    let fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return 0 }
    _ = write(fd, data, size)
    close(fd)
    defer { unlink(path) }
    var last: UInt64 = 0
    do {
        let reader = try FixtureReader(path: path)
        _ = try reader.read { _, event in
            guard event.t >= last, event.t <= FixtureReader.maxMicroseconds else { fatalError("event time \(event.t) after \(last)") }
            last = event.t
        }
    } catch {
        guard "\(error)".contains(path) else { fatalError("an error that does not name the file: \(error)") }
    }
    return 0
}
