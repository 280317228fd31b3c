//! The client's address: the peer, or — only when the peer is a trusted proxy — the nearest
//! untrusted address in `X-Forwarded-For` (a hop may carry a port, as some proxies write it:
//! `10.0.0.2:5555`, `[2001:db8::1]:443`). And the address a client's budgets count against: an
//! IPv6 client's network (`server.client_ipv6_prefix`, /64 by default), since one subscriber
//! holds a whole /64.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

#[derive(Debug, Clone)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    ipv6_prefix: u8,
}

impl TrustedProxies {
    /// Trusts these networks (parsed by [`crate::config::networks::parse_networks`]); IPv6
    /// budgets per network of `ipv6_prefix` bits (1–128).
    pub fn new(networks: Vec<IpNet>, ipv6_prefix: u8) -> TrustedProxies {
        TrustedProxies { networks, ipv6_prefix }
    }

    /// The address `client`'s budgets count against: itself for IPv4, its network for IPv6.
    pub fn budget_address(&self, client: IpAddr) -> IpAddr {
        match client.to_canonical() {
            IpAddr::V6(v6) => {
                ipnet::Ipv6Net::new(v6, self.ipv6_prefix).map_or(IpAddr::V6(v6), |net| IpAddr::V6(net.network()))
            }
            v4 => v4,
        }
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
            let Some(ip) = hop_address(hop.trim()) else {
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

/// A hop's address: `ip`, `ipv4:port` or `[ipv6]:port`.
fn hop_address(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (v6, port) = rest.split_once(']')?;
        return (port.is_empty() || port.strip_prefix(':')?.parse::<u16>().is_ok())
            .then(|| v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6))
            .flatten();
    }
    let (v4, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    v4.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
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
        let trusted = TrustedProxies::new(
            parse_networks(&["10.0.0.0/8".into(), "192.168.1.1".into()]).unwrap(),
            64,
        );
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
        // Hops with ports, as some proxies write them: the client, not the proxy.
        assert_eq!(
            trusted.client_ip(ip("10.1.2.3"), &headers(&["198.51.100.7:5555"])),
            ip("198.51.100.7")
        );
        assert_eq!(
            trusted.client_ip(ip("10.1.2.3"), &headers(&["[2001:db8::7]:443, 10.0.0.2:80"])),
            ip("2001:db8::7")
        );
        assert_eq!(
            trusted.client_ip(ip("10.1.2.3"), &headers(&["1.2.3.4:99999"])),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn ipv6_clients_share_their_networks_budget() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let per64 = TrustedProxies::new(Vec::new(), 64);
        assert_eq!(per64.budget_address(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(per64.budget_address(ip("2001:db8:1:2:ffff::9")), ip("2001:db8:1:2::"));
        assert_ne!(per64.budget_address(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(per64.budget_address(ip("198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(per64.budget_address(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
        let exact = TrustedProxies::new(Vec::new(), 128);
        assert_eq!(exact.budget_address(ip("2001:db8::1")), ip("2001:db8::1"));
    }
}
