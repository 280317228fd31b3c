//! The API: the typed route table, the request pipeline, and one handler per endpoint
//! (download with its conditional/range rules, upload with its content checks).

pub mod download;
pub mod gateway;
pub mod routes;
pub mod upload;
