//! Watches exactly one Secret (kube-runtime `watch_object`: a field selector on its name, so
//! RBAC can be limited with `resourceNames`), with backoff on errors, and hands each decoded
//! version to a publisher. A deleted or malformed Secret keeps the last good value.
//! SECURITY: log lines and metrics name the Secret and the failure, never a value.

use std::{fmt, sync::Arc};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};

use crate::{auth::signing::unix_now, metrics::Metrics};

/// What one watch event did, also the `outcome` label of `k8s_secret_events_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretEvent {
    /// A new version was decoded and published.
    Applied,
    /// The Secret is gone; the last good value stays.
    Deleted,
    /// The Secret could not be decoded; the last good value stays.
    Malformed,
    /// The API refused or failed (e.g. 403, connection lost); retried with backoff.
    Error,
}

impl SecretEvent {
    pub fn label(self) -> &'static str {
        match self {
            SecretEvent::Applied => "applied",
            SecretEvent::Deleted => "deleted",
            SecretEvent::Malformed => "malformed",
            SecretEvent::Error => "error",
        }
    }
}

impl fmt::Display for SecretEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One Secret to watch: where it is, what it is for (`storage`, `api_keys`: the `secret`
/// label of the metrics), and where its events are counted.
pub struct SecretWatch {
    pub client: Client,
    pub namespace: String,
    pub name: String,
    pub purpose: &'static str,
    pub metrics: Arc<Metrics>,
}

/// Watches the Secret until the task is dropped: `decode` turns a version into a value,
/// `publish` hands it on, `on_event` sees every outcome (readiness uses it).
pub async fn watch_secret<T>(
    watch: SecretWatch,
    decode: impl Fn(&Secret) -> Result<T, String>,
    publish: impl Fn(T),
    on_event: impl Fn(SecretEvent),
) {
    let SecretWatch {
        client,
        namespace,
        name,
        purpose,
        metrics,
    } = watch;
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let events = watcher::watch_object(api, &name).default_backoff();
    futures_util::pin_mut!(events);
    while let Some(event) = events.next().await {
        let outcome = match event {
            Ok(Some(secret)) => match decode(&secret) {
                Ok(value) => {
                    publish(value);
                    metrics
                        .k8s_secret_last_success
                        .with_label_values(&[purpose])
                        .set(unix_now() as i64);
                    tracing::info!(secret = %format!("{namespace}/{name}"), purpose, "applied a new version of the Secret");
                    SecretEvent::Applied
                }
                Err(why) => {
                    tracing::warn!(secret = %format!("{namespace}/{name}"), purpose, problem = %why, "cannot use the Secret; keeping the last good value");
                    SecretEvent::Malformed
                }
            },
            Ok(None) => {
                tracing::warn!(secret = %format!("{namespace}/{name}"), purpose, "the Secret is gone; keeping the last good value");
                SecretEvent::Deleted
            }
            Err(e) => {
                tracing::warn!(secret = %format!("{namespace}/{name}"), purpose, error = %e, "watching the Secret failed; retrying with backoff");
                SecretEvent::Error
            }
        };
        metrics
            .k8s_secret_events
            .with_label_values(&[purpose, outcome.label()])
            .inc();
        on_event(outcome);
    }
}
