//! The admin console's session ids and CSRF tokens.
//!
//! Owns: `new_secret` (32 random bytes from the OS RNG, base64url: a session id, or the token of
//! the sign-in form's double-submit cookie), `stored_form` (the SHA-256 the ledger keeps instead
//! of a session id) and `csrf_token` (a session's CSRF token: an HMAC-SHA256 keyed by the session
//! id itself, so it needs no storage, differs per session, and cannot be derived from anything
//! the ledger holds), and `same` (constant-time comparison of a presented token).
//! May import: std, base64, hmac, sha2, rand, and `super::{admin_token, constant_time_eq}`.
//! Nothing from the gateway's other layers.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use sha2::Sha256;

use super::constant_time_eq;

/// Random bytes per session id and per sign-in form token.
const SECRET_BYTES: usize = 32;
/// What a session's CSRF token is the MAC of (its key is the session id).
const CSRF_PURPOSE: &[u8] = b"npd-monday-gateway console csrf v1";

/// 32 random bytes from the OS RNG, base64url without padding (43 characters).
///
/// # Panics
/// If the operating system's random number generator fails; no session can be made safely then.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    if let Err(err) = OsRng.try_fill_bytes(&mut bytes) {
        panic!("the OS random number generator failed: {err}");
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The form of a session id the ledger stores: lower-case hex SHA-256.
pub fn stored_form(session_id: &str) -> String {
    super::admin_token::hash(session_id)
}

/// The CSRF token of the session `session_id`.
pub fn csrf_token(session_id: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(session_id.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes a key of any length; this arm is never taken.
        Err(_) => return String::new(),
    };
    mac.update(CSRF_PURPOSE);
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Whether a presented token equals the expected one (constant time; an empty one never does).
pub fn same(expected: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| {
        !expected.is_empty() && constant_time_eq(expected.as_bytes(), p.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_csrf_tokens_belong_to_one_session() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 bytes base64url");
        assert_eq!(csrf_token(&a), csrf_token(&a), "stable for one session");
        assert_ne!(csrf_token(&a), csrf_token(&b), "differs per session");
        assert_ne!(stored_form(&a), a, "never stored as it is");
        assert_eq!(stored_form(&a).len(), 64);
    }

    #[test]
    fn only_the_expected_token_passes() {
        let token = csrf_token("session");
        let cases = [
            (Some(token.as_str()), true),
            (None, false),
            (Some(""), false),
            (Some("nope"), false),
        ];
        for (presented, ok) in cases {
            assert_eq!(same(&token, presented), ok, "{presented:?}");
        }
        assert!(!same("", Some("")), "an empty expectation never matches");
    }
}
