//! Metrics and trace spans for every storage call: `storage_operation_duration_seconds`,
//! `storage_errors_total`, and one child span per call under the request's span.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use tracing::Instrument;

use crate::storage::{ByteRange, GetResult, ListPage, ListStream, ObjectMeta, Storage, StorageError, VariantKey};
use crate::{
    metrics::{Metrics, StorageOperation},
    object_name::ObjectName,
};

/// Wraps a backend to record metrics and a trace span for every call.
pub struct InstrumentedStorage {
    inner: Arc<dyn Storage>,
    metrics: Arc<Metrics>,
}

impl InstrumentedStorage {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn Storage>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    async fn observe<T>(
        &self,
        operation: StorageOperation,
        call: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let backend = self.inner.backend();
        // The readiness check runs every few seconds outside any request: metrics, no trace.
        let span = if operation == StorageOperation::Check {
            tracing::Span::none()
        } else {
            tracing::info_span!(
            "storage",
            otel.name = format!("storage {}", operation.label()),
            otel.kind = "client",
            storage.backend = backend,
            storage.operation = operation.label(),
            otel.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            )
        };
        let start = Instant::now();
        let result = call.instrument(span.clone()).await;
        let failure = result.as_ref().err().map(StorageError::kind);
        self.metrics.storage.call(backend, operation, failure, start.elapsed());
        if let Some(failure) = failure.filter(|f| f.is_error()) {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", failure.label());
        }
        result
    }
}

#[async_trait::async_trait]
impl Storage for InstrumentedStorage {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn head(&self, name: &ObjectName) -> Result<ObjectMeta, StorageError> {
        self.observe(StorageOperation::Head, self.inner.head(name)).await
    }

    async fn get(&self, name: &ObjectName, range: Option<ByteRange>) -> Result<GetResult, StorageError> {
        self.observe(StorageOperation::Get, self.inner.get(name, range)).await
    }

    async fn put(&self, name: &ObjectName, data: Bytes) -> Result<(), StorageError> {
        self.observe(StorageOperation::Put, self.inner.put(name, data)).await
    }

    async fn delete(&self, name: &ObjectName) -> Result<(), StorageError> {
        self.observe(StorageOperation::Delete, self.inner.delete(name)).await
    }

    async fn delete_many(&self, names: &[ObjectName]) -> Result<Vec<(ObjectName, StorageError)>, StorageError> {
        self.observe(StorageOperation::DeleteMany, self.inner.delete_many(names))
            .await
    }

    async fn list(&self, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
        self.observe(StorageOperation::List, self.inner.list(start_after, limit))
            .await
    }

    fn list_all(&self, page_size: usize) -> ListStream<'_> {
        self.inner.list_all(page_size)
    }

    async fn put_variant(&self, key: &VariantKey, data: Bytes) -> Result<(), StorageError> {
        self.observe(StorageOperation::PutVariant, self.inner.put_variant(key, data))
            .await
    }

    async fn get_variant(&self, key: &VariantKey) -> Result<Bytes, StorageError> {
        self.observe(StorageOperation::GetVariant, self.inner.get_variant(key))
            .await
    }

    async fn delete_variants(&self, source: &ObjectName) -> Result<u64, StorageError> {
        self.observe(StorageOperation::DeleteVariants, self.inner.delete_variants(source))
            .await
    }

    async fn sweep_incomplete(&self, older_than: Duration) -> Result<u64, StorageError> {
        self.observe(
            StorageOperation::SweepIncomplete,
            self.inner.sweep_incomplete(older_than),
        )
        .await
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.observe(StorageOperation::Check, self.inner.check()).await
    }
}
