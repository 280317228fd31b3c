//! Access control's metric: requests refused, by reason.

use prometheus::{IntCounterVec, Opts, Registry};

use super::registry::register;

label_set! {
    /// Why access control refused a request (`auth_failures_total{reason}`).
    AuthFailure {
        /// No `X-API-Key` and no signed URL where one is needed.
        MissingKey => "missing_key",
        /// A key nobody holds.
        UnknownKey => "unknown_key",
        /// A read key asking to write.
        InsufficientScope => "insufficient_scope",
        /// A signed URL past its expiry.
        SignatureExpired => "signature_expired",
        /// A signed URL whose signature does not match.
        SignatureInvalid => "signature_invalid",
        /// Signed-URL parameters that do not parse.
        SignatureMalformed => "signature_malformed",
    }
}

/// `auth_failures_total`.
pub struct AuthMetrics {
    failures: IntCounterVec,
}

impl AuthMetrics {
    pub(super) fn register(r: &Registry) -> AuthMetrics {
        AuthMetrics {
            failures: register(
                r,
                IntCounterVec::new(
                    Opts::new("auth_failures_total", "Requests refused by access control"),
                    &["reason"],
                ),
            ),
        }
    }

    /// A request refused by access control.
    pub(crate) fn failed(&self, reason: AuthFailure) {
        self.failures.with_label_values(&[reason.label()]).inc();
    }
}
