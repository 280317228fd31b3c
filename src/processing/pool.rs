//! The processing pool: at most `processing.workers` jobs run at once on the blocking pool,
//! at most `processing.queue` more wait; beyond that a job is refused at once (503), as
//! imgproxy's request queue does, so that a burst of processing never starves downloads.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::error::ProcessError;
use crate::metrics::Metrics;

/// Bounded concurrency for CPU-heavy jobs.
pub struct Pool {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Pool {
    /// `workers` at once (at least 1), `queue` more waiting.
    pub fn new(workers: usize, queue: usize, metrics: Arc<Metrics>) -> Pool {
        let workers = workers.max(1);
        Pool {
            running: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(Semaphore::new(workers + queue)),
            capacity: workers + queue,
            metrics,
        }
    }

    /// Runs `job` on the blocking pool when a worker is free; refuses at once when the queue is
    /// full. A job that has started runs to its end (its limits bound it).
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, ProcessError> + Send + 'static,
    ) -> Result<T, ProcessError> {
        let _admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| ProcessError::Busy(self.capacity))?;
        let _queued = self.metrics.processing_queued();
        let _running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ProcessError::Failed(e.to_string()))?;
        // The job's stage spans are children of the request's, though they run on another thread.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(job))
            .await
            .map_err(|e| ProcessError::Failed(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_beyond_workers_and_queue() {
        let pool = Arc::new(Pool::new(1, 1, Arc::new(Metrics::new())));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(std::sync::Mutex::new(wait));
        let blocker = {
            let (pool, wait) = (pool.clone(), wait.clone());
            tokio::spawn(async move { pool.run(move || Ok(wait.lock().unwrap().recv().is_ok())).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| Ok(2)).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(pool.run(|| Ok(3)).await, Err(ProcessError::Busy(2)));
        release.send(()).unwrap();
        assert_eq!(blocker.await.unwrap(), Ok(true));
        assert_eq!(queued.await.unwrap(), Ok(2));
        assert_eq!(pool.run(|| Ok(4)).await, Ok(4));
    }
}
