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
}
