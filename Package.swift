// swift-tools-version:6.0
// faultring: an IOMMU fault-reporting and page-response service with a
// shared-memory ring ABI. Read the target list top to bottom: it is the data
// flow of Docs/ARCHITECTURE.md, from the C contract to the command line. A
// target depends only on targets above it.
import PackageDescription

let systemPackage = Target.Dependency.product(name: "SystemPackage", package: "swift-system")

let package = Package(
    name: "faultring",
    products: [
        .library(name: "FaultSys", targets: ["FaultSys"]),
        .library(name: "FaultABI", targets: ["FaultABI"]),
        .library(name: "FaultQueue", targets: ["FaultQueue"]),
        .library(name: "IOMMUFormats", targets: ["IOMMUFormats"]),
        .library(name: "NestedIOMMU", targets: ["NestedIOMMU"]),
        .library(name: "PageRequests", targets: ["PageRequests"]),
        .library(name: "FaultPipeline", targets: ["FaultPipeline"]),
        .library(name: "FaultFD", targets: ["FaultFD"]),
        .library(name: "FaultControl", targets: ["FaultControl"]),
        .library(name: "FaultService", targets: ["FaultService"]),
        .library(name: "VMMClient", targets: ["VMMClient"]),
        .library(name: "FaultSimulation", targets: ["FaultSimulation"]),
        .library(name: "FaultFixtures", targets: ["FaultFixtures"]),
        .library(name: "FaultLoopback", targets: ["FaultLoopback"]),
        .library(name: "FaultStorm", targets: ["FaultStorm"]),
        .executable(name: "faultring", targets: ["faultring"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // The contract, and nothing else: faultring_abi.h (records, regions,
        // responses) and faultring_protocol.h (control messages). C11/C++17,
        // no code; abi.c only compiles them so their static asserts run.
        .target(name: "CFaultRingABI"),
        // The system calls Swift cannot express (memfd seals, eventfd, timerfd,
        // pipe2, SCM_RIGHTS, SO_PEERCRED, signalfd), one convention: -errno.
        .target(name: "CFaultRingSys"),
        // liburing behind plain functions; liburing.h stays inside the .c
        // (its _GNU_SOURCE clashes with SwiftGlibc, see Docs/ARCHITECTURE.md).
        .target(name: "CURingShim", linkerSettings: [.linkedLibrary("uring")]),
        // json-c from Debian (libjson-c-dev): the fixture format.
        .systemLibrary(name: "CJSONC", pkgConfig: "json-c", providers: [.apt(["libjson-c-dev"])]),
        // zlib from Debian (zlib1g-dev): HdrHistogram's compressed V2 encoding in storm reports.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // Typed wrappers over CFaultRingSys: OwnedFD (~Copyable), Sys calls
        // with SystemCallError, ChildProcess, and fault injection for tests.
        .target(name: "FaultSys", dependencies: ["CFaultRingSys", systemPackage]),
        // Swift views of the C layouts: records, responses, versions, validation, cookies.
        .target(name: "FaultABI", dependencies: ["CFaultRingABI"]),
        // Regions, producer, consumer, negotiation, doorbells. No policy.
        .target(
            name: "FaultQueue",
            dependencies: [
                "CFaultRingABI", "FaultABI", "FaultSys",
                .product(name: "Atomics", package: "swift-atomics"), systemPackage,
            ]
        ),
        // Hardware and guest formats: SMMUv3, VT-d, virtio-iommu and vEVENTQ
        // records and commands, encoded and decoded bit-exactly. No state.
        .target(name: "IOMMUFormats", dependencies: ["CFaultRingABI", "FaultABI"]),
        // The simulated nested IOMMU: guest memory shared by the VMM (stage 2),
        // walks of the guest's stage-1 tables in it, binds, caches, invalidations.
        // No I/O but mmap.
        .target(
            name: "NestedIOMMU",
            dependencies: ["CFaultRingSys", "FaultSys", "IOMMUFormats", systemPackage,
                           .product(name: "Atomics", package: "swift-atomics")]
        ),
        // The page-request lifecycle: groups, cookies, matching, timeouts,
        // automatic answers; the one answer matcher. No I/O.
        .target(
            name: "PageRequests",
            dependencies: ["FaultABI", .product(name: "DequeModule", package: "swift-collections")]
        ),
        // The seam between sources and the service: FaultSource, the sink
        // into the producer, and the one service step both the daemon and the
        // loopback run.
        .target(name: "FaultPipeline", dependencies: ["FaultABI", "FaultQueue", "PageRequests"]),
        // Kernel fault fds (iommufd fault queue, vEVENTQ) and device sockets
        // speaking the same records, as a FaultSource.
        .target(
            name: "FaultFD",
            dependencies: ["CFaultRingABI", "CFaultRingSys", "FaultABI", "FaultSys", "IOMMUFormats", "PageRequests",
                           "FaultPipeline", systemPackage]
        ),
        // The control protocol: messages, payloads, the SEQPACKET socket with SCM_RIGHTS.
        .target(name: "FaultControl", dependencies: ["CFaultRingABI", "CFaultRingSys", "FaultABI", "FaultSys", systemPackage]),
        // The daemon: sessions, event loop (io_uring or poll), metrics. Knows
        // its fault source only as a FaultSource.
        .target(
            name: "FaultService",
            dependencies: [
                "CFaultRingABI", "CURingShim", "FaultABI", "FaultSys", "FaultQueue", "PageRequests", "FaultPipeline",
                "FaultFD", "FaultControl", "NestedIOMMU", "IOMMUFormats",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                systemPackage,
            ]
        ),
        // What a VMM links: connect, attach, consume, respond, reconnect; the
        // guest-answer table; the reference VMM and its behaviour.
        .target(
            name: "VMMClient",
            dependencies: [
                "CFaultRingABI", "CFaultRingSys", "FaultABI", "FaultSys", "FaultQueue", "FaultControl", "IOMMUFormats",
                "PageRequests", "NestedIOMMU", systemPackage,
            ]
        ),
        // Simulated PRI devices and their ledgers, as a FaultSource.
        .target(
            name: "FaultSimulation",
            dependencies: ["CFaultRingABI", "CFaultRingSys", "FaultABI", "FaultSys", "PageRequests", "FaultPipeline",
                           "IOMMUFormats", "NestedIOMMU", "CZlib", .product(name: "DequeModule", package: "swift-collections"),
                           .product(name: "Histogram", package: "hdrhistogram-swift")]
        ),
        // Fixtures: the format on json-c, reader/writer, trace import, the
        // fixture feed (a FaultSource), capture (a FaultSource wrapper), and
        // storm profiles (the declarative load files of Docs/STORMS.md).
        .target(
            name: "FaultFixtures",
            dependencies: ["CJSONC", "FaultABI", "IOMMUFormats", "PageRequests", "FaultPipeline", "VMMClient", "FaultSimulation", "NestedIOMMU"]
        ),
        // The whole loop in one process, in virtual time: for demo, tests, benchmarks.
        .target(
            name: "FaultLoopback",
            dependencies: [
                "FaultABI", "FaultQueue", "PageRequests", "FaultPipeline", "VMMClient", "FaultSimulation", "NestedIOMMU",
                "IOMMUFormats",
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // Synthetic fault storms: runs a profile's service, device and consumer
        // processes, samples them, judges the result and renders the report.
        .target(
            name: "FaultStorm",
            dependencies: [
                "FaultSys", "FaultPipeline", "FaultService", "VMMClient", "FaultSimulation", "FaultFixtures", "NestedIOMMU",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        // The command-line tool: thin commands composing the modules above.
        .executableTarget(
            name: "faultring",
            dependencies: [
                "CFaultRingABI", "FaultABI", "FaultSys", "FaultQueue", "IOMMUFormats", "PageRequests", "FaultPipeline",
                "FaultFD", "FaultControl", "FaultService", "VMMClient", "FaultSimulation", "FaultFixtures", "FaultLoopback",
                "FaultStorm", .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                systemPackage,
            ]
        ),
        // Test-only C: compiles the ABI header next to the system's <linux/iommu.h>.
        .target(name: "CKernelCompat", dependencies: ["CFaultRingABI"], path: "Tests/CKernelCompat"),
        .testTarget(name: "FaultABITests", dependencies: ["FaultABI", "FaultSys", "CFaultRingABI", "CKernelCompat"]),
        .testTarget(
            name: "FaultQueueTests",
            dependencies: ["FaultQueue", "FaultABI", "FaultSys", "CFaultRingABI", "CFaultRingSys", systemPackage]
        ),
        .testTarget(name: "IOMMUFormatsTests", dependencies: ["IOMMUFormats", "FaultABI"]),
        .testTarget(name: "NestedIOMMUTests", dependencies: ["NestedIOMMU", "IOMMUFormats", "FaultSys", "CFaultRingSys"]),
        .testTarget(name: "PageRequestsTests", dependencies: ["PageRequests", "FaultABI", "FaultQueue", "FaultPipeline", "FaultSimulation"]),
        .testTarget(
            name: "FaultServiceTests",
            dependencies: ["FaultService", "VMMClient", "FaultControl", "FaultQueue", "FaultSys", "FaultABI", "FaultFD",
                           "FaultSimulation", "FaultFixtures", "CFaultRingABI", "NestedIOMMU", "IOMMUFormats",
                           "CFaultRingSys", systemPackage]
        ),
        .testTarget(name: "VMMClientTests", dependencies: ["VMMClient", "IOMMUFormats", "FaultABI", "PageRequests"]),
        .testTarget(
            name: "FaultFDTests",
            dependencies: ["FaultFD", "FaultPipeline", "FaultQueue", "FaultSys", "FaultABI", "IOMMUFormats", "PageRequests",
                           "CFaultRingABI", systemPackage]
        ),
        .testTarget(
            name: "FaultSimulationTests",
            dependencies: ["FaultSimulation", "FaultABI", "PageRequests", "CZlib",
                           .product(name: "Histogram", package: "hdrhistogram-swift")]
        ),
        .testTarget(
            name: "FaultFixturesTests",
            dependencies: ["FaultFixtures", "FaultABI", "IOMMUFormats", "VMMClient", "FaultSimulation", "PageRequests",
                           "NestedIOMMU"]
        ),
        .testTarget(
            name: "FaultStormTests",
            dependencies: ["FaultStorm", "FaultFixtures", "FaultSimulation", "FaultPipeline", "FaultSys", "NestedIOMMU", "VMMClient"]
        ),
        .testTarget(
            name: "FaultLoopbackTests",
            dependencies: ["FaultLoopback", "FaultSimulation", "PageRequests", "VMMClient", "NestedIOMMU", "FaultABI", "CFaultRingABI"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

