//! Prometheus metrics, exposed in the OpenMetrics text format by `prometheus-client`: requests by
//! route and status, request latency histograms by route, export durations and sizes of the jobs
//! this process's workers finished, rows the background passes could not handle, and, read from
//! the database at scrape time, jobs by status and the queue depth. Labels are route patterns and
//! vocabulary words: never a path with an id in it, never PHI.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The media type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const DURATION_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0];
const BYTES_BUCKETS: [f64; 7] = [1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FinishedLabels {
    status: String,
    format: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    export_type: String,
    format: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FormatLabels {
    format: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PassLabels {
    pass: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The process's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histograms<RouteLabels>,
    jobs: Family<StatusLabels, Gauge>,
    queue_depth: Gauge,
    finished: Family<FinishedLabels, Counter>,
    export_duration: Histograms<KindLabels>,
    export_bytes: Histograms<FormatLabels>,
    background_errors: Family<PassLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let latency: Histograms<RouteLabels> =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route",
            latency.clone(),
        );
        let jobs = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "export_jobs",
            "Export jobs in the database, by status",
            jobs.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "export_queue_depth",
            "Jobs waiting for a worker",
            queue_depth.clone(),
        );
        let finished = Family::<FinishedLabels, Counter>::default();
        registry.register(
            "export_jobs_finished",
            "Jobs this process's workers finished, by outcome",
            finished.clone(),
        );
        let export_duration: Histograms<KindLabels> =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        registry.register(
            "export_duration_seconds",
            "Time from claim to completion",
            export_duration.clone(),
        );
        let export_bytes: Histograms<FormatLabels> =
            Family::new_with_constructor(|| Histogram::new(BYTES_BUCKETS));
        registry.register(
            "export_file_bytes",
            "Size of the files produced",
            export_bytes.clone(),
        );
        let background_errors = Family::<PassLabels, Counter>::default();
        registry.register(
            "export_background_errors",
            "Rows or passes the scheduler's and the expiry's background passes could not handle",
            background_errors.clone(),
        );
        // Every pass shows, at 0 until it first fails.
        for pass in ["tick", "deliver", "expire", "sweep"] {
            let _ = background_errors.get_or_create(&PassLabels { pass });
        }
        Metrics {
            registry,
            requests,
            latency,
            jobs,
            queue_depth,
            finished,
            export_duration,
            export_bytes,
            background_errors,
        }
    }
}

impl Metrics {
    /// A request answered. `route` is the matched pattern (or `unmatched`) and `method` one of a
    /// closed set, anything else counting as `other`: a client inventing methods or paths adds no
    /// series.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method),
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// One job a worker of this process finished.
    pub fn export_finished(&self, job: &export_domain::ExportJob) {
        let format = job.format.to_string();
        self.finished
            .get_or_create(&FinishedLabels {
                status: job.status.to_string(),
                format: format.clone(),
            })
            .inc();
        if let Some(m) = export_core::metrics::JobMetrics::of(job) {
            self.export_duration
                .get_or_create(&KindLabels {
                    export_type: job.export_type.to_string(),
                    format: format.clone(),
                })
                .observe(m.duration_seconds);
            self.export_bytes
                .get_or_create(&FormatLabels { format })
                .observe(m.bytes as f64);
        }
    }

    /// Rows (or whole passes) a background pass could not handle: `pass` is one of `tick`,
    /// `deliver`, `expire` and `sweep`.
    pub fn background_errors(&self, pass: &'static str, count: u64) {
        self.background_errors
            .get_or_create(&PassLabels { pass })
            .inc_by(count);
    }

    /// The exposition, with the queue's state as read from the database.
    pub fn render(&self, jobs_by_status: &[(export_domain::JobStatus, i64)]) -> String {
        let count_of = |status: export_domain::JobStatus| {
            jobs_by_status
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, c)| *c)
        };
        for status in export_domain::JobStatus::ALL {
            self.jobs
                .get_or_create(&StatusLabels {
                    status: status.to_string(),
                })
                .set(count_of(*status));
        }
        self.queue_depth
            .set(count_of(export_domain::JobStatus::Pending));
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The label of an HTTP method: the standard ones as they are, anything else `other`.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counted() {
        let metrics = Metrics::default();
        metrics.request("GET", "/healthz", 200, 0.002);
        metrics.request("GET", "/healthz", 200, 0.2);
        let text = metrics.render(&[(export_domain::JobStatus::Pending, 3)]);
        for line in [
            "http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2",
            "http_request_duration_seconds_bucket{le=\"0.0025\",route=\"/healthz\"} 1",
            "http_request_duration_seconds_bucket{le=\"0.25\",route=\"/healthz\"} 2",
            "http_request_duration_seconds_count{route=\"/healthz\"} 2",
            "export_queue_depth 3",
            "export_jobs{status=\"completed\"} 0",
            "export_background_errors_total{pass=\"sweep\"} 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
