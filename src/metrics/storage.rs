//! Storage's metrics: every call's duration by outcome, its errors, and the background
//! storage check behind readiness.

use std::time::Duration;

use prometheus::{Histogram, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

use super::registry::{histogram_opts, register};

label_set! {
    /// A storage operation (the `operation` label).
    StorageOperation {
        /// Metadata of an object.
        Head => "head",
        /// An object's bytes.
        Get => "get",
        /// A new object.
        Put => "put",
        /// One object deleted.
        Delete => "delete",
        /// Several objects deleted in one call.
        DeleteMany => "delete_many",
        /// One page of names.
        List => "list",
        /// A rendered variant stored.
        PutVariant => "put_variant",
        /// A stored variant read.
        GetVariant => "get_variant",
        /// The variants of a source deleted.
        DeleteVariants => "delete_variants",
        /// Unfinished uploads removed.
        SweepIncomplete => "sweep_incomplete",
        /// The background reachability check.
        Check => "check",
    }
}

label_set! {
    /// How a storage call failed (its `outcome`, and `storage_errors_total{kind}`).
    StorageFailure {
        /// No such object: an answer, not an error.
        NotFound => "not_found",
        /// Storage could not be reached or did not answer in time.
        Unavailable => "unavailable",
        /// Any other failure.
        Other => "other",
    }
}

impl StorageFailure {
    /// Whether the call failed, rather than answered "no such object".
    pub fn is_error(self) -> bool {
        self != StorageFailure::NotFound
    }
}

/// `storage_*` and the readiness check's.
pub struct StorageMetrics {
    duration: HistogramVec,
    errors: IntCounterVec,
    check_duration: Histogram,
    reachable: IntGauge,
}

impl StorageMetrics {
    pub(super) fn register(r: &Registry) -> StorageMetrics {
        StorageMetrics {
            duration: register(
                r,
                HistogramVec::new(
                    histogram_opts(
                        "storage_operation_duration_seconds",
                        "Storage calls, to the first byte for reads",
                    ),
                    &["backend", "operation", "outcome"],
                ),
            ),
            errors: register(
                r,
                IntCounterVec::new(
                    Opts::new("storage_errors_total", "Failed storage calls"),
                    &["backend", "kind"],
                ),
            ),
            reachable: register(
                r,
                IntGauge::new(
                    "storage_reachable",
                    "1 while the last background storage check succeeded (within 6 s), else 0",
                ),
            ),
            check_duration: register(
                r,
                Histogram::with_opts(histogram_opts(
                    "readiness_check_duration_seconds",
                    "Duration of the background storage check",
                )),
            ),
        }
    }

    /// One call to the `backend` (its name): its duration, labelled `ok` or with how it
    /// failed; a failure other than [`StorageFailure::NotFound`] also counts in
    /// `storage_errors_total`.
    pub(crate) fn call(
        &self,
        backend: &'static str,
        operation: StorageOperation,
        failure: Option<StorageFailure>,
        elapsed: Duration,
    ) {
        let outcome = failure.map_or("ok", StorageFailure::label);
        self.duration
            .with_label_values(&[backend, operation.label(), outcome])
            .observe(elapsed.as_secs_f64());
        if let Some(failure) = failure.filter(|f| f.is_error()) {
            self.errors.with_label_values(&[backend, failure.label()]).inc();
        }
    }

    /// The background storage check ran, and whether storage is reachable now.
    pub(crate) fn checked(&self, elapsed: Duration, reachable: bool) {
        self.check_duration.observe(elapsed.as_secs_f64());
        self.reachable.set(i64::from(reachable));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn failed_calls_count_as_errors_and_a_missing_object_does_not() {
        let metrics = Metrics::new();
        let storage = &metrics.storage;
        let ms = Duration::from_millis(1);
        storage.call("fs", StorageOperation::Get, None, ms);
        storage.call("fs", StorageOperation::Get, Some(StorageFailure::NotFound), ms);
        storage.call("fs", StorageOperation::Head, Some(StorageFailure::Unavailable), ms);
        let text = metrics.render();
        for line in [
            r#"storage_operation_duration_seconds_count{backend="fs",operation="get",outcome="ok"} 1"#,
            r#"storage_operation_duration_seconds_count{backend="fs",operation="get",outcome="not_found"} 1"#,
            r#"storage_operation_duration_seconds_count{backend="fs",operation="head",outcome="unavailable"} 1"#,
            r#"storage_errors_total{backend="fs",kind="unavailable"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(!text.contains(r#"storage_errors_total{backend="fs",kind="not_found"}"#));
    }
}
