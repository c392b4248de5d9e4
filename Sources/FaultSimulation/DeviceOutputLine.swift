/// One line of `faultring device --storm … --progress-ms N` output: JSON
/// objects, one per line, each with exactly one of the two keys, so a
/// storm runner reads ticks as they come and the report at the end.
public struct DeviceOutputLine: Codable, Sendable {
    /// A progress tick.
    public var progress: DeviceProgress?
    /// The final report (the last line).
    public var report: RemoteDevices.Report?

    /// A tick line.
    public init(progress: DeviceProgress) { self.progress = progress }

    /// The report line.
    public init(report: RemoteDevices.Report) { self.report = report }
}
