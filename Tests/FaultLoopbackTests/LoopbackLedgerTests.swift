import FaultSimulation
import VMMClient
import PageRequests
import Testing
import FaultLoopback

/// The whole loop on the real queue: every group answered exactly once and
/// every injected fault counted, on every path (consumer, timeout,
/// overflow), with misbehaving devices too.
@Suite(.serialized) struct LoopbackLedgerTests {
    static func run(_ configure: (inout LoopbackConfig) -> Void) throws -> LoopbackReport {
        var config = LoopbackConfig()
        configure(&config)
        return try LoopbackHarness(config).run()
    }

    @Test func ledgerBalancesWithEveryInjection() throws {
        let r = try Self.run { $0.groups = 150_000 }
        #expect(r.balanced, "\(r.problems)")
        #expect(r.groupsIssued == 150_000)
        let t = r.tracker
        // Every path was taken, so the balance above means something.
        for cause in [AutoResponseCause.timeout, .overflow] { #expect(t.auto(cause) > 0, "\(cause)") }
        for reason in [ResponseRejectionReason.duplicate, .late, .unknown, .stale, .foreignDevice, .mismatch] {
            #expect(t.rejected(reason) > 0, "\(reason)")
        }
        #expect(t.failureConverted > 0)
        #expect(r.retries == r.answersBySource["consumer"]! - t.failureConverted)
    }

    @Test func misbehavingDevicesAreSurvived() throws {
        let r = try Self.run {
            $0.groups = 60_000
            $0.reusePRGIEvery = 50
            $0.abandonGroupEvery = 70
            $0.stopMarkerEvery = 30
        }
        #expect(r.balanced, "\(r.problems)")
        #expect(r.tracker.prgiReused > 0)
        #expect(r.tracker.stopMarkers > 0)
    }

    @Test func abi1LedgerBalances() throws {
        let r = try Self.run {
            $0.groups = 60_000
            $0.abi = 1
            $0.queues = 1
            $0.devicesPerQueue = 1
        }
        #expect(r.balanced, "\(r.problems)")
        #expect(r.tracker.rejected(.duplicate) > 0)
        #expect(r.tracker.rejected(.mismatch) > 0)
    }

    /// Devices speak raw SMMUv3 PRI records / VT-d descriptors, decoded by
    /// the codecs, and get raw CMD_PRI_RESP / page group responses back.
    @Test(arguments: [HardwareWire.smmuv3, .vtd])
    func rawHardwareRecordsThroughTheLoop(wire: HardwareWire) throws {
        let r = try Self.run {
            $0.groups = 40_000
            $0.wire = wire
        }
        #expect(r.balanced, "\(r.problems)")
        #expect(r.groupsIssued == 40_000)
    }

    @Test func abi1RefusesReusedPRGIs() {
        #expect(throws: LoopbackError.self) {
            _ = try Self.run {
                $0.abi = 1
                $0.reusePRGIEvery = 10
            }
        }
    }

    /// ABI 1 responses name no device, so an ABI 1 queue serves one; the
    /// loopback refuses more, as the service does.
    @Test func abi1RefusesSeveralDevicesPerQueue() {
        #expect(throws: LoopbackError.self) {
            _ = try Self.run {
                $0.abi = 1
                $0.devicesPerQueue = 2
            }
        }
    }

    @Test func sameSeedSameBooks() throws {
        let a = try Self.run { $0.groups = 20_000 }
        let b = try Self.run { $0.groups = 20_000 }
        #expect(a.tracker == b.tracker)
        #expect(a.injected == b.injected)
    }
}
