//! Bounds every storage call by `storage.timeout`, and every gap between two body chunks too,
//! so a slow or stalled backend becomes `Unavailable` (503, or an aborted body) instead of a hang.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use crate::object_name::ObjectName;
use crate::storage::{
    ByteRange, ByteStream, GetResult, ListPage, ListStream, ObjectMeta, Storage, StorageError, VariantKey,
};

/// Wraps a backend to bound every call, and every wait for a body chunk, by a timeout.
pub struct TimeoutStorage {
    inner: Arc<dyn Storage>,
    timeout: Duration,
}

impl TimeoutStorage {
    /// Wraps `inner`, bounding its calls by `timeout`.
    pub fn new(inner: Arc<dyn Storage>, timeout: Duration) -> Self {
        Self { inner, timeout }
    }

    async fn bounded<T>(&self, call: impl Future<Output = Result<T, StorageError>>) -> Result<T, StorageError> {
        tokio::time::timeout(self.timeout, call).await.unwrap_or_else(|_| {
            Err(StorageError::unavailable(format!(
                "storage did not answer within {:?}",
                self.timeout
            )))
        })
    }
}

#[async_trait::async_trait]
impl Storage for TimeoutStorage {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn head(&self, name: &ObjectName) -> Result<ObjectMeta, StorageError> {
        self.bounded(self.inner.head(name)).await
    }

    async fn get(&self, name: &ObjectName, range: Option<ByteRange>) -> Result<GetResult, StorageError> {
        let mut result = self.bounded(self.inner.get(name, range)).await?;
        result.body = Box::pin(IdleTimeout::new(result.body, self.timeout));
        Ok(result)
    }

    async fn put(&self, name: &ObjectName, data: Bytes) -> Result<(), StorageError> {
        self.bounded(self.inner.put(name, data)).await
    }

    async fn delete(&self, name: &ObjectName) -> Result<(), StorageError> {
        self.bounded(self.inner.delete(name)).await
    }

    async fn delete_many(&self, names: &[ObjectName]) -> Result<Vec<(ObjectName, StorageError)>, StorageError> {
        self.bounded(self.inner.delete_many(names)).await
    }

    async fn put_variant(&self, key: &VariantKey, data: Bytes) -> Result<(), StorageError> {
        self.bounded(self.inner.put_variant(key, data)).await
    }

    async fn get_variant(&self, key: &VariantKey) -> Result<Bytes, StorageError> {
        self.bounded(self.inner.get_variant(key)).await
    }

    async fn delete_variants(&self, source: &ObjectName) -> Result<u64, StorageError> {
        self.bounded(self.inner.delete_variants(source)).await
    }

    async fn list(&self, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
        self.bounded(self.inner.list(start_after, limit)).await
    }

    /// Each page is bounded: a walk may take long in all, but never stall.
    fn list_all(&self, page_size: usize) -> ListStream<'_> {
        let pages = self.inner.list_all(page_size);
        Box::pin(futures_util::stream::unfold(Some(pages), move |pages| async move {
            let mut pages = pages?;
            match self.bounded(async { pages.next().await.transpose() }).await {
                Ok(Some(page)) => Some((Ok(page), Some(pages))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        }))
    }

    async fn sweep_incomplete(&self, older_than: Duration) -> Result<u64, StorageError> {
        self.bounded(self.inner.sweep_incomplete(older_than)).await
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.bounded(self.inner.check()).await
    }
}

/// Fails the stream when the next chunk takes longer than `limit` to arrive. The clock starts
/// when we ask for a chunk, so a slow client (which simply stops asking) is never blamed on storage.
struct IdleTimeout {
    inner: ByteStream,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
    waiting: bool,
    done: bool,
}

impl IdleTimeout {
    fn new(inner: ByteStream, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            waiting: false,
            done: false,
        }
    }
}

impl Stream for IdleTimeout {
    type Item = Result<Bytes, StorageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.waiting {
            let limit = self.limit;
            self.deadline.as_mut().reset(Instant::now() + limit);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(item) => {
                self.waiting = false;
                if item.is_none() {
                    self.done = true;
                }
                Poll::Ready(item)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Pending => {
                    self.waiting = true;
                    Poll::Pending
                }
                Poll::Ready(()) => {
                    self.done = true;
                    Poll::Ready(Some(Err(StorageError::unavailable(format!(
                        "storage stalled for {:?} mid-body",
                        self.limit
                    )))))
                }
            },
        }
    }
}
