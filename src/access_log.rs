//! One log line per request, written when the response body is finished or dropped, so the
//! line carries the bytes really sent and says whether the download completed or was aborted.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http::Method;
use http_body::{Frame, SizeHint};

use crate::body::{Body, BoxError};

/// Wraps a response body and logs the request when the body ends or is dropped.
pub struct LoggedBody {
    inner: Body,
    entry: Entry,
}

struct Entry {
    method: Method,
    route: &'static str,
    status: u16,
    start: Instant,
    bytes: u64,
    outcome: &'static str,
}

impl LoggedBody {
    pub fn new(
        inner: Body,
        method: Method,
        route: &'static str,
        status: u16,
        start: Instant,
    ) -> Self {
        let outcome = if http_body::Body::is_end_stream(&inner) {
            "complete"
        } else {
            "aborted"
        };
        Self {
            inner,
            entry: Entry {
                method,
                route,
                status,
                start,
                bytes: 0,
                outcome,
            },
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let duration_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: "access",
            method = %self.method,
            route = self.route,
            status = self.status,
            bytes = self.bytes,
            duration_ms = (duration_ms * 1000.0).round() / 1000.0,
            outcome = self.outcome,
        );
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.entry.bytes += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.entry.outcome = "complete";
                }
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(route = this.entry.route, error = %e, "response body failed; aborting the response");
                this.entry.outcome = "failed";
            }
            Poll::Ready(None) => this.entry.outcome = "complete",
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
