//! The HS256 JWT that Monday.com puts in the `Authorization` header of app webhook deliveries.
//!
//! Owns: parsing and verifying that token (`MondayJwtVerifier`), the claims the gateway keeps
//! (`MondayClaims`), and `sign_hs256` for the Monday simulator and tests.
//! May import: std, hmac, sha2, base64, subtle, secrecy, serde, serde_json, rand, thiserror.
//! Nothing from the gateway's other layers.
//!
//! Only HS256 is accepted; the algorithm named in the token header is checked, never trusted to
//! pick the verification method. The signature is checked with `Mac::verify_slice` before any
//! claim is looked at. The `shortLivedToken` claim is an API credential and is never kept.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::{Map, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECS: i64 = 10;

/// Longest `Authorization` value looked at; anything longer is `Malformed`.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The fixed header `sign_hs256` emits.
const HS256_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Verifies Monday's HS256 webhook JWTs against the app's signing secret.
#[derive(Clone)]
pub struct MondayJwtVerifier {
    secret: SecretSlice<u8>,
    audience: Option<String>,
    leeway_secs: i64,
}

impl fmt::Debug for MondayJwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MondayJwtVerifier")
            .field("secret", &format_args!("[REDACTED]"))
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

impl MondayJwtVerifier {
    /// `audience`: when Some, the `aud` claim must equal it exactly (string, or an array containing it).
    /// A negative `leeway_secs` is treated as 0.
    pub fn new(secret: &[u8], audience: Option<String>, leeway_secs: i64) -> Self {
        Self {
            secret: SecretSlice::from(secret.to_vec()),
            audience,
            leeway_secs: leeway_secs.max(0),
        }
    }

    /// `authorization` is the raw header value: a bare JWT or `Bearer <JWT>` (scheme case-insensitive, surrounding
    /// whitespace trimmed). Rules: exactly three base64url (no padding) segments; header JSON must have
    /// `"alg": "HS256"` (anything else, including "none"/"HS512"/"RS256", -> UnsupportedAlgorithm); signature checked
    /// with Mac::verify_slice BEFORE the claims are trusted; claims must be a JSON object with numeric `exp`
    /// (missing -> MissingExp); expired when now > exp + leeway; `nbf` if present must be <= now + leeway;
    /// aud checked as above (AudienceMismatch; missing aud when required is also AudienceMismatch).
    ///
    /// Also `Malformed`: a header carrying `crit` (no extensions are understood), and `exp`, `nbf`
    /// or `iat` present but not a number.
    pub fn verify(&self, authorization: &str, now_unix: i64) -> Result<MondayClaims, JwtError> {
        let token = strip_bearer(authorization)?;
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed);
        }
        let mut segments = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(JwtError::Malformed);
        };

        let header = decode_object(header_b64)?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(JwtError::UnsupportedAlgorithm);
        }
        if header.contains_key("crit") {
            return Err(JwtError::Malformed);
        }

        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| JwtError::Malformed)?;
        let mut mac = hs256(self.secret.expose_secret());
        mac.update(header_b64.as_bytes());
        mac.update(b".");
        mac.update(claims_b64.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| JwtError::BadSignature)?;

        // From here on the claims are authentic.
        let claims = decode_object(claims_b64)?;
        let exp = match claims.get("exp") {
            None => return Err(JwtError::MissingExp),
            Some(value) => numeric_date(value).ok_or(JwtError::Malformed)?,
        };
        if now_unix > exp.saturating_add(self.leeway_secs) {
            return Err(JwtError::Expired);
        }
        if let Some(value) = claims.get("nbf") {
            let nbf = numeric_date(value).ok_or(JwtError::Malformed)?;
            if nbf > now_unix.saturating_add(self.leeway_secs) {
                return Err(JwtError::NotYetValid);
            }
        }
        let iat = claims
            .get("iat")
            .map(|value| numeric_date(value).ok_or(JwtError::Malformed))
            .transpose()?;
        if let Some(expected) = &self.audience {
            let matches = match claims.get("aud") {
                Some(Value::String(aud)) => aud == expected,
                Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(expected)),
                _ => false,
            };
            if !matches {
                return Err(JwtError::AudienceMismatch);
            }
        }

        let dat = claims.get("dat").and_then(Value::as_object);
        let id_claim = |top: &str, nested: &str| {
            claims
                .get(top)
                .and_then(id_value)
                .or_else(|| dat.and_then(|d| d.get(nested)).and_then(id_value))
        };
        Ok(MondayClaims {
            account_id: id_claim("accountId", "account_id"),
            user_id: id_claim("userId", "user_id"),
            exp,
            iat,
        })
    }
}

/// What the gateway keeps of a verified token. `shortLivedToken` is deliberately NOT kept (it is an API credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MondayClaims {
    pub account_id: Option<i64>,
    pub user_id: Option<i64>,
    pub exp: i64,
    pub iat: Option<i64>,
}

/// Why a Monday `Authorization` token was refused. Messages are fit for an HTTP problem detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("missing `Authorization` token")]
    Missing,
    #[error("`Authorization` is not a well-formed JWT")]
    Malformed,
    #[error("JWT algorithm is not HS256")]
    UnsupportedAlgorithm,
    #[error("JWT signature does not verify")]
    BadSignature,
    #[error("JWT has no `exp` claim")]
    MissingExp,
    #[error("JWT has expired")]
    Expired,
    #[error("JWT is not valid yet (`nbf`)")]
    NotYetValid,
    #[error("JWT `aud` does not match this endpoint")]
    AudienceMismatch,
}

/// Encodes `{"alg":"HS256","typ":"JWT"}` + claims and signs them (used by the Monday simulator and tests).
pub fn sign_hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HS256_HEADER),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = hs256(secret);
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn hs256(secret: &[u8]) -> HmacSha256 {
    match <HmacSha256 as Mac>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive) or of a bare token.
fn strip_bearer(authorization: &str) -> Result<&str, JwtError> {
    let value = authorization.trim();
    let token = match value.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ if value.eq_ignore_ascii_case("bearer") => "",
        _ => value,
    };
    if token.is_empty() {
        Err(JwtError::Missing)
    } else {
        Ok(token)
    }
}

/// A base64url (no padding) segment holding a JSON object.
fn decode_object(segment: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed),
    }
}

/// A JWT NumericDate: integer seconds, or a finite fractional value rounded down.
fn numeric_date(value: &Value) -> Option<i64> {
    if let Some(seconds) = value.as_i64() {
        return Some(seconds);
    }
    let seconds = value.as_f64()?.floor();
    // `i64::MAX as f64` rounds up to 2^63, so the upper bound is exclusive.
    let in_range = seconds >= i64::MIN as f64 && seconds < i64::MAX as f64;
    in_range.then_some(seconds as i64)
}

/// A Monday account or user id: a JSON integer or a string of digits.
fn id_value(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const SECRET: &[u8] = b"test-monday-signing-secret";
    const AUDIENCE: &str = "https://gateway.example.com/webhooks/monday";
    const NOW: i64 = 1_606_808_500;
    const EXP: i64 = 1_606_808_758;
    const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhY2NvdW50SWQiOjE4MjU1MjksInVzZXJJZCI6NDAxMjY4OSwiYXVkIjoiaHR0cHM6Ly9nYXRld2F5LmV4YW1wbGUuY29tL3dlYmhvb2tzL21vbmRheSIsImV4cCI6MTYwNjgwODc1OCwiaWF0IjoxNjA2ODA4NDU4LCJzaG9ydExpdmVkVG9rZW4iOiJTSE9SVF9MSVZFRF9UT0tFTl9IRVJFIn0.GsNf2kWWfsxmYhsIp2UNUeUo1edCddvoY4jAPaqsb_0";

    fn verifier(audience: Option<&str>) -> MondayJwtVerifier {
        MondayJwtVerifier::new(SECRET, audience.map(str::to_owned), DEFAULT_LEEWAY_SECS)
    }

    fn vector_claims() -> Value {
        json!({
            "accountId": 1_825_529,
            "userId": 4_012_689,
            "aud": AUDIENCE,
            "exp": EXP,
            "iat": 1_606_808_458,
            "shortLivedToken": "SHORT_LIVED_TOKEN_HERE",
        })
    }

    /// A token with an arbitrary header and signature segment over the vector's claims.
    fn token_with_header(header: &Value, signature_b64: &str) -> String {
        let claims_b64 = TOKEN.split('.').nth(1).expect("vector has claims");
        format!(
            "{}.{claims_b64}.{signature_b64}",
            URL_SAFE_NO_PAD.encode(header.to_string())
        )
    }

    /// The same claims under `header`, correctly MACed with the right secret.
    fn signed_with_header(header: &Value) -> String {
        let claims_b64 = TOKEN.split('.').nth(1).expect("vector has claims");
        let input = format!(
            "{}.{claims_b64}",
            URL_SAFE_NO_PAD.encode(header.to_string())
        );
        let mut mac = hs256(SECRET);
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    fn expected_claims() -> MondayClaims {
        MondayClaims {
            account_id: Some(1_825_529),
            user_id: Some(4_012_689),
            exp: EXP,
            iat: Some(1_606_808_458),
        }
    }

    #[test]
    fn the_monday_style_vector_is_accepted_bare_and_with_a_bearer_prefix() {
        let bearer = format!("Bearer {TOKEN}");
        let lower = format!("bearer {TOKEN}");
        let padded = format!("  BEARER   {TOKEN} \r\n");
        for header in [TOKEN, &bearer, &lower, &padded] {
            assert_eq!(
                verifier(Some(AUDIENCE)).verify(header, NOW),
                Ok(expected_claims()),
                "{header:?}"
            );
        }
    }

    #[test]
    fn the_kept_claims_have_the_ids_and_never_the_short_lived_token() {
        let claims = verifier(Some(AUDIENCE))
            .verify(TOKEN, NOW)
            .expect("vector verifies");
        assert_eq!(claims.account_id, Some(1_825_529));
        assert_eq!(claims.user_id, Some(4_012_689));
        let debug = format!("{claims:?}");
        assert!(!debug.contains("SHORT_LIVED_TOKEN_HERE"), "{debug}");
    }

    /// Asserts that each (name, audience, token, now) is refused with its error.
    fn assert_rejections(cases: Vec<(&str, Option<&str>, &str, i64, JwtError)>) {
        for (name, audience, token, now, expected) in cases {
            assert_eq!(
                verifier(audience).verify(token, now),
                Err(expected),
                "case: {name}"
            );
        }
    }

    #[test]
    fn vector_rejections_of_claims_and_algorithms_give_the_right_error() {
        let none_token = token_with_header(&json!({"alg": "none"}), "");
        let none_typ_token = token_with_header(&json!({"alg": "none", "typ": "JWT"}), "");
        let hs512 = signed_with_header(&json!({"alg": "HS512", "typ": "JWT"}));
        let rs256 = signed_with_header(&json!({"alg": "RS256", "typ": "JWT"}));
        let no_alg = signed_with_header(&json!({"typ": "JWT"}));
        let other_secret = sign_hs256(b"another-secret", &vector_claims());
        let slash = format!("{AUDIENCE}/");
        use JwtError::*;
        assert_rejections(vec![
            (
                "aud with a trailing slash",
                Some(slash.as_str()),
                TOKEN,
                NOW,
                AudienceMismatch,
            ),
            (
                "aud of another endpoint",
                Some("https://evil.example"),
                TOKEN,
                NOW,
                AudienceMismatch,
            ),
            (
                "now = exp + 11 with leeway 10",
                Some(AUDIENCE),
                TOKEN,
                EXP + 11,
                Expired,
            ),
            (
                "alg none with empty signature",
                None,
                &none_token,
                NOW,
                UnsupportedAlgorithm,
            ),
            (
                "alg none with typ",
                None,
                &none_typ_token,
                NOW,
                UnsupportedAlgorithm,
            ),
            ("alg HS512", None, &hs512, NOW, UnsupportedAlgorithm),
            ("alg RS256", None, &rs256, NOW, UnsupportedAlgorithm),
            ("no alg at all", None, &no_alg, NOW, UnsupportedAlgorithm),
            (
                "signed with another secret",
                None,
                &other_secret,
                NOW,
                BadSignature,
            ),
        ]);
    }

    #[test]
    fn vector_rejections_of_the_token_shape_give_the_right_error() {
        let crit = signed_with_header(&json!({"alg": "HS256", "crit": ["b64"], "b64": false}));
        let two_segments = TOKEN.rsplit_once('.').expect("three segments").0.to_owned();
        let four_segments = format!("{TOKEN}.x");
        let padded_sig = format!("{TOKEN}=");
        use JwtError::*;
        assert_rejections(vec![
            ("crit header", None, &crit, NOW, Malformed),
            ("empty header value", None, "", NOW, Missing),
            ("bearer without a token", None, "Bearer   ", NOW, Missing),
            ("two segments", None, &two_segments, NOW, Malformed),
            ("four segments", None, &four_segments, NOW, Malformed),
            ("padded signature", None, &padded_sig, NOW, Malformed),
            ("garbage", None, "not-a-jwt", NOW, Malformed),
            (
                "basic auth scheme",
                None,
                "Basic dXNlcjpwYXNz",
                NOW,
                Malformed,
            ),
        ]);
    }

    #[test]
    fn expiry_is_accepted_up_to_exp_plus_leeway_inclusive() {
        let v = verifier(Some(AUDIENCE));
        for now in [EXP - 1, EXP, EXP + 10] {
            assert!(v.verify(TOKEN, now).is_ok(), "now = {now}");
        }
        assert_eq!(v.verify(TOKEN, EXP + 11), Err(JwtError::Expired));
    }

    #[test]
    fn any_single_changed_byte_in_the_claims_segment_is_rejected() {
        let (header, rest) = TOKEN.split_once('.').expect("segments");
        let (claims, signature) = rest.split_once('.').expect("segments");
        let v = verifier(Some(AUDIENCE));
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..claims.len() {
            let original = claims.as_bytes()[i];
            for replacement in [alphabet[(usize::from(original) + 1) % 64], b'A', b'.'] {
                if replacement == original {
                    continue;
                }
                let mut changed = claims.as_bytes().to_vec();
                changed[i] = replacement;
                let changed = String::from_utf8(changed).expect("ascii");
                let token = format!("{header}.{changed}.{signature}");
                let result = v.verify(&token, NOW);
                assert!(
                    matches!(result, Err(JwtError::BadSignature | JwtError::Malformed)),
                    "byte {i} -> {}: {result:?}",
                    char::from(replacement)
                );
            }
        }
    }

    #[test]
    fn missing_exp_bad_nbf_and_missing_aud_are_rejected() {
        let mut no_exp = vector_claims();
        no_exp.as_object_mut().expect("object").remove("exp");
        let string_exp = json!({"exp": "1606808758", "aud": AUDIENCE});
        let future_nbf = json!({"exp": EXP, "nbf": NOW + 11, "aud": AUDIENCE});
        let no_aud = json!({"exp": EXP});
        let not_object = json!([1, 2, 3]);
        let cases = [
            ("no exp", no_exp, JwtError::MissingExp),
            ("exp as a string", string_exp, JwtError::Malformed),
            ("nbf beyond the leeway", future_nbf, JwtError::NotYetValid),
            (
                "aud required but absent",
                no_aud,
                JwtError::AudienceMismatch,
            ),
            ("claims not an object", not_object, JwtError::Malformed),
        ];
        for (name, claims, expected) in cases {
            let token = sign_hs256(SECRET, &claims);
            assert_eq!(
                verifier(Some(AUDIENCE)).verify(&token, NOW),
                Err(expected),
                "case: {name}"
            );
        }
    }

    #[test]
    fn accepted_claim_shapes_verify() {
        let cases = [
            (
                "nbf within the leeway",
                json!({"exp": EXP, "nbf": NOW + 10, "aud": AUDIENCE}),
            ),
            (
                "aud as an array containing ours",
                json!({"exp": EXP, "aud": ["x", AUDIENCE]}),
            ),
            (
                "fractional exp",
                json!({"exp": 1_606_808_758.5, "aud": AUDIENCE}),
            ),
        ];
        for (name, claims) in cases {
            let token = sign_hs256(SECRET, &claims);
            assert!(
                verifier(Some(AUDIENCE)).verify(&token, NOW).is_ok(),
                "case: {name}"
            );
        }
    }

    #[test]
    fn no_audience_configured_accepts_any_aud_or_none() {
        let cases = [
            json!({"exp": EXP, "aud": "https://anything.example"}),
            json!({"exp": EXP, "aud": ["a", "b"]}),
            json!({"exp": EXP}),
        ];
        for claims in cases {
            let token = sign_hs256(SECRET, &claims);
            assert!(verifier(None).verify(&token, NOW).is_ok(), "{claims}");
        }
        assert!(verifier(None).verify(TOKEN, NOW).is_ok());
    }

    #[test]
    fn ids_fall_back_to_the_dat_object_when_top_level_ones_are_absent() {
        let cases = [
            (
                json!({"exp": EXP, "dat": {"account_id": 7, "user_id": 8}}),
                (Some(7), Some(8)),
            ),
            (
                json!({"exp": EXP, "accountId": 1, "dat": {"account_id": 7, "user_id": 8}}),
                (Some(1), Some(8)),
            ),
            (json!({"exp": EXP, "accountId": "42"}), (Some(42), None)),
            (json!({"exp": EXP}), (None, None)),
        ];
        for (claims, (account_id, user_id)) in cases {
            let token = sign_hs256(SECRET, &claims);
            let kept = verifier(None).verify(&token, NOW).expect("verifies");
            assert_eq!(
                (kept.account_id, kept.user_id),
                (account_id, user_id),
                "{claims}"
            );
        }
    }

    #[test]
    fn sign_hs256_emits_the_vectors_header_segment() {
        let token = sign_hs256(SECRET, &vector_claims());
        assert_eq!(token.split('.').next(), TOKEN.split('.').next());
        assert_eq!(
            verifier(Some(AUDIENCE)).verify(&token, NOW),
            Ok(expected_claims())
        );
    }

    #[test]
    fn debug_of_the_verifier_never_contains_the_secret() {
        let v = verifier(Some(AUDIENCE));
        for out in [format!("{v:?}"), format!("{v:#?}")] {
            assert!(!out.contains("test-monday-signing-secret"), "{out}");
            assert!(!out.contains(&format!("{SECRET:?}")), "{out}");
            assert!(out.contains("REDACTED"), "{out}");
        }
    }

    proptest! {
        #[test]
        fn sign_hs256_then_verify_round_trips(
            key in proptest::collection::vec(any::<u8>(), 1..64),
            account in any::<i64>(),
            user in any::<i64>(),
            exp in 0i64..4_000_000_000,
            iat in 0i64..4_000_000_000,
            extra in ".*",
        ) {
            let claims = json!({
                "accountId": account, "userId": user, "exp": exp, "iat": iat,
                "aud": AUDIENCE, "extra": extra,
            });
            let token = sign_hs256(&key, &claims);
            let v = MondayJwtVerifier::new(&key, Some(AUDIENCE.to_owned()), DEFAULT_LEEWAY_SECS);
            prop_assert_eq!(
                v.verify(&token, exp),
                Ok(MondayClaims { account_id: Some(account), user_id: Some(user), exp, iat: Some(iat) })
            );
        }
    }
}
