import ArgumentParser
import Foundation
import FaultFixtures

/// Kernel trace text (`prq_report`, `io_page_fault`) into a fixture.
struct ImportTraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-trace", abstract: "Turn kernel trace text (Intel prq_report, io_page_fault) into a fixture.")

    @Argument(help: "Trace text (ftrace 'trace' output).") var file: String
    @Option(name: .shortAndLong, help: "The fixture to write.") var output: String
    @Option(help: "The scenario's name.") var name: String?

    func run() throws {
        guard let handle = FileHandle(forReadingAtPath: file) else { throw ValidationError("\(file): cannot read") }
        defer { try? handle.close() }
        var importer = TraceImporter(name: name ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent)
        // Read in 64 KiB chunks, a line at a time: the trace text is never held whole (the events
        // are: the fixture's device list, which comes first in the file, is only known at the end).
        var pending: [UInt8] = []
        while let chunk = try handle.read(upToCount: 65_536), !chunk.isEmpty {
            pending += chunk
            var start = 0
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                importer.add(line: Substring(String(decoding: pending[start..<newline], as: UTF8.self)))
                start = newline + 1
            }
            pending.removeFirst(start)
        }
        if !pending.isEmpty { importer.add(line: Substring(String(decoding: pending, as: UTF8.self))) }
        for problem in importer.unrecognised {
            FileHandle.standardError.write(Data("\(file): \(problem)\n".utf8))
        }
        let writer = try FixtureWriter(path: output, fixture: importer.fixture)
        for event in importer.events { writer.append(event) }
        try writer.finish(expected: importer.expected)
        print("\(output): \(importer.events.count) events from \(importer.fixture.devices.count) devices; " +
              "\(importer.unrecognised.count) lines not understood (listed above)")
        if !importer.unrecognised.isEmpty { throw ExitCode(2) }
    }
}
