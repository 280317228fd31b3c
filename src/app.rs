//! The application: shared state and the request dispatcher (route → access → handler).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use crate::{
    access::AccessControl,
    access_log::LoggedBody,
    body::{self, Body},
    config::Config,
    download,
    error::ApiError,
    routes::Route,
    storage::Storage,
    upload,
};

pub struct App {
    config: Config,
    storage: Arc<dyn Storage>,
    access: AccessControl,
    cache_control: HeaderValue,
    public_url: String,
    shutting_down: AtomicBool,
}

impl App {
    pub fn new(config: Config, storage: Arc<dyn Storage>) -> Self {
        // Validated when the config was loaded; the fallback only guards hand-built configs.
        let cache_control = HeaderValue::try_from(config.http.cache_control.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("no-cache"));
        let public_url = match &config.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", config.listen),
        };
        Self {
            public_url,
            config,
            storage,
            access: AccessControl::default(),
            cache_control,
            shutting_down: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// Base of the URLs we hand out, without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    pub fn cache_control(&self) -> &HeaderValue {
        &self.cache_control
    }

    /// From now on `/readyz` answers 503, so load balancers stop sending traffic.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Answers one request; never fails (errors become responses).
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let start = Instant::now();
        let (parts, body) = request.into_parts();
        let route = Route::parse(parts.uri.path());
        let route_name = route.as_ref().map_or("not_found", Route::name);
        let result = match route {
            None => Err(ApiError::RouteNotFound),
            Some(route) => self.dispatch(route, &parts, body).await,
        };
        let response = result.unwrap_or_else(ApiError::into_response);
        let status = response.status().as_u16();
        response.map(|inner| {
            let logged = LoggedBody::new(inner, parts.method.clone(), route_name, status, start);
            http_body_util::combinators::UnsyncBoxBody::new(logged)
        })
    }

    async fn dispatch(
        &self,
        route: Route<'_>,
        parts: &http::request::Parts,
        body: Incoming,
    ) -> Result<Response<Body>, ApiError> {
        route.check_method(&parts.method)?;
        self.access.authorize(&route, &parts.headers)?;
        match route {
            Route::Download { encoded_name } => {
                download::handle(self, &parts.method, &parts.headers, encoded_name).await
            }
            Route::Upload => upload::handle(self, &parts.headers, body).await,
            Route::Livez => Ok(status_json(StatusCode::OK, "alive")),
            Route::Readyz if self.shutting_down.load(Ordering::SeqCst) => Ok(status_json(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting down",
            )),
            Route::Readyz => Ok(status_json(StatusCode::OK, "ready")),
        }
    }
}

fn status_json(status: StatusCode, state: &str) -> Response<Body> {
    let key = if status.is_success() {
        "status"
    } else {
        "detail"
    };
    let mut response = Response::new(body::full(serde_json::json!({ key: state }).to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
