/// What the page-request layer does when it has a choice.
public struct PageRequestPolicy: Sendable, Hashable {
    /// How long a delivered group may wait for its response before the
    /// service answers it INVALID itself. Default 10 s: the value Jacob Pan
    /// proposed for `iommu.prq_timeout` (upstream never merged a timer),
    /// long enough for a guest that is descheduled, short enough that a
    /// device's outstanding-request allocation is not held forever.
    public var timeoutNS: UInt64 = 10_000_000_000
    /// Pass a consumer's FAILURE to the device as FAILURE. Off by default:
    /// PCIe "Response Failure" disables PRI for the whole function, shared
    /// by its VFs, so one guest could break its neighbours; it becomes
    /// INVALID and is counted (`failureConverted`).
    public var passFailure = false
    /// Most page requests a device may have parked in open (not yet
    /// LAST_PAGE) groups. Beyond it, all of that device's partial groups are
    /// discarded without response, as the kernel's
    /// `iopf_queue_discard_partial` does after a hardware queue overflow.
    public var maxPartialRequestsPerDevice = 512
    /// Most groups outstanding (closed, not yet answered) in the whole
    /// engine: the size of the cookie table. A group that finds it full is
    /// answered INVALID at once (`AutoResponseCause.tableFull`).
    public var maxOutstandingGroups = 65_536

    /// The defaults: 10 s timeout, FAILURE turned into INVALID, 512 parked
    /// requests per device, 65 536 outstanding groups.
    public init() {}
}
