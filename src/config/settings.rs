//! [`Settings`]: the configuration validated once, with every value the service needs parsed
//! into its type. Nothing built from `Settings` re-checks what is checked here.

use std::path::Path;

use http::HeaderValue;
use ipnet::IpNet;

use super::{
    api_keys::{self, KeyEntry},
    networks,
    raw::{AuthMode, Backend, Config, ConfigError, CredentialsSource, RateLimitBackend, RateLimitConfig},
    secret::Secret,
};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every section as validated (`public_url` filled in, without a trailing slash).
    pub config: Config,
    /// `server.trusted_proxies`, parsed.
    pub trusted_proxies: Vec<IpNet>,
    /// `http.cache_control` as a header value.
    pub cache_control: Option<HeaderValue>,
    /// `auth.api_keys`, parsed.
    pub api_keys: Vec<KeyEntry>,
}

impl Settings {
    /// [`Config::load`], then validation.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::new(Config::load(file)?)
    }

    /// Validates `config` once, into typed values; every error names its key.
    pub fn new(mut config: Config) -> Result<Settings, ConfigError> {
        let public_url = match config.public_url.take() {
            Some(url) => {
                let url = url.trim().trim_end_matches('/').to_owned();
                check_http_url(&url).map_err(|e| ConfigError::key("public_url", e))?;
                url
            }
            None => format!("http://{}", config.listen),
        };
        config.public_url = Some(public_url);
        if config.storage.timeout.0.is_zero() {
            return Err(ConfigError::key("storage.timeout", "must be greater than zero"));
        }
        if config.upload.max_bytes.0 == 0 {
            return Err(ConfigError::key("upload.max_bytes", "must be greater than zero"));
        }
        for (key, value) in [
            ("server.max_connections", config.server.max_connections),
            ("server.max_headers", config.server.max_headers),
            ("upload.max_concurrent", config.upload.max_concurrent),
        ] {
            if value == 0 {
                return Err(ConfigError::key(key, "must be greater than zero"));
            }
        }
        if config.server.max_header_bytes.0 < 1024 {
            return Err(ConfigError::key("server.max_header_bytes", "must be at least 1KiB"));
        }
        if !(1..=128).contains(&config.server.client_ipv6_prefix) {
            return Err(ConfigError::key("server.client_ipv6_prefix", "must be 1 to 128"));
        }
        if config.server.max_url_bytes < 256 {
            return Err(ConfigError::key("server.max_url_bytes", "must be at least 256"));
        }
        if config.server.request_timeout.0.is_zero() {
            return Err(ConfigError::key("server.request_timeout", "must be greater than zero"));
        }
        for (key, value) in [
            ("processing.max_input_pixels", config.processing.max_input_pixels),
            ("processing.max_output_pixels", config.processing.max_output_pixels),
        ] {
            if value == 0 {
                return Err(ConfigError::key(key, "must be greater than zero"));
            }
        }
        if !(1..=10).contains(&config.processing.avif_speed) {
            return Err(ConfigError::key("processing.avif_speed", "must be from 1 to 10"));
        }
        for (key, value) in [
            ("server.first_byte_timeout", config.server.first_byte_timeout),
            ("upload.body_idle_timeout", config.upload.body_idle_timeout),
            ("processing.job_timeout", config.processing.job_timeout),
            ("server.idle_timeout", config.server.idle_timeout),
            ("server.send_timeout", config.server.send_timeout),
        ] {
            if value.0.is_zero() {
                return Err(ConfigError::key(key, "must be greater than zero"));
            }
        }
        if config.server.header_read_timeout.0.is_zero() {
            return Err(ConfigError::key(
                "server.header_read_timeout",
                "must be greater than zero",
            ));
        }
        let cache_control = match &config.http.cache_control {
            Some(value) => Some(
                HeaderValue::from_str(value)
                    .map_err(|_| ConfigError::key("http.cache_control", "is not a valid header value"))?,
            ),
            None => None,
        };
        if let Some(level) = &config.log.level
            && tracing_subscriber::EnvFilter::try_new(level).is_err()
        {
            return Err(ConfigError::key(
                "log.level",
                format!("`{level}` is not a log filter; use e.g. \"info\""),
            ));
        }
        let cache = &mut config.cache;
        cache.enabled.get_or_insert(config.storage.backend == Backend::S3);
        if cache.enabled == Some(true) {
            if cache.ttl.0.is_zero() {
                return Err(ConfigError::key("cache.ttl", "must be greater than zero"));
            }
            if cache.max_object_bytes.0 == 0 || cache.max_object_bytes.0 > cache.max_bytes.0 {
                return Err(ConfigError::key(
                    "cache.max_object_bytes",
                    "must be greater than zero and at most cache.max_bytes",
                ));
            }
            if cache.max_object_bytes.0 > 1 << 30 {
                return Err(ConfigError::key("cache.max_object_bytes", "must be at most 1GiB"));
            }
        }
        if config.retention.max_age.0.is_zero() {
            return Err(ConfigError::key("retention.max_age", "must be greater than zero"));
        }
        if config.upload.max_pixels == 0 {
            return Err(ConfigError::key("upload.max_pixels", "must be greater than zero"));
        }
        let trusted_proxies = networks::parse_networks(&config.server.trusted_proxies)
            .map_err(|e| ConfigError::key("server.trusted_proxies", e))?;
        let auth = &config.auth;
        let api_keys = api_keys::parse_entries(auth.api_keys.iter().map(Secret::expose))
            .map_err(|e| ConfigError::key("auth.api_keys", e))?;
        if auth.mode == AuthMode::ApiKey
            && auth.api_keys.is_empty()
            && auth.api_keys_file.is_none()
            && auth.api_keys_secret.is_none()
        {
            return Err(ConfigError::key(
                "auth.api_keys",
                "auth.mode = \"api_key\" needs auth.api_keys, auth.api_keys_file or auth.api_keys_secret",
            ));
        }
        if auth.api_keys_secret.as_ref().is_some_and(|s| s.name.trim().is_empty()) {
            return Err(ConfigError::key("auth.api_keys_secret.name", "must not be empty"));
        }
        if auth.url_signing_key.iter().any(|k| k.expose().len() < 16) {
            return Err(ConfigError::key(
                "auth.url_signing_key",
                "each key must be at least 16 characters",
            ));
        }
        if auth.signed_url_ttl.0.as_secs() == 0 {
            return Err(ConfigError::key("auth.signed_url_ttl", "must be at least one second"));
        }
        if config.storage.backend == Backend::S3 {
            let s3 = &config.storage.s3;
            if s3.bucket.trim().is_empty() {
                return Err(ConfigError::key(
                    "storage.s3.bucket",
                    "is required when storage.backend = \"s3\"",
                ));
            }
            if let Some(endpoint) = &s3.endpoint {
                check_http_url(endpoint).map_err(|e| ConfigError::key("storage.s3.endpoint", e))?;
            }
            if s3.prefix.starts_with('/') {
                return Err(ConfigError::key("storage.s3.prefix", "must not start with '/'"));
            }
            match s3.credentials {
                CredentialsSource::Static => {
                    if s3.access_key_id.as_deref().is_none_or(str::is_empty) {
                        return Err(ConfigError::key(
                            "storage.s3.access_key_id",
                            "is required when storage.backend = \"s3\" (or set storage.s3.credentials = \"kubernetes\" or \"default\")",
                        ));
                    }
                    if s3.secret_access_key.as_ref().is_none_or(|s| s.expose().is_empty()) {
                        return Err(ConfigError::key(
                            "storage.s3.secret_access_key",
                            "is required when storage.backend = \"s3\" (or set storage.s3.credentials = \"kubernetes\" or \"default\")",
                        ));
                    }
                }
                CredentialsSource::Kubernetes if s3.secret.name.trim().is_empty() => {
                    return Err(ConfigError::key(
                        "storage.s3.secret.name",
                        "is required when storage.s3.credentials = \"kubernetes\"",
                    ));
                }
                CredentialsSource::Kubernetes | CredentialsSource::Default => {}
            }
        }
        check_rate_limit(&config.rate_limit)?;
        Ok(Settings {
            config,
            trusted_proxies,
            cache_control,
            api_keys,
        })
    }

    /// Base of the URLs handed out (`upload_url`), without a trailing slash.
    pub fn public_url(&self) -> &str {
        self.config.public_url.as_deref().unwrap_or_default()
    }
}

/// A URL in the configuration that is not an absolute `http(s)` URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{0}` must start with http:// or https://")]
    Scheme(String),
    #[error("`{0}` has no host")]
    NoHost(String),
    #[error("`{0}` is not a valid URL")]
    Invalid(String),
}

/// `rate_limit.redis.*`, checked when the backend is Redis: a URL of either scheme with a host,
/// and bounds that keep a decision quick.
fn check_rate_limit(limits: &RateLimitConfig) -> Result<(), ConfigError> {
    if limits.backend != RateLimitBackend::Redis {
        return Ok(());
    }
    let redis = &limits.redis;
    let Some(url) = &redis.url else {
        return Err(ConfigError::key(
            "rate_limit.redis.url",
            "is required when rate_limit.backend = \"redis\"",
        ));
    };
    // SECURITY: the URL may carry a password, so errors never quote it.
    let url = url.expose();
    let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
    let host = url.split_once("://").map_or("", |(_, rest)| rest);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if !scheme_ok || host.is_empty() || host.starts_with('/') || host.starts_with(':') {
        return Err(ConfigError::key(
            "rate_limit.redis.url",
            "must be redis://host[:port][/db] or rediss://… with a host",
        ));
    }
    let timeout = redis.timeout.0;
    if timeout.is_zero() || timeout > std::time::Duration::from_secs(5) {
        return Err(ConfigError::key(
            "rate_limit.redis.timeout",
            "must be between 1ms and 5s",
        ));
    }
    if !(1..=64).contains(&redis.connections) {
        return Err(ConfigError::key(
            "rate_limit.redis.connections",
            "must be between 1 and 64",
        ));
    }
    if let Some(secret) = &redis.password_secret {
        if secret.name.trim().is_empty() || secret.key.is_empty() {
            return Err(ConfigError::key(
                "rate_limit.redis.password_secret",
                "needs a name and a data key",
            ));
        }
        if redis.password.is_some() {
            return Err(ConfigError::key(
                "rate_limit.redis.password_secret",
                "and rate_limit.redis.password are exclusive: choose one",
            ));
        }
    }
    if redis.fallback_divisor == 0 {
        return Err(ConfigError::key(
            "rate_limit.redis.fallback_divisor",
            "must be at least 1",
        ));
    }
    if redis.key_prefix.len() > 128 {
        return Err(ConfigError::key(
            "rate_limit.redis.key_prefix",
            "must be at most 128 bytes",
        ));
    }
    Ok(())
}

fn check_http_url(url: &str) -> Result<(), UrlError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| UrlError::Scheme(url.to_owned()))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(UrlError::NoHost(url.to_owned()));
    }
    if http::Uri::try_from(url).is_err() {
        return Err(UrlError::Invalid(url.to_owned()));
    }
    Ok(())
}
