// swift-tools-version:6.0
// libFuzzer targets, each checking an invariant, not only "no crash".
// A separate package: the targets are built with -sanitize=fuzzer,address,
// which the main build and the test suite must not be. Run: scripts/fuzz.sh
import PackageDescription

let library: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]  // libFuzzer supplies main()

func target(_ name: String, _ products: [String]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzDriver"] + products.map { .product(name: $0, package: "faultring") },
                      swiftSettings: library)
}

let package = Package(
    name: "faultring-fuzz",
    dependencies: [.package(path: "deps/faultring")],  // a symlink to the repository root
    targets: [
        .target(name: "FuzzDriver"),
        target("fuzz-records", ["FaultABI"]),
        target("fuzz-fixture-reader", ["FaultFixtures", "FaultABI"]),
        target("fuzz-trace-importer", ["FaultFixtures", "FaultABI"]),
        target("fuzz-consumer-region", ["FaultQueue", "FaultABI"]),
        target("fuzz-control", ["FaultControl"]),
        target("fuzz-hardware", ["IOMMUFormats", "VMMClient", "FaultABI"]),
        target("fuzz-control-session", ["FaultService", "FaultControl", "FaultSimulation", "FaultFD", "FaultSys"]),
    ],
    swiftLanguageModes: [.v6]
)
