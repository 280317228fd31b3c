//! Configuration: defaults, then a TOML file, then `IMAGE_GATEWAY_*` environment variables
//! (`__` separates nesting levels), read into [`Config`] (`raw.rs`) and validated once at
//! start-up into [`Settings`] (`settings.rs`), whose values are typed. This layer imports
//! nothing from the rest of the crate.

pub mod api_keys;
pub mod networks;
mod raw;
mod secret;
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
pub use settings::Settings;
