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
        .library(name: "VMMClient", targets: ["VMMClient"]),
        .library(name: "FaultService", targets: ["FaultService"]),
        .executable(name: "faultring", targets: ["faultring"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // The wire layouts (faultring_abi.h) and the syscall shims Swift cannot express.
        .target(name: "CFaultRingABI"),
        // json-c from Debian (libjson-c-dev): fixture reading and writing.
        .systemLibrary(name: "CJSONC", pkgConfig: "json-c", providers: [.apt(["libjson-c-dev"])]),
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
        // The control protocol: messages, payloads, the SEQPACKET socket with SCM_RIGHTS.
        .target(
            name: "FaultControl",
            dependencies: ["CFaultRingABI", .product(name: "SystemPackage", package: "swift-system")]
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
                "CJSONC", "FaultABI", "FaultQueue", "PageRequests", "Devices",
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // The daemon: control socket, sessions, event loop (io_uring or poll), metrics.
        .target(
            name: "FaultService",
            dependencies: [
                "CFaultRingABI", "CURingShim", "FaultABI", "FaultQueue", "FaultControl", "PageRequests", "Devices",
                "Workloads",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // What a VMM links: connect, attach, consume, respond, reconnect; guest reinjection encoders.
        .target(
            name: "VMMClient",
            dependencies: [
                "CFaultRingABI", "FaultABI", "FaultQueue", "FaultControl", "Devices", "PageRequests",
                .product(name: "SystemPackage", package: "swift-system"),
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
                "FaultControl",
                "FaultService",
                "VMMClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Test-only C: compiles the ABI header next to the system's <linux/iommu.h>.
        .target(name: "CKernelCompat", dependencies: ["CFaultRingABI"], path: "Tests/CKernelCompat"),
        .testTarget(name: "FaultABITests", dependencies: ["FaultABI", "CFaultRingABI", "CKernelCompat"]),
        .testTarget(name: "PageRequestsTests", dependencies: ["PageRequests", "FaultABI", "FaultQueue", "Workloads"]),
        .testTarget(name: "WorkloadsTests", dependencies: ["Workloads", "PageRequests", "Devices"]),
        .testTarget(
            name: "FaultServiceTests",
            dependencies: ["FaultService", "VMMClient", "FaultControl", "FaultQueue", "CFaultRingABI",
                           .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(name: "VMMClientTests", dependencies: ["VMMClient", "Devices", "FaultABI", "PageRequests"]),
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
