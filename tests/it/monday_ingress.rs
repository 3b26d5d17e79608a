//! `POST /webhooks/monday[/{token}]`: challenge, JWT and path-token authentication, every delivered
//! event shape, inbox dedupe on `triggerUuid`.

use npd_monday_gateway::auth::monday_jwt::sign_hs256;
use npd_monday_gateway::domain::entity::Side;
use npd_monday_gateway::ledger::inbox::InboxRow;
use serde_json::json;

use crate::helpers::{
    Backend, CONTACTS_BOARD, MONDAY_PATH_TOKEN, ORGANIZATIONS_BOARD, TestApp, fixture,
    monday_audience, monday_jwt, now, problem,
};
use crate::store_tests;

store_tests!(
    the_challenge_is_echoed_on_both_routes_without_credentials,
    every_monday_event_shape_is_stored_with_its_entity_and_outcome,
    a_duplicate_trigger_uuid_leaves_exactly_one_inbox_row,
    bad_jwts_are_refused_and_store_nothing,
    the_path_token_route_authenticates_unsigned_webhooks,
    malformed_deliveries_get_400_only_after_authentication,
);

/// (fixture, entity kind, outcome at ingest): `None` means "left for processing".
const SHAPES: &[(&str, Option<&str>, Option<&str>)] = &[
    ("create_pulse", Some("contact"), None),
    ("create_pulse_form", Some("contact"), None),
    ("create_subitem", None, Some("ignored")),
    ("update_column_value_date", Some("contact"), Some("ignored")),
    (
        "update_column_value_status",
        Some("contact"),
        Some("ignored"),
    ),
    (
        "update_column_value_status_is_done",
        Some("contact"),
        Some("ignored"),
    ),
    (
        "update_column_value_people",
        Some("contact"),
        Some("ignored"),
    ),
    ("update_column_value_email", Some("contact"), None),
    ("update_column_value_phone", Some("contact"), None),
    ("update_column_value_text", Some("contact"), None),
    ("update_column_value_long_text", Some("contact"), None),
    ("update_column_value_npd_id", Some("contact"), None),
    (
        "update_column_value_org_website",
        Some("organization"),
        None,
    ),
    ("update_column_value_unrelated_board", None, Some("ignored")),
    ("update_name", Some("contact"), None),
    ("archive_pulse", Some("contact"), None),
    ("restore_pulse", Some("contact"), None),
    ("delete_pulse", Some("contact"), None),
    ("delete_subitem", None, Some("ignored")),
    ("move_pulse_into_group", Some("contact"), Some("ignored")),
    ("move_subitem", Some("contact"), Some("ignored")),
    ("create_column", Some("contact"), Some("ignored")),
    ("create_update", Some("contact"), Some("ignored")),
    ("edit_update", Some("contact"), Some("ignored")),
    ("delete_update", Some("contact"), Some("ignored")),
];

async fn the_challenge_is_echoed_on_both_routes_without_credentials(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let body = fixture("monday/challenge.json");
    let sent: serde_json::Value = serde_json::from_str(&body).expect("json");
    for path in [
        "/webhooks/monday".to_owned(),
        format!("/webhooks/monday/{MONDAY_PATH_TOKEN}"),
    ] {
        let response = app.post_monday(&path, None, &body).await;
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let answer: serde_json::Value = response.json().await.expect("json");
        assert_eq!(answer, json!({"challenge": sent["challenge"]}), "{path}");
    }
    assert_eq!(app.store.inbox_count().await.expect("count"), 0);
}

async fn every_monday_event_shape_is_stored_with_its_entity_and_outcome(backend: Backend) {
    // Ingress only: what ingest stores is read before any processing (which it wakes) decides.
    let app = TestApp::spawn_with(&backend, |s| s.sync.run_workers = false).await;
    for (name, kind, outcome) in SHAPES {
        let body = fixture(&format!("monday/{name}.json"));
        let sent: serde_json::Value = serde_json::from_str(&body).expect("json");
        let event = &sent["event"];

        let response = app.post_monday_signed(&body).await;

        assert_eq!(response.status().as_u16(), 200, "{name}");
        assert_eq!(
            response.json::<serde_json::Value>().await.expect("json"),
            json!({}),
            "{name}"
        );
        let trigger = event["triggerUuid"].as_str().expect("triggerUuid");
        let row = app
            .store
            .find_inbox_event(Side::Monday, trigger)
            .await
            .expect("query")
            .unwrap_or_else(|| panic!("{name} not stored"));
        assert_stored_as_sent(name, &row, event, &body);
        assert_eq!(
            row.entity_kind.map(|k| k.as_str()),
            *kind,
            "{name}: entity kind"
        );
        assert_eq!(row.outcome.map(|o| o.as_str()), *outcome, "{name}: outcome");
        assert_eq!(
            row.processed_at.is_some(),
            outcome.is_some(),
            "{name}: processed_at"
        );
        if outcome.is_some() {
            assert!(
                row.outcome_detail.as_deref().is_some_and(|d| !d.is_empty()),
                "{name}: reason"
            );
        }
    }
    let count = app.store.inbox_count().await.expect("count");
    assert_eq!(count, SHAPES.len() as i64);
    // The conventions the fixtures follow: these two boards are the synced ones.
    assert_ne!(CONTACTS_BOARD, ORGANIZATIONS_BOARD);
}

/// The inbox row holds the delivery's type, item, board and time as sent, and its raw body
/// without the JWT.
fn assert_stored_as_sent(name: &str, row: &InboxRow, event: &serde_json::Value, body: &str) {
    assert_eq!(
        row.event_type,
        event["type"].as_str().expect("type"),
        "{name}"
    );
    let item = event
        .get("pulseId")
        .or_else(|| event.get("itemId"))
        .or_else(|| event.get("subitem"));
    let item = item.map(|v| {
        v.as_u64().map_or_else(
            || v.as_str().unwrap_or_default().to_owned(),
            |n| n.to_string(),
        )
    });
    assert_eq!(
        row.monday_item_id.map(|i| i.to_string()),
        item,
        "{name}: item id"
    );
    if let Some(board) = event.get("boardId") {
        assert_eq!(
            row.board_id.map(|b| b.to_string()),
            Some(board.to_string().trim_matches('"').to_owned()),
            "{name}: board"
        );
    }
    if let Some(changed_at) = event.get("changedAt").and_then(serde_json::Value::as_f64) {
        assert_eq!(
            row.occurred_at,
            Some((changed_at * 1000.0) as i64),
            "{name}: changedAt"
        );
    }
    assert_eq!(row.payload, body, "{name}: raw body kept");
    assert!(
        !row.payload.contains("SHORT_LIVED_TOKEN"),
        "{name}: the JWT is not stored"
    );
}

async fn a_duplicate_trigger_uuid_leaves_exactly_one_inbox_row(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let body = fixture("monday/update_column_value_email.json");
    // Monday redelivers with `isRetry: true`; the trigger stays the same.
    let retry = body.replacen("\"isRetry\":false", "\"isRetry\":true", 1);
    for b in [&body, &body, &retry] {
        assert_eq!(app.post_monday_signed(b).await.status().as_u16(), 200);
    }
    let path = format!("/webhooks/monday/{MONDAY_PATH_TOKEN}");
    assert_eq!(
        app.post_monday(&path, None, &body).await.status().as_u16(),
        200
    );
    assert_eq!(app.store.inbox_count().await.expect("count"), 1);
}

async fn bad_jwts_are_refused_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let body = fixture("monday/update_column_value_email.json");
    let aud = monday_audience();
    let valid = monday_jwt(now() + 60, &aud);
    let mut tampered = valid.clone().into_bytes();
    let middle = valid.find('.').expect("dot") + 5;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    let none_alg = {
        let parts: Vec<&str> = valid.split('.').collect();
        // {"alg":"none","typ":"JWT"}
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1])
    };
    let hs512_header = {
        let parts: Vec<&str> = valid.split('.').collect();
        // {"alg":"HS512","typ":"JWT"}
        format!(
            "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.{}.{}",
            parts[1], parts[2]
        )
    };
    let cases = [
        ("no header", None),
        ("expired", Some(monday_jwt(now() - 11, &aud))),
        (
            "wrong audience",
            Some(monday_jwt(now() + 60, &format!("{aud}/"))),
        ),
        (
            "other secret",
            Some(sign_hs256(
                b"another-secret",
                &json!({"exp": now() + 60, "aud": aud}),
            )),
        ),
        ("tampered claims", Some(tampered)),
        ("alg none", Some(none_alg)),
        ("alg HS512", Some(hs512_header)),
        ("garbage", Some("Bearer not.a.jwt".to_owned())),
    ];
    for (name, auth) in cases {
        let response = app
            .post_monday("/webhooks/monday", auth.as_deref(), &body)
            .await;
        let problem = problem(response, 401).await;
        assert!(
            !problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("SHORT_LIVED"),
            "{name}"
        );
    }
    // The valid token passes raw and with a Bearer prefix.
    let bearer = format!("Bearer {valid}");
    assert_eq!(
        app.post_monday("/webhooks/monday", Some(&valid), &body)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        app.post_monday("/webhooks/monday", Some(&bearer), &body)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(app.store.inbox_count().await.expect("count"), 1);
}

async fn the_path_token_route_authenticates_unsigned_webhooks(backend: Backend) {
    let app = TestApp::spawn_with(&backend, |s| s.monday.signing_secret = None).await;
    let body = fixture("monday/update_name.json");

    let right = app
        .post_monday(
            &format!("/webhooks/monday/{MONDAY_PATH_TOKEN}"),
            None,
            &body,
        )
        .await;
    let wrong = app
        .post_monday("/webhooks/monday/path-token-0123456789abcdeX", None, &body)
        .await;
    let bare = app.post_monday("/webhooks/monday", None, &body).await;

    assert_eq!(right.status().as_u16(), 200);
    problem(wrong, 404).await;
    let bare = problem(bare, 401).await;
    assert!(
        bare["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("MONDAY_SIGNING_SECRET")
    );
    assert_eq!(app.store.inbox_count().await.expect("count"), 1);

    // Without a configured token, the token route does not exist at all.
    let app = TestApp::spawn_with(&backend, |s| s.monday.webhook_token = None).await;
    let response = app
        .post_monday(
            &format!("/webhooks/monday/{MONDAY_PATH_TOKEN}"),
            None,
            &body,
        )
        .await;
    problem(response, 404).await;
}

async fn malformed_deliveries_get_400_only_after_authentication(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let cases = [
        ("invalid json", "{\"event\": {".to_owned()),
        ("event not an object", "{\"event\": 7}".to_owned()),
        ("pulseId not numeric", json!({"event": {"type": "update_name", "triggerUuid": "0123456789abcdef0123456789abcdef", "boardId": CONTACTS_BOARD, "pulseId": "LEAKME"}}).to_string()),
        ("neither event nor challenge", "{\"hello\": 1}".to_owned()),
    ];
    for (name, body) in cases {
        let unauthenticated = app.post_monday("/webhooks/monday", None, &body).await;
        problem(unauthenticated, 401).await;
        let response = app.post_monday_signed(&body).await;
        let problem = problem(response, 400).await;
        assert!(
            !problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("LEAKME"),
            "{name}"
        );
    }
    assert_eq!(app.store.inbox_count().await.expect("count"), 0);
}
