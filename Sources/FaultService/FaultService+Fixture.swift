import Devices
import FaultABI
import FaultControl
import Glibc
import PageRequests
import Workloads

extension FaultService {
    /// One tick of a fixture replay: once every fixture device is attached
    /// and its queue negotiated, hand out the events that are due.
    func feedTick(now: UInt64) {
        guard let feed else { return }
        if feed.startNS == nil {
            let ready = feed.fixture.devices.allSatisfy { device in
                owner[device.id].flatMap { sessions[$0]?.queue?.abi } != nil
            }
            guard ready else { return }
        }
        let due: [(Int, FixtureEvent)]
        do {
            due = try feed.due(now: now)
        } catch {
            feed.outcome.problems.append("\(error)")
            feed.exhausted = true
            return
        }
        for (index, event) in due { inject(event, index: index, now: now, feed: feed) }
    }

    func inject(_ event: FixtureEvent, index: Int, now: UInt64, feed: FixtureFeed) {
        switch event.kind {
        case .pageRequest(var request):
            request.timestampNS = now
            if request.isLastPage && !request.isStopMarker { feed.expectAnswer(request, event: index) }
            tracker.receive(request, now: now) { complete($0) }
        case .fault(var fault):
            fault.timestampNS = now
            guard let session = owner[fault.deviceID].flatMap({ sessions[$0] }), let queue = session.queue else {
                feed.outcome.lostRecords += 1  // nobody to deliver it to
                return
            }
            if queue.publish(.unrecoverable(fault)) == .published { feed.outcome.faultsDelivered += 1 }
        case .raw(let format, let device, let words):
            let needsPASID = feed.fixture.devices.first { $0.id == device }?.needsPASID ?? false
            do {
                let decoded: FixtureEvent.Kind
                switch format {
                case .smmuv3PRI:
                    decoded = .pageRequest(try SMMUv3PRIRecord(words: words[0], words[1])
                        .pageRequest(deviceID: device, needsPASID: needsPASID))
                case .smmuv3Event:
                    switch try SMMUv3EventRecord(words: words[0], words[1], words[2], words[3]).fault(deviceID: device) {
                    case .pageRequest(let r): decoded = .pageRequest(r)
                    case .unrecoverable(let f): decoded = .fault(f)
                    }
                case .vtdPageRequest:
                    decoded = .pageRequest(try VTdPageRequest(words: words[0], words[1], words[2], words[3])
                        .pageRequest(deviceID: device))
                }
                inject(FixtureEvent(t: event.t, kind: decoded), index: index, now: now, feed: feed)
            } catch {
                feed.outcome.problems.append("event \(index): \(error)")
            }
        }
    }

    /// Every event handed out and every group answered: write the outcome and stop.
    func finishFixture() {
        guard let feed else { return }
        let counters = tracker.snapshot
        feed.outcome.auto = counters.autoResponses
        feed.outcome.rejections = counters.rejections
        feed.outcome.lostRecords += lostOnClosedQueues
            + sessions.values.reduce(0) { $0 + ($1.queue?.countersSnapshot.recordsLost ?? 0) }
        feed.outcome.groups.sort { $0.event < $1.event }
        if let path = config.outcomePath {
            let bytes = JSONPayload.encode(feed.outcome)
            if let file = fopen(path, "w") {
                _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
                fclose(file)
            } else {
                logger.error("cannot write the outcome to \(path)")
            }
        }
        logger.info("fixture \(feed.fixture.name) done: \(feed.outcome.groups.count) groups answered")
        stopping = true
    }
}
