//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP), as
//! authenticator apps compute them: HMAC-SHA-1, 30-second steps, 6 digits.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;

/// Seconds per time step (RFC 6238's default, what every app assumes).
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Bytes of a fresh secret: 160 bits, the HMAC-SHA-1 block-friendly size
/// RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;

/// A fresh random secret.
pub fn generate_secret() -> [u8; SECRET_LEN] {
    let mut secret = [0u8; SECRET_LEN];
    rand::thread_rng().fill_bytes(&mut secret);
    secret
}

/// HOTP(secret, counter) truncated to `digits` decimal digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(secret) else {
        // HMAC takes keys of any length; this cannot happen.
        return u32::MAX;
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = (u32::from(digest[offset]) & 0x7f) << 24
        | u32::from(digest[offset + 1]) << 16
        | u32::from(digest[offset + 2]) << 8
        | u32::from(digest[offset + 3]);
    binary % 10u32.pow(digits)
}

/// The time step of a Unix time.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECONDS)
}

/// The code of `secret` at Unix time `unix`, zero-padded.
pub fn code_at(secret: &[u8], unix: i64) -> String {
    let step = u64::try_from(step_of(unix)).unwrap_or(0);
    format!(
        "{:0width$}",
        hotp(secret, step, DIGITS),
        width = DIGITS as usize
    )
}

/// The step `code` is valid for at `unix`, allowing one step of clock
/// drift either way, and only a step after `last_step` (a code is used
/// once). `None` when the code is wrong, malformed or already used.
pub fn verify(secret: &[u8], code: &str, unix: i64, last_step: Option<i64>) -> Option<i64> {
    let code = code.trim().replace(' ', "");
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix);
    let mut accepted = None;
    // Every candidate is computed and compared in constant time, so timing
    // does not tell which step (if any) matched.
    for step in [now - 1, now, now + 1] {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        let expected = format!(
            "{:0width$}",
            hotp(secret, counter, DIGITS),
            width = DIGITS as usize
        );
        if crate::crypto::constant_time_eq(expected.as_bytes(), code.as_bytes())
            && last_step.is_none_or(|last| step > last)
        {
            accepted = Some(step);
        }
    }
    accepted
}

/// RFC 4648 base32 without padding, the form `otpauth://` URIs carry.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The `otpauth://totp/…` URI an authenticator app scans.
pub fn uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer).replace('+', "%20"),
        enc(account).replace('+', "%20"),
        base32(secret),
        enc(issuer).replace('+', "%20"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 column: 8-digit codes of the ASCII
    /// secret "12345678901234567890".
    #[test]
    fn rfc6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, expected) in [
            (59u64, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(hotp(secret, time / 30, 8), expected, "T = {time}");
        }
    }

    /// RFC 4226 appendix D: HOTP values of counters 0..9.
    #[test]
    fn rfc4226_test_vectors() {
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, want) in expected.into_iter().enumerate() {
            assert_eq!(hotp(b"12345678901234567890", counter as u64, 6), want);
        }
    }

    #[test]
    fn codes_are_accepted_once_and_within_one_step() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_111;
        let code = code_at(secret, now);
        let step = verify(secret, &code, now, None).unwrap();
        assert_eq!(step, step_of(now));
        assert_eq!(verify(secret, &code, now, Some(step)), None, "replay");
        assert!(verify(secret, &code, now + 30, None).is_some(), "drift");
        assert_eq!(verify(secret, &code, now + 90, None), None, "too late");
        assert_eq!(verify(secret, "12345", now, None), None);
        assert_eq!(verify(secret, "abcdef", now, None), None);
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(base32(b"foob"), "MZXW6YQ");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn uri_names_issuer_account_and_secret() {
        let uri = uri("E-PG Shop", "a@b.c", b"foobar");
        assert_eq!(
            uri,
            "otpauth://totp/E-PG%20Shop:a%40b.c?secret=MZXW6YTBOI&issuer=E-PG%20Shop&algorithm=SHA1&digits=6&period=30"
        );
    }
}
