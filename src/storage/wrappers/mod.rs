//! Storage wrappers: each implements [`Storage`](super::Storage) over another `Storage` and adds
//! one concern (timeouts, metrics and spans). The conformance suite runs over them too.

mod instrumented;
mod timeout;

pub use instrumented::InstrumentedStorage;
pub use timeout::TimeoutStorage;
