import PageRequests
import Prometheus

/// The service's metrics, exported as Prometheus text on STATS TEXT.
///
/// Monotonic counts are Prometheus counters (`_total`), levels are gauges.
/// The service's books are the truth: at each export every counter is
/// advanced by how much its book grew since the previous export, so a
/// counter never goes backwards even though the books are snapshots. A
/// private registry per service, so several services in one process (tests)
/// do not share state.
final class ServiceMetrics {
    let registry = PrometheusCollectorRegistry()
    /// Protocol errors so far (malformed or refused messages).
    private(set) var protocolErrorCount: UInt64 = 0
    var counters: [String: (counter: Counter, exported: UInt64)] = [:]
    var gauges: [String: Gauge] = [:]

    init() {}

    /// Counts a protocol error.
    func protocolError() { protocolErrorCount &+= 1 }

    /// Advances counter `name{labels}` to `value` (never backwards).
    func count(_ name: String, _ help: String, _ labels: [(String, String)] = [], value: UInt64) {
        let key = name + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        let entry = counters[key] ?? (registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels), 0)
        if value > entry.exported { entry.counter.increment(by: Int64(clamping: value - entry.exported)) }
        counters[key] = (entry.counter, max(value, entry.exported))
    }

    /// Sets gauge `name{labels}` to `value`.
    func level(_ name: String, _ help: String, _ labels: [(String, String)] = [], value: Double) {
        let key = name + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        let gauge = gauges[key] ?? registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels)
        gauges[key] = gauge
        gauge.set(value)
    }

    /// A metric named exactly `name` (no unit suffix), with help text.
    static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// Brings every instrument up to the `stats` snapshot and renders the registry.
    func prometheusText(_ stats: ServiceStats) -> String {
        let pr = stats.pageRequests
        count("faultring_page_requests_total", "Page requests received from devices", value: pr.requests)
        count("faultring_groups_closed_total", "Page-request groups closed by a LAST_PAGE request", value: pr.groupsClosed)
        count("faultring_groups_delivered_total", "Groups written into a fault ring", value: pr.groupsDelivered)
        let completed = "Groups answered, by who answered"
        count("faultring_groups_completed_total", completed, [("source", "consumer")], value: pr.completedByConsumer)
        for cause in AutoResponseCause.allCases {
            count("faultring_groups_completed_total", completed, [("source", cause.rawValue)], value: pr.auto(cause))
        }
        for reason in ResponseRejectionReason.allCases {
            count("faultring_responses_rejected_total", "Responses that completed nothing, by reason",
                  [("reason", reason.rawValue)], value: pr.rejected(reason))
        }
        count("faultring_failure_converted_total", "FAILURE responses turned into INVALID", value: pr.failureConverted)
        count("faultring_prgi_reused_total", "PRG indices reused while outstanding", value: pr.prgiReused)
        count("faultring_protocol_errors_total", "Malformed or refused control messages", value: stats.protocolErrors)
        level("faultring_clients", "Connected clients", value: Double(stats.clients.count))
        for device in stats.devices {
            let id = [("device", String(device.id))]
            count("faultring_device_groups_issued_total", "Groups a device raised", id, value: device.issued)
            for (source, n) in device.answersBySource {
                count("faultring_device_groups_answered_total", "Groups a device got its one answer for, by who answered",
                      id + [("source", source)], value: n)
            }
            level("faultring_device_groups_outstanding", "Groups a device raised and not answered yet", id, value:
                  Double(device.outstanding))
        }
        for client in stats.clients {
            guard let q = client.queue else { continue }
            let pid = [("pid", String(client.pid))]
            count("faultring_queue_records_published_total", "Records written into a client's fault ring", pid, value:
                  q.recordsPublished)
            count("faultring_queue_records_lost_total", "Records dropped for a full fault ring", pid, value: q.recordsLost)
            count("faultring_queue_groups_overflowed_total", "Groups that did not fit whole and were answered INVALID",
                  pid, value: q.groupsOverflowed)
            for (outcome, n) in q.responsesMatched {
                count("faultring_queue_responses_matched_total", "Valid responses by what they did when matched",
                      pid + [("outcome", outcome)], value: n)
            }
            count("faultring_queue_responses_rejected_total", "Response slots rejected as malformed", pid, value:
                  q.responsesRejectedTotal)
        }
        for source in stats.sources {
            let labels = [("pid", String(source.pid)), ("kind", source.kind)]
            let b = source.books
            count("faultring_source_groups_total", "Page-request groups a fault source read", labels, value: b.groups)
            count("faultring_source_answers_written_total", "Answers written to a fault source", labels, value: b.answersWritten)
            count("faultring_source_answers_refused_total", "Answers the kernel or device refused (EINVAL)", labels,
                  value: b.answersRefused.values.reduce(0, +))
            count("faultring_source_answers_not_written_total", "Answers a fault source could not take", labels,
                  value: b.answersNotWritten.values.reduce(0, +))
            count("faultring_source_events_lost_total", "vEVENTQ events lost before the service", labels, value: b.eventsLost)
            count("faultring_source_malformed_total", "Records a fault source sent that did not decode", labels,
                  value: b.malformed)
        }
        return registry.emitToString()
    }
}
