//! Logs and traces, set up once.
//!
//! Logs: `tracing` lines, JSON or text (`log.format`; unset: text on a terminal, JSON
//! otherwise), filtered by `RUST_LOG`, else `log.level`, else `info`, written to stderr by one
//! writer thread (request threads only format and queue their line; see `log_writer`).
//! Traces: OpenTelemetry over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, named by `OTEL_SERVICE_NAME`, sampled by
//! `OTEL_TRACES_SAMPLER`; off otherwise. Incoming W3C `traceparent` headers parent our spans.
//! An `https://` collector is verified against the system roots plus the PEM file named by
//! `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` or `OTEL_EXPORTER_OTLP_CERTIFICATE` (the OTel names),
//! e.g. a mesh's or cert-manager's CA.

use std::io::IsTerminal;

use http::HeaderMap;
use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogFormat, LogSettings};

/// Keeps the trace pipeline alive; [`Telemetry::shutdown`] flushes the spans still queued.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    /// Dropping it writes the log lines still queued.
    log_writer: Option<WorkerGuard>,
}

impl Telemetry {
    /// Exports the spans still buffered and writes the queued log lines; call once, before the
    /// process exits. The flush may take as long as one export may (the SDK's own default, 5 s,
    /// cut exports that the client would still have waited for).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown_with_timeout(EXPORT_TIMEOUT)
        {
            tracing::warn!(error = %e, "could not flush traces");
        }
        drop(self.log_writer);
    }
}

/// How long one export to the collector may take, the flush at exit included.
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Queued log lines before loggers wait (none is ever dropped).
const LOG_QUEUE: usize = 128 * 1024;

/// Stderr behind one writer thread (tracing-appender). A write to stderr was ~8 % of the CPU of
/// a 50 KB download (`perf`), on the I/O thread, one syscall per line. Now the thread writes
/// whatever has queued through a 64 KiB buffer, flushed each time the queue is empty: one
/// syscall per line when idle, one per many lines under load, never one line split in two.
/// Lossless: when `LOG_QUEUE` lines wait, loggers wait.
fn log_writer() -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()))
}

fn otlp_configured() -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.trim().is_empty()))
}

/// The target of the one line per request (`access_log`).
pub(crate) const ACCESS: &str = "access";

/// A JSON log layer to stderr, with or without the event's current span.
fn json_lines<S>(writer: NonBlocking, with_span: bool) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false)
        .json()
        .flatten_event(true)
        .with_current_span(with_span)
        .with_span_list(false)
}

/// Installs the global subscriber. A second call (as in tests) keeps the first one.
pub fn init(config: &LogSettings) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(config.level.as_deref().unwrap_or("info")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    // In JSON the access line carries every field of its request once, so it is written without
    // the request span (whose fields it repeats); other lines keep their span for context.
    let (writer, log_writer) = log_writer();
    let fmt = if json {
        use tracing_subscriber::filter::filter_fn;
        json_lines(writer.clone(), false)
            .with_filter(filter_fn(|m| m.target() == ACCESS))
            .and_then(json_lines(writer, true).with_filter(filter_fn(|m| m.target() != ACCESS)))
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed()
    };

    let provider = otlp_configured().then(build_provider).and_then(|built| match built {
        Ok(provider) => Some(provider),
        Err(e) => {
            eprintln!("traces disabled: cannot set up the OTLP exporter: {e}");
            None
        }
    });
    let otel = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer().with_tracer(provider.tracer("image-gateway"))
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .is_ok();
    if installed && let Some(provider) = &provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    Telemetry {
        provider: provider.filter(|_| installed),
        log_writer: installed.then_some(log_writer),
    }
}

/// Why traces cannot be exported (the service then runs without them).
#[derive(Debug, thiserror::Error)]
enum ExporterError {
    #[error("the OTLP client builder panicked")]
    Panicked,
    #[error("the OTLP CA file {0} {1}")]
    CaFile(String, String),
    #[error("{0}")]
    Tls(String),
    #[error("cannot build the OTLP HTTP client: {0}")]
    Client(String),
    #[error("{0}")]
    Exporter(String),
}

fn build_provider() -> Result<SdkTracerProvider, ExporterError> {
    use opentelemetry_otlp::WithHttpConfig;
    // reqwest's blocking client owns a runtime of its own: it is built, and later dropped, off
    // the async threads.
    let client = std::thread::spawn(otlp_http_client)
        .join()
        .map_err(|_| ExporterError::Panicked)??;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .build()
        .map_err(|e| ExporterError::Exporter(e.to_string()))?;
    // The SDK reads OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and OTEL_TRACES_SAMPLER itself.
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).build())
}

/// The CA file for the collector, by the OpenTelemetry environment variable names.
fn otlp_ca_file() -> Option<std::path::PathBuf> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
    ]
    .iter()
    .filter_map(std::env::var_os)
    .find(|v| !v.is_empty())
    .map(Into::into)
}

/// The exporter's HTTP client: TLS with rustls (aws-lc-rs), trusting the system roots and the
/// certificates of the configured CA file; a bounded time per export.
fn otlp_http_client() -> Result<reqwest_otlp::blocking::Client, ExporterError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = otlp_ca_file() {
        let certs: Vec<_> = CertificateDer::pem_file_iter(&path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ExporterError::CaFile(path.display().to_string(), format!("cannot be read: {e}")))?;
        if certs.is_empty() {
            return Err(ExporterError::CaFile(
                path.display().to_string(),
                "holds no certificate".into(),
            ));
        }
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(ExporterError::CaFile(
                path.display().to_string(),
                "holds no usable certificate".into(),
            ));
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(rustls::crypto::aws_lc_rs::default_provider().into())
        .with_safe_default_protocol_versions()
        .map_err(|e| ExporterError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest_otlp::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| ExporterError::Client(e.to_string()))
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the W3C `traceparent` in `headers`, if there is one.
pub(crate) fn set_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
    if headers.contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let _ = span.set_parent(parent);
    }
}

/// The trace id of `span` in hex, or `-` when it is not traced.
pub(crate) fn trace_id(span: &tracing::Span) -> String {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span_context.trace_id().to_string()
    } else {
        "-".to_owned()
    }
}
