// fixture-bench: parse speed and memory of a large fixture, json-c streaming
// reader next to Foundation's JSONDecoder on the same file.
//   fixture-bench generate PATH N   write a fixture of N events (FixtureWriter, json-c)
//   fixture-bench jsonc PATH        parse it with FixtureReader (streaming, validated)
//   fixture-bench foundation PATH   parse it with JSONDecoder into Codable structs
// Each parse prints: events, seconds, MB/s, peak RSS (MiB). Run each in its own
// process (Benchmarks/fixture-bench.sh) so peak memory is per parser.
import FaultABI
import Foundation
import FaultFixtures

func peakRSSMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

/// The same document as Codable structs, converting hex strings as the
/// json-c reader does, so both do the same work.
struct Document: Decodable {
    struct Device: Decodable { var id: UInt32 }
    struct Event: Decodable {
        var t: UInt64
        var type: String
        var device: UInt32
        var pasid: UInt32?
        var prgi: UInt32?
        var perm: String?
        var addr: String?
        var last: Bool?
        var `private`: [String]?
        var reason: UInt32?
    }
    var faultringFixture: Int
    var devices: [Device]
    var events: [Event]
}

func hex(_ s: String?) -> UInt64 { s.flatMap { UInt64($0.dropFirst(2), radix: 16) } ?? 0 }

let args = CommandLine.arguments
guard args.count >= 3 else {
    print("usage: fixture-bench generate PATH N | jsonc PATH | foundation PATH")
    exit(2)
}
let path = args[2]
switch args[1] {
case "generate":
    let count = Int(args[3]) ?? 1_000_000
    var fixture = Fixture()
    fixture.name = "large"
    fixture.devices = (1...4).map { Fixture.Device(id: UInt32($0), name: "0000:0\($0):00.0", pasids: [1, 2], privateData: true) }
    let writer = try FixtureWriter(path: path, fixture: fixture)
    for n in 0..<count {
        let t = UInt64(n) * 3
        if n % 10 == 9 {
            writer.append(FixtureEvent(t: t, kind: .fault(UnrecoverableFault(
                deviceID: UInt32(n % 4 + 1), reason: 6, pasid: 1, permissions: .write, address: UInt64(n) << 12))))
        } else {
            writer.append(FixtureEvent(t: t, kind: .pageRequest(PageRequest(
                deviceID: UInt32(n % 4 + 1), pasid: UInt32(n % 2 + 1), prgi: UInt32(n % 512), permissions: [.read, .write],
                address: 0x7F00_0000_0000 + UInt64(n) << 12, isLastPage: n % 3 != 0,
                privateData: PrivateData(low: UInt64(n) &* 0x9E37_79B9_7F4A_7C15, high: UInt64(n))))))
        }
    }
    try writer.finish(expected: nil)
case "jsonc":
    let start = Date()
    var events = 0
    var checksum: UInt64 = 0
    try FixtureReader(path: path).read { _, event in
        events += 1
        if case .pageRequest(let r) = event.kind { checksum &+= r.address &+ (r.privateData?.low ?? 0) }
    }
    let seconds = Date().timeIntervalSince(start)
    let bytes = Double((try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)
    print(String(format: "jsonc events=%d seconds=%.3f MBps=%.1f peakRSS_MiB=%.1f checksum=%llu", events, seconds,
                 bytes / seconds / 1e6, peakRSSMiB(), checksum))
case "foundation":
    let start = Date()
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    let document = try JSONDecoder().decode(Document.self, from: data)
    var checksum: UInt64 = 0
    for event in document.events where event.type == "page" {
        checksum &+= hex(event.addr) &+ hex(event.private?.first)
    }
    let seconds = Date().timeIntervalSince(start)
    print(String(format: "foundation events=%d seconds=%.3f MBps=%.1f peakRSS_MiB=%.1f checksum=%llu", document.events.count,
                 seconds, Double(data.count) / seconds / 1e6, peakRSSMiB(), checksum))
default:
    print("unknown mode \(args[1])")
    exit(2)
}
