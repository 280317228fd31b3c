//! The API: the typed route table, the request pipeline, and one handler per endpoint
//! (download with its conditional/range rules, upload with its content check, processing
//! through the job service), each taking the request as one `ApiRequest`; request bodies come
//! in through the intake, new objects go out through the publisher.

pub mod download;
pub(crate) mod gateway;
pub(crate) mod intake;
pub(crate) mod process;
pub(crate) mod publish;
pub(crate) mod routes;
pub(crate) mod upload;

/// A request that passed the gate, as its handler reads it: the head, the body, and the client
/// address its budgets count against (as the trusted proxies tell it; IPv6 per network).
pub(crate) struct ApiRequest<'a> {
    pub(crate) parts: &'a http::request::Parts,
    pub(crate) body: hyper::body::Incoming,
    pub(crate) client: std::net::IpAddr,
}
