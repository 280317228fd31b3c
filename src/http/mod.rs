//! The HTTP layer: listeners and connections, the error enum and its rendering, response
//! bodies, the access log, CORS, client addresses, per-client connection caps and the
//! readiness state.
//! It knows nothing of the API's routes or handlers (those are in [`crate::api`]).

pub mod access_log;
pub mod body;
pub mod client_ip;
mod connection;
pub mod cors;
pub mod error;
pub mod health;
pub mod per_client;
pub mod server;
