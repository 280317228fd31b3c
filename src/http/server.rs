//! The HTTP servers: the public listener (HTTP/1.1 and h2c, header-read timeout, keep-alive,
//! connection limits) and the admin listener, both serving any [`Service`]. Every connection,
//! on either listener, is watched for idleness and for responses nobody reads
//! (`connection.rs`); the admin listener has a connection cap of its own.
//!
//! Shutdown: readiness turns 503 at once and HTTP/1 answers say `Connection: close`; after
//! `shutdown.grace` the public listener closes;
//! then in-flight requests drain for up to `server.drain_timeout`. The admin listener keeps
//! answering probes until the drain ends.

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use http::{HeaderValue, Request, Response, Version, header};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioTimer},
    server::conn::auto,
};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc, watch},
    time::Sleep,
};

use super::connection::{self, Activity, Timeouts};
use crate::{
    config::ServerSettings,
    http::{body::Body, per_client::PerClient},
    metrics::Metrics,
};

/// What the listeners serve: public requests, admin requests, and the start of a shutdown.
pub trait Service: Send + Sync + 'static {
    /// Answers one public request from `peer`; never fails (errors become responses).
    fn call(&self, request: Request<Incoming>, peer: SocketAddr) -> impl Future<Output = Response<Body>> + Send;
    /// Answers one request on the admin listener (probes, metrics).
    fn call_admin(&self, request: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send;
    /// Called once when shutdown begins, before the grace period (readiness turns 503).
    fn begin_shutdown(&self);
}

/// How the listeners behave: limits and timeouts, the shutdown grace period.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub server: ServerSettings,
    /// After shutdown begins, the public listener stays open this long (`shutdown.grace`).
    pub grace: Duration,
}

type Builder = Arc<auto::Builder<TokioExecutor>>;

/// HTTP/2 connections are pinged this often when idle, and closed when a ping goes unanswered
/// this long: a peer that went away (or never answers) does not hold its connection.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// Connections the admin listener (probes, metrics) holds at once; more are closed at once.
/// The kubelet and a few Prometheus servers need a handful.
pub const ADMIN_MAX_CONNECTIONS: usize = 256;

/// Serves `app` on `listener` (and `admin`, if given) until `shutdown` resolves, then drains.
pub async fn serve<S: Service>(
    app: Arc<S>,
    metrics: Arc<Metrics>,
    options: ServeOptions,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) {
    let ServeOptions { server, grace } = options;
    let builder = builder(&server);
    let connections = Arc::new(Semaphore::new(server.max_connections.get()));
    let per_client = PerClient::new(server.max_connections_per_client);
    let first_byte = server.first_byte_timeout;
    let timeouts = Timeouts {
        idle: server.idle_timeout,
        send: server.send_timeout,
    };
    let admin_connections = Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS));
    // Shutdown asks every connection to close gracefully; the drain waits for the last `Live`.
    let (closing, closing_seen) = watch::channel(false);
    // Live connection tasks hold a clone of `live`; the drain waits until none is left.
    let (live, mut all_closed) = mpsc::channel::<()>(1);
    let admin_side = AdminSide {
        builder: builder.clone(),
        permits: admin_connections,
        timeouts,
        first_byte,
    };
    tokio::pin!(shutdown);
    let mut grace_end: Option<Pin<Box<Sleep>>> = None;
    // Set when shutdown begins: from then on every HTTP/1 answer closes its connection, so
    // keep-alive clients (a proxy's pool, kube-proxy's established flows) reconnect to another
    // replica during the grace period instead of racing the listener's close.
    let draining = Arc::new(AtomicBool::new(false));

    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Some((stream, peer)) = accepted_or_back_off(accepted).await else { continue };
                let (Ok(permit), Some(slot)) = (connections.clone().try_acquire_owned(), per_client.admit(peer.ip())) else {
                    metrics.http.connection_rejected();
                    tokio::spawn(refuse(stream));
                    continue;
                };
                let open = metrics.http.connection_opened();
                let app = app.clone();
                let activity = Activity::new();
                let watched = activity.clone();
                let draining = draining.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let (app, activity, draining) = (app.clone(), watched.clone(), draining.clone());
                    async move {
                        let handling = activity.handling();
                        let http1 = request.version() <= Version::HTTP_11;
                        let mut response = app.call(request, peer).await;
                        drop(handling);
                        if http1 && draining.load(Ordering::Relaxed) {
                            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                        }
                        Ok::<_, Infallible>(activity.sending(response))
                    }
                });
                let (builder, closing, live) = (builder.clone(), closing_seen.clone(), live.clone());
                tokio::spawn(async move {
                    // hyper's header timer starts once the protocol is known, at the first
                    // byte: a connection that never sends one is closed here.
                    let mut first = [0u8; 1];
                    if !matches!(tokio::time::timeout(first_byte, stream.peek(&mut first)).await, Ok(Ok(1))) {
                        tracing::debug!(%peer, "closing a connection that sent nothing");
                        return drop((permit, open, slot, live));
                    }
                    connection::serve(&builder, stream, service, activity, timeouts, closing).await;
                    drop((permit, open, slot, live));
                });
            }
            accepted = accept(admin.as_ref()) => admin_side.spawn(&app, accepted).await,
            () = &mut shutdown, if grace_end.is_none() => {
                app.begin_shutdown();
                draining.store(true, Ordering::Relaxed);
                tracing::info!(grace = ?grace, "shutdown: readiness is now 503; closing the listener after the grace period");
                grace_end = Some(Box::pin(tokio::time::sleep(grace)));
            }
            () = until(grace_end.as_mut()) => break,
        }
    }

    drop(listener);
    let drain = server.drain_timeout;
    tracing::info!(drain_timeout = ?drain, "stopped accepting; draining in-flight requests");
    // Public connections close gracefully; the admin listener keeps answering probes (its
    // connections are not counted in the drain) until the drain ends.
    let _ = closing.send(true);
    drop(live);
    let deadline = tokio::time::sleep(drain);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            None = all_closed.recv() => {
                tracing::info!("all connections drained");
                break;
            }
            () = &mut deadline => {
                tracing::warn!("drain timeout reached; closing remaining connections");
                break;
            }
            accepted = accept(admin.as_ref()) => admin_side.spawn(&app, accepted).await,
        }
    }
}

fn builder(server: &ServerSettings) -> Builder {
    // hyper's own limits are only the backstop, set above ours so that requests near the
    // configured limits get our JSON 414/431; beyond the backstop hyper answers 431 itself.
    let backstop = server
        .max_header_bytes
        .saturating_add(server.max_url_bytes)
        .saturating_mul(2)
        .max(16 << 10);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(backstop)
        .max_headers(server.max_headers.get().saturating_mul(2).max(100));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(H2_KEEP_ALIVE))
        .keep_alive_timeout(H2_KEEP_ALIVE)
        .max_header_list_size(u32::try_from(backstop).unwrap_or(u32::MAX));
    Arc::new(builder)
}

/// Answers a connection over `server.max_connections` with a 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str =
        r#"{"detail": "the server is at its connection limit; retry later", "code": "connection_limit"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    // A client that does not read must not hold the task.
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn until(timer: Option<&mut Pin<Box<Sleep>>>) {
    match timer {
        Some(timer) => timer.await,
        None => std::future::pending().await,
    }
}

/// Out of file descriptors and similar: back off instead of spinning.
async fn accepted_or_back_off(accepted: io::Result<(TcpStream, SocketAddr)>) -> Option<(TcpStream, SocketAddr)> {
    match accepted {
        Ok((stream, peer)) => {
            // Small responses must not wait for the client's delayed ACK.
            let _ = stream.set_nodelay(true);
            Some((stream, peer))
        }
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// The admin listener's connections: capped at [`ADMIN_MAX_CONNECTIONS`], closed when they
/// send nothing within `server.first_byte_timeout`, watched like the public ones, closed at
/// once over the cap. Shutdown neither waits for them nor closes them: probes are answered
/// until the drain ends.
struct AdminSide {
    builder: Builder,
    permits: Arc<Semaphore>,
    timeouts: Timeouts,
    first_byte: Duration,
}

impl AdminSide {
    async fn spawn<S: Service>(&self, app: &Arc<S>, accepted: io::Result<(TcpStream, SocketAddr)>) {
        let Some((stream, _)) = accepted_or_back_off(accepted).await else {
            return;
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::debug!("closing an admin connection over the cap");
            return;
        };
        let (app, builder, timeouts, first_byte) = (app.clone(), self.builder.clone(), self.timeouts, self.first_byte);
        tokio::spawn(async move {
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(first_byte, stream.peek(&mut first)).await,
                Ok(Ok(1))
            ) {
                return drop(permit);
            }
            let activity = Activity::new();
            let watched = activity.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let (app, activity) = (app.clone(), watched.clone());
                async move {
                    let handling = activity.handling();
                    let response = app.call_admin(request).await;
                    drop(handling);
                    Ok::<_, Infallible>(activity.sending(response))
                }
            });
            let (_never, open) = watch::channel(false);
            connection::serve(&builder, stream, service, activity, timeouts, open).await;
            drop(permit);
        });
    }
}
