//! The rate limits' metrics: refusals, and the health and latency of the shared Redis.

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::registry::register;

/// From 50 µs to 100 ms: one round trip to Redis on the request path.
const LIMITER_BUCKETS: [f64; 11] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

label_set! {
    /// How a rate-limit call to Redis failed (`ratelimit_redis_errors_total{reason}`).
    RedisFailure {
        /// Redis answered with an error, or the connection failed.
        Error => "error",
        /// No answer within `rate_limit.redis.timeout`.
        Timeout => "timeout",
    }
}

/// `ratelimit_*`.
pub struct RateLimitMetrics {
    rejections: IntCounter,
    redis_up: IntGauge,
    redis_duration: Histogram,
    redis_errors: IntCounterVec,
    fallbacks: IntCounter,
}

impl RateLimitMetrics {
    pub(super) fn register(r: &Registry) -> RateLimitMetrics {
        RateLimitMetrics {
            rejections: register(
                r,
                IntCounter::new("ratelimit_rejections_total", "Requests refused with 429"),
            ),
            redis_up: register(
                r,
                IntGauge::new(
                    "ratelimit_redis_up",
                    "1 while rate-limit decisions go to Redis, 0 while this replica decides alone",
                ),
            ),
            redis_duration: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "ratelimit_redis_duration_seconds",
                        "Time of one rate-limit decision in Redis",
                    )
                    .buckets(LIMITER_BUCKETS.to_vec()),
                ),
            ),
            redis_errors: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "ratelimit_redis_errors_total",
                        "Rate-limit calls to Redis that failed or timed out",
                    ),
                    &["reason"],
                ),
            ),
            fallbacks: register(
                r,
                IntCounter::new(
                    "ratelimit_fallback_decisions_total",
                    "Rate-limit decisions taken by this replica alone because Redis did not answer",
                ),
            ),
        }
    }

    /// A request refused with 429.
    pub(crate) fn rejected(&self) {
        self.rejections.inc();
    }

    /// Whether decisions go to Redis (`false`: the replica's fallback decides).
    pub(crate) fn redis_up(&self, up: bool) {
        self.redis_up.set(i64::from(up));
    }

    /// One decision answered by Redis.
    pub(crate) fn redis_call(&self, elapsed: Duration) {
        self.redis_duration.observe(elapsed.as_secs_f64());
    }

    /// A call to Redis that failed; the fallback decides it.
    pub(crate) fn redis_failed(&self, reason: RedisFailure) {
        self.redis_errors.with_label_values(&[reason.label()]).inc();
        self.fallbacks.inc();
    }

    /// A decision taken by the fallback, without asking Redis.
    pub(crate) fn fallback(&self) {
        self.fallbacks.inc();
    }
}
