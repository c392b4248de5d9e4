import FaultSimulation
import Foundation
import NestedIOMMU
import VMMClient

/// A captured vSVA session (Docs/NESTED.md §5, Docs/FIXTURES.md): the
/// configuration (devices, their DMA streams, the binding style, the
/// seed), every page request the guest handled with the actions it took
/// (maps, unmaps, invalidations) and its answer, in order, and the outcome
/// the run had. Replaying it does the guest's actions again against the
/// same devices and IOMMU, and the verdict is whether the outcome is the same.
public struct NestedSession: Codable, Sendable {
    /// What `format` must say.
    public static let formatName = "faultring-vsva-session"
    /// The one version there is.
    public static let currentVersion = 1

    /// One page request the guest handled.
    public struct Handled: Codable, Sendable, Hashable {
        /// The step it was read at.
        public var step: UInt64
        /// Its device.
        public var device: UInt32
        /// Its PRG index.
        public var prgi: UInt32
        /// What the guest did for it, in order.
        public var actions: [NestedGuest.Action]
        /// Its answer: "success" or "invalid".
        public var code: String
    }

    /// The run's outcome: what a replay must reproduce.
    public struct Outcome: Codable, Sendable, Hashable {
        /// The devices' counters, summed.
        public var devices: DMADevice.Counters
        /// Judged stale translations (a guest bug).
        public var staleTranslations: UInt64
        /// Judged stale context descriptors (a guest bug).
        public var staleContexts: UInt64
        /// Groups the page-request layer completed.
        public var completed: UInt64
        /// The guest bugs by name.
        public var guestBugs: [String: UInt64]
    }

    /// `faultring-vsva-session`.
    public var format = formatName
    /// 1.
    public var version = currentVersion
    /// The harness configuration.
    public var config: NestedHarness.Config
    /// What the guest bound before the first DMA (nil: a session from before
    /// setups were recorded; the replay binds what the guest model binds).
    public var setup: Setup?
    /// The requests, in the order the guest read them.
    public var handled: [Handled] = []
    /// The outcome of the captured run.
    public var expected: Outcome

    /// Limits a session file must respect (it is input, hostile until checked).
    public static let maxSteps: UInt64 = 10_000_000
    /// At most this many handled requests.
    public static let maxHandled = 5_000_000
    /// At most this many bytes of file.
    public static let maxFileBytes = 512 << 20

    /// Checks what the harness would otherwise trust.
    /// - Throws: `NestedSessionError` naming the field and the value.
    public func validate() throws(NestedSessionError) {
        func bad(_ field: String, _ detail: String) -> NestedSessionError { NestedSessionError("\(field): \(detail)") }
        guard format == Self.formatName else { throw bad("format", "\"\(format)\" is not \"\(Self.formatName)\"") }
        guard version == Self.currentVersion else { throw bad("version", "\(version) is not \(Self.currentVersion)") }
        let c = config
        guard (1...64).contains(c.devices) else { throw bad("config.devices", "\(c.devices) is not in 1...64") }
        guard (1...64).contains(c.pasids) else { throw bad("config.pasids", "\(c.pasids) is not in 1...64") }
        guard (1...Self.maxSteps).contains(c.steps) else { throw bad("config.steps", "\(c.steps) is not in 1...\(Self.maxSteps)") }
        guard (1...1_000_000_000).contains(c.stepNS) else { throw bad("config.stepNS", "\(c.stepNS) is not in 1...10^9") }
        guard (1...64).contains(c.accessesPerStep) else { throw bad("config.accessesPerStep", "\(c.accessesPerStep) is not in 1...64") }
        guard (1...65_536).contains(c.windowPages) else { throw bad("config.windowPages", "\(c.windowPages) is not in 1...65536") }
        guard (1...4096).contains(c.budget) else { throw bad("config.budget", "\(c.budget) is not in 1...4096") }
        if let n = c.nonPRIDevices, !(0..<c.devices).contains(n) {
            throw bad("config.nonPRIDevices", "\(n) is not in 0...\(c.devices - 1) (device 1 has PRI)")
        }
        if let every = c.msiEvery, !(1...1_000_000).contains(every) {
            throw bad("config.msiEvery", "\(every) is not in 1...1000000")
        }
        guard c.timeoutNS >= c.stepNS && c.timeoutNS <= 3_600_000_000_000 else {
            throw bad("config.timeoutNS", "\(c.timeoutNS) is not between one step and an hour")
        }
        try setup?.validate(c)
        guard handled.count <= Self.maxHandled else { throw bad("handled", "\(handled.count) entries, at most \(Self.maxHandled)") }
        var last: UInt64 = 0
        for (i, h) in handled.enumerated() {
            guard h.step >= last else { throw bad("handled[\(i)].step", "\(h.step) comes before \(last)") }
            last = h.step
            guard h.code == "success" || h.code == "invalid" else {
                throw bad("handled[\(i)].code", "\"\(h.code)\" is not success or invalid")
            }
            guard h.prgi < 512 else { throw bad("handled[\(i)].prgi", "\(h.prgi) is wider than 9 bits") }
        }
    }

    /// Reads and validates a session file.
    /// - Throws: `NestedSessionError` naming the file and the problem.
    public static func read(_ path: String) throws(NestedSessionError) -> NestedSession {
        let data: Data
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            data = try handle.read(upToCount: maxFileBytes + 1) ?? Data()
        } catch {
            throw NestedSessionError("\(path): \(error.localizedDescription)")
        }
        guard data.count <= maxFileBytes else { throw NestedSessionError("\(path): larger than \(maxFileBytes) bytes") }
        let session: NestedSession
        do { session = try JSONDecoder().decode(NestedSession.self, from: data) } catch {
            throw NestedSessionError("\(path): not a vSVA session: \(error)")
        }
        do { try session.validate() } catch { throw NestedSessionError("\(path): \(error.description)") }
        return session
    }

    /// Writes the session as JSON.
    public func write(_ path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}

/// A session file or replay that is not right, naming where.
public struct NestedSessionError: Error, Sendable, CustomStringConvertible {
    /// What and where.
    public let description: String
    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}

extension NestedSession.Outcome {
    /// The outcome of a harness run.
    public init(_ r: NestedHarness.Report) {
        self.init(devices: r.devices, staleTranslations: r.iommu.staleTranslations, staleContexts: r.iommu.staleContexts,
                  completed: r.tracker.completed, guestBugs: r.guestBugs)
    }
}
