//! The Monday JWT in `Authorization`: bearer stripping, the three-segment split, base64url and
//! JSON of header and claims, HS256, `exp`/`nbf`/`aud`. Input: the header value. Besides never
//! panicking: a token we sign over claims the input gives verifies when its claims are valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use npd_monday_gateway::auth::monday_jwt::{DEFAULT_LEEWAY_SECS, MondayJwtVerifier, sign_hs256};

const SECRET: &[u8] = b"fuzz-monday-signing-secret";
const AUDIENCE: &str = "https://gateway.example.com/webhooks/monday";
const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for audience in [None, Some(AUDIENCE.to_owned())] {
        let verifier = MondayJwtVerifier::new(SECRET, audience, DEFAULT_LEEWAY_SECS);
        let _ = verifier.verify(&text, NOW);
        let _ = verifier.verify(&format!("Bearer {text}"), NOW);
    }
    // Claims from the input, signed properly: the verifier must not panic on what is inside.
    if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) {
        let token = sign_hs256(SECRET, &claims);
        let verifier = MondayJwtVerifier::new(SECRET, None, DEFAULT_LEEWAY_SECS);
        let _ = verifier.verify(&token, NOW);
        let _ = verifier.verify(&format!("Bearer {token}"), NOW);
    }
});
