import DequeModule
import FaultABI
import FaultQueue
import FaultSimulation
import VMMClient

/// The stand-in for a VMM in the loopback: reads its queue's ring each step
/// and answers as its `AnswerScript` says (SUCCESS, with the behaviour's
/// injections), stalling the ring when told to.
struct ReferenceResponder {
    let consumer: FaultConsumer
    var script: AnswerScript
    /// Answers not yet written: this step's, and any the full response ring
    /// refused. An array, reused between steps: it is emptied whole almost
    /// every step, and a deque's generic appends cost more than the answers.
    var outbox: [PageResponse] = []
    /// Withheld answers and when to send them (late).
    var withheld = Deque<(response: PageResponse, due: UInt64)>()
    var steps: UInt64 = 0
    /// Ring stalls so far (the script counts the other injections).
    var stalls: UInt64 = 0
    /// Serves a random policy; deterministic, like the rest of the loopback.
    var rng: SplitMix64

    init(consumer: FaultConsumer, script: AnswerScript, seed: UInt64) {
        self.consumer = consumer
        self.script = script
        rng = SplitMix64(seed: seed)
    }

    /// Everything injected: the script's counts and the stalls.
    var injected: InjectedCounts {
        var counts = script.injected
        counts.stalls = stalls
        return counts
    }

    /// Reads what is in the ring and prepares answers. Foreign answers for
    /// another queue's groups go to `foreign` (that queue's outbox).
    mutating func process(now: UInt64, timeoutNS: UInt64, stepNS: UInt64, foreign: inout Deque<PageResponse>) throws {
        steps += 1
        let (every, length) = (script.behaviour.stallEvery, script.behaviour.stallLength)
        if every > 0 && steps % UInt64(every) < UInt64(length) {
            if steps % UInt64(every) == 0 { stalls += 1 }
            return
        }
        while let first = withheld.first, first.due <= now {
            withheld.removeFirst()
            outbox.append(first.response)
        }
        let batch = try consumer.peek()
        var out = outbox  // a local while the script (part of self) answers into it
        outbox = []
        defer { outbox = out }
        for i in batch.indices {
            guard case .event(.pageRequest(let request), _) = try batch.decode(i), request.isLastPage else { continue }
            answer(request, now: now, timeoutNS: timeoutNS, stepNS: stepNS, into: &out, foreign: &foreign)
        }
        consumer.release(batch.count)
    }

    /// Answers a group (its LAST_PAGE request) as the script says. Out of
    /// line: inlined, the decoded request was spilled to the stack for
    /// every record the loop read, last or not.
    @inline(never)
    mutating func answer(_ request: PageRequest, now: UInt64, timeoutNS: UInt64, stepNS: UInt64,
                         into out: inout [PageResponse], foreign: inout Deque<PageResponse>) {
        let answers = script.answer(request, using: &rng, right: { code in
            PageResponse(code: code, cookie: request.cookie, pasid: request.needsPASID ? request.pasid : nil,
                         prgi: request.prgi)
        }, into: &out)
        if let late = answers.withheld { withheld.append((late, now + timeoutNS + 2 * stepNS)) }
        if let copy = answers.foreign { foreign.append(copy) }
    }

    /// Writes as much of the outbox as the response ring takes.
    mutating func flush() {
        guard !outbox.isEmpty else { return }
        let written = consumer.respond(batch: outbox)
        if written == outbox.count {
            outbox.removeAll(keepingCapacity: true)
        } else {
            outbox.removeFirst(written)
        }
    }

    /// A foreign answer this responder injected did not fit the other
    /// queue's response ring and was never sent: uncount it.
    mutating func unsent(foreign count: Int) { script.injected.foreign -= UInt64(count) }

    /// Nothing left to send.
    var idle: Bool { outbox.isEmpty && withheld.isEmpty }
}
