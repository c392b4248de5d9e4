import FaultFixtures
import Foundation

/// What `faultring storm` writes to `DIR/report.json`: the profile, every
/// run's figures (the data behind each chart of `report.html`) and the
/// verdict. Latency histograms are in HdrHistogram's standard compressed
/// V2 encoding (each `NamedLatency.hdr`), so any HdrHistogram port can read
/// and merge them.
public struct StormReport: Codable, Sendable {
    /// The report format's version (this layout: 1).
    public var reportVersion = 1
    /// The profile as run (scaled, if `--seconds` was given).
    public var profile: StormProfile
    /// The profile's file.
    public var profilePath: String
    /// When the storm started, ISO 8601 UTC.
    public var started: String
    /// The service run first; with `--compare direct`, the direct run after it.
    public var runs: [StormRun]
    /// Whether it passed, and why not.
    public var verdict: StormVerdict

    /// A report of `runs` of `profile`, judged.
    public init(profile: StormProfile, profilePath: String, started: Date, runs: [StormRun]) {
        self.profile = profile
        self.profilePath = profilePath
        self.started = ISO8601DateFormatter().string(from: started)
        self.runs = runs
        verdict = StormVerdict(profile: profile, runs: runs)
    }

    /// The report as pretty JSON with sorted keys.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}
