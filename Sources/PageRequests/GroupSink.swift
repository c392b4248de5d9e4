import FaultABI

/// Where closed groups go: a queue's producer, seen from the page-request
/// layer (which does no I/O itself).
public protocol GroupSink: AnyObject {
    /// The ABI in force on the queue, or `nil` before negotiation.
    var abi: ABIVersion? { get }
    /// Delivers groups in order, each whole and contiguous or not at all,
    /// and makes those that fit visible together. `requests` holds the
    /// groups back to back, each request with its group's cookie; `sizes`
    /// gives their request counts. Writes one outcome per group into
    /// `outcomes` (as many as `sizes`), in order.
    ///
    /// The buffers are lent for the call (the tracker's, or `requests` a
    /// slice of the burst being received): a sink must not keep them.
    /// - Returns: how many outcomes it wrote, which must be `sizes.count`
    ///   (the tracker stops on anything else: a group with no outcome could
    ///   neither be retried nor answered correctly).
    func deliverGroups(_ requests: UnsafeBufferPointer<PageRequest>, sizes: UnsafeBufferPointer<Int>,
                       outcomes: UnsafeMutableBufferPointer<GroupDelivery>) -> Int
}

/// What a sink did with a group.
public enum GroupDelivery: Sendable, Hashable, BitwiseCopyable {
    /// Written, every record, contiguously.
    case delivered
    /// Would not fit whole: the tracker answers it INVALID (overflow).
    case noRoom
    /// The queue has no ABI in force yet: the group waits.
    case notReady
}
