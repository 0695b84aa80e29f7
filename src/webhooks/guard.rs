//! Which URLs the node may POST to: no request forgery against the node's
//! own network (SSRF).
//!
//! Outside dev mode an endpoint must be `https` and its host must resolve
//! only to public addresses: never loopback, private (RFC 1918, IPv6 ULA),
//! link-local (including cloud metadata at 169.254.169.254), unspecified,
//! multicast, CGNAT (100.64/10), documentation, benchmarking or reserved
//! ranges, nor an IPv6 form that embeds one of those. The check runs when
//! an endpoint is created or changed, and again on every delivery, because
//! DNS can change: the delivery client resolves names through
//! [`GuardedResolver`], so the address that was checked is the address it
//! connects to (no window for DNS rebinding), and it follows no redirects.
//!
//! In dev mode (`server.dev`, loopback conveniences of `epg dev`) plain
//! `http` is allowed to loopback hosts, and addresses are not restricted.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Longest accepted endpoint URL.
pub const MAX_URL_LEN: usize = 2048;

/// How long a name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a URL may not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a URL, or too long.
    Invalid(String),
    /// A scheme other than https (or http to loopback in dev mode).
    Scheme(String),
    /// The host is, or resolves to, an address webhooks may not reach.
    Address {
        /// The host as written in the URL.
        host: String,
        /// The offending address.
        ip: IpAddr,
        /// What kind of address it is (`private`, `loopback`, …).
        kind: &'static str,
    },
    /// The host does not resolve.
    Unresolvable(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Invalid(why) => write!(f, "Invalid URL: {why}."),
            Refusal::Scheme(why) => f.write_str(why),
            Refusal::Address { host, ip, kind } => {
                if *host == ip.to_string() {
                    write!(
                        f,
                        "The URL's host {ip} is a {kind} address; webhooks may only be sent to public addresses."
                    )
                } else {
                    write!(
                        f,
                        "The URL's host {host} resolves to {ip}, a {kind} address; webhooks may only be sent to public addresses."
                    )
                }
            }
            Refusal::Unresolvable(host) => {
                write!(f, "The URL's host {host} does not resolve to any address.")
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// The URL rules of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlPolicy {
    /// `server.dev`: http to loopback allowed, addresses unrestricted.
    pub dev: bool,
}

impl UrlPolicy {
    /// The policy of a node with `server.dev = dev`.
    pub fn new(dev: bool) -> Self {
        Self { dev }
    }

    /// Everything that can be checked without DNS: syntax, scheme, and
    /// the address when the host is an IP literal.
    pub fn parse(&self, raw: &str) -> Result<Url, Refusal> {
        if raw.len() > MAX_URL_LEN {
            return Err(Refusal::Invalid(format!(
                "longer than {MAX_URL_LEN} characters"
            )));
        }
        let url = Url::parse(raw.trim()).map_err(|e| Refusal::Invalid(e.to_string()))?;
        let host = Host::of(&url).ok_or_else(|| Refusal::Invalid("it has no host".into()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.dev => {
                if !host.is_loopback() {
                    return Err(Refusal::Scheme(
                        "Webhook URLs must use https; plain http is only allowed to a loopback host (localhost, 127.0.0.1, [::1]) in dev mode.".into(),
                    ));
                }
            }
            "http" => {
                return Err(Refusal::Scheme("Webhook URLs must use https.".into()));
            }
            other => {
                return Err(Refusal::Scheme(format!(
                    "Webhook URLs must use https, not {other}."
                )));
            }
        }
        if !self.dev
            && let Host::Ip(ip) = host
            && let Some(kind) = non_public(ip)
        {
            return Err(Refusal::Address {
                host: ip.to_string(),
                ip,
                kind,
            });
        }
        Ok(url)
    }

    /// [`UrlPolicy::parse`], then (outside dev mode) resolves the host and
    /// refuses it unless every address it resolves to is public. Used when
    /// an endpoint is created or its URL changed.
    pub async fn check(&self, raw: &str) -> Result<Url, Refusal> {
        let url = self.parse(raw)?;
        if self.dev {
            return Ok(url);
        }
        if let Some(Host::Domain(domain)) = Host::of(&url) {
            resolve_public(&domain).await?;
        }
        Ok(url)
    }

    /// The resolver the delivery client uses under this policy.
    pub fn resolver(&self) -> GuardedResolver {
        GuardedResolver { dev: self.dev }
    }
}

/// A URL's host: an IP literal (already normalised by the URL parser,
/// so `2130706433` and `0x7f.1` are 127.0.0.1) or a name.
enum Host {
    Ip(IpAddr),
    Domain(String),
}

impl Host {
    fn of(url: &Url) -> Option<Self> {
        let host = url.host_str()?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        Some(match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Domain(host.to_owned()),
        })
    }

    fn is_loopback(&self) -> bool {
        match self {
            Host::Ip(ip) => ip.is_loopback(),
            Host::Domain(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            }
        }
    }
}

/// Resolves `host` and returns its addresses if all of them are public.
async fn resolve_public(host: &str) -> Result<Vec<SocketAddr>, Refusal> {
    let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 0))).await;
    let addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(_)) | Err(_) => return Err(Refusal::Unresolvable(host.to_owned())),
    };
    if addrs.is_empty() {
        return Err(Refusal::Unresolvable(host.to_owned()));
    }
    // One bad address refuses the name: a resolver that mixes public and
    // private answers is exactly what a rebinding attack looks like.
    if let Some((ip, kind)) = addrs
        .iter()
        .find_map(|a| non_public(a.ip()).map(|kind| (a.ip(), kind)))
    {
        return Err(Refusal::Address {
            host: host.to_owned(),
            ip,
            kind,
        });
    }
    Ok(addrs)
}

/// The delivery client's DNS resolver: resolves with the system resolver
/// and, outside dev mode, fails the request if any address is not public.
/// The connection is made to exactly the addresses checked here.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    dev: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let dev = self.dev;
        Box::pin(async move {
            let addrs = if dev {
                tokio::net::lookup_host((host.as_str(), 0))
                    .await?
                    .collect::<Vec<_>>()
            } else {
                resolve_public(&host).await?
            };
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// `None` for a public unicast address; otherwise what kind of address it
/// is, for the error message.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => non_public_v4(ip),
        IpAddr::V6(ip) => non_public_v6(ip),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "unspecified (\"this network\")"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([10, 0, 0, 0], 8, "private"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 168, 0, 0], 16, "private"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([100, 64, 0, 0], 10, "carrier-grade NAT (CGNAT)"),
        ([192, 0, 0, 0], 24, "reserved (IETF protocol assignments)"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, kind)| *kind)
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    match s {
        // ::a.b.c.d, the deprecated IPv4-compatible form.
        [0, 0, 0, 0, 0, 0, _, _] => Some("reserved (IPv4-compatible)"),
        // ::ffff:0:a.b.c.d, the IPv4-translated form of SIIT (RFC 2765):
        // a translator in the path turns it into a.b.c.d.
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some("reserved (IPv4-translated)"),
        // NAT64 well-known prefix: judge the IPv4 address it reaches.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => non_public_v4(embedded_v4(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Some("private (local-use NAT64)"),
        // The rest of 64:ff9b::/32 is not allocated, and a NAT64 with a
        // longer network-specific prefix there reaches IPv4 addresses that
        // cannot be judged from here.
        [0x64, 0xff9b, ..] => Some("reserved (NAT64)"),
        // 6to4: the IPv4 address sits in bits 16..48.
        [0x2002, hi, lo, ..] => non_public_v4(embedded_v4(hi, lo)),
        [0x2001, 0, ..] => Some("reserved (Teredo)"),
        [0x2001, 0xdb8, ..] => Some("documentation"),
        [0x100, 0, 0, 0, ..] => Some("reserved (discard-only)"),
        [first, ..] if first & 0xfe00 == 0xfc00 => Some("private (unique local)"),
        [first, ..] if first & 0xffc0 == 0xfe80 => Some("link-local"),
        [first, ..] if first & 0xffc0 == 0xfec0 => Some("private (site-local)"),
        [first, ..] if first & 0xff00 == 0xff00 => Some("multicast"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_addresses() {
        for bad in [
            "0.0.0.0",
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:0a00:0001::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(non_public(ip(bad)).is_some(), "{bad} should be refused");
        }
    }

    #[test]
    fn ssrf_guard_refuses_ipv4_translated_and_nat64_forms_of_internal_addresses() {
        for bad in [
            // IPv4-mapped (::ffff:0:0/96): the metadata service, loopback.
            "::ffff:169.254.169.254",
            "::ffff:7f00:1",
            // IPv4-translated (::ffff:0:0:0/96).
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "::ffff:0:808:808",
            // NAT64: the well-known prefix to internal targets, local-use,
            // and network-specific prefixes in 64:ff9b::/32.
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:0:0:1:0:a9fe:a9fe",
            "64:ff9b:a9:fea9:fe00::",
        ] {
            assert!(non_public(ip(bad)).is_some(), "{bad} should be refused");
        }
        // In URLs too.
        let p = UrlPolicy::new(false);
        for url in [
            "https://[::ffff:0:a9fe:a9fe]/hook",
            "https://[64:ff9b::a9fe:a9fe]/hook",
            "https://[64:ff9b:a9:fea9:fe00::]/hook",
        ] {
            assert!(
                matches!(p.parse(url), Err(Refusal::Address { .. })),
                "{url} should be refused"
            );
        }
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert_eq!(non_public(ip(good)), None, "{good} should be allowed");
        }
    }

    #[test]
    fn schemes_and_literals_outside_dev() {
        let p = UrlPolicy::new(false);
        assert!(p.parse("https://example.com/hook").is_ok());
        assert!(p.parse("https://93.184.216.34/hook").is_ok());
        assert!(matches!(
            p.parse("http://example.com/hook"),
            Err(Refusal::Scheme(_))
        ));
        assert!(matches!(
            p.parse("http://127.0.0.1/hook"),
            Err(Refusal::Scheme(_))
        ));
        assert!(matches!(
            p.parse("ftp://example.com/"),
            Err(Refusal::Scheme(_))
        ));
        assert!(matches!(
            p.parse("https://10.0.0.1/"),
            Err(Refusal::Address { .. })
        ));
        assert!(matches!(
            p.parse("https://[::1]:8443/"),
            Err(Refusal::Address { .. })
        ));
        assert!(matches!(
            p.parse("https://[::ffff:169.254.169.254]/"),
            Err(Refusal::Address { .. })
        ));
        // Decimal and hex spellings of 127.0.0.1 are normalised by the URL
        // parser before the check.
        assert!(matches!(
            p.parse("https://2130706433/"),
            Err(Refusal::Address { .. })
        ));
        assert!(matches!(
            p.parse("https://0x7f.1/"),
            Err(Refusal::Address { .. })
        ));
        assert!(matches!(p.parse("not a url"), Err(Refusal::Invalid(_))));
        assert!(matches!(
            p.parse(&format!("https://example.com/{}", "a".repeat(MAX_URL_LEN))),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn dev_mode_allows_http_to_loopback_only() {
        let p = UrlPolicy::new(true);
        assert!(p.parse("http://127.0.0.1:9000/hook").is_ok());
        assert!(p.parse("http://localhost:9000/hook").is_ok());
        assert!(p.parse("http://[::1]:9000/hook").is_ok());
        assert!(p.parse("https://10.0.0.1/hook").is_ok());
        assert!(matches!(
            p.parse("http://example.com/hook"),
            Err(Refusal::Scheme(_))
        ));
        assert!(matches!(
            p.parse("http://10.0.0.1/hook"),
            Err(Refusal::Scheme(_))
        ));
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused() {
        let p = UrlPolicy::new(false);
        let err = p.check("https://localhost:8443/hook").await.unwrap_err();
        assert!(matches!(err, Refusal::Address { .. }), "{err:?}");
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
