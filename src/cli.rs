//! Command line: `serve` (the default) and `check-config`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Load and validate the configuration, print it with secrets redacted, and exit.
    CheckConfig,
}
