//! Storage wrappers: each implements [`Storage`](super::Storage) over another `Storage` and adds
//! one concern (timeouts, metrics and spans, the hot-object cache). The conformance suite runs
//! over them too.

mod cache;
mod instrumented;
mod timeout;

pub use cache::CachedStorage;
pub use instrumented::InstrumentedStorage;
pub use timeout::TimeoutStorage;
