import FaultABI

extension PageRequestTracker {
    /// Hands over the answers given so far: swaps them into `taken`, which
    /// must be empty and whose capacity the tracker keeps for the next ones.
    ///
    /// A driver that answers in bulk (the pipeline) calls this once per
    /// read, burst or tick, after its access to the tracker has ended, and
    /// hands `taken` to the devices in one call.
    public mutating func takeAnswers(into taken: inout [DeviceCompletion]) {
        precondition(taken.isEmpty, "takeAnswers into a buffer that still holds answers")
        swap(&answers, &taken)
    }

    /// Calls `complete` with each answer given so far, in order, and forgets them.
    mutating func handOver(_ complete: (DeviceCompletion) -> Void) {
        guard !answers.isEmpty else { return }
        var taken: [DeviceCompletion] = []
        swap(&taken, &answers)
        for answer in taken { complete(answer) }
        taken.removeAll(keepingCapacity: true)
        if answers.isEmpty { answers = taken }  // keep the capacity
    }

    // MARK: With a closure for the answers

    /// `receive(_:now:)`, then each answer to `complete`.
    @discardableResult
    public mutating func receive(
        _ request: PageRequest, now: UInt64, complete: (DeviceCompletion) -> Void
    ) -> UInt64? {
        defer { handOver(complete) }
        return receive(request, now: now)
    }

    /// `receive(batch:now:)`, then each answer to `complete`.
    public mutating func receive(batch requests: [PageRequest], now: UInt64,
                                 complete: (DeviceCompletion) -> Void) {
        receive(batch: requests, now: now)
        handOver(complete)
    }

    /// `respond(_:channel:abi:)`, then the answer, if any, to `complete`.
    @discardableResult
    public mutating func respond(
        _ response: Result<PageResponse, ResponseRejection>, channel: ChannelID, abi: ABIVersion,
        complete: (DeviceCompletion) -> Void
    ) -> ResponseVerdict {
        defer { handOver(complete) }
        return respond(response, channel: channel, abi: abi)
    }

    /// `tick(now:)`, then each answer to `complete`.
    public mutating func tick(now: UInt64, complete: (DeviceCompletion) -> Void) {
        tick(now: now)
        handOver(complete)
    }

    /// `flushBacklogs()`, then each answer to `complete`.
    public mutating func flushBacklogs(complete: (DeviceCompletion) -> Void) {
        flushBacklogs()
        handOver(complete)
    }

    /// `removeChannel(_:)`, then each answer to `complete`.
    public mutating func removeChannel(_ channelID: ChannelID, complete: (DeviceCompletion) -> Void) {
        removeChannel(channelID)
        handOver(complete)
    }

    /// `detachDevice(_:)`, then each answer to `complete`.
    public mutating func detachDevice(_ deviceID: UInt32, complete: (DeviceCompletion) -> Void) {
        detachDevice(deviceID)
        handOver(complete)
    }

    /// `removeDevice(_:)`, then each answer to `complete`.
    public mutating func removeDevice(_ deviceID: UInt32, complete: (DeviceCompletion) -> Void) {
        removeDevice(deviceID)
        handOver(complete)
    }

    /// `shutdown()`, then each answer to `complete`.
    public mutating func shutdown(complete: (DeviceCompletion) -> Void) {
        shutdown()
        handOver(complete)
    }
}
