//! Prometheus metrics: one registry, owned by the app (never a global), served on the admin
//! listener at `/metrics`. Routes are labelled by name, never by raw path.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// From 1 ms to 60 s: small images answer in milliseconds, large downloads take long.
const DURATION_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0,
];

/// From 50 µs to 100 ms: one round trip to Redis on the request path.
const LIMITER_BUCKETS: [f64; 11] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// The version and commit this binary was built from.
pub(crate) const GIT_SHA: &str = match option_env!("IG_GIT_SHA") {
    Some(sha) => sha,
    None => "unknown",
};

/// Holds a gauge one up from its creation until it is dropped, whichever way the work ends.
pub(crate) struct GaugeGuard(IntGauge);

impl GaugeGuard {
    fn new(gauge: &IntGauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Every metric the service exports. Fields are private: call sites record through the
/// methods below, so a metric is either recorded somewhere or flagged dead by the compiler.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_body_bytes: IntCounterVec,
    http_in_flight: IntGauge,
    http_aborted: IntCounterVec,
    connections_open: IntGauge,
    connections_rejected: IntCounter,
    storage_duration: HistogramVec,
    storage_errors: IntCounterVec,
    uploads: IntCounterVec,
    ratelimit_rejections: IntCounter,
    ratelimit_redis_up: IntGauge,
    ratelimit_redis_duration: Histogram,
    ratelimit_redis_errors: IntCounterVec,
    ratelimit_fallbacks: IntCounter,
    auth_failures: IntCounterVec,
    readiness_check_duration: Histogram,
    storage_reachable: IntGauge,
    k8s_secret_events: IntCounterVec,
    k8s_secret_last_success: IntGaugeVec,
    processing_duration: HistogramVec,
    processing_jobs: IntCounterVec,
    processing_results: IntCounterVec,
    variants_served: IntCounterVec,
    variants_bytes: IntCounterVec,
    processing_queued: IntGauge,
    processing_pixels: IntCounterVec,
    processing_memory_budget: IntGauge,
    processing_memory_reserved: IntGauge,
    processing_memory_waits: IntCounter,
    cache_lookups: IntCounterVec,
    cache_evictions: IntCounterVec,
    cache_bytes: IntGauge,
    cache_entries: IntGauge,
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
            ratelimit_redis_up: register(
                r,
                IntGauge::new(
                    "ratelimit_redis_up",
                    "1 while rate-limit decisions go to Redis, 0 while this replica decides alone",
                ),
            ),
            ratelimit_redis_duration: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "ratelimit_redis_duration_seconds",
                        "Time of one rate-limit decision in Redis",
                    )
                    .buckets(LIMITER_BUCKETS.to_vec()),
                ),
            ),
            ratelimit_redis_errors: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "ratelimit_redis_errors_total",
                        "Rate-limit calls to Redis that failed or timed out",
                    ),
                    &["reason"],
                ),
            ),
            ratelimit_fallbacks: register(
                r,
                IntCounter::new(
                    "ratelimit_fallback_decisions_total",
                    "Rate-limit decisions taken by this replica alone because Redis did not answer",
                ),
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
            processing_duration: register(
                r,
                HistogramVec::new(
                    histogram_opts(
                        "image_processing_duration_seconds",
                        "Time a processing job spends in each stage (decode, process, encode)",
                    ),
                    &["operation", "stage"],
                ),
            ),
            processing_jobs: register(
                r,
                IntCounterVec::new(
                    Opts::new("image_processing_jobs_total", "Processing jobs by outcome"),
                    &["operation", "outcome"],
                ),
            ),
            variants_served: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "image_variants_served_total",
                        "Variants answered with their bytes, by where they came from: rendered for this request, read from storage, or from memory",
                    ),
                    &["tier", "format"],
                ),
            ),
            variants_bytes: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "image_variants_bytes_total",
                        "Bytes of the variants served (kind=variant) and of their sources (kind=source): the difference is what variants saved",
                    ),
                    &["kind", "format"],
                ),
            ),
            processing_results: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "image_processing_results_stored_total",
                        "Processing results stored in the bucket (answered 201 with their upload_url)",
                    ),
                    &["operation", "format"],
                ),
            ),
            processing_queued: register(
                r,
                IntGauge::new(
                    "image_processing_queue_depth",
                    "Processing jobs admitted and not finished (running or waiting for a worker)",
                ),
            ),
            processing_pixels: register(
                r,
                IntCounterVec::new(
                    Opts::new("image_processing_pixels_total", "Input pixels decoded"),
                    &["operation"],
                ),
            ),
            processing_memory_budget: register(
                r,
                IntGauge::new(
                    "image_processing_memory_budget_bytes",
                    "Memory the processing jobs may hold at once (processing.memory_budget)",
                ),
            ),
            processing_memory_reserved: register(
                r,
                IntGauge::new(
                    "image_processing_memory_reserved_bytes",
                    "Memory the running processing jobs hold, as estimated from their inputs' headers",
                ),
            ),
            processing_memory_waits: register(
                r,
                IntCounter::new(
                    "image_processing_memory_waits_total",
                    "Processing jobs that waited for memory before decoding",
                ),
            ),
            cache_lookups: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "cache_lookups_total",
                        "Hot-object cache lookups: hit, miss (this request read storage) or coalesced (it waited for another's read)",
                    ),
                    &["result"],
                ),
            ),
            cache_evictions: register(
                r,
                IntCounterVec::new(
                    Opts::new("cache_evictions_total", "Entries the hot-object cache dropped"),
                    &["cause"],
                ),
            ),
            cache_bytes: register(
                r,
                IntGauge::new(
                    "cache_bytes",
                    "Bytes held by the hot-object cache, bookkeeping included",
                ),
            ),
            cache_entries: register(r, IntGauge::new("cache_entries", "Entries in the hot-object cache")),
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

/// Why a response body ended before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aborted {
    /// The client went away.
    ClientGone,
    /// Storage failed mid-body.
    StorageFailed,
}

/// Recording, one method per event.
impl Metrics {
    /// A client connection is open on the public listener until the guard drops.
    pub(crate) fn connection_opened(&self) -> GaugeGuard {
        GaugeGuard::new(&self.connections_open)
    }

    /// A connection over `server.max_connections` was answered 503 and closed.
    pub(crate) fn connection_rejected(&self) {
        self.connections_rejected.inc();
    }

    /// A request is being answered until the guard drops (its body included).
    pub(crate) fn request_in_flight(&self) -> GaugeGuard {
        GaugeGuard::new(&self.http_in_flight)
    }

    /// A request was answered: its count, duration and body bytes.
    pub(crate) fn request_done(&self, route: &str, method: &str, status: u16, elapsed: Duration, body_bytes: u64) {
        self.http_requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
        self.http_body_bytes.with_label_values(&[route]).inc_by(body_bytes);
    }

    pub(crate) fn response_aborted(&self, why: Aborted) {
        let reason = match why {
            Aborted::ClientGone => "client_gone",
            Aborted::StorageFailed => "storage_failed",
        };
        self.http_aborted.with_label_values(&[reason]).inc();
    }

    /// One storage call; failures other than "not found" are counted as errors of their kind.
    pub(crate) fn storage_call(&self, backend: &str, operation: &str, outcome: Result<(), &str>, elapsed: Duration) {
        let label = outcome.err().unwrap_or("ok");
        self.storage_duration
            .with_label_values(&[backend, operation, label])
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn storage_error(&self, backend: &str, kind: &str) {
        self.storage_errors.with_label_values(&[backend, kind]).inc();
    }

    pub(crate) fn upload_stored(&self, format: &str) {
        self.uploads.with_label_values(&[format]).inc();
    }

    /// A request refused with 429.
    pub(crate) fn rate_limited(&self) {
        self.ratelimit_rejections.inc();
    }

    /// Whether rate-limit decisions go to Redis (`false`: the replica's fallback decides).
    pub(crate) fn ratelimit_redis_up(&self, up: bool) {
        self.ratelimit_redis_up.set(i64::from(up));
    }

    /// One rate-limit decision answered by Redis.
    pub(crate) fn ratelimit_redis_call(&self, elapsed: Duration) {
        self.ratelimit_redis_duration.observe(elapsed.as_secs_f64());
    }

    /// A rate-limit call to Redis that failed (`error`) or took too long (`timeout`).
    pub(crate) fn ratelimit_redis_error(&self, reason: &str) {
        self.ratelimit_redis_errors.with_label_values(&[reason]).inc();
    }

    /// A rate-limit decision taken by the fallback, without Redis.
    pub(crate) fn ratelimit_fallback(&self) {
        self.ratelimit_fallbacks.inc();
    }

    /// A request refused by access control, by `reason`.
    pub(crate) fn auth_failed(&self, reason: &str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    /// The background storage check ran, and whether storage is reachable now.
    pub(crate) fn storage_checked(&self, elapsed: Duration, reachable: bool) {
        self.readiness_check_duration.observe(elapsed.as_secs_f64());
        self.storage_reachable.set(i64::from(reachable));
    }

    /// A watch event of the Secret used for `secret` (`storage`, `api_keys`).
    pub(crate) fn secret_event(&self, secret: &str, outcome: &str) {
        self.k8s_secret_events.with_label_values(&[secret, outcome]).inc();
    }

    /// A version of the Secret was applied at `unix_time`.
    pub(crate) fn secret_applied(&self, secret: &str, unix_time: i64) {
        self.k8s_secret_last_success.with_label_values(&[secret]).set(unix_time);
    }

    /// One stage (`decode`, `process`, `encode`) of a processing job.
    pub(crate) fn processing_stage(&self, operation: &str, stage: &str, elapsed: Duration) {
        self.processing_duration
            .with_label_values(&[operation, stage])
            .observe(elapsed.as_secs_f64());
    }

    /// A processing job's end: `ok`, or the kind of refusal or failure.
    pub(crate) fn processing_job(&self, operation: &str, outcome: &str) {
        self.processing_jobs.with_label_values(&[operation, outcome]).inc();
    }

    /// A processing result stored under a new name (not counted in `image_uploads_total`).
    pub(crate) fn processing_result_stored(&self, operation: &str, format: &str) {
        self.processing_results.with_label_values(&[operation, format]).inc();
    }

    /// A variant of `format` answered with its bytes, from `tier` (`rendered`, `stored` or `memory`):
    /// `variant_len` bytes instead of the source's `source_len`.
    pub(crate) fn variant_served(&self, tier: &str, format: &str, variant_len: u64, source_len: u64) {
        self.variants_served.with_label_values(&[tier, format]).inc();
        self.variants_bytes
            .with_label_values(&["variant", format])
            .inc_by(variant_len);
        self.variants_bytes
            .with_label_values(&["source", format])
            .inc_by(source_len);
    }

    /// Counts a job in `image_processing_queue_depth` until the guard is dropped.
    pub(crate) fn processing_queued(&self) -> GaugeGuard {
        GaugeGuard::new(&self.processing_queued)
    }

    /// Input pixels a job decoded.
    /// The processing memory budget, set once at start.
    pub(crate) fn processing_memory_budget(&self, bytes: u64) {
        self.processing_memory_budget
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// A processing job reserved `bytes` of the budget.
    pub(crate) fn processing_memory_reserved(&self, bytes: u64) {
        self.processing_memory_reserved
            .add(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// A processing job gave back its `bytes`.
    pub(crate) fn processing_memory_released(&self, bytes: u64) {
        self.processing_memory_reserved
            .sub(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// A processing job had to wait for memory.
    pub(crate) fn processing_memory_wait(&self) {
        self.processing_memory_waits.inc();
    }

    pub(crate) fn processing_pixels(&self, operation: &str, pixels: u64) {
        self.processing_pixels.with_label_values(&[operation]).inc_by(pixels);
    }

    /// A hot-object cache lookup: `hit`, `miss` or `coalesced`.
    pub(crate) fn cache_lookup(&self, result: &str) {
        self.cache_lookups.with_label_values(&[result]).inc();
    }

    /// An entry of `weight` bytes entered the hot-object cache.
    pub(crate) fn cache_added(&self, weight: u64) {
        self.cache_bytes.add(i64::try_from(weight).unwrap_or(i64::MAX));
        self.cache_entries.inc();
    }

    /// An entry of `weight` bytes left the hot-object cache; `cause` when it was evicted
    /// (`size`, `expired`) rather than dropped on purpose.
    pub(crate) fn cache_removed(&self, weight: u64, cause: Option<&str>) {
        self.cache_bytes.sub(i64::try_from(weight).unwrap_or(i64::MAX));
        self.cache_entries.dec();
        if let Some(cause) = cause {
            self.cache_evictions.with_label_values(&[cause]).inc();
        }
    }

    #[cfg(test)]
    pub(crate) fn secret_events(&self, secret: &str, outcome: &str) -> u64 {
        self.k8s_secret_events.with_label_values(&[secret, outcome]).get()
    }
}
