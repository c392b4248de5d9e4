import FaultABI
import FaultService
import Foundation
import Glibc
import Testing
import VMMClient

/// The answer rules a VMM relies on, through a live service and shared
/// memory: ABI 2 answers by cookie alone (as iommufd), PASID checked only
/// when flagged; ABI 1 follows the kernel's iommu_page_response(): a
/// NEEDS_PASID group must get its PASID back, any other ignores it.
@Suite struct AnswerRuleTests {
    /// Answers `want` groups of `device` with `make`; returns the stats after.
    /// Also returns what the VMM's own queue counters (shared memory, no STATS) say about matching.
    static func answer(_ path: String, device: UInt32, abi: ABIVersion, want: Int,
                       _ make: (PageRequest) -> PageResponse) throws -> (ServiceStats, [String: UInt64]) {
        let client = try VMMClient(socketPath: path, devices: [device], abi: abi)
        var answered = 0
        for _ in 0..<2000 where answered < want {
            _ = client.wait(timeoutMilliseconds: 5)
            try client.consume { record in
                guard answered < want, case .event(.pageRequest(let r), _) = record, r.isLastPage else { return nil }
                answered += 1
                return make(r)
            }
        }
        #expect(answered == want)
        usleep(50_000)
        let stats = try serviceStats(path)
        let matched = client.consumer?.status.counters.responsesMatched ?? [:]
        client.close()
        return (stats, matched)
    }

    @Test func abi2CookieAloneSufficesAndAFlaggedPASIDIsChecked() throws {
        let path = socketPath("answer-rules-v2")
        // Device 1 sets NEEDS_PASID (odd ids do); a long timeout so only consumer answers count.
        let service = try startService(path, ["--devices", "2", "--rate", "2000", "--timeout-ms", "60000"])
        var (stats, matched) = try Self.answer(path, device: 1, abi: .v2, want: 50) { r in
            #expect(r.needsPASID)
            return PageResponse(code: .success, cookie: r.cookie)  // no PASID_VALID
        }
        #expect(matched["completed"] == 50 && matched["mismatch"] == 0, "\(matched)")
        #expect(stats.pageRequests.completedByConsumer >= 50)
        #expect(stats.pageRequests.rejected(.mismatch) == 0)
        #expect(stats.devices.first { $0.id == 1 }?.wrong == 0)  // the device still got its PASID back
        (stats, matched) = try Self.answer(path, device: 1, abi: .v2, want: 20) { r in
            PageResponse(code: .success, cookie: r.cookie, pasid: (r.pasid ?? 0) ^ 1)  // flagged, and wrong
        }
        #expect(stats.pageRequests.rejected(.mismatch) == 20)
        #expect(matched["mismatch"] == 20 && matched["completed"] == 0, "the VMM sees its own mistakes: \(matched)")
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
    }

    @Test func abi1FollowsTheKernelsPASIDRules() throws {
        let path = socketPath("answer-rules-v1")
        let service = try startService(path, ["--devices", "2", "--rate", "2000", "--timeout-ms", "60000"])
        // Device 2 needs no PASID: a PASID_VALID answer is accepted with the flag cleared.
        var (stats, matched) = try Self.answer(path, device: 2, abi: .v1, want: 30) { r in
            #expect(!r.needsPASID)
            return PageResponse(code: .success, pasid: 77, prgi: r.prgi)
        }
        #expect(stats.pageRequests.rejected(.mismatch) == 0)
        #expect(matched["completed"] == 30, "\(matched)")
        #expect(stats.devices.first { $0.id == 2 }.map { $0.wrong == 0 && $0.answered >= 30 } == true)
        // Device 1 needs its PASID: an answer without it is a mismatch.
        let before = stats.pageRequests.completedByConsumer
        (stats, matched) = try Self.answer(path, device: 1, abi: .v1, want: 20) { r in
            #expect(r.needsPASID)
            return PageResponse(code: .success, prgi: r.prgi)
        }
        #expect(stats.pageRequests.rejected(.mismatch) == 20)
        #expect(matched["mismatch"] == 20, "\(matched)")
        #expect(stats.pageRequests.completedByConsumer == before)
        service.signal(SIGTERM)
        #expect(service.finish().0 == 0)
    }
}
