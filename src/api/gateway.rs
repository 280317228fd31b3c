//! The gateway: the request pipeline of the public listener, as one straight sequence
//! (limits → route → CORS preflight → method → access → rate limit → handler under the request
//! timeout → rate headers, CORS, access log), and the admin listener's routes.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header, request::Parts};
use hyper::body::Incoming;
use tokio::sync::watch;
use tracing::Instrument;

use crate::{
    api::{
        ApiRequest,
        download::{
            self, Renderer,
            cache_policy::CachePolicy,
            renders::Renders,
            variant::{self, Variant},
        },
        intake::Intake,
        process::{self, Operation},
        publish::{Links, Publisher},
        routes::Route,
        upload,
    },
    auth::{self, AccessControl, AuthError, Caller, KeyFileError, Need, keys::KeySet, signing::SignatureError},
    clock::unix_now,
    config::{ServerSettings, Settings},
    http::{
        access_log::{InFlight, Pending, RequestInfo},
        body::{self, Body},
        client_ip::TrustedProxies,
        cors::Cors,
        error::{ApiError, HeaderLimit},
        health::{CHECK_INTERVAL, Health, Latch},
        server::Service,
    },
    jobs::Jobs,
    metrics::{AuthFailure, Metrics},
    object_name::ObjectName,
    rate_limit::{Attempt, Decision, Limiter, RateStatus},
    storage::Storage,
    telemetry,
};

/// Longest `url.path` put on a span (invalid names can be kilobytes long).
const MAX_TRACED_PATH: usize = 256;

/// The public API description, served at `/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../docs/openapi.yaml");

/// How often rate-limit state of idle clients is dropped.
const RATE_LIMIT_SWEEP: Duration = Duration::from_secs(60);

/// What the gateway is built from.
pub struct Components {
    pub settings: Settings,
    /// The whole storage stack (`storage::build`).
    pub storage: Arc<dyn Storage>,
    /// Rate limits, when any budget is configured.
    pub limiter: Option<Limiter>,
    pub metrics: Arc<Metrics>,
    /// Readiness conditions besides storage (one per credential source).
    pub latches: Vec<Latch>,
    /// API keys from a Kubernetes Secret, when one is configured.
    pub key_secret: Option<watch::Receiver<Option<KeySet>>>,
    /// The variants served (`[variants]`'s presets, validated).
    pub variant_rules: variant::Rules,
}

/// The state of the public and admin listeners.
pub struct Gateway {
    storage: Arc<dyn Storage>,
    metrics: Arc<Metrics>,
    health: Health,
    access: AccessControl,
    limiter: Option<Limiter>,
    proxies: TrustedProxies,
    cors: Cors,
    cache: CachePolicy,
    intake: Intake,
    publisher: Publisher,
    /// `None` with `processing.enabled = false`: no worker threads, and 503 for processing.
    jobs: Option<Jobs>,
    /// What variants are served (presets, presets only).
    variant_rules: variant::Rules,
    /// The API description served, with the configured presets ([`served_openapi`]).
    openapi: Bytes,
    /// Rendered variants kept in memory (`variants.cache_max_bytes`).
    renders: Renders,
    /// Rendered variants kept in storage too (`variants.store`).
    store_variants: bool,
    limits: ServerSettings,
}

/// What the gate decided, and the caller's rate status, which the answer carries whatever the
/// decision (a 429 included).
struct Gate<'g> {
    decision: Result<Admitted<'g>, ApiError>,
    rate: Option<RateStatus>,
}

impl<'g> Gate<'g> {
    fn refused(error: ApiError) -> Gate<'g> {
        Gate {
            decision: Err(error),
            rate: None,
        }
    }

    fn answered(response: Response<Body>) -> Gate<'g> {
        Gate {
            decision: Ok(Admitted::Answer(response)),
            rate: None,
        }
    }
}

/// A request that passed the gate, and what answers it.
enum Admitted<'g> {
    /// Answered without a handler (preflight, probes, the API description).
    Answer(Response<Body>),
    /// For the handler, on behalf of the authorized caller.
    Handler { handler: Handler<'g>, caller: Caller },
}

/// The endpoints with a handler, with what the route parsed for them and, for an operation,
/// the job service that runs it (present: the gate answered 503 when processing is off).
enum Handler<'g> {
    /// The stored image, or a variant of it with its key (`w400.webp`, what a signature covers).
    Download {
        name: ObjectName,
        variant: Option<(Variant, String)>,
    },
    /// Drop the image's rendered variants.
    PurgeVariants {
        name: ObjectName,
    },
    Upload,
    Process {
        operation: Operation,
        jobs: &'g Jobs,
    },
}

impl Handler<'_> {
    /// What the caller must be allowed (a download of this name may come with a signed URL in
    /// the query).
    fn need<'a>(&'a self, query: Option<&'a str>) -> Need<'a> {
        match self {
            Handler::Download { name, variant } => Need::Download {
                name,
                variant: variant.as_ref().map(|(_, key)| key.as_str()),
                query,
            },
            Handler::PurgeVariants { .. } => Need::PurgeVariants,
            Handler::Upload => Need::Upload,
            Handler::Process { .. } => Need::Process,
        }
    }
}

impl Gateway {
    /// Builds the gateway and starts its background tasks (storage checks for readiness, key
    /// file reload, API keys from the Secret, rate-limit sweep), which end when it is dropped.
    /// Fails only when the API-key file cannot be read.
    pub fn start(components: Components) -> Result<Arc<Gateway>, KeyFileError> {
        let Components {
            settings,
            storage,
            limiter,
            metrics,
            latches,
            key_secret,
            variant_rules,
        } = components;
        let (access, key_sources) = AccessControl::new(&settings)?;
        let links = Links {
            public_url: settings.public_url.clone(),
            signer: access.signer().cloned(),
            signed_url_ttl: settings.auth.signed_url_ttl,
        };
        let gateway = Arc::new(Gateway {
            limiter,
            cors: Cors::new(&settings.cors.allowed_origins),
            proxies: TrustedProxies::new(
                settings.server.trusted_proxies.clone(),
                settings.server.client_ipv6_prefix,
            ),
            cache: CachePolicy::new(settings.http.cache_control.clone()),
            intake: Intake::new(&settings.upload),
            publisher: Publisher::new(storage.clone(), links, metrics.clone()),
            renders: Renders::new(settings.variants.cache_max_bytes),
            store_variants: settings.variants.store,
            openapi: served_openapi(&variant_rules),
            variant_rules,
            jobs: settings
                .processing
                .enabled
                .then(|| Jobs::new(&settings.processing, &settings.upload, storage.clone(), metrics.clone())),
            limits: settings.server.clone(),
            access,
            storage,
            metrics,
            health: Health::new(latches),
        });
        tokio::spawn(check_storage(Arc::downgrade(&gateway)));
        if let Some(path) = settings.auth.api_keys_file.clone() {
            tokio::spawn(auth::watch_key_file(path, key_sources.clone()));
        }
        if let Some(secret) = key_secret {
            tokio::spawn(key_sources.follow_secret(secret));
        }
        if gateway.limiter.is_some() {
            tokio::spawn(sweep_rate_limits(Arc::downgrade(&gateway)));
        }
        Ok(gateway)
    }

    /// `/readyz`: 200, or 503 naming the failed checks; with their reasons only on the admin
    /// listener (`detailed`), as reasons can name internal hosts, ports and paths.
    fn readiness(&self, detailed: bool) -> Response<Body> {
        match self.health.readiness() {
            Ok(()) => status_json(StatusCode::OK, "ready"),
            Err(not_ready) => {
                let why = if detailed {
                    not_ready.to_string()
                } else {
                    not_ready.names()
                };
                status_json(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {why}"))
            }
        }
    }

    /// `server.max_url_bytes`, `server.max_headers`, `server.max_header_bytes`, checked before
    /// anything else looks at the request. (hyper's own, larger, buffer limit is the backstop.)
    fn check_limits(&self, parts: &Parts) -> Result<(), ApiError> {
        let limits = &self.limits;
        let target = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
        if target > limits.max_url_bytes {
            return Err(ApiError::UriTooLong {
                limit: limits.max_url_bytes,
            });
        }
        if parts.headers.len() > limits.max_headers.get() {
            return Err(ApiError::HeadersTooLarge(HeaderLimit::Fields {
                count: parts.headers.len(),
                limit: limits.max_headers.get(),
            }));
        }
        let bytes: usize = parts.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if bytes > limits.max_header_bytes {
            return Err(ApiError::HeadersTooLarge(HeaderLimit::Bytes {
                bytes,
                limit: limits.max_header_bytes,
            }));
        }
        Ok(())
    }

    /// Everything before the handler: limits, route, preflight, method, access and rate limit.
    async fn admit(&self, parts: &Parts, route: Result<Route, ApiError>, client: IpAddr) -> Gate<'_> {
        let route = match self.check_limits(parts).and(route) {
            Ok(route) => route,
            Err(e) => return Gate::refused(e),
        };
        if let Some(preflight) = self.cors.preflight(&parts.method, route.allow(), &parts.headers) {
            return Gate::answered(preflight);
        }
        if let Err(e) = route.check_method(&parts.method) {
            return Gate::refused(e);
        }
        let handler = match route {
            Route::Download(Ok(name)) => match Variant::from_query(parts.uri.query(), &self.variant_rules) {
                Ok(variant) => {
                    let variant = variant.map(|v| (v, v.key(name.format())));
                    Handler::Download { name, variant }
                }
                Err(e) => return Gate::refused(e),
            },
            Route::Download(Err(e)) | Route::Variants(Err(e)) => return Gate::refused(ApiError::InvalidObjectName(e)),
            Route::Variants(Ok(name)) => Handler::PurgeVariants { name },
            Route::Upload => Handler::Upload,
            Route::Process(operation) => match &self.jobs {
                Some(jobs) => Handler::Process { operation, jobs },
                None => return Gate::refused(ApiError::ProcessingDisabled),
            },
            Route::Livez => return Gate::answered(status_json(StatusCode::OK, "alive")),
            Route::Readyz => return Gate::answered(self.readiness(false)),
            Route::OpenApi => return Gate::answered(openapi(self.openapi.clone())),
            Route::Metrics => return Gate::refused(ApiError::RouteNotFound),
        };
        let authorized = self.access.authorize(handler.need(parts.uri.query()), &parts.headers);
        let identity;
        let attempt = match &authorized {
            Ok(caller) => {
                identity = rate_identity(caller, client);
                Attempt::Accepted(&identity)
            }
            // Only a presented credential that is wrong counts as a guess.
            Err(e) if e.is_wrong_credential() => Attempt::WrongCredential,
            Err(_) => Attempt::Refused,
        };
        let rate = match &self.limiter {
            Some(limiter) => limiter.decide(client, attempt).await,
            None => Decision::Counted(None),
        };
        let rate = match rate {
            Decision::Blocked(status) => {
                self.metrics.rate_limit.rejected();
                return Gate {
                    decision: Err(ApiError::RateLimited),
                    rate: Some(status),
                };
            }
            Decision::Counted(rate) => rate,
        };
        if let Err(e) = &authorized {
            self.metrics.auth.failed(failure_label(e));
        }
        let decision = if rate.as_ref().is_some_and(RateStatus::refused) {
            self.metrics.rate_limit.rejected();
            Err(ApiError::RateLimited)
        } else {
            authorized
                .map(|caller| Admitted::Handler { handler, caller })
                .map_err(ApiError::from)
        };
        Gate { decision, rate }
    }

    async fn respond(&self, admitted: Admitted<'_>, request: ApiRequest<'_>) -> Result<Response<Body>, ApiError> {
        let (handler, caller) = match admitted {
            Admitted::Answer(response) => return Ok(response),
            Admitted::Handler { handler, caller } => (handler, caller),
        };
        match handler {
            Handler::Download { name, variant } => {
                let cache_control = self.cache.for_caller(&caller, unix_now());
                let (storage, parts) = (self.storage.as_ref(), request.parts);
                match variant {
                    None => download::handle(storage, &parts.method, &parts.headers, &name, cache_control).await,
                    Some((variant, _)) => {
                        let renderer = Renderer {
                            jobs: self.jobs.as_ref(),
                            renders: &self.renders,
                            store: self.store_variants,
                            metrics: &self.metrics,
                        };
                        download::handle_variant(
                            renderer,
                            storage,
                            &parts.method,
                            &parts.headers,
                            &name,
                            variant,
                            cache_control,
                        )
                        .await
                    }
                }
            }
            Handler::PurgeVariants { name } => {
                download::purge_variants(self.storage.as_ref(), &self.renders, &name).await
            }
            Handler::Upload => upload::handle(&self.intake, &self.publisher, request).await,
            Handler::Process { operation, jobs } => {
                process::handle(jobs, &self.intake, &self.publisher, operation, request).await
            }
        }
    }
}

impl Service for Gateway {
    async fn call(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let start = Instant::now();
        let in_flight = InFlight::new(&self.metrics);
        let (parts, body) = request.into_parts();
        // The path is parsed here, once: the route names the request in logs, metrics and
        // traces, and the gate and the handler take what it parsed.
        let route = public_route(parts.uri.path());
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
        let client = self.proxies.client_ip(peer.ip(), &parts.headers);
        // Budgets (rate limits, failed authentications, per-client caps) count per network for
        // IPv6; the log keeps the full address.
        let budget = self.proxies.budget_address(client);
        // Logged and counted however the request ends, a client that goes away first included.
        let pending = Pending::new(
            RequestInfo {
                method: parts.method.clone(),
                route: route_name,
                path,
                client,
                status: 0,
                start,
                span: span.clone(),
            },
            in_flight,
        );
        let Gate { decision, rate } = self.admit(&parts, route, budget).instrument(span.clone()).await;
        let result = match decision {
            Err(e) => Err(e),
            Ok(admitted) => {
                let timeout = self.limits.request_timeout;
                let request = ApiRequest {
                    parts: &parts,
                    body,
                    client: budget,
                };
                tokio::time::timeout(timeout, self.respond(admitted, request).instrument(span.clone()))
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
        response.map(|inner| http_body_util::combinators::UnsyncBoxBody::new(pending.respond(inner, status)))
    }

    /// The admin listener: `/metrics`, `/livez`, `/readyz`; not logged, not counted.
    async fn call_admin(&self, request: Request<Incoming>) -> Response<Body> {
        let route = Route::parse(request.uri().path()).filter(Route::is_admin);
        let result = match route {
            None => Err(ApiError::RouteNotFound),
            Some(route) => route.check_method(request.method()).map(|()| match route {
                Route::Metrics => {
                    let mut response = Response::new(body::full(self.metrics.render()));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    response
                }
                Route::Readyz => self.readiness(true),
                _ => status_json(StatusCode::OK, "alive"),
            }),
        };
        result.unwrap_or_else(ApiError::into_response)
    }

    fn begin_shutdown(&self) {
        self.health.begin_shutdown();
    }
}

/// The budget a caller's requests count against: the API key, else the client address.
fn rate_identity(caller: &Caller, client: IpAddr) -> String {
    match caller {
        Caller::Key(holder) => format!("key:{}", holder.id),
        Caller::Anonymous | Caller::SignedUrl { .. } => format!("ip:{client}"),
    }
}

/// The route of `path` on the public listener, or 404.
fn public_route(path: &str) -> Result<Route, ApiError> {
    Route::parse(path)
        .filter(Route::is_public)
        .ok_or(ApiError::RouteNotFound)
}

/// Keeps readiness fresh: a cheap storage check every few seconds, off the request path.
async fn check_storage(gateway: Weak<Gateway>) {
    loop {
        let Some(strong) = gateway.upgrade() else { return };
        let start = Instant::now();
        let result = strong.storage.check().await;
        if let Err(e) = &result {
            tracing::debug!(error = %e, "storage check failed");
        }
        strong.health.record_storage_check(result.as_ref().map(|_| ()));
        strong
            .metrics
            .storage
            .checked(start.elapsed(), strong.health.storage_reachable());
        drop(strong);
        tokio::time::sleep(CHECK_INTERVAL).await;
    }
}

async fn sweep_rate_limits(gateway: Weak<Gateway>) {
    loop {
        tokio::time::sleep(RATE_LIMIT_SWEEP).await;
        let Some(gateway) = gateway.upgrade() else { return };
        if let Some(limiter) = &gateway.limiter {
            limiter.forget_idle();
        }
    }
}

/// The generic `preset` property of [`OPENAPI`], which the served document replaces with the
/// names configured here.
const PRESET_PROPERTY: &str = "preset: { type: string, pattern: '^[A-Za-z0-9_-]{1,64}$' }";

/// The API description this server serves: [`OPENAPI`], its `preset` option listing the presets
/// configured here (a client, or a generated test, then knows which names are served).
fn served_openapi(rules: &variant::Rules) -> Bytes {
    let names: Vec<String> = rules.preset_names().map(|name| format!("\"{name}\"")).collect();
    if names.is_empty() {
        return Bytes::from_static(OPENAPI.as_bytes());
    }
    let listed = format!("preset: {{ type: string, enum: [{}] }}", names.join(", "));
    Bytes::from(OPENAPI.replacen(PRESET_PROPERTY, &listed, 1))
}

fn openapi(document: Bytes) -> Response<Body> {
    let mut response = Response::new(body::full(document));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
    response
}

/// A probe's answer: `{"status": …}`, or as an error (`code` `not_ready`).
fn status_json(status: StatusCode, state: &str) -> Response<Body> {
    let json = match status.is_success() {
        true => serde_json::json!({ "status": state }),
        false => serde_json::json!({ "detail": state, "code": "not_ready" }),
    };
    let mut response = body::json(&json);
    *response.status_mut() = status;
    response
}

/// The `reason` label of `auth_failures_total` for a refusal.
fn failure_label(e: &AuthError) -> AuthFailure {
    match e {
        AuthError::MissingKey => AuthFailure::MissingKey,
        AuthError::UnknownKey => AuthFailure::UnknownKey,
        AuthError::Scope { .. } => AuthFailure::InsufficientScope,
        AuthError::Signature(SignatureError::Expired) => AuthFailure::SignatureExpired,
        AuthError::Signature(SignatureError::Invalid) => AuthFailure::SignatureInvalid,
        AuthError::Signature(SignatureError::Malformed) => AuthFailure::SignatureMalformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VariantsSettings;

    #[test]
    fn the_served_description_lists_the_configured_presets() {
        assert_eq!(
            OPENAPI.matches(PRESET_PROPERTY).count(),
            1,
            "the generic property is in the document"
        );
        let none = variant::Rules::new(&VariantsSettings::default()).unwrap();
        assert_eq!(served_openapi(&none), OPENAPI.as_bytes());
        let config = VariantsSettings {
            presets: [("thumb", "w=64"), ("card", "w=400")]
                .map(|(n, o)| (n.to_owned(), o.to_owned()))
                .into(),
            ..VariantsSettings::default()
        };
        let served = served_openapi(&variant::Rules::new(&config).unwrap());
        let served = std::str::from_utf8(&served).unwrap();
        assert!(served.contains(r#"preset: { type: string, enum: ["card", "thumb"] }"#));
        assert!(!served.contains(PRESET_PROPERTY));
    }
}
