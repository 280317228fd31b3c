//! IP addresses and networks in the configuration (`server.trusted_proxies`).

use std::net::IpAddr;

use ipnet::IpNet;

/// An entry that is neither an address nor a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or network")]
pub struct NetworkError(pub String);

/// Parses addresses (`10.0.0.7`, one host) and networks (`10.0.0.0/8`).
pub fn parse_networks(entries: &[String]) -> Result<Vec<IpNet>, NetworkError> {
    entries
        .iter()
        .map(|e| {
            let e = e.trim();
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| NetworkError(e.to_owned()))
        })
        .collect()
}
