// swift-tools-version:6.0
// Side-by-side benchmark of faultring's ring against Boost's spsc_queue and
// the socketpair syscall path. A separate package so the main build and the
// test suite do not need libboost-dev. Run: Benchmarks/run.sh
import PackageDescription

let package = Package(
    name: "faultring-benchmarks",
    dependencies: [.package(path: "deps/faultring")],  // a symlink to the repository root
    targets: [
        .target(name: "BenchPeers", cxxSettings: [.unsafeFlags(["-O2"])]),
        .executableTarget(
            name: "ring-bench",
            dependencies: [
                "BenchPeers",
                .product(name: "FaultQueue", package: "faultring"),
                .product(name: "FaultABI", package: "faultring"),
                .product(name: "FaultSys", package: "faultring"),
                .product(name: "FaultLoopback", package: "faultring"),
                .product(name: "VMMClient", package: "faultring"),
            ]),
        .executableTarget(
            name: "fixture-bench",
            dependencies: [
                .product(name: "FaultFixtures", package: "faultring"),
                .product(name: "FaultABI", package: "faultring"),
            ]),
    ],
    swiftLanguageModes: [.v6],
    cxxLanguageStandard: .cxx17
)
