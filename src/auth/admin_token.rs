//! Admin bearer tokens for the manual push endpoint.
//!
//! Owns: generating a token (`generate`), the stored form of a token (`hash`, lower-case hex
//! SHA-256) and checking a presented token against it (`matches`, constant time).
//! May import: std, hmac, sha2, base64, subtle, secrecy, serde, serde_json, rand, thiserror, and
//! `super::constant_time_eq`. Nothing from the gateway's other layers.
//!
//! A token is shown once when generated and never stored; only its hash is.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use super::constant_time_eq;

/// The prefix every admin token carries, so a leaked one is easy to recognise.
const PREFIX: &str = "gwa_";
/// Random bytes per token.
const TOKEN_BYTES: usize = 32;

/// A new admin token: `gwa_` + base64url(32 random bytes from the OS RNG). Shown once, never stored.
///
/// # Panics
/// If the operating system's random number generator fails; no token can be made safely then.
pub fn generate() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    if let Err(err) = OsRng.try_fill_bytes(&mut bytes) {
        panic!("the OS random number generator failed: {err}");
    }
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Lower-case hex SHA-256 of the token: the only form that is stored.
pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Whether `token` hashes to `stored_hash_hex`, compared in constant time.
///
/// `stored_hash_hex` is compared as the lower-case hex that `hash` produces (upper-case hex is
/// folded to lower case first).
pub fn matches(token: &str, stored_hash_hex: &str) -> bool {
    let stored = stored_hash_hex.to_ascii_lowercase();
    constant_time_eq(hash(token).as_bytes(), stored.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_tokens_are_distinct_prefixed_and_43_base64url_chars() {
        let tokens: Vec<String> = (0..64).map(|_| generate()).collect();
        let distinct: HashSet<&String> = tokens.iter().collect();
        assert_eq!(distinct.len(), tokens.len());
        for token in &tokens {
            let body = token.strip_prefix("gwa_").expect("has the gwa_ prefix");
            assert_eq!(body.len(), 43, "{token}");
            assert!(
                body.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{token}"
            );
            let decoded = URL_SAFE_NO_PAD.decode(body).expect("base64url");
            assert_eq!(decoded.len(), 32);
        }
    }

    #[test]
    fn hash_is_64_lower_case_hex_chars_of_sha256() {
        let cases = [
            (
                "",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                "abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(hash(token), expected, "{token:?}");
        }
        let h = hash(&generate());
        assert_eq!(h.len(), 64);
        assert!(
            h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{h}"
        );
    }

    #[test]
    fn matches_accepts_only_the_token_that_was_hashed() {
        let token = generate();
        let other = generate();
        let stored = hash(&token);
        let with_newline = format!("{token}\n");
        let cases = [
            ("the right token", token.as_str(), stored.clone(), true),
            (
                "upper-case stored hash",
                token.as_str(),
                stored.to_uppercase(),
                true,
            ),
            ("another token", other.as_str(), stored.clone(), false),
            (
                "token with a trailing newline",
                with_newline.as_str(),
                stored.clone(),
                false,
            ),
            ("empty token", "", stored.clone(), false),
            (
                "truncated stored hash",
                token.as_str(),
                stored[..63].to_owned(),
                false,
            ),
            ("empty stored hash", token.as_str(), String::new(), false),
        ];
        for (name, presented, stored_hash, expected) in cases {
            assert_eq!(matches(presented, &stored_hash), expected, "case: {name}");
        }
    }
}
