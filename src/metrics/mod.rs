//! Prometheus metrics: one registry, owned by the app (never a global), served on the admin
//! listener at `/metrics`. One struct per subsystem (`http.rs`, `storage.rs`, `auth.rs`,
//! `rate_limit.rs`, `kubernetes.rs`, `processing.rs`, `cache.rs`) registers its own metrics
//! and records through typed methods: a label with a fixed set of values is an enum of that
//! subsystem, so a misspelt label cannot compile. Names taken from the request's own types
//! (route, method, format, operation) are `&'static str`s those types give; routes are
//! labelled by name, never by raw path.

/// An enum whose every variant is one value of a label: `label()` gives the text.
macro_rules! label_set {
    ($(#[$meta:meta])* $name:ident { $($(#[$doc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$doc])* $variant,)+
        }

        impl $name {
            /// The label's text.
            pub fn label(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }
    };
}

mod auth;
mod cache;
mod http;
mod kubernetes;
mod processing;
mod rate_limit;
mod registry;
mod storage;

use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

use self::registry::register;
pub(crate) use self::registry::{GIT_SHA, GaugeGuard};

pub use self::{
    auth::{AuthFailure, AuthMetrics},
    cache::{CacheLookup, CacheMetrics, Eviction},
    http::{Aborted, HttpMetrics},
    kubernetes::{KubernetesMetrics, SecretEvent, SecretPurpose},
    processing::{ProcessingMetrics, Stage, VariantTier},
    rate_limit::{RateLimitMetrics, RedisFailure},
    storage::{StorageFailure, StorageMetrics, StorageOperation},
};

/// Every metric the service exports, by subsystem. The subsystems' fields are private: call
/// sites record through their methods, so a metric is either recorded somewhere or flagged
/// dead by the compiler.
pub struct Metrics {
    registry: Registry,
    /// Requests, responses, connections and uploads.
    pub http: HttpMetrics,
    /// Storage calls and the background storage check.
    pub storage: StorageMetrics,
    /// Requests refused by access control.
    pub auth: AuthMetrics,
    /// Rate limits and their Redis.
    pub rate_limit: RateLimitMetrics,
    /// The Kubernetes Secrets watched.
    pub kubernetes: KubernetesMetrics,
    /// Processing jobs, their memory, and variants served.
    pub processing: ProcessingMetrics,
    /// The hot-object cache.
    pub cache: CacheMetrics,
}

impl Metrics {
    /// Builds every metric: the build's own, the process's, then each subsystem's.
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
            http: HttpMetrics::register(r),
            storage: StorageMetrics::register(r),
            auth: AuthMetrics::register(r),
            rate_limit: RateLimitMetrics::register(r),
            kubernetes: KubernetesMetrics::register(r),
            processing: ProcessingMetrics::register(r),
            cache: CacheMetrics::register(r),
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
