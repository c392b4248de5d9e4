import CoreMetrics
import Metrics
import PageRequests
import Prometheus

/// The service's metrics: swift-metrics instruments backed by a private
/// Prometheus registry (so several services in one process, as in tests,
/// do not share a global bootstrap), exported as Prometheus text on STATS.
final class ServiceMetrics {
    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    let protocolErrors: CoreMetrics.Counter
    private(set) var protocolErrorCount = 0
    var gauges: [String: CoreMetrics.Gauge] = [:]

    init() {
        factory = PrometheusMetricsFactory(registry: registry)
        protocolErrors = CoreMetrics.Counter(label: "faultring_protocol_errors_total", dimensions: [], factory: factory)
    }

    /// A gauge per (name, labels), created on first use.
    func gauge(_ name: String, _ labels: [(String, String)] = []) -> CoreMetrics.Gauge {
        let key = name + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        if let gauge = gauges[key] { return gauge }
        let gauge = CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
        gauges[key] = gauge
        return gauge
    }

    /// Sets the gauges from a stats snapshot and renders the registry.
    func prometheusText(_ stats: ServiceStats) -> String {
        let pr = stats.pageRequests
        gauge("faultring_page_requests").record(Double(pr.requests))
        gauge("faultring_groups_closed").record(Double(pr.groupsClosed))
        gauge("faultring_groups_delivered").record(Double(pr.groupsDelivered))
        gauge("faultring_groups_completed", [("source", "consumer")]).record(Double(pr.completedByConsumer))
        for cause in AutoResponseCause.allCases {
            gauge("faultring_groups_completed", [("source", cause.rawValue)]).record(Double(pr.auto(cause)))
        }
        for reason in ResponseRejectionReason.allCases {
            gauge("faultring_responses_rejected", [("reason", reason.rawValue)]).record(Double(pr.rejected(reason)))
        }
        gauge("faultring_failure_converted").record(Double(pr.failureConverted))
        gauge("faultring_prgi_reused").record(Double(pr.prgiReused))
        gauge("faultring_clients").record(Double(stats.clients.count))
        for device in stats.devices {
            let id = [("device", String(device.id))]
            gauge("faultring_device_groups_issued", id).record(Double(device.issued))
            gauge("faultring_device_groups_unanswered", id).record(Double(device.unanswered))
        }
        for client in stats.clients {
            guard let q = client.queue else { continue }
            let pid = [("pid", String(client.pid))]
            gauge("faultring_queue_records_published", pid).record(Double(q.recordsPublished))
            gauge("faultring_queue_records_lost", pid).record(Double(q.recordsLost))
            gauge("faultring_queue_groups_overflowed", pid).record(Double(q.groupsOverflowed))
            gauge("faultring_queue_responses_rejected", pid).record(Double(q.responsesRejectedTotal))
        }
        return registry.emitToString()
    }
}

extension ServiceMetrics {
    /// Counts a protocol error (in the Prometheus counter and a plain tally for JSON stats).
    func protocolError() {
        protocolErrors.increment()
        protocolErrorCount += 1
    }
}
