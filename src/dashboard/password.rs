//! Password hashing: argon2id with the `argon2` crate's defaults (OWASP's
//! minimum: 19 MiB, 2 passes, 1 lane), stored as a PHC string so the
//! parameters travel with the hash and can be raised later.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;

/// Shortest password accepted.
pub const MIN_LEN: usize = 12;
/// Longest: argon2 takes any length, but a megabyte "password" is a denial
/// of service on the hasher.
pub const MAX_LEN: usize = 256;

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Why a password is refused.
pub fn check_policy(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(format!(
            "the password must have at least {MIN_LEN} characters"
        ));
    }
    if chars > MAX_LEN {
        return Err(format!(
            "the password must have at most {MAX_LEN} characters"
        ));
    }
    Ok(())
}

/// The PHC string of `password` with a fresh salt.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches `phc`.
pub fn verify(phc: &str, password: &str) -> bool {
    if password.len() > MAX_LEN * 4 {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash of nothing anyone knows, verified against when the email is
/// unknown, so that answering takes as long as for a known user.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(&crate::ids::random_base62(24)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify(&phc, "correct horse battery"));
        assert!(!verify(&phc, "correct horse batterz"));
        assert!(!verify("not a hash", "x"));
        assert_ne!(phc, hash("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn policy() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("twelve chars").is_ok());
        assert!(check_policy(&"x".repeat(257)).is_err());
    }
}
