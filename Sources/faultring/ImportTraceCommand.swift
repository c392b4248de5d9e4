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
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw ValidationError("\(file): cannot read")
        }
        var importer = TraceImporter(name: name ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) { importer.add(line: line) }
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
