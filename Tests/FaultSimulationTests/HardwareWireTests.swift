import FaultABI
import FaultSimulation
import PageRequests
import Testing

/// Simulated devices can speak raw SMMUv3 / VT-d records: what goes
/// through the codecs must come out as it went in.
@Suite struct HardwareWireTests {
    @Test(arguments: [HardwareWire.smmuv3, .vtd, .vtd3])
    func wireRoundTripsRequestsAndAnswers(wire: HardwareWire) throws {
        let request = PageRequest(deviceID: 7, pasid: 9, prgi: 300, permissions: [.read, .write], address: 0xABC000,
                                  isLastPage: true, needsPASID: true,
                                  privateData: wire.carriesPrivateData ? PrivateData(low: 5, high: 6) : nil)
        #expect(try wire.carry(request, needsPASID: true) == request)
        let completion = DeviceCompletion(deviceID: 7, pasid: 9, prgi: 300, code: .success,
                                          privateData: request.privateData, cookie: 4, source: .consumer)
        #expect(try wire.carry(completion) == completion)
    }

    @Test func vtd4DoesNotCarryPrivateData() throws {
        // Current Linux and VT-d 4 have no private data: a device model must not expect it back.
        let data = PrivateData(low: 5, high: 6)
        let request = PageRequest(deviceID: 7, pasid: 9, prgi: 300, permissions: .read, address: 0xABC000,
                                  isLastPage: true, needsPASID: true, privateData: data)
        #expect(try HardwareWire.vtd.carry(request, needsPASID: true).privateData == nil)
        #expect(try HardwareWire.vtd3.carry(request, needsPASID: true).privateData == data)
        let completion = DeviceCompletion(deviceID: 7, pasid: 9, prgi: 300, code: .success, privateData: data,
                                          cookie: 4, source: .consumer)
        #expect(try HardwareWire.vtd.carry(completion).privateData == nil)
    }
}
