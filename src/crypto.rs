//! Small cryptographic building blocks shared by the subsystems: hashing of
//! API keys, constant-time comparison, and the AES-256-GCM key that seals
//! card numbers at rest.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Equality that takes the same time wherever the inputs differ, so a
/// secret cannot be guessed byte by byte from response times.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Why a configured key is unusable. Never contains the key itself.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not base64.
    #[error("must be base64 (for example the output of `openssl rand -base64 32`)")]
    NotBase64,
    /// Wrong length.
    #[error("must decode to exactly 32 bytes, got {0}")]
    WrongLength(usize),
}

/// Failure to open a sealed value: wrong key, or tampered data.
#[derive(Debug, thiserror::Error)]
#[error("sealed data could not be opened (wrong key or tampered data)")]
pub struct OpenError;

/// The AES-256-GCM key that seals card numbers at rest, and the HMAC key
/// (derived from it) that fingerprints them.
#[derive(Clone)]
pub struct CardKey {
    cipher: Aes256Gcm,
    /// A keyed fingerprint: a plain hash of a card number could be reversed
    /// by trying every number of a BIN range.
    fingerprint_key: [u8; 32],
}

impl std::fmt::Debug for CardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardKey(<redacted>)")
    }
}

/// Nonce length of AES-GCM.
const NONCE_LEN: usize = 12;

impl CardKey {
    /// Parses a base64-encoded 32-byte key.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| KeyError::NotBase64)?;
        if bytes.len() != 32 {
            return Err(KeyError::WrongLength(bytes.len()));
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyError::WrongLength(0))?;
        let mut derivation = b"epg card fingerprint v1".to_vec();
        derivation.extend_from_slice(&bytes);
        Ok(Self {
            cipher,
            fingerprint_key: sha256(&derivation),
        })
    }

    /// A fresh random key, base64-encoded (for `epg dev`).
    pub fn generate_base64() -> String {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        BASE64.encode(bytes)
    }

    /// Encrypts `plaintext` bound to `context` (e.g. the payment id, so a
    /// sealed value cannot be moved to another row). Output: nonce ‖ ciphertext.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: context,
        };
        // Encryption with a valid key and in-memory buffers cannot fail.
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// A stable, keyed fingerprint of `data` (16 hex characters): the same
    /// card gives the same fingerprint under the same key.
    pub fn fingerprint(&self, data: &[u8]) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.fingerprint_key) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(data);
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    /// Decrypts what [`CardKey::seal`] produced with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_binds_the_context() {
        let key = CardKey::from_base64(&CardKey::generate_base64()).unwrap();
        let sealed = key.seal(b"4242424242424242", b"pay_1");
        assert!(!sealed.windows(16).any(|w| w == b"4242424242424242"));
        assert_eq!(key.open(&sealed, b"pay_1").unwrap(), b"4242424242424242");
        assert!(key.open(&sealed, b"pay_2").is_err());
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(key.open(&tampered, b"pay_1").is_err());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(matches!(
            CardKey::from_base64("!!"),
            Err(KeyError::NotBase64)
        ));
        assert!(matches!(
            CardKey::from_base64("c2hvcnQ="),
            Err(KeyError::WrongLength(5))
        ));
    }
}
