//! The `s3` backend: aws-sdk-s3 against MinIO, Garage or any S3, path-style by default.
//!
//! SECURITY: only the key (prefix + validated name) and, for ranges, a `Range` we computed
//! ourselves are sent; no client header is ever forwarded to S3.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future};
use aws_sdk_s3::config::IdentityCache;
use aws_sdk_s3::{
    Client,
    config::{BehaviorVersion, Credentials, Region, http::HttpResponse, retry::RetryConfig, timeout::TimeoutConfig},
    error::{ProvideErrorMetadata, SdkError},
    types::{Delete, ObjectIdentifier},
};
use bytes::Bytes;
use tokio::sync::watch;

mod credentials;
mod http;
mod reader;

pub use credentials::S3Credentials;

use crate::storage::{
    ByteRange, GetResult, ListPage, ListStream, ListedObject, ObjectMeta, Storage, StorageError, VARIANTS_DIR,
    VariantKey,
};
use crate::{
    config::{S3KeySource, S3Settings},
    object_name::ObjectName,
};

/// The `s3` backend: each object stored under the key `prefix` + name in one bucket.
pub struct S3Storage {
    client: Client,
    /// GET and HEAD, without the SDK (`reader.rs`).
    reader: reader::Reader,
    bucket: String,
    prefix: String,
    /// Where the bucket is, for the readiness check's explanation (the admin listener's).
    endpoint: String,
}

/// Credentials that follow a watched Kubernetes Secret: every request signs with the latest
/// version, so a rotated key takes effect at once and requests already sent are untouched.
#[derive(Debug)]
struct WatchedCredentials(watch::Receiver<Option<S3Credentials>>);

impl ProvideCredentials for WatchedCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let current = self.0.borrow().clone();
        future::ProvideCredentials::ready(match current {
            Some(c) => Ok(Credentials::new(
                c.access_key_id,
                c.secret_access_key.expose(),
                None,
                None,
                "kubernetes-secret",
            )),
            None => Err(CredentialsError::not_loaded(
                "the Kubernetes Secret has not been read yet",
            )),
        })
    }
}

impl S3Storage {
    /// Builds the client with the configured static keys, or the AWS default chain
    /// (`credentials = "default"`); nothing is sent until the first request.
    pub async fn new(config: &S3Settings, timeout: Duration) -> Self {
        let provider = match &config.keys {
            S3KeySource::Default => Some(default_chain(config, timeout).await),
            S3KeySource::Static {
                access_key_id,
                secret_access_key,
            } => Some(SharedCredentialsProvider::new(Credentials::new(
                access_key_id,
                secret_access_key.expose(),
                None,
                None,
                "image-gateway-config",
            ))),
            // Signed with the Secret's keys once a watch publishes them (`with_watched_credentials`).
            S3KeySource::Kubernetes(_) => None,
        };
        Self::build(config, timeout, provider)
    }

    /// Builds the client with credentials that follow `credentials` (a watched Secret).
    pub fn with_watched_credentials(
        config: &S3Settings,
        timeout: Duration,
        credentials: watch::Receiver<Option<S3Credentials>>,
    ) -> Self {
        let provider = SharedCredentialsProvider::new(WatchedCredentials(credentials));
        Self::build(config, timeout, Some(provider))
    }

    fn build(config: &S3Settings, timeout: Duration, provider: Option<SharedCredentialsProvider>) -> Self {
        let client = http::client(config.pool_idle_timeout, timeout);
        let cache_credentials = matches!(config.keys, S3KeySource::Default);
        let reader = reader::Reader::new(client.clone(), config, provider.clone(), cache_credentials);
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .force_path_style(config.force_path_style)
            .timeout_config(TimeoutConfig::builder().connect_timeout(timeout).build())
            // One quick retry for a dropped pooled connection; the storage timeout bounds the rest.
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .http_client(http::for_sdk(client.clone()));
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(&endpoint.url);
        }
        if let Some(provider) = provider {
            builder = builder.credentials_provider(provider);
            if !cache_credentials {
                // No identity cache: static and watched keys are read for every request, so
                // rotation is immediate. The default chain keeps the SDK's cache: its sources
                // (STS, the instance metadata service) are network calls with expiring keys,
                // refreshed by the cache before they expire.
                builder = builder.identity_cache(IdentityCache::no_cache());
            }
        }
        Self {
            client: Client::from_conf(builder.build()),
            reader,
            bucket: config.bucket.clone(),
            prefix: config.prefix.clone(),
            endpoint: config
                .endpoint
                .as_ref()
                .map_or_else(|| "AWS S3".into(), |e| e.url.clone()),
        }
    }

    fn key(&self, name: &ObjectName) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// One PutObject of `data` under the full `key` (atomic for readers, as S3 writes are).
    async fn put_key(&self, key: String, content_type: Option<&str>, data: Bytes) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_owned))
            .body(aws_sdk_s3::primitives::ByteStream::from(data))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// One DeleteObjects call (quiet: only failures are answered) for up to 1000 full keys.
    async fn delete_keys<'k>(
        &self,
        keys: impl Iterator<Item = &'k str>,
    ) -> Result<aws_sdk_s3::operation::delete_objects::DeleteObjectsOutput, StorageError> {
        let objects = keys
            .map(|key| ObjectIdentifier::builder().key(key).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StorageError::other("cannot build the delete request").because(e))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| StorageError::other("cannot build the delete request").because(e))?;
        self.client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(classify)
    }

    /// A stored variant's key: prefix + `variants/NAME/ID`.
    fn variant_key(&self, key: &VariantKey) -> String {
        format!("{}{}", self.prefix, key.path())
    }

    /// Listed objects under our prefix, keys relative to it, the stored variants left out.
    fn listed(&self, contents: &[aws_sdk_s3::types::Object]) -> Vec<ListedObject> {
        let variants = format!("{VARIANTS_DIR}/");
        contents
            .iter()
            .filter_map(|o| {
                let key = o.key()?.strip_prefix(&self.prefix)?.to_owned();
                if key.starts_with(&variants) {
                    return None;
                }
                Some(ListedObject {
                    key,
                    len: o.size().unwrap_or(0).max(0) as u64,
                    last_modified: to_system_time(o.last_modified()),
                })
            })
            .collect()
    }
}

/// The AWS SDK's default credential chain (environment, profile, web identity/IRSA, EKS Pod
/// Identity and ECS, instance profile), talking to STS and the metadata services over our
/// HTTP client, in the configured region.
async fn default_chain(config: &S3Settings, timeout: Duration) -> SharedCredentialsProvider {
    let provider_config = aws_config::provider_config::ProviderConfig::without_region()
        .with_region(Some(Region::new(config.region.clone())))
        .with_http_client(http::for_sdk(http::client(config.pool_idle_timeout, timeout)));
    let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
        .configure(provider_config)
        .build()
        .await;
    SharedCredentialsProvider::new(chain)
}

/// Sorts SDK failures into NotFound / Unavailable / Other.
fn classify<E>(err: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return StorageError::unavailable("the storage request failed").because(err);
        }
        SdkError::ServiceError(service) => service.raw().status().as_u16(),
        // Our inputs are validated, so this is a request that could not be signed: no credentials yet.
        SdkError::ConstructionFailure(_) => {
            return StorageError::unavailable("cannot sign the request").because(err);
        }
        _ => return StorageError::other("the storage request failed").because(err),
    };
    let code = err.code().map(str::to_owned);
    status_error(status, code.as_deref(), || {
        StorageError::other(format!("storage answered {status}")).because(err)
    })
}

/// The storage error for an S3 error answer (both read paths classify alike); `other`
/// makes the error for an unexpected one.
fn status_error(status: u16, code: Option<&str>, other: impl FnOnce() -> StorageError) -> StorageError {
    match (status, code) {
        (_, Some("NoSuchBucket")) => StorageError::unavailable("the configured bucket does not exist"),
        (404, _) => StorageError::NotFound,
        (401 | 403, _) => StorageError::unavailable(format!("storage refused our credentials ({status})")),
        (500.., _) | (429, _) => StorageError::unavailable(format!("storage answered {status}")),
        _ => other(),
    }
}

fn to_system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// S3 ETags are already quoted; make sure ours always are.
fn quoted(etag: Option<&str>) -> String {
    match etag {
        Some(e) if e.starts_with('"') || e.starts_with("W/") => e.to_owned(),
        Some(e) => format!("\"{e}\""),
        None => "\"\"".to_owned(),
    }
}

#[async_trait::async_trait]
impl Storage for S3Storage {
    fn backend(&self) -> &'static str {
        "s3"
    }

    async fn head(&self, name: &ObjectName) -> Result<ObjectMeta, StorageError> {
        self.reader.head(&self.key(name)).await
    }

    async fn get(&self, name: &ObjectName, range: Option<ByteRange>) -> Result<GetResult, StorageError> {
        self.reader.get(&self.key(name), range).await
    }

    async fn put(&self, name: &ObjectName, data: Bytes) -> Result<(), StorageError> {
        self.put_key(self.key(name), Some(name.format().content_type()), data)
            .await
    }

    async fn delete(&self, name: &ObjectName) -> Result<(), StorageError> {
        let result = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .send()
            .await;
        StorageError::ignore_not_found(result.map(|_| ()).map_err(classify))
    }

    async fn delete_many(&self, names: &[ObjectName]) -> Result<Vec<(ObjectName, StorageError)>, StorageError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names.iter().map(|n| self.key(n)).collect();
        let failed = self
            .delete_keys(keys.iter().map(String::as_str))
            .await?
            .errors()
            .iter()
            .filter_map(|e| {
                let key = e.key()?.strip_prefix(&self.prefix)?;
                let name = names.iter().find(|n| n.as_str() == key)?.clone();
                let why = format!("{}: {}", e.code().unwrap_or("error"), e.message().unwrap_or_default());
                Some((name, StorageError::other(why)))
            })
            .collect();
        Ok(failed)
    }

    async fn put_variant(&self, key: &VariantKey, data: Bytes) -> Result<(), StorageError> {
        self.put_key(self.variant_key(key), None, data).await
    }

    async fn get_variant(&self, key: &VariantKey) -> Result<Bytes, StorageError> {
        let got = self.reader.get(&self.variant_key(key), None).await?;
        let chunks: Vec<Bytes> = futures_util::TryStreamExt::try_collect(got.body).await?;
        Ok(Bytes::from(chunks.concat()))
    }

    /// One listing of the source's folder, then DeleteObjects per page of up to 1000.
    async fn delete_variants(&self, source: &ObjectName) -> Result<u64, StorageError> {
        let folder = format!("{}{}", self.prefix, VariantKey::folder(source));
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&folder)
            .into_paginator()
            .send();
        let mut deleted = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            let keys: Vec<&str> = page.contents().iter().filter_map(|o| o.key()).collect();
            if keys.is_empty() {
                continue;
            }
            let count = keys.len() as u64;
            let out = self.delete_keys(keys.into_iter()).await?;
            if let Some(e) = out.errors().first() {
                let why = format!("{}: {}", e.code().unwrap_or("error"), e.message().unwrap_or_default());
                return Err(StorageError::other("cannot delete variants").because(why));
            }
            deleted += count;
        }
        Ok(deleted)
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| classify(e).context(format!("bucket {} at {}", self.bucket, self.endpoint)))?;
        Ok(())
    }

    async fn list(&self, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
        let limit = limit.clamp(1, 1000);
        let mut request = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .max_keys(limit as i32);
        if !self.prefix.is_empty() {
            request = request.prefix(&self.prefix);
        }
        if let Some(after) = start_after {
            request = request.start_after(format!("{}{after}", self.prefix));
        }
        let out = request.send().await.map_err(classify)?;
        let objects = self.listed(out.contents());
        let next_start_after = if out.is_truncated().unwrap_or(false) {
            out.contents()
                .last()
                .and_then(|o| o.key())
                .and_then(|k| k.strip_prefix(&self.prefix))
                .map(str::to_owned)
        } else {
            None
        };
        Ok(ListPage {
            objects,
            next_start_after,
        })
    }

    /// ListObjectsV2's own pagination (continuation tokens), not `start_after`: a store can
    /// resume its listing where the last page ended (MinIO keeps it in its metacache) instead
    /// of seeking again for every page; `start_after` made a 1 M-object MinIO listing quadratic.
    fn list_all(&self, page_size: usize) -> ListStream<'_> {
        let mut request = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .max_keys(page_size.clamp(1, 1000) as i32);
        if !self.prefix.is_empty() {
            request = request.prefix(&self.prefix);
        }
        let pages = request.into_paginator().send();
        Box::pin(futures_util::stream::unfold(Some(pages), move |pages| async move {
            let mut pages = pages?;
            match pages.next().await? {
                Ok(out) => Some((Ok(self.listed(out.contents())), Some(pages))),
                Err(e) => Some((Err(classify(e)), None)),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted() {
        assert_eq!(quoted(Some("abc")), "\"abc\"");
        assert_eq!(quoted(Some("\"abc\"")), "\"abc\"");
    }
}
