import FaultABI
import FaultSimulation
import PageRequests
import Testing

/// Simulated devices can speak raw SMMUv3 / VT-d records: what goes
/// through the codecs must come out as it went in.
@Suite struct HardwareWireTests {
    @Test(arguments: [HardwareWire.smmuv3, .vtd])
    func wireRoundTripsRequestsAndAnswers(wire: HardwareWire) throws {
        let request = PageRequest(deviceID: 7, pasid: 9, prgi: 300, permissions: [.read, .write], address: 0xABC000,
                                  isLastPage: true, needsPASID: true,
                                  privateData: wire == .vtd ? PrivateData(low: 5, high: 6) : nil)
        #expect(try wire.carry(request, needsPASID: true) == request)
        let completion = DeviceCompletion(deviceID: 7, pasid: 9, prgi: 300, code: .success,
                                          privateData: request.privateData, cookie: 4, source: .consumer)
        #expect(try wire.carry(completion) == completion)
    }
}
