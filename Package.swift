// swift-tools-version:6.0
// faultring: an IOMMU fault-reporting and page-response service with a
// shared-memory ring ABI. The target list follows the data flow in
// Docs/ARCHITECTURE.md: C layouts -> Swift views -> queue -> command line.
import PackageDescription

let package = Package(
    name: "faultring",
    products: [
        .library(name: "FaultABI", targets: ["FaultABI"]),
        .library(name: "FaultQueue", targets: ["FaultQueue"]),
        .library(name: "PageRequests", targets: ["PageRequests"]),
        .library(name: "Devices", targets: ["Devices"]),
        .library(name: "Workloads", targets: ["Workloads"]),
        .executable(name: "faultring", targets: ["faultring"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // The wire layouts (faultring_abi.h) and the syscall shims Swift cannot express.
        .target(name: "CFaultRingABI"),
        // liburing behind plain functions; liburing.h stays inside the .c (see DESIGN.md).
        .target(name: "CURingShim", linkerSettings: [.linkedLibrary("uring")]),
        // Swift views of the C layouts: records, responses, versions, validation.
        .target(
            name: "FaultABI",
            dependencies: ["CFaultRingABI"]
        ),
        // Regions, producer, consumer, negotiation, doorbells. No policy.
        .target(
            name: "FaultQueue",
            dependencies: [
                "CFaultRingABI",
                "FaultABI",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Page-request lifecycle: groups, cookies, matching, timeouts. No I/O.
        .target(
            name: "PageRequests",
            dependencies: ["FaultABI", .product(name: "DequeModule", package: "swift-collections")]
        ),
        // Sources of faults: the simulated PRI device and its ledger, hardware record codecs.
        .target(name: "Devices", dependencies: ["CFaultRingABI", "FaultABI", "PageRequests"]),
        // Workloads: the in-process loop (devices, page requests, queue, reference responder).
        .target(
            name: "Workloads",
            dependencies: [
                "FaultABI", "FaultQueue", "PageRequests", "Devices",
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // The command-line tool: thin wrappers over the modules above.
        .executableTarget(
            name: "faultring",
            dependencies: [
                "CFaultRingABI",
                "FaultABI",
                "FaultQueue",
                "PageRequests",
                "Devices",
                "Workloads",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Test-only C: compiles the ABI header next to the system's <linux/iommu.h>.
        .target(name: "CKernelCompat", dependencies: ["CFaultRingABI"], path: "Tests/CKernelCompat"),
        .testTarget(name: "FaultABITests", dependencies: ["FaultABI", "CFaultRingABI", "CKernelCompat"]),
        .testTarget(name: "PageRequestsTests", dependencies: ["PageRequests", "FaultABI", "FaultQueue", "Workloads"]),
        .testTarget(name: "WorkloadsTests", dependencies: ["Workloads", "PageRequests", "Devices"]),
        .testTarget(name: "DevicesTests", dependencies: ["Devices", "FaultABI", "PageRequests"]),
        .testTarget(
            name: "FaultQueueTests",
            dependencies: [
                "FaultQueue", "FaultABI", "CFaultRingABI",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
