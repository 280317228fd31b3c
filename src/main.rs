//! Entry point: parse the command line, load the configuration, start serving.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use image_gateway::{
    Listeners,
    api::download::variant,
    auth::signing::UrlSigner,
    commands::{
        Exit,
        cli::{Cli, Command},
        probe,
    },
    config::Settings,
    object_name::{DOWNLOAD_PREFIX, NAME_FORMAT, ObjectName},
};

#[tokio::main]
async fn main() -> ExitCode {
    run(Cli::parse()).await.into()
}

async fn run(cli: Cli) -> Exit {
    // Before the configuration: a probe runs where none is mounted (a Helm test pod).
    if let Some(Command::Probe { url, expect, timeout }) = &cli.command {
        return probe(url, *expect, *timeout).await;
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e}");
            return Exit::Config;
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            if let Err(code) = variant_rules(&settings) {
                return code;
            }
            print!("{}", settings.to_redacted_toml());
            Exit::Success
        }
        Command::Serve => {
            let telemetry = image_gateway::telemetry::init(&settings.log);
            let code = serve(settings).await;
            telemetry.shutdown();
            code
        }
        Command::Sign {
            object_name,
            ttl,
            variant,
        } => sign(&settings, &object_name, ttl, variant.as_deref()),
        Command::Probe { .. } => unreachable!("answered before the configuration is loaded"),
        Command::Retention { max_age, dry_run } => {
            let telemetry = image_gateway::telemetry::init(&settings.log);
            let max_age = max_age.unwrap_or(settings.retention.max_age);
            let exit = match image_gateway::retention(&settings, max_age, dry_run).await {
                Ok(report) => report.finish(dry_run),
                Err(e) => {
                    eprintln!("retention cannot start: {e}");
                    Exit::Unavailable
                }
            };
            telemetry.shutdown();
            exit
        }
    }
}

/// `probe`: 0 when `url` answers `expect`, 1 when it answers otherwise or not at all, 64 for a
/// URL or status it cannot ask for.
async fn probe(url: &str, expect: u16, timeout: std::time::Duration) -> Exit {
    let Ok(expected) = http::StatusCode::from_u16(expect) else {
        eprintln!("--expect {expect} is not an HTTP status");
        return Exit::Config;
    };
    match probe::probe(url, expected, timeout).await {
        Ok(status) => {
            println!("{url}: {status}");
            Exit::Success
        }
        Err(e @ probe::ProbeError::Url(_)) => {
            eprintln!("{e}");
            Exit::Config
        }
        Err(e) => {
            eprintln!("{e}");
            Exit::Failure
        }
    }
}

/// The variants `[variants]` allows (its presets checked, as `serve` checks them), or exit 64.
fn variant_rules(settings: &Settings) -> Result<variant::Rules, Exit> {
    variant::Rules::new(&settings.variants).map_err(|e| {
        eprintln!("invalid configuration: {e}");
        Exit::Config
    })
}

/// Prints a signed download URL for `object_name`, or for its `variant` (`w=400&format=webp`).
fn sign(settings: &Settings, object_name: &str, ttl: Option<std::time::Duration>, options: Option<&str>) -> Exit {
    let name = match ObjectName::parse(object_name) {
        Ok(name) => name,
        Err(e) => {
            eprintln!("invalid object name: {e}; a valid name is {NAME_FORMAT}");
            return Exit::Config;
        }
    };
    let Some(signer) = UrlSigner::new(&settings.auth.url_signing_keys) else {
        eprintln!("invalid configuration: `auth.url_signing_key` is not set; signing needs it");
        return Exit::Config;
    };
    let rules = match variant_rules(settings) {
        Ok(rules) => rules,
        Err(code) => return code,
    };
    let key = match options.map(|query| variant::key_of(&name, query, &rules)).transpose() {
        Ok(key) => key.flatten(),
        Err(e) => {
            eprintln!("invalid --variant: {e}");
            return Exit::Config;
        }
    };
    let ttl = ttl.unwrap_or(settings.auth.signed_url_ttl);
    let base = &settings.public_url;
    let signed = signer.query_for(&name, key.as_deref(), ttl);
    match options.filter(|_| key.is_some()) {
        Some(options) => println!("{base}{DOWNLOAD_PREFIX}{name}?{options}&{signed}"),
        None => println!("{base}{DOWNLOAD_PREFIX}{name}?{signed}"),
    }
    Exit::Success
}

async fn serve(settings: Settings) -> Exit {
    let bind = |address, key: &'static str| async move {
        tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on {address}{key}: {e}"))
    };
    let listeners = match (
        bind(settings.listen, "").await,
        bind(settings.admin_listen, " (admin_listen)").await,
    ) {
        (Ok(public), Ok(admin)) => Listeners { public, admin },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cannot start: {e}");
            return Exit::Unavailable;
        }
    };
    match image_gateway::run(settings, listeners, image_gateway::shutdown_signal()).await {
        Ok(()) => Exit::Success,
        Err(e) if e.is_config() => {
            eprintln!("{e}");
            Exit::Config
        }
        Err(e) => {
            eprintln!("cannot start: {e}");
            Exit::Unavailable
        }
    }
}
