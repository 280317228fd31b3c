//! What can go wrong with a processing job.

/// Why a job failed; the HTTP layer maps each to its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// A parameter is missing, unknown or out of range (400).
    #[error("{0}")]
    BadParameter(String),
    /// The input cannot be decoded: corrupt, truncated, or not what it says (422).
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
    /// The input is over `processing.max_input_pixels` (413).
    #[error("{0}")]
    TooLarge(String),
    /// The conversion is not supported (422).
    #[error("{0}")]
    Unsupported(String),
    /// Every worker is busy and the queue is full (503 with `Retry-After`).
    #[error("image processing is at capacity ({0} jobs running or queued); retry later")]
    Busy(usize),
    /// The job ran past `processing.job_timeout` and was stopped (422: the input or the
    /// operation asks more work than one job is allowed).
    #[error(
        "the job was stopped after processing.job_timeout ({0:?}): this image and these steps take longer than a job \
         may; ask for a smaller result or fewer steps"
    )]
    TimedOut(std::time::Duration),
    /// The job's client went away (or its request timed out) before it ended; it was stopped.
    /// Nobody reads this answer: it names the outcome in logs and metrics.
    #[error("the job was stopped: its client went away")]
    Abandoned,
    /// The job could not run (500).
    #[error("the processing job failed: {0}")]
    Failed(String),
}

impl ProcessError {
    /// The `outcome` label of `image_processing_jobs_total`.
    pub fn label(&self) -> &'static str {
        match self {
            ProcessError::BadParameter(_) => "bad_parameter",
            ProcessError::Undecodable(_) => "undecodable",
            ProcessError::TooLarge(_) => "too_large",
            ProcessError::Unsupported(_) => "unsupported",
            ProcessError::Busy(_) => "busy",
            ProcessError::TimedOut(_) => "timed_out",
            ProcessError::Abandoned => "abandoned",
            ProcessError::Failed(_) => "failed",
        }
    }
}
