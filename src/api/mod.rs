//! The API: the typed route table, the request pipeline, and one handler per endpoint
//! (download with its conditional/range rules, upload with its content checks), each taking the
//! request as one `ApiRequest`.

pub mod download;
pub(crate) mod gateway;
pub(crate) mod process;
pub(crate) mod routes;
pub mod upload;

/// A request that passed the gate, as its handler reads it: the head, the body, and the client
/// address its budgets count against (as the trusted proxies tell it; IPv6 per network).
pub(crate) struct ApiRequest<'a> {
    pub(crate) parts: &'a http::request::Parts,
    pub(crate) body: hyper::body::Incoming,
    pub(crate) client: std::net::IpAddr,
}
