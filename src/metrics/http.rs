//! The HTTP server's metrics: requests answered, responses cut short, connections, uploads.

use std::time::Duration;

use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::registry::{GaugeGuard, histogram_opts, register};

label_set! {
    /// Why a response body ended before its end (`http_responses_aborted_total{reason}`).
    Aborted {
        /// The client went away.
        ClientGone => "client_gone",
        /// Storage failed mid-body.
        StorageFailed => "storage_failed",
    }
}

/// `http_*` and `image_uploads_total`.
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    body_bytes: IntCounterVec,
    in_flight: IntGauge,
    aborted: IntCounterVec,
    connections_open: IntGauge,
    connections_rejected: IntCounter,
    uploads: IntCounterVec,
}

impl HttpMetrics {
    pub(super) fn register(r: &Registry) -> HttpMetrics {
        HttpMetrics {
            requests: register(
                r,
                IntCounterVec::new(
                    Opts::new("http_requests_total", "Requests answered"),
                    &["route", "method", "status"],
                ),
            ),
            duration: register(
                r,
                HistogramVec::new(
                    histogram_opts(
                        "http_request_duration_seconds",
                        "Time from request to the end of the response body",
                    ),
                    &["route", "method"],
                ),
            ),
            body_bytes: register(
                r,
                IntCounterVec::new(
                    Opts::new("http_response_body_bytes_total", "Response body bytes sent"),
                    &["route"],
                ),
            ),
            in_flight: register(
                r,
                IntGauge::new("http_requests_in_flight", "Requests being answered, bodies included"),
            ),
            aborted: register(
                r,
                IntCounterVec::new(
                    Opts::new("http_responses_aborted_total", "Responses whose body did not complete"),
                    &["reason"],
                ),
            ),
            connections_open: register(
                r,
                IntGauge::new(
                    "http_connections_open",
                    "Client connections open on the public listener",
                ),
            ),
            connections_rejected: register(
                r,
                IntCounter::new(
                    "http_connections_rejected_total",
                    "Connections answered 503 and closed because server.max_connections were open",
                ),
            ),
            uploads: register(
                r,
                IntCounterVec::new(
                    Opts::new("image_uploads_total", "Images stored through the upload endpoint"),
                    &["format"],
                ),
            ),
        }
    }

    /// A client connection is open on the public listener until the guard drops.
    pub(crate) fn connection_opened(&self) -> GaugeGuard {
        GaugeGuard::new(&self.connections_open)
    }

    /// A connection over `server.max_connections` was answered 503 and closed.
    pub(crate) fn connection_rejected(&self) {
        self.connections_rejected.inc();
    }

    /// A request is being answered until the guard drops (its body included).
    pub(crate) fn request_in_flight(&self) -> GaugeGuard {
        GaugeGuard::new(&self.in_flight)
    }

    /// A request to `route` (its name) was answered: its count, duration and body bytes.
    pub(crate) fn request_done(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        elapsed: Duration,
        body_bytes: u64,
    ) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.duration
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
        self.body_bytes.with_label_values(&[route]).inc_by(body_bytes);
    }

    /// A response body that did not complete.
    pub(crate) fn response_aborted(&self, why: Aborted) {
        self.aborted.with_label_values(&[why.label()]).inc();
    }

    /// An image of `format` (its name) stored through the upload endpoint.
    pub(crate) fn upload_stored(&self, format: &'static str) {
        self.uploads.with_label_values(&[format]).inc();
    }
}
