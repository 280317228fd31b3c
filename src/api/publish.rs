//! Images out to storage: a new object under a generated name, answered 201 with its URLs
//! (`upload_url`, and `signed_url` with signing keys) and counted by what made it. Uploads and
//! processing results are published through it.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::{
    auth::signing::UrlSigner,
    http::{
        body::{self, Body},
        error::ApiError,
    },
    metrics::Metrics,
    object_name::{DOWNLOAD_PREFIX, ImageFormat, ObjectName},
    storage::Storage,
};

/// Stores new objects and names them to the client.
pub(crate) struct Publisher {
    storage: Arc<dyn Storage>,
    links: Links,
    metrics: Arc<Metrics>,
}

/// The URLs an upload answers with.
pub(crate) struct Links {
    /// Base of the URLs, without a trailing slash.
    pub public_url: String,
    /// Signs `signed_url` when signing keys are configured.
    pub signer: Option<UrlSigner>,
    pub signed_url_ttl: Duration,
}

impl Publisher {
    /// Publishes into `storage`, answering with `links`.
    pub(crate) fn new(storage: Arc<dyn Storage>, links: Links, metrics: Arc<Metrics>) -> Publisher {
        Publisher {
            storage,
            links,
            metrics,
        }
    }

    /// Stores `bytes` under a new name and answers 201 with its URLs (`extra` fields added);
    /// counted as `by` made it.
    pub(crate) async fn store(
        &self,
        format: ImageFormat,
        bytes: Bytes,
        extra: serde_json::Map<String, serde_json::Value>,
        by: StoredBy,
    ) -> Result<Response<Body>, ApiError> {
        let name = ObjectName::generate(format);
        let size = bytes.len();
        self.storage.put(&name, bytes).await?;
        match by {
            StoredBy::Upload => self.metrics.http.upload_stored(format.name()),
            StoredBy::Operation(operation) => self.metrics.processing.result_stored(operation, format.name()),
        }
        tracing::info!(object = %name, format = format.name(), size, "stored an image");

        let links = &self.links;
        let url = format!("{}{DOWNLOAD_PREFIX}{name}", links.public_url);
        let mut json = serde_json::json!({
            "object_name": name.as_str(),
            "upload_url": url,
            "content_type": format.content_type(),
            "size": size,
        });
        if let Some(signer) = &links.signer {
            let query = signer.query(&name, links.signed_url_ttl);
            json["signed_url"] = serde_json::Value::String(format!("{url}?{query}"));
        }
        if let Some(object) = json.as_object_mut() {
            object.extend(extra);
        }
        let mut response = body::json(&json);
        *response.status_mut() = StatusCode::CREATED;
        if let Ok(location) = HeaderValue::try_from(url) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(response)
    }
}

/// What made a stored object, for its counter: an upload, or an operation's result.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StoredBy {
    Upload,
    /// The operation's name (`resize`, `pipeline`, …).
    Operation(&'static str),
}
