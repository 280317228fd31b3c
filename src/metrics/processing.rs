//! Processing's metrics: jobs by outcome, the time of each stage, pixels decoded, the memory
//! budget, results stored, and variants served.

use std::time::Duration;

use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::registry::{GaugeGuard, gauge_bytes, histogram_opts, register};

label_set! {
    /// A stage of a processing job (`image_processing_duration_seconds{stage}`).
    Stage {
        /// The input decoded.
        Decode => "decode",
        /// The steps applied.
        Process => "process",
        /// The result encoded.
        Encode => "encode",
    }
}

label_set! {
    /// Where a variant's bytes came from (`image_variants_served_total{tier}`).
    VariantTier {
        /// Rendered for this request.
        Rendered => "rendered",
        /// Read from storage (`variants.store`).
        Stored => "stored",
        /// From memory (`variants.cache_max_bytes`).
        Memory => "memory",
    }
}

/// `image_processing_*` and `image_variants_*`.
pub struct ProcessingMetrics {
    duration: HistogramVec,
    jobs: IntCounterVec,
    results: IntCounterVec,
    variants_served: IntCounterVec,
    variants_bytes: IntCounterVec,
    queued: IntGauge,
    pixels: IntCounterVec,
    memory_budget: IntGauge,
    memory_reserved: IntGauge,
    memory_waits: IntCounter,
}

impl ProcessingMetrics {
    pub(super) fn register(r: &Registry) -> ProcessingMetrics {
        ProcessingMetrics {
            duration: register(
                r,
                HistogramVec::new(
                    histogram_opts(
                        "image_processing_duration_seconds",
                        "Time a processing job spends in each stage (decode, process, encode)",
                    ),
                    &["operation", "stage"],
                ),
            ),
            jobs: register(
                r,
                IntCounterVec::new(
                    Opts::new("image_processing_jobs_total", "Processing jobs by outcome"),
                    &["operation", "outcome"],
                ),
            ),
            variants_served: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "image_variants_served_total",
                        "Variants answered with their bytes, by where they came from: rendered for this request, read from storage, or from memory",
                    ),
                    &["tier", "format"],
                ),
            ),
            variants_bytes: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "image_variants_bytes_total",
                        "Bytes of the variants served (kind=variant) and of their sources (kind=source): the difference is what variants saved",
                    ),
                    &["kind", "format"],
                ),
            ),
            results: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "image_processing_results_stored_total",
                        "Processing results stored in the bucket (answered 201 with their upload_url)",
                    ),
                    &["operation", "format"],
                ),
            ),
            queued: register(
                r,
                IntGauge::new(
                    "image_processing_queue_depth",
                    "Processing jobs admitted and not finished (running or waiting for a worker)",
                ),
            ),
            pixels: register(
                r,
                IntCounterVec::new(
                    Opts::new("image_processing_pixels_total", "Input pixels decoded"),
                    &["operation"],
                ),
            ),
            memory_budget: register(
                r,
                IntGauge::new(
                    "image_processing_memory_budget_bytes",
                    "Memory the processing jobs may hold at once (processing.memory_budget)",
                ),
            ),
            memory_reserved: register(
                r,
                IntGauge::new(
                    "image_processing_memory_reserved_bytes",
                    "Memory the running processing jobs hold, as estimated from their inputs' headers",
                ),
            ),
            memory_waits: register(
                r,
                IntCounter::new(
                    "image_processing_memory_waits_total",
                    "Processing jobs that waited for memory before decoding",
                ),
            ),
        }
    }

    /// One stage of a job of `operation` (its name).
    pub(crate) fn stage(&self, operation: &'static str, stage: Stage, elapsed: Duration) {
        self.duration
            .with_label_values(&[operation, stage.label()])
            .observe(elapsed.as_secs_f64());
    }

    /// A job's end: `ok`, or the label of its refusal or failure (the job error's own).
    pub(crate) fn job(&self, operation: &'static str, outcome: &'static str) {
        self.jobs.with_label_values(&[operation, outcome]).inc();
    }

    /// A result stored under a new name (not counted in `image_uploads_total`).
    pub(crate) fn result_stored(&self, operation: &'static str, format: &'static str) {
        self.results.with_label_values(&[operation, format]).inc();
    }

    /// A variant of `format` answered with its bytes, from `tier`: `variant_len` bytes
    /// instead of the source's `source_len`.
    pub(crate) fn variant_served(&self, tier: VariantTier, format: &'static str, variant_len: u64, source_len: u64) {
        self.variants_served.with_label_values(&[tier.label(), format]).inc();
        self.variants_bytes
            .with_label_values(&["variant", format])
            .inc_by(variant_len);
        self.variants_bytes
            .with_label_values(&["source", format])
            .inc_by(source_len);
    }

    /// Counts a job in `image_processing_queue_depth` until the guard is dropped.
    pub(crate) fn queued(&self) -> GaugeGuard {
        GaugeGuard::new(&self.queued)
    }

    /// Input pixels a job decoded.
    pub(crate) fn pixels(&self, operation: &'static str, pixels: u64) {
        self.pixels.with_label_values(&[operation]).inc_by(pixels);
    }

    /// The memory budget, set once at start.
    pub(crate) fn memory_budget(&self, bytes: u64) {
        self.memory_budget.set(gauge_bytes(bytes));
    }

    /// A job reserved `bytes` of the budget.
    pub(crate) fn memory_reserved(&self, bytes: u64) {
        self.memory_reserved.add(gauge_bytes(bytes));
    }

    /// A job gave back its `bytes`.
    pub(crate) fn memory_released(&self, bytes: u64) {
        self.memory_reserved.sub(gauge_bytes(bytes));
    }

    /// A job had to wait for memory.
    pub(crate) fn memory_wait(&self) {
        self.memory_waits.inc();
    }
}
