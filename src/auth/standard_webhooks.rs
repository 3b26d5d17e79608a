//! Standard Webhooks v1: the signature scheme of NPD -> gateway events (and gateway -> NPD pushes).
//!
//! Owns: `whsec_` secret parsing (`WebhookSecret`), signing (`sign`) and verification
//! (`Verifier`) of `webhook-id` / `webhook-timestamp` / `webhook-signature`, with key rotation
//! (several secrets, several signatures) and the replay window.
//! May import: std, hmac, sha2, base64, subtle, secrecy, serde, serde_json, rand, thiserror.
//! Nothing from the gateway's other layers.
//!
//! The MAC is HMAC-SHA256 over the raw bytes `{id}.{timestamp}.{body}`; the body is never
//! parsed or required to be UTF-8 here. Signatures are compared with `Mac::verify_slice`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The replay window of the reference libraries: five minutes, past and future.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// The optional prefix of a Standard Webhooks secret.
const SECRET_PREFIX: &str = "whsec_";
/// The longest `webhook-id` accepted, in bytes.
const MAX_ID_LEN: usize = 256;
/// How many entries of `webhook-signature` are looked at, at most.
const MAX_SIGNATURES: usize = 32;

/// A signing key: the base64-decoded bytes of a `whsec_...` secret. Debug prints `WebhookSecret([REDACTED])`.
#[derive(Clone)]
pub struct WebhookSecret {
    key: SecretSlice<u8>,
}

impl WebhookSecret {
    /// `whsec_<base64>` (prefix optional); errors if not valid standard base64 or decodes to empty.
    ///
    /// Surrounding whitespace is ignored (secrets often arrive from files with a trailing newline).
    pub fn parse(s: &str) -> Result<Self, SecretFormatError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(SecretFormatError::Empty);
        }
        let encoded = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SecretFormatError::InvalidBase64)?;
        if bytes.is_empty() {
            return Err(SecretFormatError::EmptyKey);
        }
        Ok(Self::from_bytes(bytes))
    }

    /// Several secrets separated by ASCII whitespace (rotation); error if none or any is bad.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, SecretFormatError> {
        let secrets = s
            .split_ascii_whitespace()
            .enumerate()
            .map(|(index, item)| {
                Self::parse(item).map_err(|reason| SecretFormatError::InList {
                    position: index + 1,
                    reason: Box::new(reason),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if secrets.is_empty() {
            return Err(SecretFormatError::Empty);
        }
        Ok(secrets)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self {
            key: SecretSlice::from(bytes),
        }
    }

    /// A MAC keyed with this secret, not yet fed any data.
    fn mac(&self) -> HmacSha256 {
        match <HmacSha256 as Mac>::new_from_slice(self.key.expose_secret()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        }
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

/// Why a configured webhook secret was refused. Messages never contain the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretFormatError {
    #[error("no webhook secret given")]
    Empty,
    #[error("webhook secret is not valid base64 (expected `whsec_<base64>`)")]
    InvalidBase64,
    #[error("webhook secret decodes to zero bytes")]
    EmptyKey,
    /// One entry of a whitespace-separated list is bad; `position` counts from 1.
    #[error("webhook secret #{position} of the list: {reason}")]
    InList {
        position: usize,
        reason: Box<SecretFormatError>,
    },
}

/// The three Standard Webhooks headers of a request, as raw header text (`None` when absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Verifies Standard Webhooks signatures under one or more secrets (rotation).
#[derive(Clone)]
pub struct Verifier {
    secrets: Vec<WebhookSecret>,
    tolerance_secs: i64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "secrets",
                &format_args!("[REDACTED; {}]", self.secrets.len()),
            )
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

impl Verifier {
    /// A negative `tolerance_secs` is treated as 0.
    pub fn new(secrets: Vec<WebhookSecret>, tolerance_secs: i64) -> Self {
        Self {
            secrets,
            tolerance_secs: tolerance_secs.max(0),
        }
    }

    /// Checks, in this order: headers present (MissingHeader("webhook-id"|"webhook-timestamp"|"webhook-signature")),
    /// id non-empty, at most 256 bytes and without '.' (InvalidId), timestamp is an integer (InvalidTimestamp),
    /// |now - ts| <= tolerance (TimestampTooOld / TimestampTooNew), at least one secret configured (NoSecretConfigured),
    /// then HMAC-SHA256 over the raw bytes `{id}.{ts}.{body}` against every space-separated `v1,<base64>` entry
    /// (at most 32 entries considered; other version tags and undecodable entries are skipped) under every secret;
    /// any match passes, else NoMatchingSignature. The timestamp is signed as the exact header text.
    ///
    /// "An integer" means one or more ASCII digits that fit an `i64` (no sign, no spaces).
    pub fn verify(
        &self,
        headers: SignedHeaders<'_>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), VerifyError> {
        let id = headers.id.ok_or(VerifyError::MissingHeader("webhook-id"))?;
        let timestamp = headers
            .timestamp
            .ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
        let signature = headers
            .signature
            .ok_or(VerifyError::MissingHeader("webhook-signature"))?;

        if id.is_empty() || id.len() > MAX_ID_LEN || id.contains('.') {
            return Err(VerifyError::InvalidId);
        }
        let ts = parse_timestamp(timestamp).ok_or(VerifyError::InvalidTimestamp)?;

        let age = i128::from(now_unix) - i128::from(ts);
        let tolerance = i128::from(self.tolerance_secs);
        if age > tolerance {
            return Err(VerifyError::TimestampTooOld);
        }
        if -age > tolerance {
            return Err(VerifyError::TimestampTooNew);
        }

        if self.secrets.is_empty() {
            return Err(VerifyError::NoSecretConfigured);
        }

        let candidates: Vec<Vec<u8>> = signature
            .split_ascii_whitespace()
            .take(MAX_SIGNATURES)
            .filter_map(|entry| {
                let (version, encoded) = entry.split_once(',')?;
                if version != "v1" {
                    return None;
                }
                STANDARD.decode(encoded).ok()
            })
            .collect();
        if candidates.is_empty() {
            return Err(VerifyError::NoMatchingSignature);
        }

        for secret in &self.secrets {
            let mut mac = secret.mac();
            feed(&mut mac, id, timestamp.as_bytes(), body);
            if candidates
                .iter()
                .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
            {
                return Ok(());
            }
        }
        Err(VerifyError::NoMatchingSignature)
    }
}

/// Returns `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = secret.mac();
    feed(&mut mac, id, timestamp.to_string().as_bytes(), body);
    let tag = mac.finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// Feeds `{id}.{timestamp}.{body}` into the MAC.
fn feed(mac: &mut HmacSha256, id: &str, timestamp: &[u8], body: &[u8]) {
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp);
    mac.update(b".");
    mac.update(body);
}

/// One or more ASCII digits that fit an `i64`.
fn parse_timestamp(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Why a Standard Webhooks request was refused. Messages are fit for an HTTP problem detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing `{0}` header")]
    MissingHeader(&'static str),
    #[error("`webhook-id` must be 1 to 256 bytes and contain no `.`")]
    InvalidId,
    #[error("`webhook-timestamp` is not an integer unix timestamp")]
    InvalidTimestamp,
    #[error("`webhook-timestamp` is older than the allowed window")]
    TimestampTooOld,
    #[error("`webhook-timestamp` is further in the future than the allowed window")]
    TimestampTooNew,
    #[error("no webhook secret is configured")]
    NoSecretConfigured,
    #[error("no signature in `webhook-signature` matches")]
    NoMatchingSignature,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V1_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const V1_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const V1_TS: i64 = 1_614_265_330;
    const V1_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const V1_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const V1_SIG_BAD: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";

    const V2_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const V2_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const V2_TS: i64 = 1_649_367_553;
    const V2_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const V2_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    /// V2's id, ts and body signed with V1's secret.
    const V2_SIG_UNDER_V1_SECRET: &str = "v1,bmED0YkXIwCHhhZjbHn8qMCbczjpYwHGju/WMUmDqOQ=";

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::parse(s).expect("test secret parses")
    }

    fn verifier(secrets: &[&str]) -> Verifier {
        Verifier::new(
            secrets.iter().map(|s| secret(s)).collect(),
            DEFAULT_TOLERANCE_SECS,
        )
    }

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> SignedHeaders<'a> {
        SignedHeaders {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    /// `signature` with the v1 vector's id and timestamp over `body`, checked at `now` against
    /// the v1 secret alone.
    fn verify_v1(signature: &str, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let ts = V1_TS.to_string();
        verifier(&[V1_SECRET]).verify(headers(V1_ID, &ts, signature), body, now)
    }

    #[test]
    fn the_published_vectors_are_accepted_with_now_pinned_to_their_timestamps() {
        let cases = [
            (V1_SECRET, V1_ID, V1_TS, V1_BODY, V1_SIG),
            (V2_SECRET, V2_ID, V2_TS, V2_BODY, V2_SIG),
        ];
        for (key, id, ts, body, sig) in cases {
            let ts_text = ts.to_string();
            assert_eq!(
                verifier(&[key]).verify(headers(id, &ts_text, sig), body, ts),
                Ok(()),
                "vector {id}"
            );
        }
    }

    #[test]
    fn sign_reproduces_the_published_signature_strings() {
        let cases = [
            (V1_SECRET, V1_ID, V1_TS, V1_BODY, V1_SIG),
            (V2_SECRET, V2_ID, V2_TS, V2_BODY, V2_SIG),
            (V1_SECRET, V2_ID, V2_TS, V2_BODY, V2_SIG_UNDER_V1_SECRET),
        ];
        for (key, id, ts, body, expected) in cases {
            assert_eq!(sign(&secret(key), id, ts, body), expected, "vector {id}");
        }
    }

    /// Asserts that each set of v1 headers, over the v1 body at the v1 time, fails with `expected`.
    fn assert_v1_headers_rejected(expected: VerifyError, cases: Vec<(&str, SignedHeaders<'_>)>) {
        let v = verifier(&[V1_SECRET]);
        for (name, h) in cases {
            assert_eq!(
                v.verify(h, V1_BODY, V1_TS),
                Err(expected.clone()),
                "case: {name}"
            );
        }
    }

    #[test]
    fn listed_negatives_of_the_v1_vector_with_a_wrong_signature_do_not_match() {
        let ts = V1_TS.to_string();
        let wrong_ts = (V1_TS + 1).to_string();
        let v2_tag = V1_SIG.replacen("v1,", "v2,", 1);
        let three_wrong = format!("{V1_SIG_BAD} v1,{} {V2_SIG}", STANDARD.encode([0u8; 32]));
        assert_v1_headers_rejected(
            VerifyError::NoMatchingSignature,
            vec![
                ("wrong id", headers(V2_ID, &ts, V1_SIG)),
                (
                    "wrong ts (still inside the window)",
                    headers(V1_ID, &wrong_ts, V1_SIG),
                ),
                (
                    "last base64 character changed",
                    headers(V1_ID, &ts, V1_SIG_BAD),
                ),
                ("`v1,` alone", headers(V1_ID, &ts, "v1,")),
                (
                    "truncated to the first 8 characters",
                    headers(V1_ID, &ts, &V1_SIG[..8]),
                ),
                (
                    "truncated to 8 characters after `v1,`",
                    headers(V1_ID, &ts, &V1_SIG[..11]),
                ),
                (
                    "right MAC under the wrong version tag `v2,`",
                    headers(V1_ID, &ts, &v2_tag),
                ),
                (
                    "right MAC without a version tag",
                    headers(V1_ID, &ts, &V1_SIG[3..]),
                ),
                ("three wrong signatures", headers(V1_ID, &ts, &three_wrong)),
            ],
        );
    }

    #[test]
    fn listed_negatives_of_the_v1_vector_with_a_bad_or_missing_header_name_it() {
        use VerifyError::*;
        let ts = V1_TS.to_string();
        let missing = |which: &str| {
            let mut h = headers(V1_ID, &ts, V1_SIG);
            match which {
                "id" => h.id = None,
                "ts" => h.timestamp = None,
                _ => h.signature = None,
            }
            h
        };
        assert_v1_headers_rejected(
            InvalidTimestamp,
            vec![
                ("timestamp `hello`", headers(V1_ID, "hello", V1_SIG)),
                ("empty timestamp", headers(V1_ID, "", V1_SIG)),
                (
                    "signed timestamp `+1614265330`",
                    headers(V1_ID, "+1614265330", V1_SIG),
                ),
                (
                    "timestamp overflowing i64",
                    headers(V1_ID, "99999999999999999999", V1_SIG),
                ),
            ],
        );
        for (header, which) in [
            ("webhook-id", "id"),
            ("webhook-timestamp", "ts"),
            ("webhook-signature", "sig"),
        ] {
            assert_v1_headers_rejected(MissingHeader(header), vec![(header, missing(which))]);
        }
        assert_v1_headers_rejected(
            InvalidId,
            vec![
                ("empty id", headers("", &ts, V1_SIG)),
                ("id containing a dot", headers("msg.1", &ts, V1_SIG)),
            ],
        );
    }

    #[test]
    fn listed_negatives_of_the_v1_vector_with_another_body_or_time_are_rejected() {
        use VerifyError::*;
        let body_changed = br#"{"test": 2432232315}"#.as_slice();
        let body_newline = [V1_BODY, b"\n"].concat();
        let cases: [(&str, &[u8], i64, VerifyError); 4] = [
            (
                "one-byte body change",
                body_changed,
                V1_TS,
                NoMatchingSignature,
            ),
            (
                "trailing newline on the body",
                &body_newline,
                V1_TS,
                NoMatchingSignature,
            ),
            ("now = ts + 301 s", V1_BODY, V1_TS + 301, TimestampTooOld),
            ("now = ts - 301 s", V1_BODY, V1_TS - 301, TimestampTooNew),
        ];
        for (name, body, now, expected) in cases {
            assert_eq!(verify_v1(V1_SIG, body, now), Err(expected), "case: {name}");
        }
    }

    #[test]
    fn an_id_longer_than_256_bytes_is_rejected_and_256_bytes_is_allowed() {
        let v = verifier(&[V1_SECRET]);
        let ts = V1_TS.to_string();
        for (len, expect_ok) in [(256, true), (257, false)] {
            let id = "a".repeat(len);
            let sig = sign(&secret(V1_SECRET), &id, V1_TS, V1_BODY);
            let result = v.verify(headers(&id, &ts, &sig), V1_BODY, V1_TS);
            if expect_ok {
                assert_eq!(result, Ok(()), "len {len}");
            } else {
                assert_eq!(result, Err(VerifyError::InvalidId), "len {len}");
            }
        }
    }

    #[test]
    fn the_window_is_inclusive_at_exactly_300_seconds_either_way() {
        for now in [V1_TS - 300, V1_TS, V1_TS + 300] {
            assert_eq!(verify_v1(V1_SIG, V1_BODY, now), Ok(()), "now {now}");
        }
    }

    #[test]
    fn a_list_of_four_where_one_is_right_passes_in_any_position() {
        let wrong = [V1_SIG_BAD, "v1,", V2_SIG];
        for position in 0..4 {
            let mut list: Vec<&str> = wrong.to_vec();
            list.insert(position, V1_SIG);
            let header = list.join(" ");
            assert_eq!(
                verify_v1(&header, V1_BODY, V1_TS),
                Ok(()),
                "header {header}"
            );
        }
    }

    #[test]
    fn only_the_first_32_signature_entries_are_considered() {
        let padded = |n: usize| {
            let mut list = vec![V1_SIG_BAD; n];
            list.push(V1_SIG);
            list.join(" ")
        };
        assert_eq!(verify_v1(&padded(31), V1_BODY, V1_TS), Ok(()));
        assert_eq!(
            verify_v1(&padded(32), V1_BODY, V1_TS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn the_rotation_header_verifies_under_either_secret_alone_and_under_both() {
        let header = format!("{V2_SIG} {V2_SIG_UNDER_V1_SECRET}");
        let ts = V2_TS.to_string();
        let cases: [&[&str]; 4] = [
            &[V1_SECRET],
            &[V2_SECRET],
            &[V1_SECRET, V2_SECRET],
            &[V2_SECRET, V1_SECRET],
        ];
        for secrets in cases {
            assert_eq!(
                verifier(secrets).verify(headers(V2_ID, &ts, &header), V2_BODY, V2_TS),
                Ok(()),
                "secrets {secrets:?}"
            );
        }
    }

    #[test]
    fn v2_signed_with_v1s_secret_fails_under_v2s_secret_only() {
        let ts = V2_TS.to_string();
        let h = headers(V2_ID, &ts, V2_SIG_UNDER_V1_SECRET);
        let cases: [(&[&str], Result<(), VerifyError>); 3] = [
            (&[V2_SECRET], Err(VerifyError::NoMatchingSignature)),
            (&[V1_SECRET], Ok(())),
            (&[V2_SECRET, V1_SECRET], Ok(())),
        ];
        for (secrets, expected) in cases {
            assert_eq!(
                verifier(secrets).verify(h, V2_BODY, V2_TS),
                expected,
                "secrets {secrets:?}"
            );
        }
    }

    #[test]
    fn checks_run_in_the_documented_order() {
        let empty = Verifier::new(Vec::new(), DEFAULT_TOLERANCE_SECS);
        let ts = V1_TS.to_string();
        let none = SignedHeaders::default();
        let cases: Vec<(&str, &Verifier, SignedHeaders<'_>, i64, VerifyError)> = vec![
            (
                "all missing reports the id first",
                &empty,
                none,
                V1_TS,
                VerifyError::MissingHeader("webhook-id"),
            ),
            (
                "bad id beats bad timestamp",
                &empty,
                headers("a.b", "x", ""),
                V1_TS,
                VerifyError::InvalidId,
            ),
            (
                "bad timestamp beats missing secret",
                &empty,
                headers(V1_ID, "x", ""),
                V1_TS,
                VerifyError::InvalidTimestamp,
            ),
            (
                "stale timestamp beats missing secret",
                &empty,
                headers(V1_ID, &ts, V1_SIG),
                V1_TS + 1000,
                VerifyError::TimestampTooOld,
            ),
            (
                "no secret is reported before any MAC work",
                &empty,
                headers(V1_ID, &ts, V1_SIG),
                V1_TS,
                VerifyError::NoSecretConfigured,
            ),
        ];
        for (name, v, h, now, expected) in cases {
            assert_eq!(v.verify(h, V1_BODY, now), Err(expected), "case: {name}");
        }
    }

    #[test]
    fn secrets_parse_with_or_without_prefix_and_bad_ones_are_refused() {
        let with = secret(V1_SECRET);
        let without = secret(V1_SECRET.trim_start_matches("whsec_"));
        assert_eq!(
            sign(&with, V1_ID, V1_TS, V1_BODY),
            sign(&without, V1_ID, V1_TS, V1_BODY)
        );
        let bad = [
            ("", "no webhook secret given"),
            ("   ", "no webhook secret given"),
            ("whsec_", "webhook secret decodes to zero bytes"),
            ("whsec_not*base64", "not valid base64"),
            ("whsec_abc", "not valid base64"),
        ];
        for (input, message) in bad {
            let err = WebhookSecret::parse(input).expect_err(input);
            assert!(err.to_string().contains(message), "{input:?}: {err}");
        }
    }

    #[test]
    fn secret_lists_parse_whitespace_separated_and_name_the_bad_position() {
        let list = WebhookSecret::parse_list(&format!(" {V1_SECRET}\n{V2_SECRET}\t"))
            .expect("two good secrets");
        assert_eq!(list.len(), 2);
        assert_eq!(sign(&list[1], V2_ID, V2_TS, V2_BODY), V2_SIG);

        let err = WebhookSecret::parse_list(" \n ").expect_err("empty list");
        assert!(matches!(err, SecretFormatError::Empty));

        let secret_text = "whsec_c2VjcmV0IXNlY3JldCE*";
        let err = WebhookSecret::parse_list(&format!("{V1_SECRET} {secret_text}"))
            .expect_err("second is bad");
        let message = err.to_string();
        assert!(message.contains("#2"), "{message}");
        assert!(!message.contains("c2VjcmV0"), "{message}");
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let key_text = V1_SECRET.trim_start_matches("whsec_");
        let s = secret(V1_SECRET);
        let key_bytes = STANDARD.decode(key_text).expect("decodes");
        let v = Verifier::new(vec![s.clone(), secret(V2_SECRET)], 300);
        let outputs = [format!("{s:?}"), format!("{v:?}"), format!("{v:#?}")];
        assert_eq!(outputs[0], "WebhookSecret([REDACTED])");
        for out in outputs {
            assert!(!out.contains(key_text), "{out}");
            assert!(!out.contains(&format!("{key_bytes:?}")), "{out}");
        }
    }

    #[test]
    fn error_messages_are_short_and_name_the_header() {
        let cases = [
            (
                VerifyError::MissingHeader("webhook-signature"),
                "missing `webhook-signature` header",
            ),
            (
                VerifyError::NoMatchingSignature,
                "no signature in `webhook-signature` matches",
            ),
        ];
        for (err, message) in cases {
            assert_eq!(err.to_string(), message);
        }
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips_for_any_body_id_and_timestamp(
            key in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 0..512),
            id in "[^.]{1,64}",
            ts in 0i64..=i64::MAX,
        ) {
            let secret = WebhookSecret::from_bytes(key);
            let sig = sign(&secret, &id, ts, &body);
            let v = Verifier::new(vec![secret], DEFAULT_TOLERANCE_SECS);
            let ts_text = ts.to_string();
            prop_assert_eq!(v.verify(headers(&id, &ts_text, &sig), &body, ts), Ok(()));
        }

        #[test]
        fn flipping_any_single_bit_of_the_body_fails(
            body in proptest::collection::vec(any::<u8>(), 1..256),
            bit in any::<proptest::sample::Index>(),
        ) {
            let sig = sign(&secret(V1_SECRET), V1_ID, V1_TS, &body);
            let mut tampered = body.clone();
            let bit = bit.index(tampered.len() * 8);
            tampered[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(
                verify_v1(&sig, &tampered, V1_TS),
                Err(VerifyError::NoMatchingSignature)
            );
        }

        #[test]
        fn flipping_any_single_bit_of_the_id_fails(
            id in "[A-Za-z0-9_-]{1,64}",
            body in proptest::collection::vec(any::<u8>(), 0..128),
            bit in any::<proptest::sample::Index>(),
        ) {
            let sig = sign(&secret(V1_SECRET), &id, V1_TS, &body);
            let mut raw = id.clone().into_bytes();
            let bit = bit.index(raw.len() * 8);
            raw[bit / 8] ^= 1 << (bit % 8);
            // A flip that leaves UTF-8 could not arrive as a header value at all.
            if let Ok(tampered) = String::from_utf8(raw) {
                let ts = V1_TS.to_string();
                let v = verifier(&[V1_SECRET]);
                prop_assert!(v.verify(headers(&tampered, &ts, &sig), &body, V1_TS).is_err());
            }
        }

        #[test]
        fn flipping_any_single_bit_of_the_timestamp_fails(
            ts in 0i64..=i64::MAX,
            body in proptest::collection::vec(any::<u8>(), 0..128),
            bit in any::<proptest::sample::Index>(),
        ) {
            let sig = sign(&secret(V1_SECRET), V1_ID, ts, &body);
            let mut raw = ts.to_string().into_bytes();
            let bit = bit.index(raw.len() * 8);
            raw[bit / 8] ^= 1 << (bit % 8);
            if let Ok(tampered) = String::from_utf8(raw) {
                // Checked at the tampered time itself, so the window cannot be what refuses it.
                let now = tampered.parse().unwrap_or(ts);
                let v = Verifier::new(vec![secret(V1_SECRET)], i64::MAX);
                prop_assert!(v.verify(headers(V1_ID, &tampered, &sig), &body, now).is_err());
            }
        }

        #[test]
        fn flipping_any_single_bit_of_the_decoded_signature_fails(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            bit in 0usize..256,
        ) {
            let sig = sign(&secret(V1_SECRET), V1_ID, V1_TS, &body);
            let mut raw = STANDARD.decode(&sig[3..]).expect("own signature decodes");
            raw[bit / 8] ^= 1 << (bit % 8);
            let tampered = format!("v1,{}", STANDARD.encode(&raw));
            prop_assert_eq!(
                verify_v1(&tampered, &body, V1_TS),
                Err(VerifyError::NoMatchingSignature)
            );
        }
    }
}
