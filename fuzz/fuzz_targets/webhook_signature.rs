//! The Standard Webhooks verifier on arbitrary headers and body: `webhook-id`,
//! `webhook-timestamp` and the `webhook-signature` list parsed as NPD's requests bring them.
//! Input: four fields separated by `\n` (id, timestamp, signature list, body). Besides never
//! panicking: what `sign` produced for a valid id verifies, and a verified request's timestamp
//! is inside the window.
#![no_main]

use libfuzzer_sys::fuzz_target;
use npd_monday_gateway::auth::standard_webhooks::{
    DEFAULT_TOLERANCE_SECS, SignedHeaders, Verifier, WebhookSecret, sign,
};

const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let id = std::str::from_utf8(parts.next().unwrap_or_default()).unwrap_or("");
    let ts = std::str::from_utf8(parts.next().unwrap_or_default()).unwrap_or("");
    let signature = std::str::from_utf8(parts.next().unwrap_or_default()).unwrap_or("");
    let body = parts.next().unwrap_or_default();

    let secrets = WebhookSecret::parse_list("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .expect("the fuzz secret parses");
    let verifier = Verifier::new(secrets.clone(), DEFAULT_TOLERANCE_SECS);
    let headers = SignedHeaders {
        id: Some(id),
        timestamp: Some(ts),
        signature: Some(signature),
    };
    if verifier.verify(headers, body, NOW).is_ok() {
        let at: i64 = ts.parse().expect("a verified timestamp is an integer");
        assert!((NOW - at).abs() <= DEFAULT_TOLERANCE_SECS);
    }

    // The secret list parser on arbitrary text.
    let _ = WebhookSecret::parse_list(signature);

    // Round trip: our own signature of these bytes verifies (when the id is a valid one).
    if !id.is_empty() && id.len() <= 256 && !id.contains('.') {
        let own = sign(&secrets[0], id, NOW, body);
        let list = format!("{signature} {own}");
        let now = NOW.to_string();
        let headers = SignedHeaders {
            id: Some(id),
            timestamp: Some(&now),
            signature: Some(&list),
        };
        let first_32 = list.split_ascii_whitespace().count() <= 32;
        assert!(!first_32 || verifier.verify(headers, body, NOW).is_ok());
    }
});
