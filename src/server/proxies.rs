//! Which client a request comes from, when proxies stand in front.
//!
//! `X-Forwarded-For` is written by whoever sent the request, so believing
//! it from anyone would let a card tester give every attempt a fresh IP
//! and walk past the per-IP velocity checks and rate limits. Only the
//! configured proxies (`server.trusted_proxies`) are believed: the client
//! is the right-most address of the header that is not itself a trusted
//! proxy, and without a trusted proxy it is simply the peer.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Addresses and networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `10.0.0.1`, `10.0.0.0/8`, `::1` or `fd00::/8` entries;
    /// on error, the index of the bad entry.
    pub fn parse(entries: &[String]) -> Result<Self, usize> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| i)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a request that arrived from `peer`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        // Proxies append; several header lines are one list in order.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>().map(canonical) else {
                // A trusted proxy never writes garbage: what comes before
                // it was written by the client and proves nothing.
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

/// IPv4 clients of a dual-stack socket arrive as `::ffff:a.b.c.d`; they
/// are the same client as `a.b.c.d`.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let spoofed = headers(&["203.0.113.7"]);
        assert_eq!(
            proxies.client_ip(ip("198.51.100.1"), &spoofed),
            ip("198.51.100.1")
        );
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("198.51.100.1"), &spoofed),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.5".into()]).unwrap();
        // The client forged the first entry; the proxies appended the rest.
        let h = headers(&["1.1.1.1, 198.51.100.9", "192.0.2.5"]);
        assert_eq!(proxies.client_ip(ip("10.1.2.3"), &h), ip("198.51.100.9"));
        // Everything trusted: the left-most hop.
        let h = headers(&["192.0.2.5"]);
        assert_eq!(proxies.client_ip(ip("10.1.2.3"), &h), ip("192.0.2.5"));
        // Garbage stops the walk at the last hop a trusted proxy wrote.
        let h = headers(&["198.51.100.9, nonsense, 192.0.2.5"]);
        assert_eq!(proxies.client_ip(ip("10.1.2.3"), &h), ip("192.0.2.5"));
    }

    #[test]
    fn mapped_addresses_are_their_ipv4_selves() {
        let proxies = TrustedProxies::parse(&["127.0.0.1".into()]).unwrap();
        let h = headers(&["203.0.113.7"]);
        assert_eq!(
            proxies.client_ip(ip("::ffff:127.0.0.1"), &h),
            ip("203.0.113.7")
        );
        assert_eq!(
            TrustedProxies::parse(&["10.0.0.0/33".into()]).unwrap_err(),
            0
        );
    }
}
