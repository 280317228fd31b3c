//! Kubernetes: Secrets read through kube-rs and watched for rotation, each published on a
//! watch channel (`None` until the first good version): MinIO/S3 credentials for the storage
//! layer, API keys for the auth layer, the Redis password for rate limits. In a pod the client uses the service account;
//! elsewhere `KUBECONFIG`. This layer depends on storage and auth, never the reverse.

mod api_keys;
mod decode;
mod redis_password;
mod secret_watch;
mod storage_credentials;

pub(crate) use api_keys::decode_key_secret;
pub use decode::DecodeError;
pub(crate) use redis_password::decode_redis_password;
pub(crate) use secret_watch::{SecretEvent, SecretWatch, watch_secret};
pub(crate) use storage_credentials::decode_s3_credentials;

use std::{fmt, sync::Arc};

use k8s_openapi::api::core::v1::Secret;
use tokio::sync::watch;

use crate::{
    auth::keys::KeySet,
    config::{self, RedisPasswordSecret, SecretName, StorageSecretConfig},
    metrics::{Metrics, SecretPurpose},
    storage::S3Credentials,
};

/// The Kubernetes API cannot be reached (no in-cluster config and no usable `KUBECONFIG`).
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG): {0}")]
pub struct ClientError(#[from] kube::Error);

/// A client from the in-cluster service account, or `KUBECONFIG` / `~/.kube/config` outside.
pub(crate) async fn client() -> Result<kube::Client, ClientError> {
    Ok(kube::Client::try_default().await?)
}

/// The namespace a Secret is looked up in when the configuration names none: the client's
/// own — the pod's namespace in a cluster, the current context's namespace with a kubeconfig.
pub(crate) fn default_namespace(client: &kube::Client) -> String {
    client.default_namespace().to_owned()
}

/// Starts watching the storage Secret; the receiver always holds the last good credentials.
pub(crate) fn watch_storage_credentials(
    client: kube::Client,
    source: &StorageSecretConfig,
    metrics: Arc<Metrics>,
) -> watch::Receiver<Option<S3Credentials>> {
    let secret = SecretName {
        name: source.name.clone(),
        namespace: source.namespace.clone(),
    };
    let keys = source.keys.clone();
    // A deleted credentials Secret keeps the last good pair: storage goes on working until a
    // new version arrives (rotation deletes and recreates Secrets).
    let on_deleted = None;
    publish(
        client,
        &secret,
        SecretPurpose::Storage,
        metrics,
        on_deleted,
        move |secret| decode_s3_credentials(secret, keys.as_ref()),
    )
}

/// Starts watching the API-key Secret. It fails closed: invalid entries are skipped, and a
/// deleted Secret revokes every key it held.
pub(crate) fn watch_api_keys(
    client: kube::Client,
    secret: &SecretName,
    metrics: Arc<Metrics>,
) -> watch::Receiver<Option<KeySet>> {
    let on_deleted = Some(KeySet::default());
    publish(client, secret, SecretPurpose::ApiKeys, metrics, on_deleted, |secret| {
        Ok::<_, std::convert::Infallible>(decode_key_secret(secret))
    })
}

/// Starts watching the rate-limit Redis password. A deleted Secret keeps the last good
/// password (open connections stay authenticated; rotation deletes and recreates Secrets).
pub(crate) fn watch_redis_password(
    client: kube::Client,
    secret: &RedisPasswordSecret,
    metrics: Arc<Metrics>,
) -> watch::Receiver<Option<config::Secret>> {
    let name = SecretName {
        name: secret.name.clone(),
        namespace: secret.namespace.clone(),
    };
    let key = secret.key.clone();
    publish(
        client,
        &name,
        SecretPurpose::RedisPassword,
        metrics,
        None,
        move |secret| decode_redis_password(secret, &key),
    )
}

/// Watches `secret` and publishes each good version, decoded, until every receiver is gone;
/// `on_deleted`, when given, is published when the Secret is deleted.
fn publish<T, E>(
    client: kube::Client,
    secret: &SecretName,
    purpose: SecretPurpose,
    metrics: Arc<Metrics>,
    on_deleted: Option<T>,
    decode: impl Fn(&Secret) -> Result<T, E> + Send + 'static,
) -> watch::Receiver<Option<T>>
where
    T: Clone + Send + Sync + 'static,
    E: fmt::Display,
{
    let (sender, receiver) = watch::channel(None);
    let watch = SecretWatch {
        namespace: secret.namespace.clone().unwrap_or_else(|| default_namespace(&client)),
        client,
        name: secret.name.clone(),
        purpose,
        metrics,
    };
    let sender = Arc::new(sender);
    let (publisher, deletions) = (sender.clone(), sender.clone());
    tokio::spawn(async move {
        let watching = watch_secret(
            watch,
            decode,
            move |value| {
                publisher.send_replace(Some(value));
            },
            move |event| {
                if let (SecretEvent::Deleted, Some(value)) = (event, &on_deleted) {
                    deletions.send_replace(Some(value.clone()));
                }
            },
        );
        tokio::select! {
            () = watching => {}
            () = sender.closed() => {}
        }
    });
    receiver
}
