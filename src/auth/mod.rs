//! Authenticity checks for everything that reaches the gateway.
//!
//! Owns: Standard Webhooks v1 signing and verification for NPD events (`standard_webhooks`), the
//! HS256 JWT that Monday puts in `Authorization` (`monday_jwt`), admin bearer tokens
//! (`admin_token`), the admin console's session ids and CSRF tokens (`console_session`), and
//! the constant-time byte comparison they share.
//! May import: std, hmac, sha2, base64, subtle, secrecy, serde, serde_json, rand, thiserror.
//! Nothing from the gateway's other layers.
//!
//! Rules kept throughout: secrets never appear in `Debug`/`Display` output or in error messages,
//! and MACs and tokens are only ever compared in constant time (`Mac::verify_slice` or
//! `subtle::ConstantTimeEq`), never with `==`.

pub mod admin_token;
pub mod console_session;
pub mod monday_jwt;
pub mod standard_webhooks;

use subtle::ConstantTimeEq;

/// Constant-time equality of two byte strings (length may leak, content does not).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_agrees_with_plain_equality_on_a_table_of_cases() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"", b"", true),
            (b"abc", b"abc", true),
            (b"abc", b"abd", false),
            (b"abc", b"ab", false),
            (b"ab", b"abc", false),
            (b"", b"a", false),
            (&[0, 255, 7], &[0, 255, 7], true),
            (&[0, 255, 7], &[1, 255, 7], false),
        ];
        for (a, b, expected) in cases {
            assert_eq!(constant_time_eq(a, b), *expected, "{a:?} vs {b:?}");
        }
    }
}
