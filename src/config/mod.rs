//! Configuration: defaults, then a TOML file, then `IMAGE_GATEWAY_*` environment variables
//! (`__` separates nesting levels), read into [`Config`] (`raw.rs`) and validated once at
//! start-up into [`Settings`] (`settings.rs`), one typed value per section (`sections.rs`). This layer imports
//! nothing from the rest of the crate.

pub mod api_keys;
pub mod networks;
mod raw;
mod secret;
mod sections;
mod settings;
pub mod units;

pub use raw::{
    AuthConfig, AuthMode, Backend, CacheConfig, Config, ConfigError, CorsConfig, CredentialsSource,
    DEFAULT_VARIANT_SIDES, ENV_PREFIX, FsConfig, HttpConfig, JpegDecoder, LogConfig, LogFormat, ProcessingConfig,
    RateLimitBackend, RateLimitConfig, RedisConfig, RedisPasswordSecret, RetentionConfig, S3Config, SecretKeys,
    SecretName, ServerConfig, ShutdownConfig, StorageConfig, StorageSecretConfig, UploadConfig, VariantsAllowed,
    VariantsConfig,
};
pub use secret::Secret;
pub use sections::{
    AuthSettings, BackendSettings, CacheSettings, CorsSettings, CounterStore, FsSettings, HttpSettings, LogSettings,
    ProcessingSettings, RateLimitSettings, RedisSettings, RetentionSettings, S3Endpoint, S3KeySource, S3Settings,
    ServerSettings, ShutdownSettings, StorageSettings, UploadSettings, VariantsSettings,
};
pub use settings::Settings;
