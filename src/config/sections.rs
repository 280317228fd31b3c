//! The typed sections of [`super::Settings`], one per section of the file, each validated from
//! its raw form (`raw.rs`) by one `TryFrom`: durations are [`Duration`]s, sizes are bytes,
//! counts that must not be zero are `NonZero*`, choices that carry their own settings are enums
//! holding them (an S3 backend has its bucket, a Redis store its URL), and "0 turns it off"
//! values are `Option`s where the code downstream branches on them. Every error names its key.

use std::{
    collections::BTreeMap,
    num::{NonZeroU32, NonZeroU64, NonZeroUsize},
    path::PathBuf,
    time::Duration,
};

use http::{HeaderValue, Uri};
use ipnet::IpNet;

use super::{
    api_keys::{self, KeyEntry},
    networks,
    raw::{
        AuthConfig, AuthMode, Backend, CacheConfig, ConfigError, CorsConfig, CredentialsSource, FsConfig, HttpConfig,
        JpegDecoder, LogConfig, LogFormat, ProcessingConfig, RateLimitBackend, RateLimitConfig, RedisConfig,
        RedisPasswordSecret, RetentionConfig, S3Config, SecretName, ServerConfig, ShutdownConfig, StorageConfig,
        StorageSecretConfig, UploadConfig, VariantsAllowed, VariantsConfig,
    },
    secret::Secret,
    units::{ByteSize, HumanDuration},
};

/// `duration`, refused when zero.
fn positive(key: &str, duration: HumanDuration) -> Result<Duration, ConfigError> {
    if duration.0.is_zero() {
        return Err(ConfigError::key(key, "must be greater than zero"));
    }
    Ok(duration.0)
}

/// A count (or a size) that must not be zero.
fn nonzero<N: TryFrom<T>, T>(key: &str, value: T) -> Result<N, ConfigError> {
    N::try_from(value).map_err(|_| ConfigError::key(key, "must be greater than zero"))
}

/// A size in bytes as an in-memory length.
fn length(key: &str, size: ByteSize) -> Result<usize, ConfigError> {
    usize::try_from(size.0).map_err(|_| ConfigError::key(key, "is too large for this machine"))
}

/// A duration whose zero turns a feature off.
fn unless_zero(duration: HumanDuration) -> Option<Duration> {
    Some(duration.0).filter(|d| !d.is_zero())
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// A client must send its whole request head within this time.
    pub header_read_timeout: Duration,
    /// On shutdown, in-flight requests get this long to finish.
    pub drain_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Prefix length IPv6 clients are counted by (1 to 128).
    pub client_ipv6_prefix: u8,
    /// Open client connections at most.
    pub max_connections: NonZeroUsize,
    /// Open connections from one peer address at most; 0: no cap.
    pub max_connections_per_client: usize,
    /// A new connection must send its first byte within this time.
    pub first_byte_timeout: Duration,
    /// Largest request head (at least 1 KiB).
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: NonZeroUsize,
    /// Longest request target (at least 256).
    pub max_url_bytes: usize,
    /// Longest time from the request head to the response head.
    pub request_timeout: Duration,
    /// A connection with no request in progress for this long is closed.
    pub idle_timeout: Duration,
    /// A connection whose client reads nothing for this long is closed.
    pub send_timeout: Duration,
}

impl TryFrom<&ServerConfig> for ServerSettings {
    type Error = ConfigError;

    fn try_from(server: &ServerConfig) -> Result<Self, ConfigError> {
        let max_header_bytes = length("server.max_header_bytes", server.max_header_bytes)?;
        if max_header_bytes < 1024 {
            return Err(ConfigError::key("server.max_header_bytes", "must be at least 1KiB"));
        }
        if !(1..=128).contains(&server.client_ipv6_prefix) {
            return Err(ConfigError::key("server.client_ipv6_prefix", "must be 1 to 128"));
        }
        if server.max_url_bytes < 256 {
            return Err(ConfigError::key("server.max_url_bytes", "must be at least 256"));
        }
        Ok(ServerSettings {
            header_read_timeout: positive("server.header_read_timeout", server.header_read_timeout)?,
            drain_timeout: server.drain_timeout.0,
            trusted_proxies: networks::parse_networks(&server.trusted_proxies)
                .map_err(|e| ConfigError::key("server.trusted_proxies", e))?,
            client_ipv6_prefix: server.client_ipv6_prefix,
            max_connections: nonzero("server.max_connections", server.max_connections)?,
            max_connections_per_client: server.max_connections_per_client,
            first_byte_timeout: positive("server.first_byte_timeout", server.first_byte_timeout)?,
            max_header_bytes,
            max_headers: nonzero("server.max_headers", server.max_headers)?,
            max_url_bytes: server.max_url_bytes,
            request_timeout: positive("server.request_timeout", server.request_timeout)?,
            idle_timeout: positive("server.idle_timeout", server.idle_timeout)?,
            send_timeout: positive("server.send_timeout", server.send_timeout)?,
        })
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self::try_from(&ServerConfig::default()).expect("the defaults are valid")
    }
}

/// `[upload]`.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// Largest image body accepted.
    pub max_bytes: NonZeroU64,
    /// Raster images declaring more pixels than this are refused.
    pub max_pixels: NonZeroU64,
    /// Uploads processed at once.
    pub max_concurrent: NonZeroUsize,
    /// Uploads processed at once for one client address; 0: no cap below `max_concurrent`.
    pub max_concurrent_per_client: usize,
    /// An upload body silent for this long is refused.
    pub body_idle_timeout: Duration,
    /// The average bytes per second a body must keep up; 0: no minimum.
    pub min_body_rate: u64,
}

impl TryFrom<&UploadConfig> for UploadSettings {
    type Error = ConfigError;

    fn try_from(upload: &UploadConfig) -> Result<Self, ConfigError> {
        Ok(UploadSettings {
            max_bytes: nonzero("upload.max_bytes", upload.max_bytes.0)?,
            max_pixels: nonzero("upload.max_pixels", upload.max_pixels)?,
            max_concurrent: nonzero("upload.max_concurrent", upload.max_concurrent)?,
            max_concurrent_per_client: upload.max_concurrent_per_client,
            body_idle_timeout: positive("upload.body_idle_timeout", upload.body_idle_timeout)?,
            min_body_rate: upload.min_body_rate.0,
        })
    }
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self::try_from(&UploadConfig::default()).expect("the defaults are valid")
    }
}

/// `[processing]`.
#[derive(Debug, Clone)]
pub struct ProcessingSettings {
    /// Serve the operations and variants at all.
    pub enabled: bool,
    /// Store each result (201 with its `upload_url`) rather than answering it inline.
    pub store_results: bool,
    /// Jobs running at once; `None`: one per CPU core.
    pub workers: Option<NonZeroUsize>,
    /// Jobs waiting for a worker.
    pub queue: usize,
    /// Inputs with a frame over this many pixels are refused before decoding.
    pub max_input_pixels: NonZeroU64,
    /// Results over this many pixels are refused.
    pub max_output_pixels: NonZeroU64,
    /// A job running longer than this is stopped.
    pub job_timeout: Duration,
    /// Which JPEG decoder.
    pub jpeg_decoder: JpegDecoder,
    /// Memory the running jobs may hold together; `None`: half the container's (or machine's).
    pub memory_budget: Option<NonZeroU64>,
    /// The AVIF encoder's speed, 1 to 10.
    pub avif_speed: u8,
}

impl TryFrom<&ProcessingConfig> for ProcessingSettings {
    type Error = ConfigError;

    fn try_from(processing: &ProcessingConfig) -> Result<Self, ConfigError> {
        if !(1..=10).contains(&processing.avif_speed) {
            return Err(ConfigError::key("processing.avif_speed", "must be from 1 to 10"));
        }
        Ok(ProcessingSettings {
            enabled: processing.enabled,
            store_results: processing.store_results,
            workers: NonZeroUsize::new(processing.workers),
            queue: processing.queue,
            max_input_pixels: nonzero("processing.max_input_pixels", processing.max_input_pixels)?,
            max_output_pixels: nonzero("processing.max_output_pixels", processing.max_output_pixels)?,
            job_timeout: positive("processing.job_timeout", processing.job_timeout)?,
            jpeg_decoder: processing.jpeg_decoder,
            memory_budget: NonZeroU64::new(processing.memory_budget.0),
            avif_speed: processing.avif_speed,
        })
    }
}

impl Default for ProcessingSettings {
    fn default() -> Self {
        Self::try_from(&ProcessingConfig::default()).expect("the defaults are valid")
    }
}

/// `[variants]`. The presets and sides are checked by the variant rules the API layer builds
/// from these (`api::download::variant::Rules`), at start-up, because parsing a preset is the
/// API's own query parsing.
#[derive(Debug, Clone)]
pub struct VariantsSettings {
    /// Memory for rendered variants kept for the next request (0: none kept).
    pub cache_max_bytes: u64,
    /// Named variants, `?preset=NAME`.
    pub presets: BTreeMap<String, String>,
    /// Which variants are served.
    pub allow: VariantsAllowed,
    /// The sides a variant's width and height snap up to.
    pub sides: Vec<u32>,
    /// Keep rendered variants in storage too.
    pub store: bool,
}

impl From<&VariantsConfig> for VariantsSettings {
    fn from(variants: &VariantsConfig) -> Self {
        VariantsSettings {
            cache_max_bytes: variants.cache_max_bytes.0,
            presets: variants.presets.clone(),
            allow: variants.allow,
            sides: variants.sides.clone(),
            store: variants.store,
        }
    }
}

impl Default for VariantsSettings {
    fn default() -> Self {
        Self::from(&VariantsConfig::default())
    }
}

/// `[cache]` when it is on ([`super::Settings::cache`] is `None` when it is off).
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Memory for cached objects in all.
    pub max_bytes: NonZeroU64,
    /// Objects up to this size are kept whole (at most `max_bytes` and 1 GiB).
    pub max_object_bytes: NonZeroU64,
    /// How long an object (or its metadata) is served from memory.
    pub ttl: Duration,
    /// How long a 404 is remembered; `None`: not at all.
    pub negative_ttl: Option<Duration>,
}

impl CacheSettings {
    /// `cache` when it is on: `cache.enabled`, else `on_by_default` (the settings turn it on by
    /// default with the S3 backend: the page cache keeps a local folder's hot files in memory).
    pub(super) fn new(cache: &CacheConfig, on_by_default: bool) -> Result<Option<CacheSettings>, ConfigError> {
        if !cache.enabled.unwrap_or(on_by_default) {
            return Ok(None);
        }
        let max_object_bytes: NonZeroU64 = nonzero("cache.max_object_bytes", cache.max_object_bytes.0)?;
        if max_object_bytes.get() > cache.max_bytes.0 {
            return Err(ConfigError::key(
                "cache.max_object_bytes",
                "must be at most cache.max_bytes",
            ));
        }
        if max_object_bytes.get() > 1 << 30 {
            return Err(ConfigError::key("cache.max_object_bytes", "must be at most 1GiB"));
        }
        Ok(Some(CacheSettings {
            max_bytes: nonzero("cache.max_bytes", cache.max_bytes.0)?,
            max_object_bytes,
            ttl: positive("cache.ttl", cache.ttl)?,
            negative_ttl: unless_zero(cache.negative_ttl),
        }))
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self::new(&CacheConfig::default(), true)
            .expect("the defaults are valid")
            .expect("on by default with S3")
    }
}

/// `[storage]`.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// Longest wait for storage to start answering (and between two body chunks).
    pub timeout: Duration,
    /// The backend, with its own settings.
    pub backend: BackendSettings,
}

/// `storage.backend` and its section.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one value per process, made at start-up
pub enum BackendSettings {
    /// `[storage.fs]`.
    Fs(FsSettings),
    /// `[storage.s3]`.
    S3(S3Settings),
}

/// `[storage.fs]`.
#[derive(Debug, Clone)]
pub struct FsSettings {
    /// Folder holding one file per image.
    pub root: PathBuf,
    /// Serve reads the page cache answers at once on the serving threads.
    pub inline_reads: bool,
}

/// `[storage.s3]`.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// MinIO's or any S3's address; `None`: AWS's own endpoint for `region`.
    pub endpoint: Option<S3Endpoint>,
    /// Bucket holding the images (not empty).
    pub bucket: String,
    /// Region requests are signed for.
    pub region: String,
    /// Prepended to every object name (never starting with `/`).
    pub prefix: String,
    /// Path-style addressing.
    pub force_path_style: bool,
    /// How long an idle pooled connection to storage is kept.
    pub pool_idle_timeout: Duration,
    /// Where the access key comes from.
    pub keys: S3KeySource,
}

/// `storage.s3.endpoint`, parsed once.
#[derive(Debug, Clone)]
pub struct S3Endpoint {
    /// As written, for the AWS SDK.
    pub url: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `host[:port]`.
    pub authority: String,
    /// A path before the bucket, without a trailing slash (usually empty).
    pub path: String,
}

impl S3Endpoint {
    fn parse(url: &str) -> Result<S3Endpoint, ConfigError> {
        let key = "storage.s3.endpoint";
        check_http_url(url).map_err(|e| ConfigError::key(key, e))?;
        let uri: Uri = url.parse().map_err(|e| ConfigError::key(key, e))?;
        let scheme = if uri.scheme_str() == Some("https") {
            "https"
        } else {
            "http"
        };
        let authority = uri.authority().ok_or_else(|| ConfigError::key(key, "has no host"))?;
        Ok(S3Endpoint {
            url: url.to_owned(),
            scheme,
            authority: authority.to_string(),
            path: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// `storage.s3.credentials` and what each source needs.
#[derive(Debug, Clone)]
pub enum S3KeySource {
    /// The configured pair.
    Static {
        /// `storage.s3.access_key_id`.
        access_key_id: String,
        /// `storage.s3.secret_access_key`.
        secret_access_key: Secret,
    },
    /// A Kubernetes Secret, watched for rotation.
    Kubernetes(StorageSecretConfig),
    /// The AWS SDK's default chain.
    Default,
}

impl TryFrom<&StorageConfig> for StorageSettings {
    type Error = ConfigError;

    fn try_from(storage: &StorageConfig) -> Result<Self, ConfigError> {
        Ok(StorageSettings {
            timeout: positive("storage.timeout", storage.timeout)?,
            backend: match storage.backend {
                Backend::Fs => BackendSettings::Fs(FsSettings::from(&storage.fs)),
                Backend::S3 => BackendSettings::S3(S3Settings::try_from(&storage.s3)?),
            },
        })
    }
}

impl From<&FsConfig> for FsSettings {
    fn from(fs: &FsConfig) -> Self {
        FsSettings {
            root: fs.root.clone(),
            inline_reads: fs.inline_reads,
        }
    }
}

impl TryFrom<&S3Config> for S3Settings {
    type Error = ConfigError;

    fn try_from(s3: &S3Config) -> Result<Self, ConfigError> {
        const OR: &str = "(or set storage.s3.credentials = \"kubernetes\" or \"default\")";
        if s3.bucket.trim().is_empty() {
            return Err(ConfigError::key(
                "storage.s3.bucket",
                "is required when storage.backend = \"s3\"",
            ));
        }
        if s3.prefix.starts_with('/') {
            return Err(ConfigError::key("storage.s3.prefix", "must not start with '/'"));
        }
        let keys = match s3.credentials {
            CredentialsSource::Static => {
                let Some(access_key_id) = s3.access_key_id.clone().filter(|id| !id.is_empty()) else {
                    return Err(ConfigError::key(
                        "storage.s3.access_key_id",
                        format!("is required when storage.backend = \"s3\" {OR}"),
                    ));
                };
                let Some(secret_access_key) = s3.secret_access_key.clone().filter(|s| !s.expose().is_empty()) else {
                    return Err(ConfigError::key(
                        "storage.s3.secret_access_key",
                        format!("is required when storage.backend = \"s3\" {OR}"),
                    ));
                };
                S3KeySource::Static {
                    access_key_id,
                    secret_access_key,
                }
            }
            CredentialsSource::Kubernetes if s3.secret.name.trim().is_empty() => {
                return Err(ConfigError::key(
                    "storage.s3.secret.name",
                    "is required when storage.s3.credentials = \"kubernetes\"",
                ));
            }
            CredentialsSource::Kubernetes => S3KeySource::Kubernetes(s3.secret.clone()),
            CredentialsSource::Default => S3KeySource::Default,
        };
        Ok(S3Settings {
            endpoint: s3.endpoint.as_deref().map(S3Endpoint::parse).transpose()?,
            bucket: s3.bucket.clone(),
            region: s3.region.clone(),
            prefix: s3.prefix.clone(),
            force_path_style: s3.force_path_style,
            pool_idle_timeout: s3.pool_idle_timeout.0,
            keys,
        })
    }
}

/// `[http]`.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// `Cache-Control` on image responses; `None`: it follows the access.
    pub cache_control: Option<HeaderValue>,
}

impl TryFrom<&HttpConfig> for HttpSettings {
    type Error = ConfigError;

    fn try_from(http: &HttpConfig) -> Result<Self, ConfigError> {
        let cache_control = http
            .cache_control
            .as_deref()
            .map(HeaderValue::from_str)
            .transpose()
            .map_err(|_| ConfigError::key("http.cache_control", "is not a valid header value"))?;
        Ok(HttpSettings { cache_control })
    }
}

/// `[auth]`.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Open access or API keys.
    pub mode: AuthMode,
    /// `auth.api_keys`, parsed.
    pub api_keys: Vec<KeyEntry>,
    /// A file of key entries, reloaded when it changes.
    pub api_keys_file: Option<PathBuf>,
    /// A Kubernetes Secret of key entries, watched.
    pub api_keys_secret: Option<SecretName>,
    /// HMAC keys for signed URLs (each at least 16 characters): the first signs, all verify.
    pub url_signing_keys: Vec<Secret>,
    /// Validity of the `signed_url` in upload responses (at least a second).
    pub signed_url_ttl: Duration,
}

impl TryFrom<&AuthConfig> for AuthSettings {
    type Error = ConfigError;

    fn try_from(auth: &AuthConfig) -> Result<Self, ConfigError> {
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
        Ok(AuthSettings {
            mode: auth.mode,
            api_keys,
            api_keys_file: auth.api_keys_file.clone(),
            api_keys_secret: auth.api_keys_secret.clone(),
            url_signing_keys: auth.url_signing_key.clone(),
            signed_url_ttl: auth.signed_url_ttl.0,
        })
    }
}

/// `[rate_limit]`.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Sustained rate per caller; 0: no limit.
    pub requests_per_minute: u32,
    /// Requests allowed at once; 0: one minute's worth.
    pub burst: u32,
    /// Failed authentications per client address and minute; 0: no limit.
    pub auth_failures_per_minute: u32,
    /// Where the counters live.
    pub store: CounterStore,
}

/// `rate_limit.backend` and its section.
#[derive(Debug, Clone)]
pub enum CounterStore {
    /// In this process.
    Memory,
    /// In Redis, shared by every replica.
    Redis(RedisSettings),
}

/// `[rate_limit.redis]`.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://…` or `rediss://…`, with a host. A secret: it may hold the password.
    pub url: Secret,
    /// Password, overriding one in the URL.
    pub password: Option<Secret>,
    /// A watched Kubernetes Secret holding the password (exclusive with `password`).
    pub password_secret: Option<RedisPasswordSecret>,
    /// PEM file of a private CA for `rediss://`.
    pub ca_file: Option<PathBuf>,
    /// Longest wait for one decision (1 ms to 5 s).
    pub timeout: Duration,
    /// Multiplexed connections (1 to 64).
    pub connections: NonZeroUsize,
    /// Prefix of every key written (at most 128 bytes).
    pub key_prefix: String,
    /// While Redis is unreachable, each replica allows `1/fallback_divisor` of the limits.
    pub fallback_divisor: NonZeroU32,
}

impl TryFrom<&RateLimitConfig> for RateLimitSettings {
    type Error = ConfigError;

    fn try_from(limits: &RateLimitConfig) -> Result<Self, ConfigError> {
        Ok(RateLimitSettings {
            requests_per_minute: limits.requests_per_minute,
            burst: limits.burst,
            auth_failures_per_minute: limits.auth_failures_per_minute,
            store: match limits.backend {
                RateLimitBackend::Memory => CounterStore::Memory,
                RateLimitBackend::Redis => CounterStore::Redis(RedisSettings::try_from(&limits.redis)?),
            },
        })
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self::try_from(&RateLimitConfig::default()).expect("the defaults are valid")
    }
}

impl TryFrom<&RedisConfig> for RedisSettings {
    type Error = ConfigError;

    /// A URL of either scheme with a host, and bounds that keep a decision quick.
    fn try_from(redis: &RedisConfig) -> Result<Self, ConfigError> {
        let Some(url) = &redis.url else {
            return Err(ConfigError::key(
                "rate_limit.redis.url",
                "is required when rate_limit.backend = \"redis\"",
            ));
        };
        // SECURITY: the URL may carry a password, so errors never quote it.
        let text = url.expose();
        let scheme_ok = text.starts_with("redis://") || text.starts_with("rediss://");
        let host = text.split_once("://").map_or("", |(_, rest)| rest);
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        if !scheme_ok || host.is_empty() || host.starts_with('/') || host.starts_with(':') {
            return Err(ConfigError::key(
                "rate_limit.redis.url",
                "must be redis://host[:port][/db] or rediss://… with a host",
            ));
        }
        let timeout = redis.timeout.0;
        if timeout.is_zero() || timeout > Duration::from_secs(5) {
            return Err(ConfigError::key(
                "rate_limit.redis.timeout",
                "must be between 1ms and 5s",
            ));
        }
        let connections = NonZeroUsize::new(redis.connections)
            .filter(|n| n.get() <= 64)
            .ok_or_else(|| ConfigError::key("rate_limit.redis.connections", "must be between 1 and 64"))?;
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
        if redis.key_prefix.len() > 128 {
            return Err(ConfigError::key(
                "rate_limit.redis.key_prefix",
                "must be at most 128 bytes",
            ));
        }
        Ok(RedisSettings {
            url: url.clone(),
            password: redis.password.clone(),
            password_secret: redis.password_secret.clone(),
            ca_file: redis.ca_file.clone(),
            timeout,
            connections,
            key_prefix: redis.key_prefix.clone(),
            fallback_divisor: NonZeroU32::new(redis.fallback_divisor)
                .ok_or_else(|| ConfigError::key("rate_limit.redis.fallback_divisor", "must be at least 1"))?,
        })
    }
}

/// `[cors]`.
#[derive(Debug, Clone, Default)]
pub struct CorsSettings {
    /// Origins allowed to call the API from a browser; `*` for any.
    pub allowed_origins: Vec<String>,
}

impl From<&CorsConfig> for CorsSettings {
    fn from(cors: &CorsConfig) -> Self {
        CorsSettings {
            allowed_origins: cors.allowed_origins.clone(),
        }
    }
}

/// `[shutdown]`.
#[derive(Debug, Clone)]
pub struct ShutdownSettings {
    /// After SIGTERM, `/readyz` answers 503 for this long before the listener closes.
    pub grace: Duration,
}

impl From<&ShutdownConfig> for ShutdownSettings {
    fn from(shutdown: &ShutdownConfig) -> Self {
        ShutdownSettings {
            grace: shutdown.grace.0,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Default)]
pub struct LogSettings {
    /// `json` or `text`; `None`: text on a terminal, JSON otherwise.
    pub format: Option<LogFormat>,
    /// A valid `tracing` filter; `RUST_LOG` wins.
    pub level: Option<String>,
}

impl TryFrom<&LogConfig> for LogSettings {
    type Error = ConfigError;

    fn try_from(log: &LogConfig) -> Result<Self, ConfigError> {
        if let Some(level) = &log.level
            && tracing_subscriber::EnvFilter::try_new(level).is_err()
        {
            return Err(ConfigError::key(
                "log.level",
                format!("`{level}` is not a log filter; use e.g. \"info\""),
            ));
        }
        Ok(LogSettings {
            format: log.format,
            level: log.level.clone(),
        })
    }
}

/// `[retention]`.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// Images last modified longer ago than this are deleted.
    pub max_age: Duration,
}

impl TryFrom<&RetentionConfig> for RetentionSettings {
    type Error = ConfigError;

    fn try_from(retention: &RetentionConfig) -> Result<Self, ConfigError> {
        Ok(RetentionSettings {
            max_age: positive("retention.max_age", retention.max_age)?,
        })
    }
}

/// A URL in the configuration that is not an absolute `http(s)` URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum UrlError {
    #[error("`{0}` must start with http:// or https://")]
    Scheme(String),
    #[error("`{0}` has no host")]
    NoHost(String),
    #[error("`{0}` is not a valid URL")]
    Invalid(String),
}

pub(super) fn check_http_url(url: &str) -> Result<(), UrlError> {
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
