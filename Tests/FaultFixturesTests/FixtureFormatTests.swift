import FaultABI
import Foundation
import Testing
import FaultFixtures
import IOMMUFormats
import VMMClient
import PageRequests

@Suite struct FixtureFormatTests {
    static func temp(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("faultring-fixture-\(getpid())-\(name).json").path
    }

    static func read(_ path: String) throws(FixtureError) -> (Fixture, [FixtureEvent]) {
        var events: [FixtureEvent] = []
        let fixture = try FixtureReader(path: path).read { _, event in events.append(event) }
        return (fixture, events)
    }

    /// Reads a fixture written as text; returns the error, if any.
    static func error(_ text: String, _ name: String = #function) -> FixtureError? {
        let path = temp(String(name.prefix(20)) + "\(text.hashValue & 0xFFFF)")
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        do {
            _ = try read(path)
            return nil
        } catch {
            return error
        }
    }

    static let header = """
        {"faultringFixture": 1, "name": "t", "devices": [{"id": 1, "name": "0000:03:00.0", "pasids": [1], "needsPasid": true}],
        """

    @Test func writerAndReaderRoundTripEveryKindWithAll64Bits() throws {
        var fixture = Fixture()
        fixture.name = "round-trip"
        fixture.description = "every event kind"
        fixture.devices = [.init(id: 1, name: "0000:03:00.0", pasids: [1, 0xFFFFF], needsPASID: true, privateData: true)]
        fixture.consumer.behaviour.policy = .never
        fixture.consumer.behaviour.crashAfterGroups = 5
        fixture.service.decoding = .linux69  // written only when not the default
        var expected = Fixture.Expectation()
        expected.groups = [.init(event: 1, code: "invalid", source: "timeout")]
        expected.auto = ["timeout": 1]
        expected.rejections = ["duplicate": 2]
        expected.lostRecords = 0
        fixture.expected = expected
        let events: [FixtureEvent] = [
            .init(t: 0, kind: .pageRequest(PageRequest(deviceID: 1, pasid: 0xFFFFF, prgi: 0x1FF, permissions: [.read, .write],
                                                       address: 0xFFFF_FFFF_FFFF_F000, isLastPage: false, needsPASID: true,
                                                       privateData: PrivateData(low: .max, high: 0x8000_0000_0000_0001),
                                                       timestampNS: 0))),
            .init(t: 7, kind: .pageRequest(PageRequest(deviceID: 1, pasid: 0xFFFFF, prgi: 0x1FF, permissions: .read,
                                                       address: 0x1000, isLastPage: true, needsPASID: true,
                                                       privateData: PrivateData(low: .max, high: 0x8000_0000_0000_0001),
                                                       timestampNS: 7000))),
            .init(t: 8, kind: .pageRequest(PageRequest(deviceID: 1, pasid: 1, prgi: 0, permissions: [], address: 0,
                                                       isLastPage: true, needsPASID: true, timestampNS: 8000))),
            .init(t: 9, kind: .fault(UnrecoverableFault(deviceID: 1, reason: 6, pasid: 1, permissions: .write,
                                                        address: 0xDEAD_0000, fetchAddress: 0xBEEF_0000, timestampNS: 9000))),
            .init(t: 10, kind: .raw(.vtdPageRequest, device: 1, words: [0x0001_2345_0310_0301, 0xDEAD_BD5D, .max, 0])),
        ]
        let path = Self.temp("roundtrip")
        defer { unlink(path) }
        let writer = try FixtureWriter(path: path, fixture: fixture)
        for event in events { writer.append(event) }
        try writer.finish(expected: expected)
        let (read, readEvents) = try Self.read(path)
        #expect(read == fixture)
        #expect(readEvents == events)
    }

    @Test func numbersMayBeDecimalOrHexStrings() throws {
        let path = Self.temp("numbers")
        defer { unlink(path) }
        try (Self.header + """
            "events": [{"t": "0x10", "type": "page", "device": "1", "pasid": 1, "prgi": "0x1ff", "perm": "r",
                        "addr": "18446744073709547520"}]}
            """).write(toFile: path, atomically: true, encoding: .utf8)
        let (_, events) = try Self.read(path)
        guard case .pageRequest(let r) = events[0].kind else { Issue.record("not a page request"); return }
        #expect(events[0].t == 16 && r.prgi == 0x1FF && r.address == 0xFFFF_FFFF_FFFF_F000)
    }

    /// Each malformed class is refused with the file, the event and the field.
    @Test func malformedInputIsRefusedNamingFileEventAndField() {
        let page = #"{"t": 0, "type": "page", "device": 1, "pasid": 1, "prgi": 3, "perm": "r", "addr": "0x1000"}"#
        let cases: [(String, Int?, String?, String)] = [
            // bad JSON
            (Self.header + #""events": [{"t": 0, "type": }]}"#, 0, nil, "invalid JSON"),
            // wrong type
            (Self.header + #""events": [{"t": 0, "type": "page", "device": 1, "pasid": 1, "prgi": true, "perm": "r"}]}"#,
             0, "prgi", "expected an integer"),
            // missing field
            (Self.header + #""events": [{"t": 0, "type": "page", "device": 1, "perm": "r"}]}"#, 0, "prgi", "missing"),
            // a 21-bit PASID, a 10-bit PRGI
            (Self.header + #""events": [{"t": 0, "type": "page", "device": 1, "pasid": 2097151, "prgi": 3, "perm": "r"}]}"#,
             0, "pasid", "out of range"),
            (Self.header + #""events": [\#(page), {"t": 1, "type": "page", "device": 1, "prgi": 1023, "perm": "r"}]}"#,
             1, "prgi", "out of range"),
            // unknown keys, in an event and at the top
            (Self.header + #""events": [{"t": 0, "type": "fault", "device": 1, "reason": 1, "colour": "red"}]}"#,
             0, "colour", "unknown key"),
            (Self.header + #""events": [], "extra": 1}"#, nil, "extra", "unknown key"),
            // truncated files
            (Self.header + #""events": [\#(page), {"t": 1, "type": "pa"#, 1, nil, "truncated"),
            (Self.header + #""events": [\#(page)"#, nil, "events", "truncated"),
            // semantic problems
            (Self.header + #""events": [{"t": 0, "type": "page", "device": 9, "prgi": 1, "perm": "r"}]}"#,
             0, "device", "not in \"devices\""),
            (Self.header + #""events": [\#(page), {"t": 0, "type": "nope", "device": 1}]}"#, 1, "type", "is not page"),
            (#"{"faultringFixture": 1, "events": []}"#, nil, "events", "\"devices\" must come before"),
            (#"{"faultringFixture": 2, "devices": [], "events": []}"#, nil, "faultringFixture", "version 2"),
            (Self.header + #""events": [{"t": 5, "type": "fault", "device": 1, "reason": 1}, {"t": 4, "type": "fault", "device": 1, "reason": 1}]}"#,
             1, "t", "earlier"),
            (Self.header + #""events": [{"t": 0, "type": "smmuv3-pri", "device": 1, "hex": "0x1"}]}"#, 0, "hex", "expected 2"),
            (#"{"faultringFixture": 1, "service": {"decoding": "linux-5.4"}, "devices": [], "events": []}"#, nil,
             "decoding", "is not one of"),
            // numbers that would overflow when turned into ns (µs × 1000): refused, not a trap
            (Self.header + #""events": [{"t": 9223372036854775807, "type": "fault", "device": 1, "reason": 1}]}"#,
             0, "t", "out of range"),
            (#"{"faultringFixture": 1, "service": {"timeoutMicroseconds": 18446744073709551615}, "devices": [], "events": []}"#,
             nil, "timeoutMicroseconds", "out of range"),
        ]
        for (text, event, field, words) in cases {
            guard let error = Self.error(text) else {
                Issue.record("accepted: \(text.suffix(80))")
                continue
            }
            #expect(error.event == event, "\(error)")
            if let field { #expect(error.field?.hasSuffix(field) == true, "\(error)") }
            #expect(error.description.contains(words), "\(error)")
            #expect(error.description.contains("faultring-fixture-"), "names the file: \(error)")
        }
    }

    @Test func nothingHalfRunsOnAnErrorLateInTheFile() {
        // The reader reports the error; events before it were seen, but a
        // caller (replay) validates the whole file before running anything.
        let path = Self.temp("late")
        defer { unlink(path) }
        let events = (0..<100).map { #"{"t": \#($0), "type": "fault", "device": 1, "reason": 1}"# }.joined(separator: ",")
        try? (Self.header + #""events": [\#(events), {"t": 100, "type": "fault", "device": 1, "reason": 99}]}"#)
            .write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: FixtureError.self) { _ = try FixtureValidation.validate(path: path) }
    }

    /// A device id of 2^32 − 1 costs one tracker entry: ids are mapped, not indexed.
    @Test func theLargestDeviceIDIsReadAndReplayed() throws {
        let text = #"{"faultringFixture": 1, "name": "t", "devices": [{"id": 4294967295, "name": "big", "pasids": [1], "needsPasid": true}], "#
            + #""events": [{"t": 0, "type": "page", "device": 4294967295, "pasid": 1, "prgi": 3, "perm": "r", "addr": "0x1000"}]}"#
        let path = Self.temp("big-device")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let (fixture, events) = try Self.read(path)
        #expect(fixture.devices.map(\.id) == [UInt32.max] && events.count == 1)
        var tracker = PageRequestTracker()
        tracker.addDevice(UInt32.max, allocation: 16)
        var completions: [DeviceCompletion] = []
        guard case .pageRequest(let request) = events[0].kind else { return }
        tracker.receive(request, now: 0) { completions.append($0) }
        // No channel: answered at once as having no consumer, and counted for the known device.
        #expect(completions.count == 1 && tracker.snapshot.unknownDevice == 0)
    }

    /// Trace timestamps that are not finite, go backwards or run past a day are
    /// reported as unrecognised lines, never a trap.
    @Test func badTraceTimestampsAreReportedNotFatal() {
        var importer = TraceImporter(name: "t")
        let event = "dmar1/0000:00:02.0 seq# 1: rid=0x10 addr=0x1000 r---l pasid=0x1 index=0x1"
        for line in ["  kworker-1 [000] .... 10.000000: prq_report: \(event)",
                     "  kworker-1 [000] .... 9.000000: prq_report: \(event)",
                     "  kworker-1 [000] .... nan: prq_report: \(event)",
                     "  kworker-1 [000] .... inf: prq_report: \(event)",
                     "  kworker-1 [000] .... 1e300: prq_report: \(event)"] {
            importer.add(line: Substring(line))
        }
        #expect(importer.events.count == 1)
        #expect(importer.unrecognised.map(\.reason) == [
            "timestamp 9.000000 is earlier than the previous event's", "timestamp nan is not a finite number",
            "timestamp inf is not a finite number", "timestamp 1e300 is more than a day after the first event",
        ])
    }
}
