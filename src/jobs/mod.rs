//! The processing job service: the one place where an image job is admitted to the processing
//! pool, its input read (bytes already received, or a stored object the worker reads itself),
//! checked as its declared format (the upload's content check), run (decode → steps → encode,
//! or a description) and counted. `POST /v1/image/{operation}` calls it, and so will variants at
//! the download URL: neither knows the pool, the check or the counters, and nothing here knows
//! HTTP (the API renders [`JobError`]).

mod memory;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;

use self::memory::{MemoryBudget, Refused};
use crate::{
    config::{ProcessingSettings, UploadSettings},
    content::{
        frames,
        sniff::{self, Rejection},
    },
    metrics::Metrics,
    object_name::{ImageFormat, ObjectName},
    processing::{self, Budget, Encoded, Op, Output, Pool, ProcessError},
    storage::{Storage, StorageError},
};

/// Where a job's image comes from.
pub(crate) enum Source {
    /// Bytes already received (a request body, within `upload.max_bytes`).
    Bytes(Bytes),
    /// A stored object, read whole by the worker, so that copying megabytes into one buffer
    /// never holds an I/O thread; refused over `upload.max_bytes`, like a body.
    Stored(ObjectName),
}

/// What a transform job makes: `steps` in order, the result encoded as `output`.
pub(crate) struct Transform {
    /// Names the job in metrics, traces and logs (`resize`, `pipeline`, …).
    pub operation: &'static str,
    pub steps: Vec<Op>,
    pub output: Output,
    /// `strip-exif`: the metadata go and the pixels stay, without re-encoding where the format
    /// allows it.
    pub strip: bool,
}

/// Why a job gave no result. The API gives each its status (`http::error`). Cloned for each
/// caller that waited on one shared job (variants' single flight).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum JobError {
    /// The stored source could not be read (missing, or storage is down).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored source is larger than an upload may be.
    #[error("the image is larger than the limit of {limit} bytes")]
    SourceTooLarge { limit: u64 },
    /// The input is not the format it claims, declares too many pixels, or is truncated.
    #[error("the image failed its content check: {0:?}")]
    Rejected(Rejection),
    /// Decoding and processing the input would take more memory than the whole processing
    /// budget (`processing.memory_budget`), estimated from its header.
    #[error(
        "processing this image would take an estimated {} MiB, over this server's processing memory budget of {} MiB",
        needed.div_ceil(1 << 20),
        budget >> 20
    )]
    OverMemoryBudget { needed: u64, budget: u64 },
    /// The job's deadline passed while it waited for the running jobs to give memory back.
    #[error(
        "the server's processing memory is taken by other jobs: this one waited {} s for {} MiB; retry later",
        waited.as_secs(),
        needed.div_ceil(1 << 20)
    )]
    NoMemory { needed: u64, waited: std::time::Duration },
    /// The input is animated: a job would see its first frame only, which is never done
    /// silently.
    #[error("the image is animated ({0} frames); animated images are not processed yet")]
    Animated(usize),
    /// The pool refused the job (full, stopped) or the job failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
}

impl JobError {
    /// The `outcome` label of `image_processing_jobs_total`: the processing error's own, and
    /// `refused` for an input refused before any processing.
    fn label(&self) -> &'static str {
        match self {
            JobError::Process(e) => e.label(),
            JobError::Storage(_)
            | JobError::SourceTooLarge { .. }
            | JobError::Rejected(_)
            | JobError::Animated(_)
            | JobError::OverMemoryBudget { .. } => "refused",
            JobError::NoMemory { .. } => "busy",
        }
    }
}

/// The processing pool with the limits its jobs keep (`processing.*`, and `upload.*` for the
/// inputs), the storage stored sources are read from, and the job counters.
pub(crate) struct Jobs {
    pool: Pool,
    /// What the running jobs may hold together (`processing.memory_budget`).
    memory: Arc<MemoryBudget>,
    limits: Arc<ProcessingSettings>,
    storage: Arc<dyn Storage>,
    metrics: Arc<Metrics>,
    /// The largest stored source read (`upload.max_bytes`).
    max_source_bytes: u64,
    /// The largest input decoded: `processing.max_input_pixels`, never above what an upload
    /// may declare (`upload.max_pixels`).
    max_input_pixels: u64,
}

impl Jobs {
    /// The pool of `processing.workers` (0: one per core) and `processing.queue`.
    pub(crate) fn new(
        limits: &ProcessingSettings,
        upload: &UploadSettings,
        storage: Arc<dyn Storage>,
        metrics: Arc<Metrics>,
    ) -> Jobs {
        let workers = limits.workers.map_or_else(
            || std::thread::available_parallelism().map_or(2, usize::from),
            usize::from,
        );
        let memory = limits.memory_budget.map_or_else(memory::automatic, u64::from);
        tracing::info!(
            workers,
            memory_budget_mib = memory >> 20,
            "processing jobs run on {workers} workers within {} MiB",
            memory >> 20
        );
        Jobs {
            pool: Pool::new(workers, limits.queue, limits.job_timeout, metrics.clone()),
            memory: MemoryBudget::new(memory, metrics.clone()),
            limits: Arc::new(limits.clone()),
            storage,
            metrics,
            max_source_bytes: upload.max_bytes.get(),
            max_input_pixels: limits.max_input_pixels.min(upload.max_pixels).get(),
        }
    }

    /// Whether results are stored and answered with their URL (`processing.store_results`),
    /// rather than inline.
    pub(crate) fn stores_results(&self) -> bool {
        self.limits.store_results
    }

    /// Decodes the `format` image of `source`, applies the transform's steps and encodes the
    /// result.
    pub(crate) async fn transform(
        &self,
        format: ImageFormat,
        source: Source,
        transform: Transform,
    ) -> Result<Encoded, JobError> {
        let Transform {
            operation,
            steps,
            output,
            strip,
        } = transform;
        let (limits, metrics) = (self.limits.clone(), self.metrics.clone());
        let encoded = self
            .run(
                operation,
                format,
                source,
                Some(self.max_input_pixels),
                move |input, budget, memory| {
                    if let Some(kept) = processing::lossless(strip, &steps, input, format, &output) {
                        return Ok(kept);
                    }
                    let _held = memory.reserve(&steps, output.format.format(), budget)?;
                    Ok(processing::run(
                        operation, &steps, input, format, output, &limits, &metrics, budget,
                    )?)
                },
            )
            .await?;
        tracing::info!(
            operation,
            width = encoded.width,
            height = encoded.height,
            size = encoded.bytes.len(),
            "processed an image"
        );
        Ok(encoded)
    }

    /// `extract/metadata`: the description of the `format` image of `source`. Animated images
    /// are described too, and the whole file is read however many pixels it declares (nothing
    /// is decoded).
    pub(crate) async fn describe(
        &self,
        operation: &'static str,
        format: ImageFormat,
        source: Source,
    ) -> Result<serde_json::Value, JobError> {
        self.run(operation, format, source, None, move |input, _, _| {
            Ok(processing::describe(
                input,
                format,
                frames::animation_frames(format, input),
            )?)
        })
        .await
    }

    /// `extract/colors`: up to `count` dominant colours of the `format` image of `source`.
    pub(crate) async fn colors(
        &self,
        operation: &'static str,
        format: ImageFormat,
        source: Source,
        count: usize,
    ) -> Result<serde_json::Value, JobError> {
        let limits = self.limits.clone();
        self.run(
            operation,
            format,
            source,
            Some(self.max_input_pixels),
            move |input, budget, memory| {
                let _held = memory.reserve(&[], ImageFormat::Png, budget)?;
                Ok(processing::dominant_colors(input, format, count, &limits, budget)?)
            },
        )
        .await
    }

    /// Runs `job` on the pool once its input is read and has passed the content check; with a
    /// pixel limit (`max_pixels`, for jobs that decode), animated inputs are refused. A job
    /// reserves its memory ([`Memory::reserve`]) before it decodes. Every outcome is counted in
    /// `image_processing_jobs_total`, a job whose caller went away as `abandoned`.
    async fn run<T: Send + 'static>(
        &self,
        operation: &'static str,
        format: ImageFormat,
        source: Source,
        max_pixels: Option<u64>,
        job: impl FnOnce(&[u8], &Budget, Memory<'_>) -> Result<T, JobError> + Send + 'static,
    ) -> Result<T, JobError> {
        let runtime = tokio::runtime::Handle::current();
        let (storage, max_bytes, memory) = (self.storage.clone(), self.max_source_bytes, self.memory.clone());
        let max_output_pixels = self.limits.max_output_pixels.get();
        let unfinished = Unfinished(Some((self.metrics.clone(), operation)));
        let ran = self
            .pool
            .run(move |budget| {
                let checked = || -> Result<T, JobError> {
                    let bytes = match source {
                        Source::Bytes(bytes) => bytes,
                        Source::Stored(name) => runtime.block_on(read_whole(storage.as_ref(), &name, max_bytes))?,
                    };
                    let dims =
                        sniff::check(format, &bytes, max_pixels.unwrap_or(u64::MAX)).map_err(JobError::Rejected)?;
                    let frames = frames::animation_frames(format, &bytes);
                    if frames > 1 && max_pixels.is_some() {
                        return Err(JobError::Animated(frames));
                    }
                    let memory = Memory {
                        budget: &memory,
                        format,
                        input: &bytes,
                        dims,
                        max_output_pixels,
                    };
                    job(&bytes, budget, memory)
                };
                Ok(checked())
            })
            .await;
        let result = ran.map_err(JobError::Process).and_then(|checked| checked);
        unfinished.finished();
        let outcome = result.as_ref().map_or_else(JobError::label, |_| "ok");
        self.metrics.processing.job(operation, outcome);
        result
    }
}

/// A job's access to the memory budget, with what its estimate is made from: the input and
/// the size of its largest frame, as the content check read it.
struct Memory<'a> {
    budget: &'a Arc<MemoryBudget>,
    format: ImageFormat,
    input: &'a [u8],
    dims: Option<(u64, u64)>,
    max_output_pixels: u64,
}

impl Memory<'_> {
    /// Reserves what decoding the input and applying `steps` will hold at its peak, waiting
    /// for it while the job's `budget` allows; held until the reservation is dropped.
    fn reserve(&self, steps: &[Op], output: ImageFormat, budget: &Budget) -> Result<memory::Reservation, JobError> {
        let needed = processing::estimated_memory(
            self.format,
            self.input,
            self.dims,
            steps,
            self.max_output_pixels,
            output,
        );
        Ok(self.budget.reserve(needed, budget)?)
    }
}

impl From<Refused> for JobError {
    fn from(refused: Refused) -> JobError {
        match refused {
            Refused::OverBudget { needed, budget } => JobError::OverMemoryBudget { needed, budget },
            Refused::Waited { needed, waited } => JobError::NoMemory { needed, waited },
            Refused::Stopped(stopped) => JobError::Process(stopped),
        }
    }
}

/// Reads a stored object whole, refused over `limit` bytes; copied chunk by chunk as they
/// arrive into one buffer of the declared size (no second copy of the whole object).
async fn read_whole(storage: &dyn Storage, name: &ObjectName, limit: u64) -> Result<Bytes, JobError> {
    let got = storage.get(name, None).await?;
    if got.meta.len > limit {
        return Err(JobError::SourceTooLarge { limit });
    }
    let mut whole = BytesMut::with_capacity(usize::try_from(got.meta.len).unwrap_or(0));
    let mut body = got.body;
    while let Some(chunk) = body.try_next().await? {
        if whole.len() as u64 + chunk.len() as u64 > limit {
            return Err(JobError::SourceTooLarge { limit });
        }
        whole.extend_from_slice(&chunk);
    }
    Ok(whole.freeze())
}

/// Counts a job as `abandoned` when its caller's future is dropped before the job's outcome
/// is known (the client hung up, or the request timed out).
struct Unfinished(Option<(Arc<Metrics>, &'static str)>);

impl Unfinished {
    fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some((metrics, operation)) = self.0.take() {
            metrics.processing.job(operation, "abandoned");
        }
    }
}
