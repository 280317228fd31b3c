//! What every subsystem's metrics share: registration, the duration buckets, byte gauges, and
//! the guard that holds a gauge up while work is in progress.

use prometheus::{HistogramOpts, IntGauge, Registry};

/// From 1 ms to 60 s: small images answer in milliseconds, large downloads take long.
const DURATION_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0,
];

/// The version and commit this binary was built from.
pub(crate) const GIT_SHA: &str = match option_env!("IG_GIT_SHA") {
    Some(sha) => sha,
    None => "unknown",
};

/// Holds a gauge one up from its creation until it is dropped, whichever way the work ends.
pub(crate) struct GaugeGuard(IntGauge);

impl GaugeGuard {
    pub(super) fn new(gauge: &IntGauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Registers `metric` and hands it back. Names and labels are constants, so a failure here
/// is a programming error that the first test run shows, never a runtime condition.
pub(super) fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("metric definitions are valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once");
    metric
}

pub(super) fn histogram_opts(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec())
}

/// A byte count for a gauge, which holds an `i64`.
pub(super) fn gauge_bytes(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}
