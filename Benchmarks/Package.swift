// swift-tools-version:6.0
// Side-by-side benchmark of faultring's ring against Boost's spsc_queue and
// DPDK's rte_ring. A separate package so the main build and the test suite
// do not need libboost-dev or libdpdk-dev. Run: Benchmarks/run.sh
import PackageDescription

let package = Package(
    name: "faultring-benchmarks",
    dependencies: [.package(path: "deps/faultring")],  // a symlink to the repository root
    targets: [
        .target(
            name: "BenchPeers",
            cxxSettings: [.unsafeFlags(["-O2", "-msse4.2", "-I/usr/include/dpdk", "-I/usr/include/x86_64-linux-gnu/dpdk",
                                        "-include", "rte_config.h", "-DALLOW_EXPERIMENTAL_API"])],
            linkerSettings: [.linkedLibrary("rte_ring"), .linkedLibrary("rte_eal")]),
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
