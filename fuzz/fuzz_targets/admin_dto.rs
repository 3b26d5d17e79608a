//! The admin API's request bodies and query strings, decoded as the handlers decode them:
//! bodies with `serde_json::from_slice`, queries with `serde_urlencoded` (axum's `Query`).
//! Input: the bytes, tried as every body and every query.
#![no_main]

use libfuzzer_sys::fuzz_target;
use npd_monday_gateway::http::admin::dto::{ConflictQuery, PageQuery, PushQuery, ResolveRequest};
use npd_monday_gateway::http::backfill::{BackfillRequest, MatchQuery, ResolveMatchRequest};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ResolveRequest>(data);
    if let Ok(request) = serde_json::from_slice::<BackfillRequest>(data) {
        let _ = request
            .kind
            .parse::<npd_monday_gateway::domain::scan::Scope>();
    }
    let _ = serde_json::from_slice::<ResolveMatchRequest>(data);
    let _ = serde_urlencoded::from_bytes::<PageQuery>(data);
    let _ = serde_urlencoded::from_bytes::<ConflictQuery>(data);
    let _ = serde_urlencoded::from_bytes::<PushQuery>(data);
    let _ = serde_urlencoded::from_bytes::<MatchQuery>(data);
});
