//! Prometheus metrics: one registry, owned by the app (never a global), served on the admin
//! listener at `/metrics`. Routes are labelled by name, never by raw path.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// From 1 ms to 60 s: small images answer in milliseconds, large downloads take long.
const DURATION_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0,
];

/// The version and commit this binary was built from.
pub const GIT_SHA: &str = match option_env!("IG_GIT_SHA") {
    Some(sha) => sha,
    None => "unknown",
};

/// Holds a gauge one up from its creation until it is dropped, whichever way the work ends.
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    pub fn new(gauge: &IntGauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_body_bytes: IntCounterVec,
    pub http_in_flight: IntGauge,
    pub http_aborted: IntCounterVec,
    pub connections_open: IntGauge,
    pub connections_rejected: IntCounter,
    pub storage_duration: HistogramVec,
    pub storage_errors: IntCounterVec,
    pub uploads: IntCounterVec,
    pub ratelimit_rejections: IntCounter,
    pub auth_failures: IntCounterVec,
    pub readiness_check_duration: Histogram,
    pub storage_reachable: IntGauge,
    pub k8s_secret_events: IntCounterVec,
    pub k8s_secret_last_success: IntGaugeVec,
}

/// Registers `metric` and hands it back. Names and labels are constants, so a failure here
/// is a programming error that the first test run shows, never a runtime condition.
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("metric definitions are valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once");
    metric
}

fn histogram_opts(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec())
}

impl Metrics {
    /// Builds every metric. Names and labels are constants, so a failure here is a bug
    /// caught by the first test, never a runtime condition.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let build_info = register(
            r,
            IntGaugeVec::new(
                Opts::new("build_info", "Always 1; labels say which build is running"),
                &["version", "git_sha"],
            ),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), GIT_SHA])
            .set(1);
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            r.register(Box::new(process)).expect("registered once");
        }
        Metrics {
            http_requests: register(
                r,
                IntCounterVec::new(
                    Opts::new("http_requests_total", "Requests answered"),
                    &["route", "method", "status"],
                ),
            ),
            http_duration: register(
                r,
                HistogramVec::new(
                    histogram_opts(
                        "http_request_duration_seconds",
                        "Time from request to the end of the response body",
                    ),
                    &["route", "method"],
                ),
            ),
            http_body_bytes: register(
                r,
                IntCounterVec::new(
                    Opts::new("http_response_body_bytes_total", "Response body bytes sent"),
                    &["route"],
                ),
            ),
            http_in_flight: register(
                r,
                IntGauge::new("http_requests_in_flight", "Requests being answered, bodies included"),
            ),
            http_aborted: register(
                r,
                IntCounterVec::new(
                    Opts::new("http_responses_aborted_total", "Responses whose body did not complete"),
                    &["reason"],
                ),
            ),
            connections_open: register(
                r,
                IntGauge::new(
                    "http_connections_open",
                    "Client connections open on the public listener",
                ),
            ),
            connections_rejected: register(
                r,
                IntCounter::new(
                    "http_connections_rejected_total",
                    "Connections answered 503 and closed because server.max_connections were open",
                ),
            ),
            storage_duration: register(
                r,
                HistogramVec::new(
                    histogram_opts(
                        "storage_operation_duration_seconds",
                        "Storage calls, to the first byte for reads",
                    ),
                    &["backend", "operation", "outcome"],
                ),
            ),
            storage_errors: register(
                r,
                IntCounterVec::new(
                    Opts::new("storage_errors_total", "Failed storage calls"),
                    &["backend", "kind"],
                ),
            ),
            uploads: register(
                r,
                IntCounterVec::new(
                    Opts::new("image_uploads_total", "Images stored through the upload endpoint"),
                    &["format"],
                ),
            ),
            ratelimit_rejections: register(
                r,
                IntCounter::new("ratelimit_rejections_total", "Requests refused with 429"),
            ),
            auth_failures: register(
                r,
                IntCounterVec::new(
                    Opts::new("auth_failures_total", "Requests refused by access control"),
                    &["reason"],
                ),
            ),
            storage_reachable: register(
                r,
                IntGauge::new(
                    "storage_reachable",
                    "1 while the last background storage check succeeded (within 6 s), else 0",
                ),
            ),
            readiness_check_duration: register(
                r,
                Histogram::with_opts(histogram_opts(
                    "readiness_check_duration_seconds",
                    "Duration of the background storage check",
                )),
            ),
            k8s_secret_events: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "k8s_secret_events_total",
                        "Watch events of the Kubernetes Secrets we read",
                    ),
                    &["secret", "outcome"],
                ),
            ),
            k8s_secret_last_success: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "k8s_secret_last_success_timestamp_seconds",
                        "Unix time a version of the Secret was last applied",
                    ),
                    &["secret"],
                ),
            ),
            registry,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
