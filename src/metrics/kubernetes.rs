//! The Kubernetes Secrets' metrics: watch events, and when a version was last applied.
//! SECURITY: they name the Secret's purpose and the event, never a value.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::registry::register;

label_set! {
    /// What a watched Secret is for (the `secret` label).
    SecretPurpose {
        /// The S3 access key.
        Storage => "storage",
        /// API key entries.
        ApiKeys => "api_keys",
        /// The rate limits' Redis password.
        RedisPassword => "redis_password",
    }
}

label_set! {
    /// What one watch event did (`k8s_secret_events_total{outcome}`).
    SecretEvent {
        /// A new version was decoded and published.
        Applied => "applied",
        /// The Secret is gone; the last good value stays.
        Deleted => "deleted",
        /// The Secret could not be decoded; the last good value stays.
        Malformed => "malformed",
        /// The API refused or failed (e.g. 403, connection lost); retried with backoff.
        Error => "error",
    }
}

/// `k8s_secret_*`.
pub struct KubernetesMetrics {
    secret_events: IntCounterVec,
    secret_last_success: IntGaugeVec,
}

impl KubernetesMetrics {
    pub(super) fn register(r: &Registry) -> KubernetesMetrics {
        KubernetesMetrics {
            secret_events: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "k8s_secret_events_total",
                        "Watch events of the Kubernetes Secrets we read",
                    ),
                    &["secret", "outcome"],
                ),
            ),
            secret_last_success: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "k8s_secret_last_success_timestamp_seconds",
                        "Unix time a version of the Secret was last applied",
                    ),
                    &["secret"],
                ),
            ),
        }
    }

    /// A watch event of the Secret used for `purpose`.
    pub(crate) fn secret_event(&self, purpose: SecretPurpose, event: SecretEvent) {
        self.secret_events
            .with_label_values(&[purpose.label(), event.label()])
            .inc();
    }

    /// A version of the Secret used for `purpose` was applied at `unix_time`.
    pub(crate) fn secret_applied(&self, purpose: SecretPurpose, unix_time: i64) {
        self.secret_last_success
            .with_label_values(&[purpose.label()])
            .set(unix_time);
    }

    /// How many `event`s the Secret used for `purpose` had.
    #[cfg(test)]
    pub(crate) fn secret_events(&self, purpose: SecretPurpose, event: SecretEvent) -> u64 {
        self.secret_events
            .with_label_values(&[purpose.label(), event.label()])
            .get()
    }
}
