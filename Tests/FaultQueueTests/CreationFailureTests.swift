import FaultABI
import FaultQueue
@_spi(Testing) import FaultSys
import Glibc
import SystemPackage
import Testing

/// Every path that creates descriptors, failed at each of its system calls
/// in turn: it must throw, name the call, and leave nothing open (and, for a
/// queue at a path, nothing on disk).
@Suite struct CreationFailureTests {
    static let geometry = try! QueueGeometry(entryCount: 8, responseCount: 8)

    /// Runs `body` once to learn its calls, then once per call with that call failing.
    static func failEachCall(_ label: String, cleanup: () -> Void = {}, _ body: () throws -> Void,
                             after check: () -> Void = {}) throws -> [String] {
        let probe = SyscallFaultPlan(failingCall: nil)
        try SyscallFaultPlan.$current.withValue(probe) { try body() }
        #expect(probe.leaked.isEmpty, "\(label): the successful run leaked \(probe.leaked)")
        cleanup()
        // Descriptor numbers differ from run to run (tests run in parallel): compare the calls by name.
        func name(_ call: String) -> Substring { call.prefix { $0 != "(" } }
        for (n, call) in probe.calls.enumerated() {
            let plan = SyscallFaultPlan(failingCall: n + 1)
            var failed = false
            do {
                try SyscallFaultPlan.$current.withValue(plan) { try body() }
            } catch {
                failed = true
                #expect("\(error)".contains(name(call)), "\(label): the error names \(error), not \(call)")
            }
            #expect(failed, "\(label): failing \(call) did not fail the path")
            #expect(plan.failed.map(name) == name(call))
            #expect(plan.leaked.isEmpty, "\(label): failing \(call) leaked fds \(plan.leaked)")
            check()
            cleanup()
        }
        return probe.calls
    }

    @Test func memfdQueue() throws {
        let calls = try Self.failEachCall("memfd queue") {
            let producer = try FaultProducer(geometry: Self.geometry, name: "creation-failure")
            producer.close()
        }
        // memfd + ftruncate + seals for each region, two doorbell socket pairs, two mappings,
        // and the producer region's write seal after its mapping.
        #expect(calls.count == 11, "\(calls)")
    }

    @Test func pathQueueRemovesWhatItMade() throws {
        let directory = "/tmp/faultring-creation-\(getpid())"
        let calls = try Self.failEachCall("path queue", cleanup: { QueuePaths(directory: FilePath(directory)).remove() }) {
            let producer = try FaultProducer(geometry: Self.geometry, directory: FilePath(directory))
            producer.close()
        } after: {
            #expect(access(directory, F_OK) != 0, "the directory survived a failed creation")
        }
        // mkdir; open + ftruncate per region; mkfifo + open per doorbell; two mappings.
        #expect(calls.count == 11, "\(calls)")
    }

    @Test func consumerFilesAndAttach() throws {
        let producer = try FaultProducer(geometry: Self.geometry, name: "creation-failure-consumer")
        defer { producer.close() }
        let calls = try Self.failEachCall("consumer attach") {
            _ = try FaultConsumer(files: producer.consumerFiles())
        }
        // reopen read-only + three dups, then the consumer's two mappings.
        #expect(calls.count == 6, "\(calls)")
    }

    @Test func childProcessSpawn() throws {
        let producer = try FaultProducer(geometry: Self.geometry, name: "creation-failure-spawn")
        defer { producer.close() }
        let files = try producer.consumerFiles()
        let calls = try Self.failEachCall("spawn") {
            let child = try ChildProcess.spawn("/bin/true", [], descriptors: files.all, stdout: .capture, stderr: .capture)
            #expect(child.wait() == 0)
            _ = child.readOutput()
            _ = child.readErrors()
        }
        files.close()
        // a lifted copy per descriptor; the two pipes are not `Sys` calls that open an OwnedFD here.
        #expect(calls.count >= 4, "\(calls)")
    }
}
