//! The end of every request: one access-log line and the request's metrics, recorded when the
//! response body is finished or dropped, so they carry the bytes really sent and say whether
//! the download completed, failed (storage) or was aborted (client gone). A request whose client
//! went away before its response was ready (hyper then drops the handler: a processing job's
//! client hanging up, say) is logged and counted too, as status 499 with outcome `abandoned`.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http::Method;
use http_body::{Frame, SizeHint};

use crate::{
    http::body::{Body, BoxError},
    metrics::{Aborted, GaugeGuard, Metrics},
};

/// Counts a request in `http_requests_in_flight` from its first moment until this is dropped,
/// whichever way the request ends.
pub struct InFlight {
    metrics: Arc<Metrics>,
    _counted: GaugeGuard,
}

impl InFlight {
    pub fn new(metrics: &Arc<Metrics>) -> InFlight {
        InFlight {
            _counted: metrics.http.request_in_flight(),
            metrics: metrics.clone(),
        }
    }
}

/// What is known about a request once its response head is ready.
pub struct RequestInfo {
    pub method: Method,
    pub route: &'static str,
    /// The request path, cut at a bound (it is client input).
    pub path: String,
    /// The client's address (behind trusted proxies, the one they report).
    pub client: std::net::IpAddr,
    pub status: u16,
    pub start: Instant,
    pub span: tracing::Span,
}

/// The status logged and counted for a request whose client went away before its response
/// was ready (nginx's "client closed request").
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// A request being handled: dropped before [`Pending::respond`], it is logged and counted as
/// abandoned ([`CLIENT_CLOSED_REQUEST`]).
pub struct Pending(Option<Entry>);

impl Pending {
    /// Starts the record of a request (`info.status` is set when it is answered).
    pub fn new(info: RequestInfo, in_flight: InFlight) -> Pending {
        Pending(Some(Entry {
            info: RequestInfo {
                status: CLIENT_CLOSED_REQUEST,
                ..info
            },
            bytes: 0,
            outcome: Outcome::Abandoned,
            in_flight,
        }))
    }

    /// The answer is ready: `inner` with `status` is logged when its body ends or is dropped.
    pub fn respond(mut self, inner: Body, status: u16) -> LoggedBody {
        let Some(mut entry) = self.0.take() else {
            unreachable!("a Pending is answered once: respond takes it by value")
        };
        entry.info.status = status;
        entry.outcome = if http_body::Body::is_end_stream(&inner) {
            Outcome::Complete
        } else {
            Outcome::Aborted
        };
        LoggedBody { inner, entry }
    }
}

/// Wraps a response body; logs and counts the request when the body ends or is dropped.
pub struct LoggedBody {
    inner: Body,
    entry: Entry,
}

struct Entry {
    info: RequestInfo,
    bytes: u64,
    outcome: Outcome,
    in_flight: InFlight,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Complete,
    /// The body was dropped before its end: the client went away.
    Aborted,
    /// The body failed (storage broke mid-stream) and the response was aborted.
    Failed,
    /// The client went away before the response was ready.
    Abandoned,
}

/// A bounded `method` label.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let info = &self.info;
        let elapsed = info.start.elapsed();
        let metrics = &self.in_flight.metrics;
        metrics
            .http
            .request_done(info.route, method_label(&info.method), info.status, elapsed, self.bytes);
        let outcome = match self.outcome {
            Outcome::Complete => "complete",
            Outcome::Aborted => {
                metrics.http.response_aborted(Aborted::ClientGone);
                "aborted"
            }
            Outcome::Failed => {
                metrics.http.response_aborted(Aborted::StorageFailed);
                "failed"
            }
            Outcome::Abandoned => "abandoned",
        };
        info.span.record("http.response.status_code", i64::from(info.status));
        let duration_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
        let _entered = info.span.enter();
        tracing::info!(
            target: crate::telemetry::ACCESS,
            method = %info.method,
            route = info.route,
            path = info.path.as_str(),
            client = %info.client,
            status = info.status,
            bytes = self.bytes,
            duration_ms,
            outcome,
            trace_id = %crate::telemetry::trace_id(&info.span),
        );
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.entry.bytes += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.entry.outcome = Outcome::Complete;
                }
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(route = this.entry.info.route, error = %e, "response body failed; aborting the response");
                this.entry.outcome = Outcome::Failed;
            }
            Poll::Ready(None) => this.entry.outcome = Outcome::Complete,
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
