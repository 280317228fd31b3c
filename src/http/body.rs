//! Response bodies: one boxed type for every response, and the streaming body for objects.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

use crate::storage::{ByteStream, StorageError};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response we send.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// A JSON answer (200; callers set another status) that caches nowhere.
pub fn json(value: &serde_json::Value) -> http::Response<Body> {
    let mut response = http::Response::new(full(value.to_string()));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

/// Streams an object's bytes from storage, chunk by chunk, and fails (which aborts the
/// response) if storage errors or delivers more or fewer bytes than announced: a client
/// never sees a short body that looks complete.
pub struct ObjectBody {
    stream: ByteStream,
    remaining: u64,
}

impl ObjectBody {
    pub fn new(stream: ByteStream, len: u64) -> Self {
        Self { stream, remaining: len }
    }

    pub fn boxed(self) -> Body {
        UnsyncBoxBody::new(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectBodyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("storage ended the body {0} bytes early")]
    Short(u64),
    #[error("storage sent more bytes than announced")]
    Long,
}

impl http_body::Body for ObjectBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.stream.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                if n > self.remaining {
                    self.remaining = 0;
                    return Poll::Ready(Some(Err(ObjectBodyError::Long.into())));
                }
                self.remaining -= n;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => {
                self.remaining = 0;
                Poll::Ready(Some(Err(ObjectBodyError::Storage(e).into())))
            }
            Poll::Ready(None) => {
                let missing = std::mem::take(&mut self.remaining);
                Poll::Ready(Some(Err(ObjectBodyError::Short(missing).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
