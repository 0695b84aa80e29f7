//! The `Epg-Signature` header: how the node signs a delivery and how a
//! receiver checks it. The node and `epg webhooks verify` both use this
//! module, so they cannot disagree.
//!
//! ```text
//! Epg-Signature: t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//! ```
//!
//! `v1` is the lower-case hex HMAC-SHA256, keyed with the endpoint's whole
//! secret string (`whsec_…`, as UTF-8 bytes), of the bytes
//! `"<t>" ‖ "." ‖ <raw request body>`. A header may carry several `v1`
//! entries (one per secret while a secret is being rotated); it is valid if
//! any of them matches. Unknown schemes (`v0=`, a future `v2=`) are ignored.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::crypto::constant_time_eq;

/// The header's name.
pub const HEADER: &str = "Epg-Signature";

/// The signature scheme this node produces.
pub const SCHEME: &str = "v1";

/// How far a timestamp may be from the receiver's clock, by default:
/// five minutes, so a captured delivery cannot be replayed later.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// Every signing secret starts with this.
pub const SECRET_PREFIX: &str = "whsec_";

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256(secret, "<t>.<body>").
fn tag(secret: &str, timestamp: i64, body: &[u8]) -> Option<[u8; 32]> {
    // HMAC takes keys of any length (RFC 2104), so this never fails; the
    // `Option` keeps a would-be failure from becoming a usable tag.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac.finalize().into_bytes().into())
}

/// The hex `v1` signature of `body` at `timestamp` under `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    tag(secret, timestamp, body).map(hex::encode)
}

/// The full header value (`t=…,v1=…[,v1=…]`) signing `body` at `timestamp`
/// with every one of `secrets` (more than one while rotating).
pub fn header_value(secrets: &[&str], timestamp: i64, body: &[u8]) -> Option<String> {
    let mut value = format!("t={timestamp}");
    for secret in secrets {
        value.push_str(",v1=");
        value.push_str(&sign(secret, timestamp, body)?);
    }
    Some(value)
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The header is not `t=<unix>,v1=<64 hex>[,…]`.
    Malformed(String),
    /// The header has no `v1=` entry.
    NoSignature,
    /// No `v1` entry matches: wrong secret, or the body was altered.
    Mismatch,
    /// The signature matches but its timestamp is too far from now:
    /// a replay, or a badly wrong clock.
    OutsideTolerance {
        /// The header's timestamp.
        timestamp: i64,
        /// The verifier's clock.
        now: i64,
        /// Allowed distance, seconds.
        tolerance: u64,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Malformed(why) => write!(f, "malformed {HEADER} header: {why}"),
            VerifyError::NoSignature => write!(f, "no {SCHEME}= signature in the header"),
            VerifyError::Mismatch => write!(
                f,
                "signature mismatch: no {SCHEME}= signature matches this body and secret \
                 (wrong secret, or the body was altered; verify the raw bytes, not re-encoded JSON)"
            ),
            VerifyError::OutsideTolerance {
                timestamp,
                now,
                tolerance,
            } => write!(
                f,
                "timestamp outside tolerance: t={timestamp} is {} s from now ({now}), more than \
                 the allowed {tolerance} s (a replayed delivery, or a wrong clock)",
                now.abs_diff(*timestamp)
            ),
        }
    }
}

impl std::error::Error for VerifyError {}

/// A parsed header: its timestamp and its `v1` signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedHeader {
    /// `t`.
    pub timestamp: i64,
    /// Every `v1` value, decoded.
    pub signatures: Vec<[u8; 32]>,
}

/// Parses `t=…,v1=…`; order of entries and spaces around them do not
/// matter.
pub fn parse_header(value: &str) -> Result<ParsedHeader, VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        let Some((key, val)) = item.split_once('=') else {
            return Err(VerifyError::Malformed(format!(
                "`{}` is not a key=value entry",
                shorten(item)
            )));
        };
        match key.trim() {
            "t" => {
                let val = val.trim();
                if timestamp.is_some() {
                    return Err(VerifyError::Malformed("more than one t= entry".into()));
                }
                if val.is_empty() || !val.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(VerifyError::Malformed(format!(
                        "t=`{}` is not a Unix timestamp in seconds",
                        shorten(val)
                    )));
                }
                timestamp = Some(val.parse::<i64>().map_err(|_| {
                    VerifyError::Malformed(format!("t=`{}` is out of range", shorten(val)))
                })?);
            }
            SCHEME => {
                let mut sig = [0u8; 32];
                hex::decode_to_slice(val.trim(), &mut sig).map_err(|_| {
                    VerifyError::Malformed(format!(
                        "{SCHEME}=`{}` is not 64 hexadecimal characters",
                        shorten(val)
                    ))
                })?;
                signatures.push(sig);
            }
            "" => return Err(VerifyError::Malformed("an entry has an empty key".into())),
            // Other schemes are for other verifiers.
            _ => {}
        }
    }
    let timestamp =
        timestamp.ok_or_else(|| VerifyError::Malformed("no t= timestamp entry".into()))?;
    if signatures.is_empty() {
        return Err(VerifyError::NoSignature);
    }
    Ok(ParsedHeader {
        timestamp,
        signatures,
    })
}

fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() > MAX {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    } else {
        s.to_owned()
    }
}

/// Checks a delivery: `header` must carry a `v1` signature of `body` under
/// `secret`, with a timestamp within `tolerance_secs` of `now` (Unix
/// seconds). Returns the signed timestamp.
///
/// The signature is checked before the timestamp, and every candidate is
/// compared in constant time.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: u64,
) -> Result<i64, VerifyError> {
    let parsed = parse_header(header)?;
    let expected = tag(secret, parsed.timestamp, body).ok_or(VerifyError::Mismatch)?;
    let mut matched = false;
    for candidate in &parsed.signatures {
        // No early exit: the time taken does not depend on which entry matched.
        matched |= constant_time_eq(&expected, candidate);
    }
    if !matched {
        return Err(VerifyError::Mismatch);
    }
    if now.abs_diff(parsed.timestamp) > tolerance_secs {
        return Err(VerifyError::OutsideTolerance {
            timestamp: parsed.timestamp,
            now,
            tolerance: tolerance_secs,
        });
    }
    Ok(parsed.timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_0123456789abcdefghijABCDEFGHIJ01";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

    #[test]
    fn known_answer() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"),
        // the Wikipedia test vector, reached through our message layout.
        let sig = sign("key", 1, b"x").unwrap();
        assert_eq!(sig.len(), 64);
        let mut mac = HmacSha256::new_from_slice(b"key").unwrap();
        mac.update(b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let mut mac = HmacSha256::new_from_slice(b"key").unwrap();
        mac.update(b"1.x");
        assert_eq!(hex::encode(mac.finalize().into_bytes()), sig);
    }

    #[test]
    fn signed_bodies_verify() {
        let header = header_value(&[SECRET], 1_700_000_000, BODY).unwrap();
        assert_eq!(
            verify(SECRET, &header, BODY, 1_700_000_100, 300),
            Ok(1_700_000_000)
        );
    }

    #[test]
    fn tampering_and_wrong_secrets_fail() {
        let header = header_value(&[SECRET], 1_700_000_000, BODY).unwrap();
        assert_eq!(
            verify(SECRET, &header, b"{}", 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("whsec_other", &header, BODY, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
        // Moving the timestamp breaks the signature.
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify(SECRET, &moved, BODY, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn old_and_future_timestamps_fail() {
        let header = header_value(&[SECRET], 1_700_000_000, BODY).unwrap();
        assert!(matches!(
            verify(SECRET, &header, BODY, 1_700_000_301, 300),
            Err(VerifyError::OutsideTolerance { .. })
        ));
        assert!(matches!(
            verify(SECRET, &header, BODY, 1_699_999_699, 300),
            Err(VerifyError::OutsideTolerance { .. })
        ));
        assert!(verify(SECRET, &header, BODY, 1_700_000_300, 300).is_ok());
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let header = header_value(&["whsec_old", SECRET], 1_700_000_000, BODY).unwrap();
        assert!(verify(SECRET, &header, BODY, 1_700_000_000, 300).is_ok());
        assert!(verify("whsec_old", &header, BODY, 1_700_000_000, 300).is_ok());
        let with_other_scheme = format!(" v0=abc , {header} ");
        assert!(verify(SECRET, &with_other_scheme, BODY, 1_700_000_000, 300).is_ok());
    }

    #[test]
    fn malformed_headers_say_why() {
        for bad in [
            "",
            "t=1",
            "v1=00",
            "t=abc,v1=".to_owned().as_str(),
            "t=1,t=2,v1=0000000000000000000000000000000000000000000000000000000000000000",
            "t=1,garbage",
            "t=-5,v1=0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            let err = parse_header(bad).unwrap_err();
            assert!(
                matches!(err, VerifyError::Malformed(_) | VerifyError::NoSignature),
                "{bad}: {err:?}"
            );
        }
        assert_eq!(parse_header("t=1,v0=aa"), Err(VerifyError::NoSignature));
    }
}
