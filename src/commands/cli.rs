//! Command line: `serve` (the default), `check-config`, `retention`, `probe`, `sign`.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

/// The command line: the global `--config` and an optional subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "image-gateway",
    version,
    about = "Streams stored images over HTTP from S3/MinIO or a local folder"
)]
pub struct Cli {
    /// TOML configuration file (environment variables IMAGE_GATEWAY_* override it).
    #[arg(long, global = true, env = "IMAGE_GATEWAY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// A subcommand.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Load and validate the configuration, print it with secrets redacted, and exit.
    CheckConfig,
    /// Delete stored images older than `retention.max_age` (run it from a CronJob).
    Retention {
        /// Override `retention.max_age`, e.g. "7d".
        #[arg(long, value_parser = parse_duration)]
        max_age: Option<Duration>,
        /// Count what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// GET a URL and succeed when it answers the expected status (the image has no curl): a Helm
    /// test hook, a HEALTHCHECK. Exits 0, 1 when the answer or the connection fails, 64 for a
    /// URL it cannot ask. Reads no configuration.
    Probe {
        /// An http:// URL, e.g. `http://image-gateway.images.svc/readyz`
        url: String,
        /// The status that counts as success.
        #[arg(long, default_value_t = 200)]
        expect: u16,
        /// How long the whole probe may take, connecting included.
        #[arg(long, value_parser = parse_duration, default_value = "10s")]
        timeout: Duration,
    },
    /// Print a signed, expiring download URL (needs `auth.url_signing_key`).
    Sign {
        /// The object name, e.g. a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6.png
        object_name: String,
        /// How long the URL stays valid (default: `auth.signed_url_ttl`), e.g. "1h".
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
        /// Variant options the URL is signed for, e.g. "w=400&format=webp": the signature
        /// covers exactly that variant.
        #[arg(long)]
        variant: Option<String>,
    },
}

/// A `--ttl`, `--max-age` or `--timeout` that is not a duration.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not a duration ({source}); use e.g. \"1h\"")]
pub struct DurationError {
    text: String,
    source: humantime::DurationError,
}

fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(text).map_err(|source| DurationError {
        text: text.to_owned(),
        source,
    })
}
