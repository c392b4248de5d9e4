import FaultABI

extension PageRequestTracker {
    /// A chain of pooled requests, oldest first: the requests parked on one
    /// PRG index, or the earlier requests of one closed group. Or, for a
    /// group whose earlier requests the pool does not hold (`notHeld`),
    /// only their count.
    struct RequestChain {
        var head: Int32 = -1
        var tail: Int32 = -1
        var count: Int32 = 0
        var isEmpty: Bool { count == 0 }
        /// Whether its requests are in the pool (false for an empty chain).
        var isHeld: Bool { head >= 0 }

        /// `count` requests the pool does not hold: a group's that are in
        /// the burst being received (`Group.batchStart`), or were, and
        /// were delivered from it.
        static func notHeld(count: Int) -> RequestChain {
            RequestChain(head: -1, tail: -1, count: Int32(truncatingIfNeeded: count))
        }
    }

    /// One pooled request and the next in its chain (-1: none). Indices are
    /// `Int32`: the 2^31 requests that would overflow one take 189 GB first.
    struct PooledRequest {
        var request: PageRequest
        var next: Int32
    }

    /// Every request before a LAST_PAGE one — parked until its group
    /// closes, then kept with the group until it is answered — in one table
    /// of chains, with a free list.
    ///
    /// Why not an array per PRG index and per group: a multi-page group
    /// moved its requests through three arrays (parked, the group's, a
    /// spare kept for reuse), each store a copy-on-write check and each
    /// move a retain and a release. Here parking is a store and a link, and
    /// a group's requests stay where they were parked until it is answered.
    ///
    /// Like the tracker's other tables, a `PlainTable`: the tracker unshares
    /// it once per operation (`makeTablesUnique`). It grows to the most
    /// requests parked or held at once — what arrays per group would have
    /// held at that moment too: parked requests are bounded per device
    /// (`maxPartialRequestsPerDevice`), closed groups by the cookie table —
    /// and it does not keep that peak: once no more than an eighth of a
    /// large table is in use, the tracker moves the live chains into a new,
    /// small one (`PageRequestTracker.compactPool`).
    struct RequestPool {
        var nodes = PlainTable<PooledRequest>()
        /// Head of the free nodes, linked through `next` (-1: none free).
        var free: Int32 = -1
        /// Nodes in chains (the rest are free).
        var live = 0

        /// A table at least this large is compacted once no more than an
        /// eighth of it is live (a smaller one is kept whatever its use).
        static let compactionFloor = 1 << 16

        /// Whether the table is large and mostly free.
        var isSparse: Bool { nodes.count >= Self.compactionFloor && live <= nodes.count / 8 }

        mutating func makeUnique() { nodes.makeUnique() }

        /// The oldest request of a chain that is not empty.
        func first(of chain: RequestChain) -> PageRequest { nodes[Int(chain.head)].request }

        /// Adds `request` at the end of `chain`.
        mutating func append(_ request: PageRequest, to chain: inout RequestChain) {
            let node: Int32
            if free >= 0 {
                node = free
                free = nodes[Int(node)].next
                nodes[Int(node)] = PooledRequest(request: request, next: -1)
            } else {
                node = Int32(nodes.count)
                nodes.append(PooledRequest(request: request, next: -1))
            }
            if chain.isEmpty {
                chain.head = node
            } else {
                nodes[Int(chain.tail)].next = node
            }
            chain.tail = node
            chain.count += 1
            live += 1
        }

        /// Frees every node of `chain` (none if the pool does not hold it:
        /// the common case, checked inline at the caller).
        @inline(__always) mutating func release(_ chain: RequestChain) {
            guard chain.isHeld else { return }
            releaseHeld(chain)
        }

        /// `release` of a chain the pool holds.
        mutating func releaseHeld(_ chain: RequestChain) {
            nodes[Int(chain.tail)].next = free
            free = chain.head
            live -= Int(chain.count)
        }

        /// A copy of `chain` in `other` (a new pool), in order.
        func move(_ chain: RequestChain, into other: inout RequestPool) -> RequestChain {
            var moved = RequestChain()
            forEach(in: chain) { other.append($0, to: &moved) }
            return moved
        }

        /// Calls `body` with each request of `chain`, oldest first.
        func forEach(in chain: RequestChain, _ body: (PageRequest) -> Void) {
            var node = chain.head
            for _ in 0..<chain.count {
                body(nodes[Int(node)].request)
                node = nodes[Int(node)].next
            }
        }
    }
}
