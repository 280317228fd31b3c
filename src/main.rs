//! Entry point: parse the command line, load the configuration, start serving.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use image_gateway::{
    Config, EXIT_CONFIG, StartError,
    auth::signing::UrlSigner,
    cli::{Cli, Command},
    object_name::{NAME_FORMAT, ObjectName},
    routes::DOWNLOAD_PREFIX,
    units::HumanDuration,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            print!("{}", config.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Command::Serve => {
            let telemetry = image_gateway::telemetry::init(&config.log);
            let code = serve(config).await;
            telemetry.shutdown();
            code
        }
        Command::Sign { object_name, ttl } => sign(&config, &object_name, ttl),
        Command::Retention { max_age, dry_run } => {
            let telemetry = image_gateway::telemetry::init(&config.log);
            let max_age = max_age.unwrap_or(config.retention.max_age).0;
            let code = match image_gateway::retention(&config, max_age, dry_run).await {
                Ok(report) => {
                    let summary = report.summary(dry_run);
                    tracing::info!(
                        scanned = report.scanned,
                        foreign = report.foreign,
                        expired = report.expired,
                        deleted = report.deleted,
                        bytes_freed = report.bytes_freed,
                        errors = report.errors,
                        dry_run,
                        "retention finished"
                    );
                    println!("{summary}");
                    if report.errors == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("retention cannot start: {e}");
                    ExitCode::from(69)
                }
            };
            telemetry.shutdown();
            code
        }
    }
}

/// Prints a signed download URL for `object_name`.
fn sign(config: &Config, object_name: &str, ttl: Option<HumanDuration>) -> ExitCode {
    let name = match ObjectName::parse(object_name) {
        Ok(name) => name,
        Err(e) => {
            eprintln!("invalid object name: {e}; a valid name is {NAME_FORMAT}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let Some(signer) = UrlSigner::new(&config.auth.url_signing_key) else {
        eprintln!("invalid configuration: `auth.url_signing_key` is not set; signing needs it");
        return ExitCode::from(EXIT_CONFIG as u8);
    };
    let ttl = ttl.unwrap_or(config.auth.signed_url_ttl).0;
    let base = config.public_url.as_deref().unwrap_or_default();
    println!("{base}{DOWNLOAD_PREFIX}{name}?{}", signer.query(&name, ttl));
    ExitCode::SUCCESS
}

async fn serve(config: Config) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", config.listen);
            return ExitCode::from(69);
        }
    };
    match image_gateway::run(config, listener, image_gateway::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ StartError::Config(_)) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_CONFIG as u8)
        }
        Err(e) => {
            eprintln!("cannot start: {e}");
            ExitCode::from(69)
        }
    }
}
