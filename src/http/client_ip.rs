//! The client's address: the peer, or — only when the peer is a trusted proxy — the nearest
//! untrusted address in `X-Forwarded-For`.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trusts these networks (parsed by [`crate::config::networks::parse_networks`]).
    pub fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies { networks }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// SECURITY: `X-Forwarded-For` is read right to left, and only through proxies we trust,
    /// so a client cannot choose its own identity by sending the header itself.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::networks::parse_networks;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_only_through_trusted_proxies() {
        let trusted = TrustedProxies::new(parse_networks(&["10.0.0.0/8".into(), "192.168.1.1".into()]).unwrap());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Untrusted peer: its own address, whatever it claims.
        assert_eq!(
            trusted.client_ip(ip("203.0.113.9"), &headers(&["1.2.3.4"])),
            ip("203.0.113.9")
        );
        // Trusted peer: the nearest untrusted hop.
        assert_eq!(
            trusted.client_ip(ip("10.1.2.3"), &headers(&["1.2.3.4, 198.51.100.7"])),
            ip("198.51.100.7")
        );
        assert_eq!(
            trusted.client_ip(ip("10.1.2.3"), &headers(&["1.2.3.4", "198.51.100.7, 10.9.9.9"])),
            ip("198.51.100.7")
        );
        assert_eq!(trusted.client_ip(ip("192.168.1.1"), &headers(&[])), ip("192.168.1.1"));
        assert_eq!(
            trusted.client_ip(ip("10.1.2.3"), &headers(&["garbage"])),
            ip("10.1.2.3")
        );
        assert_eq!(
            trusted.client_ip(ip("::ffff:10.1.2.3"), &headers(&["1.2.3.4"])),
            ip("1.2.3.4")
        );
        assert!(parse_networks(&["nope".into()]).is_err());
    }
}
