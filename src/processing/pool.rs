//! The processing pool: `processing.workers` dedicated threads run the jobs, at most
//! `processing.queue` more wait; beyond that a job is refused at once (503), as imgproxy's
//! request queue does, so that a burst of processing never starves downloads.
//!
//! Dedicated threads rather than tokio's blocking pool: the blocking pool also serves the fs
//! backend's reads and grows to hundreds of threads, and with glibc every thread that runs a
//! job may get a malloc arena of its own that keeps its peak (a 4K progressive JPEG holds ~50 MB
//! of coefficients). A fixed set of workers keeps that memory bounded: 377 → 167 MiB peak RSS
//! at c=8 in bench/processing.sh, at the same throughput (docs/benchmarks.md). They also run
//! under SCHED_IDLE, below every ordinary thread.
//!
//! Each job gets a [`Budget`]: `processing.job_timeout` from the moment a worker starts it, and
//! stopped when its caller goes away. A job whose caller left while it waited in the queue is
//! never started.

use std::{
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use tokio::sync::{Semaphore, oneshot};

use super::{budget::Budget, error::ProcessError};
use crate::metrics::Metrics;

type Job = Box<dyn FnOnce() + Send>;

/// Bounded concurrency for CPU-heavy jobs.
pub struct Pool {
    jobs: mpsc::Sender<Job>,
    admitted: Arc<Semaphore>,
    capacity: usize,
    job_timeout: Duration,
    metrics: Arc<Metrics>,
}

/// Puts the calling thread under SCHED_IDLE (Linux): it runs whenever a core would otherwise
/// idle, and any ordinary thread that wakes (the I/O threads, a download's file read) takes
/// the core at once. Nice values were not enough: at nice 10 and 19 a download's p99 under full
/// processing load was still 9.9× and 6.3× its idle value, because the scheduler lets a running
/// task finish its slice before a woken one of higher weight; under SCHED_IDLE it is ≤ 3×
/// (docs/benchmarks.md). A thread may always lower its own priority: no capability is needed.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle) {
            tracing::warn!(error = ?e, "could not put a processing worker under SCHED_IDLE");
        }
    }
}

impl Pool {
    /// `workers` threads (at least 1), `queue` more jobs waiting, each job given `job_timeout`
    /// once it starts. The threads end when the pool is dropped.
    pub fn new(workers: usize, queue: usize, job_timeout: Duration, metrics: Arc<Metrics>) -> Pool {
        let workers = workers.max(1);
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..workers {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("image-worker-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let next = receiver.lock().map(|r| r.recv());
                        match next {
                            Ok(Ok(job)) => job(),
                            _ => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a processing worker");
            }
        }
        Pool {
            jobs,
            admitted: Arc::new(Semaphore::new(workers + queue)),
            capacity: workers + queue,
            job_timeout,
            metrics,
        }
    }

    /// Runs `job` on a worker when one is free; refuses at once when the queue is full. The job
    /// checks its budget: when this future is dropped (the client went away, the request timed
    /// out), the job stops at its next check, and is skipped if it has not started.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Budget) -> Result<T, ProcessError> + Send + 'static,
    ) -> Result<T, ProcessError> {
        // Both guards go with the job: a client that gives up frees its place when the job it
        // started reaches its next check.
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| ProcessError::Busy(self.capacity))?;
        let queued = self.metrics.processing.queued();
        let (done, result) = oneshot::channel();
        // The job's stage spans are children of the request's, though they run on another thread.
        let span = tracing::Span::current();
        let (abandoned, abandon) = Budget::guard();
        let limit = self.job_timeout;
        let job: Job = Box::new(move || {
            let budget = Budget::start(limit, abandoned);
            let outcome = match budget.check() {
                Err(gone) => Ok(Err(gone)),
                Ok(()) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| span.in_scope(|| job(&budget)))),
            };
            // The place is free before the caller hears the result (the queue gauge is exact).
            drop((admitted, queued));
            let _ = done.send(outcome.unwrap_or_else(|_| Err(ProcessError::Failed("the job panicked".into()))));
        });
        self.jobs
            .send(job)
            .map_err(|_| ProcessError::Failed("the processing workers have stopped".into()))?;
        let outcome = result
            .await
            .map_err(|_| ProcessError::Failed("the processing worker went away".into()))?;
        abandon.disarm();
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    /// A job that checks its budget until told to stop or stopped; reports how it ended.
    fn checking_job(
        release: Arc<std::sync::atomic::AtomicBool>,
    ) -> impl FnOnce(&Budget) -> Result<&'static str, ProcessError> + Send + 'static {
        move |budget| {
            while !release.load(std::sync::atomic::Ordering::Relaxed) {
                budget.check()?;
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok("released")
        }
    }

    #[tokio::test]
    async fn a_job_whose_caller_leaves_stops_and_frees_its_place() {
        let pool = Arc::new(Pool::new(1, 0, MINUTE, Arc::new(Metrics::new())));
        let never = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let caller = tokio::spawn({
            let pool = pool.clone();
            let job = checking_job(never.clone());
            async move { pool.run(job).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            pool.run(|_| Ok("second")).await,
            Err(ProcessError::Busy(1)),
            "the job holds the worker"
        );
        caller.abort();
        // The worker stops the job at its next check; its place is then free again.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match pool.run(|_| Ok("second")).await {
                Ok(answer) => break assert_eq!(answer, "second"),
                Err(ProcessError::Busy(_)) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                other => panic!("the abandoned job kept its place: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_job_past_its_timeout_stops() {
        let pool = Pool::new(1, 0, Duration::from_millis(50), Arc::new(Metrics::new()));
        let never = Arc::new(std::sync::atomic::AtomicBool::new(false));
        assert_eq!(
            pool.run(checking_job(never)).await,
            Err(ProcessError::TimedOut(Duration::from_millis(50)))
        );
    }

    #[tokio::test]
    async fn a_queued_job_whose_caller_left_never_starts() {
        let pool = Arc::new(Pool::new(1, 1, MINUTE, Arc::new(Metrics::new())));
        let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let first = tokio::spawn({
            let (pool, job) = (pool.clone(), checking_job(release.clone()));
            async move { pool.run(job).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let queued = tokio::spawn({
            let (pool, started) = (pool.clone(), started.clone());
            async move {
                pool.run(move |_| {
                    started.store(true, std::sync::atomic::Ordering::Relaxed);
                    Ok("queued")
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        queued.abort();
        // Gone once its future is dropped: `abort` only asks for that, and under load the worker
        // could otherwise take the job before the runtime gets to the drop.
        assert!(queued.await.unwrap_err().is_cancelled());
        release.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(first.await.unwrap(), Ok("released"));
        // The next job runs after the skipped one: by then the skipped one would have run.
        assert_eq!(pool.run(|_| Ok("next")).await, Ok("next"));
        assert!(
            !started.load(std::sync::atomic::Ordering::Relaxed),
            "the abandoned job was run"
        );
    }

    #[tokio::test]
    async fn refuses_beyond_workers_and_queue() {
        let pool = Arc::new(Pool::new(1, 1, MINUTE, Arc::new(Metrics::new())));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(std::sync::Mutex::new(wait));
        let blocker = {
            let (pool, wait) = (pool.clone(), wait.clone());
            tokio::spawn(async move { pool.run(move |_| Ok(wait.lock().unwrap().recv().is_ok())).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|_| Ok(2)).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(pool.run(|_| Ok(3)).await, Err(ProcessError::Busy(2)));
        release.send(()).unwrap();
        assert_eq!(blocker.await.unwrap(), Ok(true));
        assert_eq!(queued.await.unwrap(), Ok(2));
        assert_eq!(pool.run(|_| Ok(4)).await, Ok(4));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn workers_run_below_the_io_threads() {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy, thread_schedule_policy};
        let pool = Pool::new(1, 0, MINUTE, Arc::new(Metrics::new()));
        let policy = pool.run(|_| Ok(thread_schedule_policy().unwrap())).await.unwrap();
        assert_eq!(policy, ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle));
        assert_eq!(
            thread_schedule_policy().unwrap(),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
            "the caller's thread keeps its policy"
        );
    }
}
