import FaultSys
import CFaultRingABI
import CKernelCompat
import Foundation
import Testing

/// ABI 1 must be the kernel's `struct iommu_fault` / `struct iommu_page_response`
/// to the byte, as the system's <linux/iommu.h> (linux-libc-dev) lays them out.
@Suite struct KernelCompatibilityTests {
    static var rows: [faultring_compat_row] {
        var pointer: UnsafePointer<faultring_compat_row>?
        let count = faultring_compat_rows(&pointer)
        return Array(UnsafeBufferPointer(start: pointer, count: count))
    }

    @Test func everyFieldHasTheKernelsOffsetAndSize() {
        let rows = Self.rows
        #expect(rows.count >= 45)
        for row in rows {
            let name = String(cString: row.name)
            #expect(row.kernel_offset == row.ours_offset, "\(name): kernel offset \(row.kernel_offset), ours \(row.ours_offset)")
            #expect(row.kernel_size == row.ours_size, "\(name): kernel size \(row.kernel_size), ours \(row.ours_size)")
        }
    }

    @Test func swiftSeesTheSameSizesAsC() {
        #expect(MemoryLayout<faultring_v1_fault>.size == 64)
        #expect(MemoryLayout<faultring_v2_fault>.size == 64)
        #expect(MemoryLayout<faultring_v2_lost>.size == 64)
        #expect(MemoryLayout<faultring_v1_response>.size == 24)
        #expect(MemoryLayout<faultring_v2_response>.size == 32)
        #expect(MemoryLayout<faultring_producer_header>.size == 576)
        #expect(MemoryLayout<faultring_consumer_header>.size == 256)
        #expect(MemoryLayout<faultring_producer_header>.offset(of: \.fault_prod) == 384)
        #expect(MemoryLayout<faultring_consumer_header>.offset(of: \.fault_cons) == 64)
    }

    static var headerPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/CFaultRingABI/include/faultring_abi.h").path
    }

    /// Runs the system C compiler; returns its exit status and output.
    static func compile(_ arguments: [String]) throws -> (Int32, String) {
        // stderr folded into stdout (2>&1): one stream, read to its end.
        let process = try ChildProcess.spawn("/bin/sh", ["-c", "exec cc \"$@\" 2>&1", "cc"] + arguments, stdout: .capture)
        let output = process.readOutput()
        return (process.wait(), output)
    }

    @Test func headerIsPlainC11() throws {
        let (status, output) = try Self.compile(
            ["-std=c11", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", "-x", "c", Self.headerPath])
        #expect(status == 0, "faultring_abi.h does not compile as C11: \(output)")
    }

    /// The check must be able to fail: a header whose response has one
    /// field moved is rejected by the same comparison, compiled the same way.
    @Test func aMovedFieldIsCaught() throws {
        let source = """
            #include <linux/iommu.h>
            #include <stddef.h>
            struct moved { unsigned argsz, version, flags, grpid, pasid, code; };
            _Static_assert(offsetof(struct iommu_page_response, pasid) == offsetof(struct moved, pasid), "pasid moved");
            """
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("faultring-moved-\(getpid()).c")
        try source.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let (status, output) = try Self.compile(["-std=c11", "-fsyntax-only", file.path])
        #expect(status != 0)
        #expect(output.contains("pasid moved"))
    }

    static var includeDirectory: String { URL(fileURLWithPath: headerPath).deletingLastPathComponent().path }

    /// Every contract header compiles on its own, as C11 and as C++17, with
    /// its static-assert pins (C++ takes `static_assert`, C `_Static_assert`).
    @Test(arguments: ["faultring_abi.h", "faultring_protocol.h", "faultring_iommufd.h"])
    func contractHeadersCompileAsCAndCxx(header: String) throws {
        let path = Self.includeDirectory + "/" + header
        for language in [["-std=c11", "-x", "c", "-pedantic"], ["-std=c++17", "-x", "c++"]] {
            let (status, output) = try Self.compile(language + ["-Wall", "-Wextra", "-Werror", "-fsyntax-only", path])
            #expect(status == 0, "\(header) as \(language[0]): \(output)")
        }
    }

    /// Whether this machine's <linux/iommufd.h> is new enough to have the
    /// fault queue (Linux 6.11+ uAPI headers; Debian 12 ships 6.1's).
    static var systemHasFaultQueue: Bool {
        (try? String(contentsOfFile: "/usr/include/linux/iommufd.h", encoding: .utf8))?.contains("iommu_hwpt_pgfault") ?? false
    }

    /// Where a newer <linux/iommufd.h> is installed, every size and offset of
    /// the restated structs equals the kernel's own.
    @Test(.enabled(if: systemHasFaultQueue, "this machine's <linux/iommufd.h> predates the iommufd fault queue"))
    func iommufdRecordsMatchTheSystemHeader() throws {
        var checks: [String] = []
        func same(_ ours: String, _ theirs: String, _ fields: [String]) {
            checks.append("_Static_assert(sizeof(struct \(ours)) == sizeof(struct \(theirs)), \"\(ours) size\");")
            for f in fields {
                checks.append("_Static_assert(offsetof(struct \(ours), \(f)) == offsetof(struct \(theirs), \(f)), \"\(ours).\(f)\");")
            }
        }
        same("faultring_hwpt_pgfault", "iommu_hwpt_pgfault",
             ["flags", "dev_id", "pasid", "grpid", "perm", "__reserved", "addr", "length", "cookie"])
        same("faultring_hwpt_page_response", "iommu_hwpt_page_response", ["cookie", "code"])
        same("faultring_iommu_fault_alloc", "iommu_fault_alloc", ["size", "flags", "out_fault_id", "out_fault_fd"])
        var source = "#include <linux/iommufd.h>\n#include <stddef.h>\n#include \"faultring_iommufd.h\"\n"
        source += checks.joined(separator: "\n") + "\n"
        if (try String(contentsOfFile: "/usr/include/linux/iommufd.h", encoding: .utf8)).contains("iommufd_vevent_header") {
            checks.removeAll()
            same("faultring_vevent_header", "iommufd_vevent_header", ["flags", "sequence"])
            same("faultring_iommu_veventq_alloc", "iommu_veventq_alloc",
                 ["size", "flags", "viommu_id", "type", "veventq_depth", "out_veventq_id", "out_veventq_fd", "__reserved"])
            source += checks.joined(separator: "\n") + "\n"
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("faultring-iommufd-\(getpid()).c")
        try source.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let (status, output) = try Self.compile(["-std=c11", "-fsyntax-only", "-I", Self.includeDirectory, file.path])
        #expect(status == 0, "the restated iommufd structs differ from <linux/iommufd.h>: \(output)")
    }
}
