//! [`Settings`]: the configuration validated once, section by section (`sections.rs`), into
//! typed values. Nothing built from `Settings` re-checks what is checked here, and nothing
//! downstream reads the raw [`Config`].

use std::{net::SocketAddr, path::Path};

use super::{
    raw::{CacheConfig, Config, ConfigError},
    sections::{
        AuthSettings, BackendSettings, CacheSettings, CorsSettings, HttpSettings, LogSettings, ProcessingSettings,
        RateLimitSettings, RetentionSettings, ServerSettings, ShutdownSettings, StorageSettings, UploadSettings,
        VariantsSettings, check_http_url,
    },
};

/// The validated configuration: one typed value per section.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the HTTP listener binds.
    pub listen: SocketAddr,
    /// Base of the URLs handed out (`upload_url`), without a trailing slash.
    pub public_url: String,
    /// Address of the admin listener.
    pub admin_listen: SocketAddr,
    /// `[storage]`.
    pub storage: StorageSettings,
    /// `[upload]`.
    pub upload: UploadSettings,
    /// `[server]`.
    pub server: ServerSettings,
    /// `[http]`.
    pub http: HttpSettings,
    /// `[auth]`.
    pub auth: AuthSettings,
    /// `[rate_limit]`.
    pub rate_limit: RateLimitSettings,
    /// `[cors]`.
    pub cors: CorsSettings,
    /// `[shutdown]`.
    pub shutdown: ShutdownSettings,
    /// `[log]`.
    pub log: LogSettings,
    /// `[retention]`.
    pub retention: RetentionSettings,
    /// `[processing]`.
    pub processing: ProcessingSettings,
    /// `[cache]`; `None` when it is off.
    pub cache: Option<CacheSettings>,
    /// `[variants]`.
    pub variants: VariantsSettings,
    /// The configuration as written, with the defaults that depend on other keys filled in:
    /// what `check-config` prints.
    effective: Config,
}

impl Settings {
    /// [`Config::load`], then validation.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::new(Config::load(file)?)
    }

    /// Validates `config` once, into typed values; every error names its key.
    pub fn new(config: Config) -> Result<Settings, ConfigError> {
        let public_url = match &config.public_url {
            Some(url) => {
                let url = url.trim().trim_end_matches('/').to_owned();
                check_http_url(&url).map_err(|e| ConfigError::key("public_url", e))?;
                url
            }
            None => format!("http://{}", config.listen),
        };
        let storage = StorageSettings::try_from(&config.storage)?;
        let is_s3 = matches!(storage.backend, BackendSettings::S3(_));
        let cache = CacheSettings::new(&config.cache, is_s3)?;
        let effective = Config {
            public_url: Some(public_url.clone()),
            cache: CacheConfig {
                enabled: Some(cache.is_some()),
                ..config.cache.clone()
            },
            ..config.clone()
        };
        Ok(Settings {
            listen: config.listen,
            public_url,
            admin_listen: config.admin_listen,
            storage,
            upload: UploadSettings::try_from(&config.upload)?,
            server: ServerSettings::try_from(&config.server)?,
            http: HttpSettings::try_from(&config.http)?,
            auth: AuthSettings::try_from(&config.auth)?,
            rate_limit: RateLimitSettings::try_from(&config.rate_limit)?,
            cors: CorsSettings::from(&config.cors),
            shutdown: ShutdownSettings::from(&config.shutdown),
            log: LogSettings::try_from(&config.log)?,
            retention: RetentionSettings::try_from(&config.retention)?,
            processing: ProcessingSettings::try_from(&config.processing)?,
            cache,
            variants: VariantsSettings::from(&config.variants),
            effective,
        })
    }

    /// The effective configuration as TOML, secrets redacted (for `check-config`).
    pub fn to_redacted_toml(&self) -> String {
        self.effective.to_redacted_toml()
    }
}
