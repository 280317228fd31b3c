//! The configuration as written: serde types read by figment from defaults, a TOML file and
//! `IMAGE_GATEWAY_*` environment variables. [`super::Settings`] validates it.

use std::{
    collections::BTreeMap,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use serde::{Deserialize, Serialize};

use super::{
    secret::Secret,
    units::{ByteSize, HumanDuration},
};

/// Environment variables with this prefix override the file (`IMAGE_GATEWAY_STORAGE__S3__BUCKET`).
pub const ENV_PREFIX: &str = "IMAGE_GATEWAY_";

/// The settings outside any section, the only ones named without a `__`.
const TOP_LEVEL: [&str; 3] = ["listen", "public_url", "admin_listen"];

/// Whether `IMAGE_GATEWAY_{key}` is a setting: a section's key (`STORAGE__BACKEND`) or a
/// top-level one (`LISTEN`). The others are not read: Kubernetes gives every container
/// variables for each Service of its namespace, named after it, and a release named
/// `image-gateway` has `IMAGE_GATEWAY_PORT=tcp://…`, `IMAGE_GATEWAY_SERVICE_HOST` and more
/// (service links); read as settings, they stopped the process at start. A typo inside a
/// section (`STORAGE__BAKEND`) is still refused.
fn is_setting(key: &str) -> bool {
    key.contains("__") || TOP_LEVEL.iter().any(|top| top.eq_ignore_ascii_case(key))
}

/// The whole configuration, one field per section; absent sections take their defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP listener binds.
    pub listen: SocketAddr,
    /// Base of the URLs we hand out (`upload_url`); defaults to `http://{listen}`.
    pub public_url: Option<String>,
    /// Address of the admin listener: `/metrics`, `/livez`, `/readyz`.
    pub admin_listen: SocketAddr,
    /// Where images are stored (`[storage]`).
    pub storage: StorageConfig,
    /// Limits on uploads (`[upload]`).
    pub upload: UploadConfig,
    /// Timeouts and limits of the HTTP server (`[server]`).
    pub server: ServerConfig,
    /// Headers on image responses (`[http]`).
    pub http: HttpConfig,
    /// Who may download and upload (`[auth]`).
    pub auth: AuthConfig,
    /// Request rate limits (`[rate_limit]`).
    pub rate_limit: RateLimitConfig,
    /// Cross-origin access from browsers (`[cors]`).
    pub cors: CorsConfig,
    /// Graceful shutdown (`[shutdown]`).
    pub shutdown: ShutdownConfig,
    /// Log format and level (`[log]`).
    pub log: LogConfig,
    /// What the `retention` command deletes (`[retention]`).
    pub retention: RetentionConfig,
    /// `[processing]`: the image operations (`POST /v1/image/{operation}`).
    pub processing: ProcessingConfig,
    /// The hot-object cache in front of storage (`[cache]`).
    pub cache: CacheConfig,
    /// Variants at the download URL (`[variants]`).
    pub variants: VariantsConfig,
}

/// `[variants]`: images resized and re-encoded on request at the download URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VariantsConfig {
    /// Memory for rendered variants kept for the next request (0: none kept; simultaneous
    /// requests for one variant still share one render).
    pub cache_max_bytes: ByteSize,
    /// Named variants, asked for as `?preset=NAME`: each a variant's options written as a
    /// query (`card = "w=400&h=300&fit=cover&format=auto"`). Options given beside a preset
    /// override its own.
    pub presets: BTreeMap<String, String>,
    /// Which variants are served: `any` (every option) or `presets` (only `?preset=NAME`, and
    /// nothing beside it: a fixed set of renders).
    pub allow: VariantsAllowed,
    /// The sides (pixels) a variant's width and height snap up to, ascending; the largest is
    /// the largest side served. `srcset` widths are picked from these.
    pub sides: Vec<u32>,
    /// Keep rendered variants in storage too (`variants/NAME/…` beside the objects, deleted
    /// with their source): a new pod or a restart serves them without rendering again.
    pub store: bool,
}

/// `variants.sides` by default: the steps `srcset` widths are picked from, up to 4K.
pub const DEFAULT_VARIANT_SIDES: [u32; 26] = [
    16, 32, 48, 64, 96, 128, 160, 200, 240, 320, 400, 480, 560, 640, 720, 800, 960, 1080, 1200, 1440, 1600, 1920, 2048,
    2560, 3200, 3840,
];

impl Default for VariantsConfig {
    fn default() -> Self {
        Self {
            cache_max_bytes: ByteSize(64 << 20),
            presets: BTreeMap::new(),
            allow: VariantsAllowed::Any,
            sides: DEFAULT_VARIANT_SIDES.to_vec(),
            store: false,
        }
    }
}

/// `variants.allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VariantsAllowed {
    /// Any combination of options.
    Any,
    /// Only the named presets.
    Presets,
}

/// `[processing]`: decoding, operations and encoding.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessingConfig {
    /// Serve `POST /v1/image/{operation}` and variants. `false` answers those 503 and starts
    /// no worker: download-only replicas, with processing in pods of its own.
    pub enabled: bool,
    /// Store each result and answer 201 with its `upload_url` (the page's contract); `false`
    /// answers 200 with the image inline as base64.
    pub store_results: bool,
    /// Jobs decoding, processing or encoding at once; 0 means one per CPU core.
    pub workers: usize,
    /// Jobs waiting for a worker; beyond, 503 with `Retry-After`.
    pub queue: usize,
    /// Inputs with a frame over this many pixels are refused (413) before decoding. Each decoded
    /// pixel takes 4 to 8 bytes: this bounds a job's memory.
    pub max_input_pixels: u64,
    /// Results over this many pixels are refused (400), after any step.
    pub max_output_pixels: u64,
    /// A job running longer than this (on its worker; time in the queue does not count) is
    /// stopped at its next check and answered 422. A job whose client goes away stops too.
    pub job_timeout: HumanDuration,
    /// Which JPEG decoder: `auto` (libjpeg-turbo when the binary was built with it, as the
    /// container image is; else the pure-Rust one) or `rust` (always the pure-Rust one).
    pub jpeg_decoder: JpegDecoder,
    /// Memory the running jobs may hold together, as estimated from each input's header before
    /// it is decoded: a job that does not fit waits for others to finish, one larger than the
    /// whole budget is refused (413). 0 means half the container's memory limit (its cgroup),
    /// or half the machine's memory where there is none.
    pub memory_budget: ByteSize,
    /// The AVIF encoder's speed (libaom in the container image, rav1e in a pure-Rust build), 1
    /// (slowest, smallest) to 10 (fastest); 9 as in imgproxy's published benchmark (imgproxy's
    /// own `AVIF_SPEED`, on libaom's 0–9 scale, defaults to 8).
    pub avif_speed: u8,
}

/// `processing.jpeg_decoder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JpegDecoder {
    /// libjpeg-turbo when built in, else the pure-Rust decoder.
    #[default]
    Auto,
    /// The pure-Rust decoder (jpeg-decoder's DCT scaling, zune-jpeg at full size).
    Rust,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            store_results: true,
            workers: 0,
            queue: 16,
            max_input_pixels: 50_000_000,
            max_output_pixels: 25_000_000,
            job_timeout: HumanDuration(Duration::from_secs(30)),
            jpeg_decoder: JpegDecoder::Auto,
            memory_budget: ByteSize(0),
            avif_speed: 9,
        }
    }
}

/// `[cache]`: whole small objects kept in memory in front of storage. Stored images never
/// change, so a copy is only ever stale once retention has deleted the original: it is then
/// served for at most `ttl` more.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// On or off; unset: on with the `s3` backend, off with `fs` (the kernel's page cache
    /// already keeps hot files in memory).
    pub enabled: Option<bool>,
    /// Memory for cached objects in all.
    pub max_bytes: ByteSize,
    /// Objects up to this size are kept whole; larger ones stream from storage every time
    /// (their metadata is kept, for HEAD and conditional requests).
    pub max_object_bytes: ByteSize,
    /// How long an object (or its metadata) is served from memory.
    pub ttl: HumanDuration,
    /// How long a 404 is remembered; 0 turns that off. An upload through this replica
    /// forgets it at once.
    pub negative_ttl: HumanDuration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            max_bytes: ByteSize(64 << 20),
            max_object_bytes: ByteSize(1 << 20),
            ttl: HumanDuration(Duration::from_secs(60)),
            negative_ttl: HumanDuration(Duration::from_secs(1)),
        }
    }
}

/// `[shutdown]`: how the service stops after SIGTERM.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// After SIGTERM, `/readyz` answers 503 for this long before the listener closes, so load
    /// balancers stop sending traffic first.
    pub grace: HumanDuration,
}

/// How log lines are written (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// `[log]`: log format and verbosity.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `json` or `text`; unset: text on a terminal, JSON otherwise.
    pub format: Option<LogFormat>,
    /// A `tracing` filter such as `info` or `image_gateway=debug,info`; `RUST_LOG` wins.
    pub level: Option<String>,
}

/// `[storage]`: the backend images are stored in, and its settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Which backend to use: `fs` (the default) or `s3`.
    pub backend: Backend,
    /// Longest we wait for storage to start answering (and between two body chunks).
    pub timeout: HumanDuration,
    /// Settings of the `fs` backend.
    pub fs: FsConfig,
    /// Settings of the `s3` backend.
    pub s3: S3Config,
}

/// A storage backend (`storage.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Files in a local folder (`storage.fs`).
    Fs,
    /// An S3-compatible bucket, such as MinIO (`storage.s3`).
    S3,
}

/// `[storage.fs]`: the local-folder backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FsConfig {
    /// Folder holding one file per image; created if missing.
    pub root: PathBuf,
    /// Serve reads that the kernel's page cache answers at once on the serving threads, with no
    /// trip to tokio's blocking pool (Linux: `openat2(RESOLVE_CACHED)`, `preadv2(RWF_NOWAIT)`,
    /// so a disk read never stalls a serving thread); everything else, and every read on other
    /// systems, still goes to the blocking pool. `false` sends every read to the pool.
    pub inline_reads: bool,
}

/// `[storage.s3]`: the S3/MinIO backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// `http(s)://host:port` of MinIO or any S3; empty means AWS's own endpoint for `region`.
    pub endpoint: Option<String>,
    /// Bucket holding the images; required with `backend = "s3"`.
    pub bucket: String,
    /// Region requests are signed for (and whose endpoint AWS uses).
    pub region: String,
    /// Prepended to every object name to make its key (e.g. `images/`).
    pub prefix: String,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted; on by default.
    pub force_path_style: bool,
    /// How long an idle pooled connection to storage is kept for reuse; `0s` opens a new
    /// connection per request (faster against servers that leave Nagle on, such as Garage).
    pub pool_idle_timeout: HumanDuration,
    /// Where the access key comes from: `static` (the two keys below) or `kubernetes` (a Secret).
    pub credentials: CredentialsSource,
    /// Access key id, with `credentials = "static"`.
    pub access_key_id: Option<String>,
    /// Secret access key, with `credentials = "static"`.
    pub secret_access_key: Option<Secret>,
    /// With `credentials = "kubernetes"`: the Secret holding the key, watched for rotation.
    pub secret: StorageSecretConfig,
}

/// Where the S3 backend gets its access key (`storage.s3.credentials`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialsSource {
    /// `storage.s3.access_key_id` and `secret_access_key` from the configuration.
    #[default]
    Static,
    /// A Kubernetes Secret, watched for rotation.
    Kubernetes,
    /// The AWS SDK's default chain: environment, profile files, web identity (IRSA), EKS Pod
    /// Identity / ECS container credentials, EC2 instance profile.
    Default,
}

/// A Kubernetes Secret by name; the namespace defaults to the pod's own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretName {
    /// Name of the Secret.
    pub name: String,
    /// Namespace of the Secret; unset: the client's own (the pod's in a cluster).
    pub namespace: Option<String>,
}

/// `[storage.s3.secret]`: the Kubernetes Secret holding the S3 access key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSecretConfig {
    /// Name of the Secret; required with `credentials = "kubernetes"`.
    pub name: String,
    /// Namespace of the Secret; unset: the client's own (the pod's in a cluster).
    pub namespace: Option<String>,
    /// The data keys holding the access key id and secret; unset: the first pair present of
    /// `accesskey`/`secretkey`, `rootUser`/`rootPassword`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`.
    pub keys: Option<SecretKeys>,
}

/// The data keys of a Secret that hold the access key pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeys {
    /// Data key holding the access key id.
    pub access_key_id: String,
    /// Data key holding the secret access key.
    pub secret_access_key: String,
}

/// `[upload]`: limits on uploaded images.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// Largest image body accepted (e.g. `25MiB`); larger gets 413.
    pub max_bytes: ByteSize,
    /// Raster images declaring more pixels (width × height) than this are refused.
    pub max_pixels: u64,
    /// Uploads processed at once; more get 503 with `Retry-After` (each holds up to `max_bytes`).
    pub max_concurrent: usize,
    /// Uploads processed at once for one client address (behind `server.trusted_proxies`, the
    /// address they report); 0: no cap below `max_concurrent`.
    pub max_concurrent_per_client: usize,
    /// An upload whose body sends no byte for this long is refused with 408 and its slot freed.
    pub body_idle_timeout: HumanDuration,
    /// Once a body has had `body_idle_timeout` to get going, it must have arrived at this many
    /// bytes per second on average, or it is refused with 408 and its slot freed (a byte every
    /// few seconds would otherwise hold a slot until `server.request_timeout`); 0: no minimum.
    pub min_body_rate: ByteSize,
}

/// Whether requests must authenticate (`auth.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Anyone may download and upload (the local quick start).
    None,
    /// Requests need an `X-API-Key` (or, for downloads, a signed URL).
    ApiKey,
}

/// `[auth]`: API keys and signed URLs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `none` (open access, the default) or `api_key`.
    pub mode: AuthMode,
    /// Entries `read:KEY`, `write:KEY` or `KEY` (read).
    pub api_keys: Vec<Secret>,
    /// A file of such entries, one per line; reloaded when it changes.
    pub api_keys_file: Option<PathBuf>,
    /// A Kubernetes Secret whose every data value is such an entry; watched for changes.
    pub api_keys_secret: Option<SecretName>,
    /// HMAC keys for signed URLs: the first signs, all verify. A string or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub url_signing_key: Vec<Secret>,
    /// Validity of the `signed_url` in upload responses (and the `sign` command's default).
    pub signed_url_ttl: HumanDuration,
}

/// `[rate_limit]`: request rate limits per API key or client IP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained rate per API key (per client IP without keys); 0 turns limits off.
    pub requests_per_minute: u32,
    /// Requests allowed at once; 0 means one minute's worth.
    pub burst: u32,
    /// Failed authentications (a wrong API key, a bad or expired signed URL) per client IP and
    /// minute, a burst of as many; past them every request of that client gets 429 until the
    /// budget refills. 0 turns it off. Default 30.
    pub auth_failures_per_minute: u32,
    /// Where the counters live: `memory` (each replica its own, the default) or `redis`
    /// (one budget shared by every replica).
    pub backend: RateLimitBackend,
    /// `[rate_limit.redis]`, with `backend = "redis"`.
    pub redis: RedisConfig,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            requests_per_minute: 0,
            burst: 0,
            auth_failures_per_minute: 30,
            backend: RateLimitBackend::Memory,
            redis: RedisConfig::default(),
        }
    }
}

/// Where rate-limit counters live (`rate_limit.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitBackend {
    /// In this process: every replica enforces the limits on its own.
    Memory,
    /// In Redis (or Valkey): one budget per client across replicas.
    Redis,
}

/// `[rate_limit.redis]`: the shared counters' server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS. A secret: it
    /// may hold the password.
    pub url: Option<Secret>,
    /// Password (Redis `AUTH`), overriding one in the URL.
    pub password: Option<Secret>,
    /// A Kubernetes Secret holding the password, watched: a new version re-authenticates the
    /// open connections and is used for new ones (instead of `password`).
    pub password_secret: Option<RedisPasswordSecret>,
    /// PEM file of the CA that signed the server's certificate, for `rediss://` with a
    /// private CA; unset: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Longest wait for one decision; past it this replica decides alone (its in-memory
    /// limiter) until Redis answers a probe again.
    pub timeout: HumanDuration,
    /// Multiplexed connections, used in turn.
    pub connections: usize,
    /// Prefix of every key written (several services can share one Redis).
    pub key_prefix: String,
    /// While Redis is unreachable, each replica allows `1/fallback_divisor` of the limits
    /// (set it to the usual replica count to keep the sum near the limit); 1 (the default)
    /// lets each replica allow the full limits.
    pub fallback_divisor: u32,
}

/// `[rate_limit.redis.password_secret]`: the Kubernetes Secret with the Redis password.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisPasswordSecret {
    /// Name of the Secret.
    pub name: String,
    /// Namespace of the Secret; unset: the client's own (the pod's in a cluster).
    pub namespace: Option<String>,
    /// The data key holding the password (`redis-password`, as bitnami's charts write it).
    #[serde(default = "default_redis_password_key")]
    pub key: String,
}

fn default_redis_password_key() -> String {
    "redis-password".to_owned()
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            password: None,
            password_secret: None,
            ca_file: None,
            timeout: HumanDuration(Duration::from_millis(20)),
            connections: 2,
            key_prefix: "image-gateway:ratelimit:".to_owned(),
            fallback_divisor: 1,
        }
    }
}

/// `[cors]`: cross-origin access from browsers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins (`https://app.example`) allowed to call the API from a browser; `*` for any.
    pub allowed_origins: Vec<String>,
}

/// `[server]`: timeouts and limits of the HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// A client must send its whole request head within this time.
    pub header_read_timeout: HumanDuration,
    /// On shutdown, in-flight requests get this long to finish.
    pub drain_timeout: HumanDuration,
    /// Proxies (addresses or networks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// IPv6 clients are counted per network of this prefix length in every per-client budget
    /// (rate limits, failed authentications, per-client upload caps): one subscriber holds a
    /// whole /64 and could otherwise rotate through 2^64 budgets. Logs keep the full address.
    pub client_ipv6_prefix: u8,
    /// Open client connections at most; more are answered 503 and closed at once.
    pub max_connections: usize,
    /// Open connections from one peer address at most (0: no cap); more are answered 503 and
    /// closed. Behind a proxy or ingress every connection comes from its few addresses: raise
    /// it (or set 0) there. Default 512.
    pub max_connections_per_client: usize,
    /// A new connection that sends no byte within this time is closed (then the request head
    /// has `header_read_timeout`).
    pub first_byte_timeout: HumanDuration,
    /// Largest request head (all header names and values) answered normally; larger gets 431.
    pub max_header_bytes: ByteSize,
    /// Most header fields in one request; more gets 431.
    pub max_headers: usize,
    /// Longest request target (path and query); longer gets 414.
    pub max_url_bytes: usize,
    /// Longest time from the request head to the response head (reading an upload included); then 408.
    pub request_timeout: HumanDuration,
    /// A connection with no request in progress for this long is closed (HTTP/2: GOAWAY): an
    /// HTTP/2 client answering every PING but sending nothing would hold it forever.
    pub idle_timeout: HumanDuration,
    /// A connection whose responses its client reads nothing of for this long is closed: a
    /// download whose client never reads would hold its place under `max_connections`.
    pub send_timeout: HumanDuration,
}

/// `[http]`: headers on image responses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `Cache-Control` on image responses. Unset, it follows the access: `public` for open
    /// access, `private` for key-authenticated downloads, and for signed URLs `public` but
    /// never beyond the URL's expiry; always `immutable` (names are never reused).
    pub cache_control: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            storage: StorageConfig::default(),
            upload: UploadConfig::default(),
            server: ServerConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            cors: CorsConfig::default(),
            shutdown: ShutdownConfig::default(),
            log: LogConfig::default(),
            retention: RetentionConfig::default(),
            processing: ProcessingConfig::default(),
            cache: CacheConfig::default(),
            variants: VariantsConfig::default(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Fs,
            timeout: HumanDuration(Duration::from_secs(10)),
            fs: FsConfig::default(),
            s3: S3Config::default(),
        }
    }
}

impl Default for FsConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("./data"),
            inline_reads: true,
        }
    }
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            bucket: String::new(),
            region: "us-east-1".into(),
            prefix: String::new(),
            force_path_style: true,
            pool_idle_timeout: HumanDuration(Duration::from_secs(90)),
            credentials: CredentialsSource::Static,
            access_key_id: None,
            secret_access_key: None,
            secret: StorageSecretConfig::default(),
        }
    }
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            max_bytes: ByteSize(25 << 20),
            max_pixels: 100_000_000,
            max_concurrent: 16,
            max_concurrent_per_client: 4,
            body_idle_timeout: HumanDuration(Duration::from_secs(10)),
            min_body_rate: ByteSize(8 << 10),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: HumanDuration(Duration::from_secs(10)),
            drain_timeout: HumanDuration(Duration::from_secs(30)),
            trusted_proxies: Vec::new(),
            client_ipv6_prefix: 64,
            max_connections: 10_000,
            idle_timeout: HumanDuration(Duration::from_secs(120)),
            send_timeout: HumanDuration(Duration::from_secs(60)),
            max_connections_per_client: 512,
            first_byte_timeout: HumanDuration(Duration::from_secs(10)),
            max_header_bytes: ByteSize(16 << 10),
            max_headers: 64,
            max_url_bytes: 4096,
            request_timeout: HumanDuration(Duration::from_secs(60)),
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            grace: HumanDuration(Duration::from_secs(5)),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::None,
            api_keys: Vec::new(),
            api_keys_file: None,
            api_keys_secret: None,
            url_signing_key: Vec::new(),
            signed_url_ttl: HumanDuration(Duration::from_secs(3600)),
        }
    }
}

/// `[retention]`: what the `retention` command deletes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Images whose last modification is older than this are deleted.
    pub max_age: HumanDuration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_age: HumanDuration(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// Accepts `"key"` or `["key1", "key2"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Secret),
        Many(Vec<Secret>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// A configuration problem, as one line naming the key; the process exits 64 with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub(crate) String);

impl ConfigError {
    pub(crate) fn key(key: &str, problem: impl fmt::Display) -> Self {
        Self(format!("invalid configuration: `{key}`: {problem}"))
    }
}

impl Config {
    /// Loads defaults, then `file` (which must exist when given), then the environment;
    /// [`Settings::load`](super::Settings::load) also validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "invalid configuration: file {} does not exist or is not a file",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|key| is_setting(key.as_str()))
                .split("__"),
        );
        Self::from_figment(figment)
    }

    /// Extracts a config from any figment (tests build their own); [`Settings::new`](super::Settings::new) validates it.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(|errors| {
            let first = errors.into_iter().next();
            match first {
                Some(e) if !e.path.is_empty() => ConfigError::key(&e.path.join("."), &e.kind),
                Some(e) => ConfigError(format!("invalid configuration: {}", e.kind)),
                None => ConfigError("invalid configuration".into()),
            }
        })?;
        Ok(config)
    }

    /// The effective configuration as TOML, secrets redacted (for `check-config`).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendSettings, S3KeySource, S3Settings, Settings};
    use figment::providers::Serialized;

    fn load(toml: &str) -> Result<Settings, ConfigError> {
        Settings::new(Config::from_figment(Figment::new().merge(Toml::string(toml)))?)
    }

    #[test]
    fn defaults_are_usable() {
        let settings = load("").unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.public_url, "http://127.0.0.1:8080");
        assert!(matches!(settings.storage.backend, BackendSettings::Fs(_)));
        assert_eq!(settings.storage.timeout, Duration::from_secs(10));
        assert_eq!(settings.upload.max_bytes.get(), 25 << 20);
        assert!(Config::default().storage.s3.force_path_style);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = load("[storage]\ntimeout = \"soon\"").unwrap_err().to_string();
        assert!(err.contains("`storage.timeout`"), "{err}");
        let err = load("[storage]\nbackend = \"ftp\"").unwrap_err().to_string();
        assert!(err.contains("`storage.backend`"), "{err}");
        let err = load("[upload]\nmax_bytes = \"lots\"").unwrap_err().to_string();
        assert!(err.contains("`upload.max_bytes`"), "{err}");
        let err = load("[storage]\nbackend = \"s3\"").unwrap_err().to_string();
        assert!(err.contains("`storage.s3.bucket`"), "{err}");
        let err = load("public_url = \"ftp://x\"").unwrap_err().to_string();
        assert!(err.contains("`public_url`"), "{err}");
        let err = load("[storage]\ntimeot = \"5s\"").unwrap_err().to_string();
        assert!(err.contains("timeot"), "{err}");
        assert_eq!(err.lines().count(), 1);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn variant_presets_come_from_a_table_or_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gw.toml",
                "[variants]\nallow = \"presets\"\n[variants.presets]\ncard = \"w=400&format=auto\"",
            )?;
            jail.set_env("IMAGE_GATEWAY_VARIANTS__PRESETS__THUMB", "w=64");
            let config = Config::load(Some(Path::new("gw.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.variants.allow, VariantsAllowed::Presets);
            let presets: Vec<(&str, &str)> = config
                .variants
                .presets
                .iter()
                .map(|(n, o)| (n.as_str(), o.as_str()))
                .collect();
            assert_eq!(presets, [("card", "w=400&format=auto"), ("thumb", "w=64")]);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn environment_overrides_nested_keys() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("IMAGE_GATEWAY_STORAGE__S3__BUCKET", "images");
            jail.set_env("IMAGE_GATEWAY_STORAGE__BACKEND", "s3");
            jail.set_env("IMAGE_GATEWAY_UPLOAD__MAX_BYTES", "1MiB");
            jail.set_env("IMAGE_GATEWAY_STORAGE__S3__ACCESS_KEY_ID", "GK0123456789");
            jail.set_env("IMAGE_GATEWAY_STORAGE__S3__SECRET_ACCESS_KEY", "s3cr3t");
            jail.set_env("IMAGE_GATEWAY_CONFIG", "ignored.toml");
            jail.create_file(
                "gw.toml",
                "[storage]\ntimeout = \"3s\"\n[storage.s3]\nbucket = \"file\"",
            )?;
            let settings = Settings::load(Some(Path::new("gw.toml"))).map_err(|e| e.to_string())?;
            let BackendSettings::S3(s3) = &settings.storage.backend else {
                panic!("the environment chose s3")
            };
            assert_eq!(s3.bucket, "images");
            assert_eq!(settings.storage.timeout, Duration::from_secs(3));
            assert_eq!(settings.upload.max_bytes.get(), 1 << 20);
            let S3KeySource::Static { secret_access_key, .. } = &s3.keys else {
                panic!("static keys")
            };
            assert_eq!(secret_access_key.expose(), "s3cr3t");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn kubernetes_service_links_are_not_read_as_settings() {
        figment::Jail::expect_with(|jail| {
            // What a pod sees beside a Service `image-gateway` (port `http`) and another
            // named `image-gateway-metrics`.
            for (name, value) in [
                ("IMAGE_GATEWAY_PORT", "tcp://198.18.0.10:8080"),
                ("IMAGE_GATEWAY_PORT_8080_TCP", "tcp://198.18.0.10:8080"),
                ("IMAGE_GATEWAY_PORT_8080_TCP_PROTO", "tcp"),
                ("IMAGE_GATEWAY_PORT_8080_TCP_PORT", "8080"),
                ("IMAGE_GATEWAY_PORT_8080_TCP_ADDR", "198.18.0.10"),
                ("IMAGE_GATEWAY_SERVICE_HOST", "198.18.0.10"),
                ("IMAGE_GATEWAY_SERVICE_PORT", "8080"),
                ("IMAGE_GATEWAY_SERVICE_PORT_HTTP", "8080"),
                ("IMAGE_GATEWAY_METRICS_SERVICE_HOST", "198.18.0.11"),
                ("IMAGE_GATEWAY_METRICS_PORT_9090_TCP", "tcp://198.18.0.11:9090"),
            ] {
                jail.set_env(name, value);
            }
            jail.set_env("IMAGE_GATEWAY_LISTEN", "0.0.0.0:8080");
            jail.set_env("IMAGE_GATEWAY_UPLOAD__MAX_BYTES", "1MiB");
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(settings.listen.to_string(), "0.0.0.0:8080");
            assert_eq!(settings.upload.max_bytes.get(), 1 << 20);
            // A mistake inside a section is still refused.
            jail.set_env("IMAGE_GATEWAY_STORAGE__BAKEND", "s3");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("bakend"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_top_level_settings_are_the_configs_plain_fields() {
        let config = Config {
            public_url: Some("http://x".into()),
            ..Config::default()
        };
        let toml::Value::Table(table) = toml::Value::try_from(&config).unwrap() else {
            panic!("a table")
        };
        let mut plain: Vec<&str> = table
            .iter()
            .filter(|(_, v)| !v.is_table())
            .map(|(k, _)| k.as_str())
            .collect();
        plain.sort_unstable();
        let mut expected = TOP_LEVEL.to_vec();
        expected.sort_unstable();
        assert_eq!(plain, expected);
    }

    #[test]
    fn secrets_are_redacted() {
        let settings = Config::from_figment(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(
                "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"b\"\naccess_key_id = \"GKid\"\nsecret_access_key = \"hunter2\"",
            )),
        )
        .and_then(Settings::new)
        .unwrap();
        let BackendSettings::S3(S3Settings {
            keys: S3KeySource::Static { secret_access_key, .. },
            ..
        }) = &settings.storage.backend
        else {
            panic!("static S3 keys")
        };
        assert_eq!(secret_access_key.expose(), "hunter2");
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert!(!settings.to_redacted_toml().contains("hunter2"));
        assert!(settings.to_redacted_toml().contains("[redacted]"));
    }
}
