import FaultABI

/// Turns kernel trace text into a fixture.
///
/// Understood lines (ftrace `trace` output; the part after the event name is
/// the event's TP_printk):
/// - Intel VT-d `prq_report`: `"%s/%s seq# %ld: rid=0x%llx addr=0x%llx %c%c%c%c%c pasid=0x%llx index=0x%llx"`,
///   the five letters being r, w, x, p, l or '-', optionally followed by
///   `" private=0x%llx/0x%llx"`. `addr` is descriptor bits 63:12 (a page
///   number); pasid 0 is taken as "no PASID" (RID_PASID). Linux sets
///   NEEDS_PASID whenever a PASID is present, and so does the import.
/// - `io_page_fault`: `"IOMMU:%s %s iova=0x%016llx flags=0x%04x"` → an
///   unrecoverable fault (reason unknown; the flags are driver-specific).
/// Comment lines (`#`) and blank lines are skipped; any other line is
/// reported with its number, never skipped silently.
public struct TraceImporter {
    /// A line that was not understood.
    public struct Unrecognised: Sendable, Hashable, CustomStringConvertible {
        /// Line number in the trace text, from 1.
        public var line: Int
        /// The line, trimmed and cut to 200 characters.
        public var text: String
        /// Why it was not understood.
        public var reason: String
        /// Prints `line N: reason: text`.
        public var description: String { "line \(line): \(reason): \(text)" }
    }

    /// The fixture so far: name, description, a consumer answering SUCCESS,
    /// and one device per name seen, with the PASIDs and private data its requests showed.
    public private(set) var fixture = Fixture()
    /// The events imported, in trace order.
    public private(set) var events: [FixtureEvent] = []
    /// Lines that were neither comments nor understood events, in order.
    public private(set) var unrecognised: [Unrecognised] = []
    var devicesByName: [String: UInt32] = [:]
    var firstTimestamp: Double?
    var lastMicroseconds: UInt64 = 0
    var lineNumber = 0

    /// An importer for a fixture called `name`, whose consumer answers SUCCESS.
    public init(name: String) {
        fixture.name = name
        fixture.description = "imported from kernel trace text"
        fixture.consumer.behaviour.policy = .success
    }

    /// Feeds one line of trace text.
    public mutating func add(line raw: Substring) {
        lineNumber += 1
        let line = raw.trimmingCharacters(in: " \t\r")
        if line.isEmpty || line.hasPrefix("#") { return }
        if let range = line.firstRange(of: "prq_report: ") {
            parsePRQ(line, body: line[range.upperBound...], time: timestamp(line[..<range.lowerBound]))
        } else if let range = line.firstRange(of: "io_page_fault: ") {
            parsePageFault(line, body: line[range.upperBound...], time: timestamp(line[..<range.lowerBound]))
        } else {
            reject(line, "not a prq_report or io_page_fault event")
        }
    }

    /// The expected outcome of the import: every page-request group answered
    /// SUCCESS by the consumer (the fixture's policy), nothing automatic.
    public var expected: Fixture.Expectation {
        var e = Fixture.Expectation()
        for (i, event) in events.enumerated() {
            guard case .pageRequest(let r) = event.kind, r.isLastPage, !r.isStopMarker else { continue }
            e.groups.append(.init(event: i, code: "success", source: "consumer"))
        }
        e.faultsDelivered = UInt64(events.filter { if case .fault = $0.kind { return true }; return false }.count)
        return e
    }

    mutating func reject(_ line: String, _ reason: String) {
        unrecognised.append(Unrecognised(line: lineNumber, text: String(line.prefix(200)), reason: reason))
    }

    /// The ftrace timestamp ("… 1234.567890: ") in µs from the first event,
    /// or why there is none: missing, not a finite number, earlier than the
    /// previous event, or more than a day after the first. Never a trap:
    /// the conversion happens only once the value is known to fit.
    mutating func timestamp(_ prefix: Substring) -> Result<UInt64, TimestampError> {
        guard let word = prefix.split(separator: " ").last(where: { $0.hasSuffix(":") }),
              let seconds = Double(word.dropLast()) else { return .failure(.init("no timestamp before the event name")) }
        guard seconds.isFinite else { return .failure(.init("timestamp \(word.dropLast()) is not a finite number")) }
        let first = firstTimestamp ?? seconds
        firstTimestamp = first
        let micros = ((seconds - first) * 1_000_000).rounded()
        guard micros >= Double(lastMicroseconds) else {
            return .failure(.init("timestamp \(word.dropLast()) is earlier than the previous event's"))
        }
        guard micros <= Double(FixtureReader.maxMicroseconds) else {
            return .failure(.init("timestamp \(word.dropLast()) is more than a day after the first event"))
        }
        lastMicroseconds = UInt64(micros)
        return .success(lastMicroseconds)
    }

    /// Why a line's timestamp was refused.
    struct TimestampError: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    mutating func device(_ name: String) -> UInt32 {
        if let id = devicesByName[name] { return id }
        let id = UInt32(devicesByName.count + 1)
        devicesByName[name] = id
        fixture.devices.append(.init(id: id, name: name, pasids: [], allocation: 512, needsPASID: true, privateData: false))
        return id
    }

    /// "key=0x…" fields of a line.
    static func fields(_ body: Substring) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for token in body.split(separator: " ") {
            let parts = token.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let value = parts[1].hasPrefix("0x") ? UInt64(parts[1].dropFirst(2), radix: 16) : UInt64(parts[1])
            if let value { out[String(parts[0])] = value }
        }
        return out
    }

    mutating func parsePRQ(_ line: String, body: Substring, time stamped: Result<UInt64, TimestampError>) {
        let time: UInt64
        switch stamped {
        case .success(let t): time = t
        case .failure(let e): return reject(line, e.reason)
        }
        // "dmar1/0000:00:02.0 seq# 5: rid=… addr=… rwxpl pasid=… index=…[ private=…/…]"
        guard let slash = body.firstIndex(of: "/"), let space = body[slash...].firstIndex(of: " "),
              let colon = body.firstRange(of: ": ") else { return reject(line, "prq_report without iommu/device and seq#") }
        let deviceName = String(body[body.index(after: slash)..<space])
        let descriptor = body[colon.upperBound...]
        let f = Self.fields(descriptor)
        guard let addr = f["addr"], let pasid = f["pasid"], let index = f["index"], f["rid"] != nil else {
            return reject(line, "prq_report without rid, addr, pasid and index")
        }
        guard let letters = descriptor.split(separator: " ").first(where: { $0.count == 5 && !$0.contains("=") }) else {
            return reject(line, "prq_report without the five r/w/x/p/l letters")
        }
        let l = Array(letters)
        guard (l[0] == "r" || l[0] == "-") && (l[1] == "w" || l[1] == "-") && (l[2] == "x" || l[2] == "-")
                && (l[3] == "p" || l[3] == "-") && (l[4] == "l" || l[4] == "-") else {
            return reject(line, "letters \(letters) are not r/w/x/p/l or -")
        }
        guard pasid <= UInt64(ABILayout.maxPASID), index <= UInt64(ABILayout.maxPRGI) else {
            return reject(line, "pasid or index out of range")
        }
        let permissions = Permissions(read: l[0] == "r", write: l[1] == "w", exec: l[2] == "x", privileged: l[3] == "p")
        var data: PrivateData?
        if let range = descriptor.firstRange(of: "private=") {
            let parts = descriptor[range.upperBound...].split(separator: "/")
            guard parts.count == 2, let low = UInt64(parts[0].dropFirst(2), radix: 16),
                  let high = UInt64(parts[1].prefix { !$0.isWhitespace }.dropFirst(2), radix: 16) else {
                return reject(line, "private data is not 0x…/0x…")
            }
            data = PrivateData(low: low, high: high)
        }
        let id = device(deviceName)
        let hasPASID = pasid != 0
        if data != nil, let i = fixture.devices.firstIndex(where: { $0.id == id }) { fixture.devices[i].privateData = true }
        if hasPASID, let i = fixture.devices.firstIndex(where: { $0.id == id }), !fixture.devices[i].pasids.contains(UInt32(pasid)) {
            fixture.devices[i].pasids.append(UInt32(pasid))
        }
        events.append(FixtureEvent(t: time, kind: .pageRequest(PageRequest(
            deviceID: id, pasid: hasPASID ? UInt32(pasid) : nil, prgi: UInt32(index), permissions: permissions,
            address: addr << 12, isLastPage: l[4] == "l", needsPASID: hasPASID, privateData: data, timestampNS: time * 1000))))
    }

    mutating func parsePageFault(_ line: String, body: Substring, time stamped: Result<UInt64, TimestampError>) {
        let time: UInt64
        switch stamped {
        case .success(let t): time = t
        case .failure(let e): return reject(line, e.reason)
        }
        // "IOMMU:AMD-Vi 0000:00:02.0 iova=0x… flags=0x…"
        let words = body.split(separator: " ")
        guard words.count >= 3, words[0].hasPrefix("IOMMU:"), let iova = Self.fields(body)["iova"] else {
            return reject(line, "io_page_fault without IOMMU:driver, device and iova")
        }
        let id = device(String(words[1]))
        events.append(FixtureEvent(t: time, kind: .fault(UnrecoverableFault(
            deviceID: id, reason: 0, address: iova, timestampNS: time * 1000))))
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = self[...]
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
