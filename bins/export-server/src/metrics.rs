//! Prometheus metrics in the text exposition format: requests by route and status, request
//! latency histograms by route, export durations and sizes of the jobs this process's workers
//! finished, and, read from the database at scrape time, jobs by status and the queue depth.
//! Labels are route patterns and vocabulary words: never a path with an id in it, never PHI.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const DURATION_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0];
const BYTES_BUCKETS: &[f64] = &[1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        for (i, bound) in self.bounds.iter().enumerate() {
            if value <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    export_duration: BTreeMap<(String, String), Histogram>,
    export_bytes: BTreeMap<String, Histogram>,
    exports_finished: BTreeMap<(String, String), u64>,
    background_errors: BTreeMap<&'static str, u64>,
}

/// The process's metrics.
#[derive(Debug, Default)]
pub struct Metrics(Mutex<Inner>);

impl Metrics {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One answered request.
    /// A request answered. `route` is the matched pattern (or `unmatched`) and `method` one of a
    /// closed set, anything else counting as `other`: a client inventing methods or paths adds no
    /// series.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        let mut inner = self.inner();
        *inner
            .requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        inner
            .latency
            .entry(route.to_owned())
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(seconds);
    }

    /// One job a worker of this process finished.
    pub fn export_finished(&self, job: &export_domain::ExportJob) {
        let mut inner = self.inner();
        let (kind, format) = (job.export_type.to_string(), job.format.to_string());
        *inner
            .exports_finished
            .entry((job.status.to_string(), format.clone()))
            .or_default() += 1;
        if let Some(m) = export_core::metrics::JobMetrics::of(job) {
            inner
                .export_duration
                .entry((kind, format.clone()))
                .or_insert_with(|| Histogram::new(DURATION_BUCKETS))
                .observe(m.duration_seconds);
            inner
                .export_bytes
                .entry(format)
                .or_insert_with(|| Histogram::new(BYTES_BUCKETS))
                .observe(m.bytes as f64);
        }
    }

    /// Rows (or whole passes) a background pass could not handle: `pass` is one of `tick`,
    /// `deliver`, `expire` and `sweep`.
    pub fn background_errors(&self, pass: &'static str, count: u64) {
        let mut inner = self.inner();
        *inner.background_errors.entry(pass).or_default() += count;
    }

    /// The exposition, with the queue's state as read from the database.
    pub fn render(&self, jobs_by_status: &[(export_domain::JobStatus, i64)]) -> String {
        let inner = self.inner();
        let mut out = String::with_capacity(8 * 1024);
        out.push_str("# HELP http_requests_total HTTP requests answered, by route and status.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        for ((method, route, status), count) in &inner.requests {
            let _ = writeln!(
                out,
                "http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for (route, histogram) in &inner.latency {
            histogram.write(
                &mut out,
                "http_request_duration_seconds",
                &format!("route=\"{route}\""),
            );
        }
        out.push_str("# HELP export_jobs Export jobs in the database, by status.\n");
        out.push_str("# TYPE export_jobs gauge\n");
        for status in export_domain::JobStatus::ALL {
            let count = jobs_by_status
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, c)| *c);
            let _ = writeln!(out, "export_jobs{{status=\"{status}\"}} {count}");
        }
        let pending = jobs_by_status
            .iter()
            .find(|(s, _)| *s == export_domain::JobStatus::Pending)
            .map_or(0, |(_, c)| *c);
        out.push_str("# HELP export_queue_depth Jobs waiting for a worker.\n");
        out.push_str("# TYPE export_queue_depth gauge\n");
        let _ = writeln!(out, "export_queue_depth {pending}");
        out.push_str(
            "# HELP export_jobs_finished_total Jobs this process's workers finished, by outcome.\n",
        );
        out.push_str("# TYPE export_jobs_finished_total counter\n");
        for ((status, format), count) in &inner.exports_finished {
            let _ = writeln!(
                out,
                "export_jobs_finished_total{{status=\"{status}\",format=\"{format}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP export_background_errors_total Rows or passes the scheduler's and the expiry's background passes could not handle.\n",
        );
        out.push_str("# TYPE export_background_errors_total counter\n");
        for pass in ["tick", "deliver", "expire", "sweep"] {
            let count = inner.background_errors.get(pass).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "export_background_errors_total{{pass=\"{pass}\"}} {count}"
            );
        }
        out.push_str("# HELP export_duration_seconds Time from claim to completion.\n");
        out.push_str("# TYPE export_duration_seconds histogram\n");
        for ((kind, format), histogram) in &inner.export_duration {
            histogram.write(
                &mut out,
                "export_duration_seconds",
                &format!("export_type=\"{kind}\",format=\"{format}\""),
            );
        }
        out.push_str("# HELP export_file_bytes Size of the files produced.\n");
        out.push_str("# TYPE export_file_bytes histogram\n");
        for (format, histogram) in &inner.export_bytes {
            histogram.write(
                &mut out,
                "export_file_bytes",
                &format!("format=\"{format}\""),
            );
        }
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
        assert!(
            text.contains(
                "http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"
            )
        );
        assert!(
            text.contains(
                "http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0025\"} 1"
            )
        );
        assert!(
            text.contains("http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.25\"} 2")
        );
        assert!(text.contains("http_request_duration_seconds_count{route=\"/healthz\"} 2"));
        assert!(text.contains("export_queue_depth 3"));
        assert!(text.contains("export_jobs{status=\"completed\"} 0"));
    }
}
