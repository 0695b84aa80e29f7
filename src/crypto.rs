//! Cryptographic building blocks: hashing, constant-time comparison, and
//! the node's master keys with everything derived from them.
//!
//! # One key, one purpose
//!
//! The master key (`security.master_key`) is never used as it is.
//! HKDF-SHA256 derives one subkey per purpose from it: card numbers, saved
//! idempotent responses and webhook signing secrets are each sealed with
//! their own AES-256-GCM key ([`Purpose`]); idempotency request MACs and
//! card fingerprints each have their own HMAC-SHA256 key. A weakness in one
//! use says nothing about another, and each AES key seals only its share of
//! the node's values (random 96-bit nonces are safe for 2^32 seals per key;
//! rotation starts every count again).
//!
//! # The sealed envelope
//!
//! `0x01 ‖ key id (8 bytes) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`, with the
//! 9-byte header and the caller's context (a payment id, an endpoint id)
//! as associated data, so neither can be changed without the tag failing.
//! The key id is derived from the master key (an HKDF output, so it tells
//! nothing about the key) and names which configured key opens the value:
//! after a rotation, values sealed under a previous master key still open
//! until `epg keys rotate-master` (or the node's background job) has
//! re-sealed them.
//!
//! Card numbers and webhook secrets sealed before envelopes existed are
//! `nonce ‖ ciphertext` under the master key itself. They still open while
//! that key is configured — AES-GCM authenticates them, so anything else
//! fails instead of decrypting to garbage — and rotation re-seals them too.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hkdf::Hkdf;
use hmac::{Hmac, Mac as _};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

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

/// Which configured master key is unusable, and why.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The current key.
    #[error("{0}")]
    Current(KeyError),
    /// Entry `index` of the previous keys.
    #[error("entry {index}: {error}")]
    Previous {
        /// Position in the list, from 0.
        index: usize,
        /// What is wrong with it.
        error: KeyError,
    },
    /// A previous key that is the current key or repeats another.
    #[error("entry {index} is the current master key or repeats an earlier entry")]
    Repeated {
        /// Position in the list, from 0.
        index: usize,
    },
}

/// Failure to open a sealed value: no configured key opens it (wrong or
/// removed key), or the data was tampered with.
#[derive(Debug, thiserror::Error)]
#[error(
    "sealed data could not be opened (no configured master key opens it, or it was tampered with)"
)]
pub struct OpenError;

/// Length of a key id.
const KEY_ID_LEN: usize = 8;
/// Version byte of the envelope.
const ENVELOPE_V1: u8 = 0x01;
/// Version byte and key id.
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
/// Nonce length of AES-GCM.
const NONCE_LEN: usize = 12;
/// Tag length of AES-GCM.
const TAG_LEN: usize = 16;
/// Length of an HMAC-SHA256 output.
const MAC_LEN: usize = 32;
/// Hex characters of a card fingerprint.
const FINGERPRINT_BYTES: usize = 8;

/// The public name of a master key, as carried by envelopes and MAC tags.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// What a sealed value is for; each purpose has its own AES key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Card numbers at rest.
    Cards,
    /// Saved responses of idempotent requests.
    IdempotentResponses,
    /// Webhook endpoints' signing secrets.
    WebhookSecrets,
    /// Bank account details: merchants' payout accounts and the creditor
    /// accounts of outgoing bank transfers.
    BankAccounts,
    /// Dashboard users' TOTP secrets.
    TotpSecrets,
}

impl Purpose {
    /// Whether values of this purpose may still be at rest in the form
    /// sealed before envelopes (saved responses of that time were erased by
    /// migration 0015, so they need no fallback).
    fn has_legacy_values(self) -> bool {
        matches!(self, Purpose::Cards | Purpose::WebhookSecrets)
    }
}

/// One master key and every subkey derived from it.
struct MasterKey {
    id: KeyId,
    cards: Aes256Gcm,
    idempotent_responses: Aes256Gcm,
    webhook_secrets: Aes256Gcm,
    bank_accounts: Aes256Gcm,
    totp_secrets: Aes256Gcm,
    idempotency_requests: HmacSha256,
    fingerprints: HmacSha256,
    /// The master key used directly, as before envelopes: opens old values.
    legacy_cipher: Aes256Gcm,
    /// The fingerprint key before keyrings (one for all merchants): still
    /// counted by velocity checks until rotation recomputes fingerprints.
    legacy_fingerprints: HmacSha256,
}

impl MasterKey {
    fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| KeyError::NotBase64)?;
        if bytes.len() != 32 {
            return Err(KeyError::WrongLength(bytes.len()));
        }
        // The master key is uniformly random, so HKDF needs no salt.
        let hkdf = Hkdf::<Sha256>::new(None, &bytes);
        let derive = |label: &str| -> Result<[u8; 32], KeyError> {
            let mut out = [0u8; 32];
            hkdf.expand(format!("epg/v1/{label}").as_bytes(), &mut out)
                .map_err(|_| KeyError::WrongLength(0))?;
            Ok(out)
        };
        let aes = |key: &[u8]| Aes256Gcm::new_from_slice(key).map_err(|_| KeyError::WrongLength(0));
        let mac = |key: &[u8]| {
            <HmacSha256 as hmac::Mac>::new_from_slice(key).map_err(|_| KeyError::WrongLength(0))
        };
        let mut id = [0u8; KEY_ID_LEN];
        hkdf.expand(b"epg/v1/key-id", &mut id)
            .map_err(|_| KeyError::WrongLength(0))?;
        let mut legacy_fingerprint = b"epg card fingerprint v1".to_vec();
        legacy_fingerprint.extend_from_slice(&bytes);
        Ok(Self {
            id: KeyId(id),
            cards: aes(&derive("cards/seal")?)?,
            idempotent_responses: aes(&derive("idempotency/seal")?)?,
            webhook_secrets: aes(&derive("webhook-secrets/seal")?)?,
            bank_accounts: aes(&derive("bank-accounts/seal")?)?,
            totp_secrets: aes(&derive("totp-secrets/seal")?)?,
            idempotency_requests: mac(&derive("idempotency/mac")?)?,
            fingerprints: mac(&derive("fingerprints/mac")?)?,
            legacy_cipher: aes(&bytes)?,
            legacy_fingerprints: mac(&sha256(&legacy_fingerprint))?,
        })
    }

    fn cipher(&self, purpose: Purpose) -> &Aes256Gcm {
        match purpose {
            Purpose::Cards => &self.cards,
            Purpose::IdempotentResponses => &self.idempotent_responses,
            Purpose::WebhookSecrets => &self.webhook_secrets,
            Purpose::BankAccounts => &self.bank_accounts,
            Purpose::TotpSecrets => &self.totp_secrets,
        }
    }
}

/// The node's master keys: the current one seals and MACs; previous ones
/// (kept configured during a rotation) only open and verify.
#[derive(Clone)]
pub struct Keyring {
    current: Arc<MasterKey>,
    previous: Arc<[MasterKey]>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field("previous", &self.previous.len())
            .finish()
    }
}

impl Keyring {
    /// The keyring of `current` and `previous`, each a base64 32-byte key.
    pub fn new(current: &str, previous: &[String]) -> Result<Self, KeyringError> {
        let current = MasterKey::parse(current).map_err(KeyringError::Current)?;
        let mut older: Vec<MasterKey> = Vec::with_capacity(previous.len());
        for (index, text) in previous.iter().enumerate() {
            let key =
                MasterKey::parse(text).map_err(|error| KeyringError::Previous { index, error })?;
            if key.id == current.id || older.iter().any(|k| k.id == key.id) {
                return Err(KeyringError::Repeated { index });
            }
            older.push(key);
        }
        Ok(Self {
            current: Arc::new(current),
            previous: older.into(),
        })
    }

    /// A fresh random master key, base64-encoded (`epg dev`, tests).
    pub fn generate_base64() -> String {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        BASE64.encode(bytes)
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> KeyId {
        self.current.id
    }

    /// The header every envelope sealed now starts with; a stored value
    /// that does not start with it is due for re-sealing.
    pub fn current_header(&self) -> [u8; HEADER_LEN] {
        let mut header = [ENVELOPE_V1; HEADER_LEN];
        header[1..].copy_from_slice(&self.current.id.0);
        header
    }

    /// Every key, the current one first.
    fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&*self.current).chain(self.previous.iter())
    }

    /// Seals and opens values of one purpose.
    pub fn sealer(&self, purpose: Purpose) -> Sealer {
        Sealer {
            purpose,
            keys: self.clone(),
        }
    }

    /// MACs the requests an idempotency key was used for.
    pub fn idempotency_mac(&self) -> RequestMac {
        RequestMac { keys: self.clone() }
    }

    /// Card fingerprints.
    pub fn fingerprints(&self) -> Fingerprints {
        Fingerprints { keys: self.clone() }
    }
}

/// Seals values of one [`Purpose`] into envelopes of the current key, and
/// opens what any configured key sealed.
#[derive(Clone)]
pub struct Sealer {
    purpose: Purpose,
    keys: Keyring,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({:?}, {:?})", self.purpose, self.keys)
    }
}

impl Sealer {
    /// Whether `sealed` is an envelope of the current key.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.starts_with(&self.keys.current_header())
    }

    /// Encrypts `plaintext` bound to `context` (e.g. the payment id, so a
    /// sealed value cannot be moved to another row).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let header = self.keys.current_header();
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = [&header[..], context].concat();
        // Encryption with a valid key and in-memory buffers cannot fail.
        let sealed = self
            .keys
            .current
            .cipher(self.purpose)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        [&header[..], &nonce, &sealed].concat()
    }

    /// Decrypts what [`Sealer::seal`] produced with the same `context` under
    /// any configured key, or a value of this purpose sealed before
    /// envelopes.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, OpenError> {
        self.open_envelope(sealed, context)
            .or_else(|| self.open_legacy(sealed, context))
            .ok_or(OpenError)
    }

    fn open_envelope(&self, sealed: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < HEADER_LEN + NONCE_LEN + TAG_LEN || sealed.first() != Some(&ENVELOPE_V1) {
            return None;
        }
        let (header, rest) = sealed.split_at(HEADER_LEN);
        let key = self.keys.keys().find(|k| k.id.0 == header[1..])?;
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        key.cipher(self.purpose)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &[header, context].concat(),
                },
            )
            .ok()
    }

    fn open_legacy(&self, sealed: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        if !self.purpose.has_legacy_values() || sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.keys.keys().find_map(|key| {
            key.legacy_cipher
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: context,
                    },
                )
                .ok()
        })
    }
}

/// HMAC-SHA256 over a sequence of fields, each length-prefixed so that no
/// two different sequences feed the MAC the same bytes.
fn mac_fields(key: &HmacSha256, fields: &[&[u8]]) -> [u8; MAC_LEN] {
    let mut mac = key.clone();
    for field in fields {
        mac.update(&u64::try_from(field.len()).unwrap_or(u64::MAX).to_be_bytes());
        mac.update(field);
    }
    mac.finalize().into_bytes().into()
}

/// The keyed MAC an idempotency record keeps of its request, in place of a
/// hash: a plain hash of a confirmation body could be brute-forced back
/// into the card in it. A tag is `key id ‖ HMAC` (40 bytes).
#[derive(Clone)]
pub struct RequestMac {
    keys: Keyring,
}

impl std::fmt::Debug for RequestMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestMac({:?})", self.keys)
    }
}

impl RequestMac {
    /// Length of a tag.
    pub const TAG_LEN: usize = KEY_ID_LEN + MAC_LEN;

    /// The tag of `fields` under the current key.
    pub fn tag(&self, fields: &[&[u8]]) -> Vec<u8> {
        let key = &self.keys.current;
        [
            &key.id.0[..],
            &mac_fields(&key.idempotency_requests, fields),
        ]
        .concat()
    }

    /// Whether `tag` is the tag of `fields` under the configured key it
    /// names (compared in constant time).
    pub fn verify(&self, tag: &[u8], fields: &[&[u8]]) -> bool {
        if tag.len() != Self::TAG_LEN {
            return false;
        }
        let (id, mac) = tag.split_at(KEY_ID_LEN);
        self.keys
            .keys()
            .find(|k| k.id.0 == id)
            .is_some_and(|k| constant_time_eq(&mac_fields(&k.idempotency_requests, fields), mac))
    }
}

/// Card fingerprints: a merchant sees the same fingerprint each time a card
/// comes back, and another merchant sees an unrelated one, so fingerprints
/// do not link a customer across merchants. Keyed, because a card number is
/// a BIN, four last digits and a Luhn digit away from being guessed.
#[derive(Clone)]
pub struct Fingerprints {
    keys: Keyring,
}

impl std::fmt::Debug for Fingerprints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprints({:?})", self.keys)
    }
}

impl Fingerprints {
    fn of_key(key: &MasterKey, merchant: &str, card: &[u8]) -> String {
        let mac = mac_fields(&key.fingerprints, &[merchant.as_bytes(), card]);
        hex::encode(&mac[..FINGERPRINT_BYTES])
    }

    /// The fingerprint of `card` for `merchant` (16 hex characters).
    pub fn of(&self, merchant: &str, card: &[u8]) -> String {
        Self::of_key(&self.keys.current, merchant, card)
    }

    /// Every fingerprint `card` may still have at rest for `merchant`: under
    /// each configured key, and in the form used before fingerprints were
    /// per merchant. Velocity checks count all of them, so a rotation in
    /// progress does not make a card look new.
    pub fn candidates(&self, merchant: &str, card: &[u8]) -> Vec<String> {
        let mut out: Vec<String> = self
            .keys
            .keys()
            .map(|k| Self::of_key(k, merchant, card))
            .collect();
        out.extend(self.keys.keys().map(|k| {
            let mut mac = k.legacy_fingerprints.clone();
            mac.update(card);
            hex::encode(&mac.finalize().into_bytes()[..FINGERPRINT_BYTES])
        }));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::new(&Keyring::generate_base64(), &[]).unwrap()
    }

    /// What the node wrote before envelopes: `nonce ‖ ciphertext` under the
    /// master key itself.
    fn legacy_seal(master: &str, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let key = BASE64.decode(master).unwrap();
        let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
        let nonce = [7u8; NONCE_LEN];
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .unwrap();
        [&nonce[..], &sealed].concat()
    }

    #[test]
    fn constant_time_equality_refuses_prefixes_and_other_lengths() {
        assert!(constant_time_eq(b"pay_1_secret_abc", b"pay_1_secret_abc"));
        assert!(!constant_time_eq(b"pay_1_secret_ab", b"pay_1_secret_abc"));
        assert!(!constant_time_eq(b"pay_1_secret_abd", b"pay_1_secret_abc"));
        assert!(!constant_time_eq(b"", b"pay_1_secret_abc"));
    }

    #[test]
    fn seal_then_open_round_trips_and_binds_the_context() {
        let cards = keyring().sealer(Purpose::Cards);
        let sealed = cards.seal(b"4242424242424242", b"pay_1");
        assert!(!sealed.windows(16).any(|w| w == b"4242424242424242"));
        assert!(cards.is_current(&sealed));
        assert_eq!(cards.open(&sealed, b"pay_1").unwrap(), b"4242424242424242");
        assert!(cards.open(&sealed, b"pay_2").is_err());
        for byte in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[byte] ^= 1;
            assert!(
                cards.open(&tampered, b"pay_1").is_err(),
                "byte {byte} is authenticated"
            );
        }
    }

    #[test]
    fn a_value_sealed_for_one_purpose_does_not_open_for_another() {
        let keys = keyring();
        let sealed = keys.sealer(Purpose::Cards).seal(b"whsec_abc", b"we_1");
        assert!(
            keys.sealer(Purpose::WebhookSecrets)
                .open(&sealed, b"we_1")
                .is_err()
        );
        assert!(
            keys.sealer(Purpose::IdempotentResponses)
                .open(&sealed, b"we_1")
                .is_err()
        );
    }

    #[test]
    fn a_previous_key_opens_what_it_sealed_and_the_current_key_reseals_it() {
        let (old, new) = (Keyring::generate_base64(), Keyring::generate_base64());
        let before = Keyring::new(&old, &[]).unwrap().sealer(Purpose::Cards);
        let sealed = before.seal(b"4242424242424242", b"pay_1");
        let during = Keyring::new(&new, std::slice::from_ref(&old)).unwrap();
        let cards = during.sealer(Purpose::Cards);
        assert!(!cards.is_current(&sealed));
        assert_eq!(cards.open(&sealed, b"pay_1").unwrap(), b"4242424242424242");
        let resealed = cards.seal(&cards.open(&sealed, b"pay_1").unwrap(), b"pay_1");
        assert!(cards.is_current(&resealed));
        let after = Keyring::new(&new, &[]).unwrap().sealer(Purpose::Cards);
        assert!(after.open(&resealed, b"pay_1").is_ok());
        assert!(
            after.open(&sealed, b"pay_1").is_err(),
            "a removed key opens nothing"
        );
        assert_ne!(
            Keyring::new(&old, &[]).unwrap().current_id(),
            during.current_id()
        );
    }

    #[test]
    fn values_sealed_before_envelopes_still_open_authenticated() {
        let master = Keyring::generate_base64();
        let legacy = legacy_seal(&master, b"4242424242424242", b"pay_1");
        let keys = Keyring::new(&master, &[]).unwrap();
        let cards = keys.sealer(Purpose::Cards);
        assert!(!cards.is_current(&legacy));
        assert_eq!(cards.open(&legacy, b"pay_1").unwrap(), b"4242424242424242");
        assert!(cards.open(&legacy, b"pay_2").is_err());
        let mut tampered = legacy.clone();
        tampered[20] ^= 1;
        assert!(cards.open(&tampered, b"pay_1").is_err());
        // As a previous key, too.
        let rotated = Keyring::new(&Keyring::generate_base64(), &[master]).unwrap();
        assert!(
            rotated
                .sealer(Purpose::Cards)
                .open(&legacy, b"pay_1")
                .is_ok()
        );
        // Saved responses had no such form left: no fallback for them.
        assert!(
            keys.sealer(Purpose::IdempotentResponses)
                .open(&legacy, b"pay_1")
                .is_err()
        );
    }

    #[test]
    fn request_tags_are_keyed_and_name_their_key() {
        let (old, new) = (Keyring::generate_base64(), Keyring::generate_base64());
        let before = Keyring::new(&old, &[]).unwrap().idempotency_mac();
        let body: &[u8] = br#"{"card":"4242424242424242"}"#;
        let tag = before.tag(&[b"POST", b"/v1/x", body]);
        assert_eq!(tag.len(), RequestMac::TAG_LEN);
        assert!(!tag.windows(32).any(|w| w == sha256(body)));
        assert!(before.verify(&tag, &[b"POST", b"/v1/x", body]));
        assert!(!before.verify(&tag, &[b"POST", b"/v1/y", body]));
        // Field boundaries count.
        assert!(!before.verify(&tag, &[b"POST", b"/v1/x{", &body[1..]]));
        let during = Keyring::new(&new, &[old]).unwrap().idempotency_mac();
        assert!(during.verify(&tag, &[b"POST", b"/v1/x", body]));
        assert!(
            !Keyring::new(&new, &[])
                .unwrap()
                .idempotency_mac()
                .verify(&tag, &[b"POST", b"/v1/x", body])
        );
    }

    #[test]
    fn fingerprints_are_stable_per_merchant_and_differ_across_merchants() {
        let fingerprints = keyring().fingerprints();
        let a = fingerprints.of("mer_a", b"4242424242424242");
        assert_eq!(a.len(), 16);
        assert_eq!(a, fingerprints.of("mer_a", b"4242424242424242"));
        assert_ne!(a, fingerprints.of("mer_b", b"4242424242424242"));
        assert_ne!(a, fingerprints.of("mer_a", b"4000000000000002"));
        let candidates = fingerprints.candidates("mer_a", b"4242424242424242");
        assert_eq!(candidates[0], a);
        assert_eq!(candidates.len(), 2, "current and pre-keyring forms");
    }

    #[test]
    fn bad_or_repeated_keys_are_refused() {
        assert!(matches!(
            Keyring::new("!!", &[]),
            Err(KeyringError::Current(KeyError::NotBase64))
        ));
        assert!(matches!(
            Keyring::new("c2hvcnQ=", &[]),
            Err(KeyringError::Current(KeyError::WrongLength(5)))
        ));
        let key = Keyring::generate_base64();
        assert!(matches!(
            Keyring::new(&key, &["c2hvcnQ=".into()]),
            Err(KeyringError::Previous { index: 0, .. })
        ));
        assert!(matches!(
            Keyring::new(&key, std::slice::from_ref(&key)),
            Err(KeyringError::Repeated { index: 0 })
        ));
    }
}
