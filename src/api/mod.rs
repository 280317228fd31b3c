//! The API: the typed route table, the request pipeline, and one handler per endpoint
//! (download with its conditional/range rules, upload with its content checks).

pub mod download;
pub(crate) mod gateway;
pub(crate) mod process;
pub(crate) mod routes;
pub mod upload;
