//! The application: shared state and the request pipeline
//! (route → CORS preflight → method → access → rate limit → handler → CORS, rate headers, log).

use std::{
    net::SocketAddr,
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use http::{HeaderValue, Method, Request, Response, StatusCode, header, request::Parts};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::{
    access_log::{InFlight, LoggedBody, RequestInfo},
    auth::{self, AccessControl, Caller, Need},
    body::{self, Body},
    client_ip::TrustedProxies,
    config::Config,
    cors::Cors,
    download,
    error::ApiError,
    health::{CHECK_INTERVAL, Health},
    kubernetes,
    metrics::Metrics,
    object_name::ObjectName,
    ratelimit::{RateLimits, RateStatus},
    routes::Route,
    storage::{InstrumentedStorage, Storage},
    telemetry, upload,
};

/// Longest `url.path` put on a span (invalid names can be kilobytes long).
const MAX_TRACED_PATH: usize = 256;

/// The public API description, served at `/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../docs/openapi.yaml");

/// How often rate-limit state of idle clients is dropped.
const RATE_LIMIT_SWEEP: Duration = Duration::from_secs(60);

pub struct App {
    config: Config,
    storage: Arc<dyn Storage>,
    metrics: Arc<Metrics>,
    health: Health,
    access: AccessControl,
    rate_limits: Option<RateLimits>,
    proxies: TrustedProxies,
    cors: Cors,
    cache_control: Option<HeaderValue>,
    public_url: String,
    /// False until the API-key Secret (when configured) has been read once.
    api_keys_loaded: std::sync::atomic::AtomicBool,
    /// One permit per upload being processed (`upload.max_concurrent`).
    uploads: Arc<tokio::sync::Semaphore>,
}

impl App {
    /// Builds the app without a Kubernetes client (tests, and every setup that reads no Secret).
    pub fn start(config: Config, storage: Arc<dyn Storage>) -> Result<Arc<App>, String> {
        Self::start_with(config, storage, Arc::new(Metrics::new()), None)
    }

    /// Builds the app and starts its background tasks (storage checks for readiness, key-file
    /// reload, API-key Secret watch, rate-limit sweep), which end when the app is dropped.
    pub fn start_with(
        config: Config,
        storage: Arc<dyn Storage>,
        metrics: Arc<Metrics>,
        kube: Option<kube::Client>,
    ) -> Result<Arc<App>, String> {
        let storage: Arc<dyn Storage> = Arc::new(InstrumentedStorage::new(storage, metrics.clone()));
        let (access, key_sources) = AccessControl::new(&config.auth)?;
        let key_secret = match (&config.auth.api_keys_secret, kube) {
            (Some(secret), Some(client)) => Some((secret.clone(), client)),
            (Some(_), None) => return Err("auth.api_keys_secret needs a Kubernetes client".into()),
            (None, _) => None,
        };
        let proxies = TrustedProxies::parse(&config.server.trusted_proxies)
            .map_err(|e| format!("server.trusted_proxies: {e}"))?;
        let cache_control = match &config.http.cache_control {
            Some(value) => Some(
                HeaderValue::try_from(value.as_str())
                    .map_err(|_| "http.cache_control: not a valid header value".to_string())?,
            ),
            None => None,
        };
        let public_url = match &config.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", config.listen),
        };
        let app = Arc::new(App {
            rate_limits: RateLimits::new(config.rate_limit.requests_per_minute, config.rate_limit.burst),
            cors: Cors::new(&config.cors.allowed_origins),
            proxies,
            access,
            cache_control,
            public_url,
            storage,
            metrics,
            health: Health::new(false),
            api_keys_loaded: std::sync::atomic::AtomicBool::new(key_secret.is_none()),
            uploads: Arc::new(tokio::sync::Semaphore::new(config.upload.max_concurrent)),
            config,
        });
        tokio::spawn(watch_storage(Arc::downgrade(&app)));
        if let Some(path) = app.config.auth.api_keys_file.clone() {
            tokio::spawn(auth::watch_key_file(path, key_sources.clone()));
        }
        if let Some((secret, client)) = key_secret {
            let namespace = secret
                .namespace
                .unwrap_or_else(|| kubernetes::default_namespace(&client));
            let weak = Arc::downgrade(&app);
            let sources = key_sources.clone();
            let watch = kubernetes::SecretWatch {
                client,
                namespace,
                name: secret.name,
                purpose: "api_keys",
                metrics: app.metrics.clone(),
            };
            tokio::spawn(kubernetes::watch_secret(
                watch,
                auth::decode_key_secret,
                move |keys| sources.set_secret(keys),
                move |event| {
                    if event == kubernetes::SecretEvent::Applied
                        && let Some(app) = weak.upgrade()
                    {
                        app.api_keys_loaded.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                },
            ));
        }
        if app.rate_limits.is_some() {
            tokio::spawn(sweep_rate_limits(Arc::downgrade(&app)));
        }
        Ok(app)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    pub fn access(&self) -> &AccessControl {
        &self.access
    }

    /// Base of the URLs we hand out, without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// `Cache-Control` for an image sent to `caller` (see `http.cache_control`).
    pub fn cache_control(&self, caller: &Caller) -> HeaderValue {
        if let Some(configured) = &self.cache_control {
            return configured.clone();
        }
        match caller {
            Caller::Anonymous => HeaderValue::from_static("public, max-age=31536000, immutable"),
            // SECURITY: a shared cache must not hand a key-protected image to anyone else.
            Caller::Key(_) => HeaderValue::from_static("private, max-age=31536000, immutable"),
            // Cacheable by URL (the URL is the credential), but not past its expiry.
            Caller::SignedUrl { expires } => {
                let left = expires.saturating_sub(crate::auth::signing::unix_now());
                HeaderValue::try_from(format!("public, max-age={left}, immutable"))
                    .unwrap_or(HeaderValue::from_static("no-cache"))
            }
        }
    }

    /// A slot for one upload, or 503 when `upload.max_concurrent` are already in progress.
    pub fn upload_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.uploads.clone().try_acquire_owned().map_err(|_| {
            ApiError::Busy(format!(
                "{} uploads are already in progress; retry later",
                self.config.upload.max_concurrent
            ))
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// From now on `/readyz` answers 503, so load balancers stop sending traffic.
    pub fn begin_shutdown(&self) {
        self.health.begin_shutdown();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.health.is_shutting_down()
    }

    /// The admin listener: `/metrics`, `/livez`, `/readyz`; not logged, not counted.
    pub async fn handle_admin(&self, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path();
        let get = request.method() == Method::GET || request.method() == Method::HEAD;
        let result = match path {
            "/metrics" | "/livez" | "/readyz" if !get => Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" }),
            "/metrics" => {
                let mut response = Response::new(body::full(self.metrics.render()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                Ok(response)
            }
            "/livez" => Ok(status_json(StatusCode::OK, "alive")),
            "/readyz" => Ok(self.readiness()),
            _ => Err(ApiError::RouteNotFound),
        };
        result.unwrap_or_else(ApiError::into_response)
    }

    fn readiness(&self) -> Response<Body> {
        match self.health.readiness() {
            Ok(()) => status_json(StatusCode::OK, "ready"),
            Err(why) => status_json(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {why}")),
        }
    }

    /// Answers one request from `peer`; never fails (errors become responses).
    pub async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let start = Instant::now();
        let in_flight = InFlight::new(&self.metrics);
        let (parts, body) = request.into_parts();
        let route = Route::parse(parts.uri.path());
        let route_name = route.as_ref().map_or("not_found", Route::name);
        let template = route.as_ref().map_or("", Route::template);
        let path: String = parts.uri.path().chars().take(MAX_TRACED_PATH).collect();
        let span = tracing::info_span!(
            "request",
            otel.name = %if template.is_empty() { parts.method.to_string() } else { format!("{} {template}", parts.method) },
            otel.kind = "server",
            http.request.method = %parts.method,
            http.route = template,
            url.path = path.as_str(),
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        telemetry::set_remote_parent(&span, &parts.headers);
        let mut rate = None;
        let timeout = self.config.server.request_timeout.0;
        let result = match (self.check_limits(&parts), route) {
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(ApiError::RouteNotFound),
            (Ok(()), Some(route)) => {
                let dispatch = self.dispatch(route, &parts, body, peer, &mut rate);
                tokio::time::timeout(timeout, dispatch.instrument(span.clone()))
                    .await
                    .unwrap_or(Err(ApiError::RequestTimeout(timeout)))
            }
        };
        let mut response = span.in_scope(|| result.unwrap_or_else(ApiError::into_response));
        if let Some(status) = rate {
            status.apply(response.headers_mut());
        }
        self.cors.decorate(&parts.headers, response.headers_mut());
        let status = response.status().as_u16();
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
        let info = RequestInfo {
            method: parts.method.clone(),
            route: route_name,
            path,
            client: self.proxies.client_ip(peer.ip(), &parts.headers),
            status,
            start,
            span,
        };
        response.map(|inner| http_body_util::combinators::UnsyncBoxBody::new(LoggedBody::new(inner, info, in_flight)))
    }

    /// `server.max_url_bytes`, `server.max_headers`, `server.max_header_bytes`, checked before
    /// anything else looks at the request. (hyper's own, larger, buffer limit is the backstop.)
    fn check_limits(&self, parts: &Parts) -> Result<(), ApiError> {
        let limits = &self.config.server;
        let target = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
        if target > limits.max_url_bytes {
            return Err(ApiError::UriTooLong {
                limit: limits.max_url_bytes,
            });
        }
        if parts.headers.len() > limits.max_headers {
            return Err(ApiError::HeadersTooLarge(format!(
                "{} header fields; the limit is {}",
                parts.headers.len(),
                limits.max_headers
            )));
        }
        let bytes: usize = parts.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if bytes as u64 > limits.max_header_bytes.0 {
            return Err(ApiError::HeadersTooLarge(format!(
                "the header fields take {bytes} bytes; the limit is {}",
                limits.max_header_bytes.0
            )));
        }
        Ok(())
    }

    async fn dispatch(
        &self,
        route: Route<'_>,
        parts: &Parts,
        body: Incoming,
        peer: SocketAddr,
        rate: &mut Option<RateStatus>,
    ) -> Result<Response<Body>, ApiError> {
        if let Some(preflight) = self.cors.preflight(&parts.method, &route, &parts.headers) {
            return Ok(preflight);
        }
        route.check_method(&parts.method)?;
        match route {
            Route::Download { encoded_name } => {
                let name = ObjectName::parse_encoded(encoded_name).map_err(ApiError::InvalidObjectName)?;
                let need = Need::Download {
                    name: &name,
                    query: parts.uri.query(),
                };
                let caller = self.authorize(need, &parts.headers)?;
                self.limit(&caller, peer, parts, rate)?;
                let cache_control = self.cache_control(&caller);
                download::handle(self, &parts.method, &parts.headers, &name, cache_control).await
            }
            Route::Upload => {
                let caller = self.authorize(Need::Upload, &parts.headers)?;
                self.limit(&caller, peer, parts, rate)?;
                upload::handle(self, &parts.headers, body).await
            }
            Route::Livez => Ok(status_json(StatusCode::OK, "alive")),
            Route::Readyz => Ok(self.readiness()),
            Route::OpenApi => {
                let mut response = Response::new(body::full(OPENAPI));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
                Ok(response)
            }
        }
    }

    fn authorize(&self, need: Need<'_>, headers: &http::HeaderMap) -> Result<Caller, ApiError> {
        self.access.authorize(need, headers).map_err(|e| {
            self.metrics.auth_failed(e.metric_label());
            ApiError::from(e)
        })
    }

    /// Counts the request against its caller's budget: the API key, else the client address.
    fn limit(
        &self,
        caller: &Caller,
        peer: SocketAddr,
        parts: &Parts,
        rate: &mut Option<RateStatus>,
    ) -> Result<(), ApiError> {
        let Some(limits) = &self.rate_limits else {
            return Ok(());
        };
        let client = match caller {
            Caller::Key(holder) => format!("key:{}", holder.id),
            Caller::Anonymous | Caller::SignedUrl { .. } => {
                format!("ip:{}", self.proxies.client_ip(peer.ip(), &parts.headers))
            }
        };
        let status = limits.check(&client);
        let refused = status.retry_after.is_some();
        *rate = Some(status);
        if refused {
            self.metrics.rate_limited();
            Err(ApiError::RateLimited)
        } else {
            Ok(())
        }
    }
}

/// Keeps readiness fresh: a cheap storage check every few seconds, off the request path.
async fn watch_storage(app: Weak<App>) {
    loop {
        let Some(strong) = app.upgrade() else { return };
        let start = Instant::now();
        let result = strong.storage.check().await.map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::debug!(error = %e, "storage check failed");
        }
        strong.health.record_storage_check(result);
        strong
            .metrics
            .storage_checked(start.elapsed(), strong.health.storage_reachable());
        let keys_loaded = strong.api_keys_loaded.load(std::sync::atomic::Ordering::SeqCst);
        strong
            .health
            .set_credentials_loaded(strong.storage.credentials_loaded() && keys_loaded);
        drop(strong);
        tokio::time::sleep(CHECK_INTERVAL).await;
    }
}

async fn sweep_rate_limits(app: Weak<App>) {
    loop {
        tokio::time::sleep(RATE_LIMIT_SWEEP).await;
        let Some(app) = app.upgrade() else { return };
        if let Some(limits) = &app.rate_limits {
            limits.forget_idle();
        }
    }
}

fn status_json(status: StatusCode, state: &str) -> Response<Body> {
    let key = if status.is_success() { "status" } else { "detail" };
    let mut response = Response::new(body::full(serde_json::json!({ key: state }).to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
