//! Kubernetes: Secrets read through kube-rs and watched for rotation (MinIO credentials,
//! API keys). In a pod the client uses the service account; elsewhere `KUBECONFIG`.

mod secret_watch;
mod storage_credentials;

pub use secret_watch::{SecretEvent, SecretWatch, watch_secret};
pub use storage_credentials::{S3Credentials, decode_s3_credentials};

use std::sync::Arc;

/// A client from the in-cluster service account, or `KUBECONFIG` / `~/.kube/config` outside.
pub async fn client() -> Result<kube::Client, String> {
    kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG): {e}"))
}

/// The namespace a Secret is looked up in when the configuration names none: the client's
/// own — the pod's namespace in a cluster, the current context's namespace with a kubeconfig.
pub fn default_namespace(client: &kube::Client) -> String {
    client.default_namespace().to_owned()
}

/// Starts watching the storage Secret; the receiver always holds the last good credentials.
pub fn watch_storage_credentials(
    client: kube::Client,
    s3: &crate::config::S3Config,
    metrics: Arc<crate::metrics::Metrics>,
) -> tokio::sync::watch::Receiver<Option<S3Credentials>> {
    let (sender, receiver) = tokio::sync::watch::channel(None);
    let namespace = s3
        .secret
        .namespace
        .clone()
        .unwrap_or_else(|| default_namespace(&client));
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
