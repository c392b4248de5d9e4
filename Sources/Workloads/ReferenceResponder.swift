import DequeModule
import FaultABI
import FaultQueue
import PageRequests

/// How often the reference responder misbehaves on purpose (0: never).
/// Each injection is counted, so the tracker's rejection counters can be
/// checked against exactly what was sent.
public struct Injections: Sendable, Hashable, Codable {
    /// Answer a group twice (the second is a duplicate).
    public var duplicateEvery = 0
    /// Withhold the answer until after the timeout (the group times out;
    /// the answer, when sent, is late).
    public var lateEvery = 0
    /// Send a cookie that was never issued.
    public var unknownEvery = 0
    /// Re-send a cookie answered more than a cookie table ago (stale).
    public var staleEvery = 0
    /// Answer a group of another queue on this queue (foreign device).
    public var foreignEvery = 0
    /// Send a wrong PASID before the right answer (mismatch).
    public var mismatchEvery = 0
    /// Answer FAILURE (turned into INVALID by the default policy).
    public var failureEvery = 0
    /// Skip reading the ring for `stallLength` steps every N steps, so the
    /// fault ring fills and groups overflow.
    public var stallEvery = 0
    public var stallLength = 8

    public init() {}

    /// A mix that exercises every path.
    public static var all: Injections {
        var i = Injections()
        i.duplicateEvery = 97
        i.lateEvery = 211
        i.unknownEvery = 101
        i.staleEvery = 307
        i.foreignEvery = 149
        i.mismatchEvery = 173
        i.failureEvery = 89
        i.stallEvery = 53
        return i
    }
}

/// What a responder injected, by the rejection it should cause.
public struct InjectedCounts: Sendable, Hashable, Codable {
    public var duplicate: UInt64 = 0
    public var late: UInt64 = 0
    public var unknown: UInt64 = 0
    public var stale: UInt64 = 0
    public var foreign: UInt64 = 0
    public var mismatch: UInt64 = 0
    public var failure: UInt64 = 0
    public var stalls: UInt64 = 0

    public init() {}

    static func + (a: InjectedCounts, b: InjectedCounts) -> InjectedCounts {
        var c = a
        c.duplicate += b.duplicate
        c.late += b.late
        c.unknown += b.unknown
        c.stale += b.stale
        c.foreign += b.foreign
        c.mismatch += b.mismatch
        c.failure += b.failure
        c.stalls += b.stalls
        return c
    }
}

/// A consumer that answers every page-request group SUCCESS, except where
/// `Injections` tell it to misbehave. The stand-in for a VMM in the loop.
struct ReferenceResponder {
    let consumer: FaultConsumer
    let injections: Injections
    /// Answers not yet written (response ring full).
    var outbox = Deque<PageResponse>()
    /// Withheld answers and when to send them (late).
    var withheld = Deque<(response: PageResponse, due: UInt64)>()
    /// Cookies answered, oldest first, for stale re-sends.
    var answered = Deque<UInt64>()
    let staleDistance: Int
    var groupsSeen: UInt64 = 0
    var steps: UInt64 = 0
    var injected = InjectedCounts()

    init(consumer: FaultConsumer, injections: Injections, cookieTableSize: Int) {
        self.consumer = consumer
        self.injections = injections
        staleDistance = cookieTableSize + 1
    }

    static func hits(_ every: Int, _ n: UInt64) -> Bool { every > 0 && n % UInt64(every) == 0 }

    /// Reads what is in the ring and prepares answers. Foreign answers for
    /// another queue's groups go to `foreign` (that queue's outbox).
    mutating func process(now: UInt64, timeoutNS: UInt64, stepNS: UInt64, foreign: inout Deque<PageResponse>) throws {
        steps += 1
        if injections.stallEvery > 0 && steps % UInt64(injections.stallEvery) < UInt64(injections.stallLength) {
            if steps % UInt64(injections.stallEvery) == 0 { injected.stalls += 1 }
            return
        }
        while let first = withheld.first, first.due <= now {
            withheld.removeFirst()
            outbox.append(first.response)
        }
        let batch = try consumer.peek()
        for i in batch.indices {
            guard case .event(.pageRequest(let request), _) = try batch.decode(i), request.isLastPage else { continue }
            groupsSeen += 1
            let n = groupsSeen
            let right = PageResponse(code: .success, cookie: request.cookie,
                                     pasid: request.needsPASID ? request.pasid : nil, prgi: request.prgi)
            if Self.hits(injections.lateEvery, n) {
                withheld.append((right, now + timeoutNS + 2 * stepNS))
                injected.late += 1
                continue
            }
            if Self.hits(injections.foreignEvery, n) {
                foreign.append(right)
                injected.foreign += 1
            }
            if Self.hits(injections.mismatchEvery, n) {
                var wrong = right
                wrong.pasid = request.needsPASID ? (request.pasid ?? 0) ^ 0x55 : 7
                outbox.append(wrong)
                injected.mismatch += 1
            }
            if Self.hits(injections.unknownEvery, n) {
                outbox.append(PageResponse(code: .success, cookie: 0xFFFF_FFF0 << 32 | n & 0xFFFF))
                injected.unknown += 1
            }
            if Self.hits(injections.staleEvery, n), answered.count >= staleDistance {
                outbox.append(PageResponse(code: .success, cookie: answered.first!))
                injected.stale += 1
            }
            var answer = right
            if Self.hits(injections.failureEvery, n) {
                answer.code = .failure
                injected.failure += 1
            }
            outbox.append(answer)
            if Self.hits(injections.duplicateEvery, n) {
                outbox.append(answer)
                injected.duplicate += 1
            }
            answered.append(request.cookie)
            if answered.count > staleDistance { answered.removeFirst() }
        }
        consumer.release(batch.count)
    }

    /// Writes as much of the outbox as the response ring takes.
    mutating func flush() {
        guard !outbox.isEmpty else { return }
        let written = consumer.respond(batch: outbox)
        outbox.removeFirst(written)
    }

    /// Nothing left to send.
    var idle: Bool { outbox.isEmpty && withheld.isEmpty }
}
