//! One connection's life after it is accepted: served by hyper until it ends, and watched.
//!
//! SECURITY: a connection is a file descriptor and a place under `server.max_connections`, so
//! none may be held for nothing. Besides hyper's own timers (the request head, HTTP/2 pings
//! answered), a watchdog closes
//! - a connection with no request in progress for `server.idle_timeout` (HTTP/1 keep-alive, and
//!   HTTP/2 connections that answer every PING but send no request: GOAWAY, then closed);
//! - a connection whose responses nobody reads for `server.send_timeout` (a download whose
//!   client never reads holds its place otherwise): dropped at once, like a reset.
//!
//! A request being handled (an upload read, a processing job) is never "idle" or "stalled"
//! here; its own timeouts bound it. On shutdown, every connection is asked to close gracefully.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::Response;
use http_body::{Frame, SizeHint};
use hyper_util::{rt::TokioIo, server::conn::auto};
use tokio::{net::TcpStream, sync::watch};

use crate::http::body::{Body, BoxError};

/// How often the watchdog looks.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// How long a connection may do nothing.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// No request in progress (`server.idle_timeout`).
    pub idle: Duration,
    /// Responses being sent, none read from (`server.send_timeout`).
    pub send: Duration,
}

/// What a connection is doing, as its requests and response bodies report it.
pub(super) struct Activity {
    origin: Instant,
    handling: AtomicUsize,
    sending: AtomicUsize,
    last_ms: AtomicU64,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Busy,
    Idle,
    Stalled,
}

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            origin: Instant::now(),
            handling: AtomicUsize::new(0),
            sending: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        self.origin
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    fn verdict(&self, timeouts: Timeouts) -> Verdict {
        if self.handling.load(Ordering::Relaxed) > 0 {
            return Verdict::Busy;
        }
        let quiet = self.quiet_for();
        if self.sending.load(Ordering::Relaxed) > 0 {
            return if quiet > timeouts.send {
                Verdict::Stalled
            } else {
                Verdict::Busy
            };
        }
        if quiet > timeouts.idle {
            Verdict::Idle
        } else {
            Verdict::Busy
        }
    }

    /// A request is being handled until the guard is dropped (answered, or abandoned).
    pub(super) fn handling(self: &Arc<Self>) -> Handling {
        self.handling.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Handling(self.clone())
    }

    /// `response`'s body, counted as being sent until it ends or is dropped; every read of it
    /// is progress.
    pub(super) fn sending(self: &Arc<Self>, response: Response<Body>) -> Response<Body> {
        self.sending.fetch_add(1, Ordering::Relaxed);
        self.touch();
        let activity = self.clone();
        response.map(|inner| http_body_util::combinators::UnsyncBoxBody::new(Watched { inner, activity }))
    }
}

/// See [`Activity::handling`].
pub(super) struct Handling(Arc<Activity>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.handling.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A response body whose reads count as the connection's progress.
struct Watched {
    inner: Body,
    activity: Arc<Activity>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.activity.sending.fetch_sub(1, Ordering::Relaxed);
        self.activity.touch();
    }
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.activity.touch();
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `stream` with `service` until the connection ends, the watchdog closes it, or
/// shutdown asks it to close (gracefully: requests in flight finish).
pub(super) async fn serve<S, B>(
    builder: &auto::Builder<hyper_util::rt::TokioExecutor>,
    stream: TcpStream,
    service: S,
    activity: Arc<Activity>,
    timeouts: Timeouts,
    mut shutdown: watch::Receiver<bool>,
) where
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let peer = stream.peer_addr().ok();
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut closing = *shutdown.borrow();
    if closing {
        connection.as_mut().graceful_shutdown();
    }
    let mut watch = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(?peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = watch.tick() => match activity.verdict(timeouts) {
                Verdict::Idle if !closing => {
                    tracing::debug!(?peer, "closing an idle connection");
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                Verdict::Stalled => {
                    tracing::debug!(?peer, "closing a connection whose client reads nothing");
                    return;
                }
                _ => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        idle: Duration::from_millis(40),
        send: Duration::from_millis(40),
    };

    #[test]
    fn idle_stalled_and_busy() {
        let activity = Activity::new();
        assert_eq!(activity.verdict(TIMEOUTS), Verdict::Busy);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            activity.verdict(TIMEOUTS),
            Verdict::Idle,
            "no request for longer than idle"
        );
        let handling = activity.handling();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            activity.verdict(TIMEOUTS),
            Verdict::Busy,
            "a request being handled is never idle"
        );
        drop(handling);
        let response = activity.sending(Response::new(crate::http::body::full("x")));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(activity.verdict(TIMEOUTS), Verdict::Stalled, "a response nobody reads");
        drop(response);
        assert_eq!(
            activity.verdict(TIMEOUTS),
            Verdict::Busy,
            "the end of a response is progress"
        );
    }
}
