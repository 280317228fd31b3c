//! Kubernetes: Secrets read through kube-rs and watched for rotation (MinIO credentials,
//! API keys). In a pod the client uses the service account; elsewhere `KUBECONFIG`.

mod secret_watch;
mod storage_credentials;

pub use secret_watch::{SecretEvent, SecretWatch, watch_secret};
pub use storage_credentials::{S3Credentials, decode_s3_credentials};

use std::sync::Arc;

/// Where the service account mount says the pod runs.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// A client from the in-cluster service account, or `KUBECONFIG` / `~/.kube/config` outside.
pub async fn client() -> Result<kube::Client, String> {
    kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG): {e}"))
}

/// The namespace a Secret is looked up in when the configuration names none: the pod's own.
pub fn default_namespace() -> String {
    std::fs::read_to_string(NAMESPACE_FILE)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// Starts watching the storage Secret; the receiver always holds the last good credentials.
pub fn watch_storage_credentials(
    client: kube::Client,
    s3: &crate::config::S3Config,
    metrics: Arc<crate::metrics::Metrics>,
) -> tokio::sync::watch::Receiver<Option<S3Credentials>> {
    let (sender, receiver) = tokio::sync::watch::channel(None);
    let namespace = s3.secret.namespace.clone().unwrap_or_else(default_namespace);
    let keys = s3.secret.keys.clone();
    let watch = SecretWatch {
        client,
        namespace,
        name: s3.secret.name.clone(),
        purpose: "storage",
        metrics,
    };
    tokio::spawn(watch_secret(
        watch,
        move |secret| decode_s3_credentials(secret, keys.as_ref()),
        move |credentials| {
            sender.send_replace(Some(credentials));
        },
        |_| {},
    ));
    receiver
}
