//! `POST /api/v1/npd/events`: Standard Webhooks verification, typed parsing, inbox dedupe.

use npd_monday_gateway::domain::entity::Side;

use crate::helpers::{
    Backend, NPD_SECRET, NPD_SECRET_NEXT, TestApp, fixture, now, problem, sign_npd,
};
use crate::store_tests;

store_tests!(
    every_npd_event_type_is_accepted_and_stored_with_its_entity,
    a_duplicate_webhook_id_leaves_exactly_one_inbox_row,
    bad_signatures_and_timestamps_are_refused_and_store_nothing,
    malformed_events_get_a_400_naming_the_field_and_store_nothing,
    both_secrets_verify_during_rotation,
    events_are_refused_when_no_secret_is_configured,
);

async fn every_npd_event_type_is_accepted_and_stored_with_its_entity(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(&backend).await;
    let cases = [
        (
            "contact.created",
            "contact",
            "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10",
            1,
        ),
        (
            "contact.updated",
            "contact",
            "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10",
            7,
        ),
        (
            "contact.deleted",
            "contact",
            "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10",
            8,
        ),
        ("organization.created", "organization", "", 0),
        ("organization.updated", "organization", "", 0),
        ("organization.deleted", "organization", "", 0),
    ];
    for (event_type, kind, npd_id, version) in cases {
        let body = fixture(&format!("npd/{event_type}.json"));
        let webhook_id = format!("msg_{}", event_type.replace('.', "_"));

        // Act
        let response = app.post_npd_signed(&webhook_id, &body).await;

        // Assert
        assert_eq!(response.status().as_u16(), 202, "{event_type}");
        let answer: serde_json::Value = response.json().await.expect("json");
        assert_eq!(answer["event_id"], webhook_id.as_str());
        assert_eq!(answer["status"], "accepted");
        let row = app
            .store
            .find_inbox_event(Side::Npd, &webhook_id)
            .await
            .expect("query")
            .expect("stored");
        assert_eq!(row.event_type, event_type);
        assert_eq!(row.entity_kind.map(|k| k.as_str()), Some(kind));
        assert_eq!(row.payload, body, "the raw body is stored as received");
        assert!(
            row.request_id.is_some(),
            "the request id is kept with the event"
        );
        let data: serde_json::Value = serde_json::from_str(&body).expect("fixture json");
        assert_eq!(
            row.npd_id.map(|i| i.to_string()).as_deref(),
            data["data"]["id"].as_str()
        );
        assert_eq!(row.entity_version, data["data"]["version"].as_i64());
        if !npd_id.is_empty() {
            assert_eq!(row.npd_id.map(|i| i.to_string()).as_deref(), Some(npd_id));
            assert_eq!(row.entity_version, Some(version));
        }
    }
    assert_eq!(app.store.inbox_count().await.expect("count"), 6);
}

async fn a_duplicate_webhook_id_leaves_exactly_one_inbox_row(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let body = fixture("npd/contact.updated.json");

    let first = app.post_npd_signed("msg_dup_1", &body).await;
    // NPD's retry carries the same id, signed again at a later timestamp.
    let ts = now() + 2;
    let again = app
        .post_npd(
            "msg_dup_1",
            &ts.to_string(),
            &sign_npd(NPD_SECRET, "msg_dup_1", ts, body.as_bytes()),
            &body,
        )
        .await;

    assert_eq!(first.status().as_u16(), 202);
    assert_eq!(again.status().as_u16(), 202);
    let answer: serde_json::Value = again.json().await.expect("json");
    assert_eq!(answer["status"], "duplicate");
    assert_eq!(app.store.inbox_count().await.expect("count"), 1);
}

async fn bad_signatures_and_timestamps_are_refused_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let body = fixture("npd/contact.created.json");
    let ts = now();
    let good = sign_npd(NPD_SECRET, "msg_sig", ts, body.as_bytes());
    let other_secret = sign_npd(NPD_SECRET_NEXT, "msg_sig", ts, body.as_bytes());
    let old = ts - 301;
    let future = ts + 301;
    let (now, sig, b) = (ts.to_string(), good.as_str(), body.as_str());
    let nl = format!("{body}\n");
    let spaced = format!(" {body}");
    let expired = sign_npd(NPD_SECRET, "msg_sig", old, body.as_bytes());
    let early = sign_npd(NPD_SECRET, "msg_sig", future, body.as_bytes());
    // (case, webhook-timestamp, webhook-signature, body, what the detail names)
    let cases = [
        (
            "wrong secret",
            now.clone(),
            other_secret.as_str(),
            b,
            "signature",
        ),
        (
            "body changed",
            now.clone(),
            sig,
            spaced.as_str(),
            "signature",
        ),
        (
            "trailing newline",
            now.clone(),
            sig,
            nl.as_str(),
            "signature",
        ),
        ("wrong timestamp", (ts + 1).to_string(), sig, b, "signature"),
        ("expired", old.to_string(), expired.as_str(), b, "window"),
        ("future", future.to_string(), early.as_str(), b, "window"),
        (
            "timestamp not a number",
            "hello".into(),
            sig,
            b,
            "webhook-timestamp",
        ),
        (
            "truncated signature",
            now.clone(),
            &sig[..8],
            b,
            "signature",
        ),
        ("empty v1", now.clone(), "v1,", b, "signature"),
    ];
    for (name, ts, signature, body, detail_mentions) in cases {
        let response = app.post_npd("msg_sig", &ts, signature, body).await;
        let problem = problem(response, 401).await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(detail_mentions), "{name}: {detail}");
        assert!(
            !detail.contains(NPD_SECRET),
            "{name}: the detail must not leak the secret"
        );
    }
    each_missing_header_is_named(&app, &body, ts, &good).await;
    assert_eq!(app.store.inbox_count().await.expect("count"), 0);
}

/// A request without one of the three Standard Webhooks headers gets a 401 naming it.
async fn each_missing_header_is_named(app: &TestApp, body: &str, ts: i64, good: &str) {
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut req = app
            .client
            .post(app.url("/api/v1/npd/events"))
            .body(body.to_owned());
        for (name, value) in [
            ("webhook-id", "msg_sig".to_owned()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", good.to_owned()),
        ] {
            if name != missing {
                req = req.header(name, value);
            }
        }
        let problem = problem(req.send().await.expect("request"), 401).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(missing),
            "{missing}"
        );
    }
}

async fn malformed_events_get_a_400_naming_the_field_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let valid: serde_json::Value =
        serde_json::from_str(&fixture("npd/contact.updated.json")).expect("json");
    let with = |pointer: &str, value: serde_json::Value| {
        let mut v = valid.clone();
        *v.pointer_mut(pointer).expect("pointer") = value;
        v.to_string()
    };
    let without_id = {
        let mut v = valid.clone();
        v["data"].as_object_mut().expect("data").remove("id");
        v.to_string()
    };
    let truncated = "{\"type\": \"contact.updated\", }".to_owned();
    let merged = with("/type", "contact.merged".into());
    let bad_id = with("/data/id", "not-a-uuid".into());
    let seven = with("/data/version", "seven".into());
    let numeric = with("/data/email", 42.into());
    // (case, body, the field the detail names)
    let cases = [
        ("invalid json", truncated, "JSON"),
        ("unknown type", merged, "type"),
        ("missing id", without_id, "data.id"),
        ("id not a uuid", bad_id, "data.id"),
        ("version as text", seven, "data.version"),
        ("email as number", numeric, "data.email"),
    ];
    for (i, (name, body, field)) in cases.into_iter().enumerate() {
        let response = app.post_npd_signed(&format!("msg_bad_{i}"), &body).await;
        let problem = problem(response, 400).await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(field),
            "{name}: `{detail}` should name `{field}`"
        );
        assert!(
            !detail.contains("seven") && !detail.contains("contact.merged"),
            "{name}: detail echoes the payload: {detail}"
        );
    }
    assert_eq!(app.store.inbox_count().await.expect("count"), 0);
}

async fn both_secrets_verify_during_rotation(backend: Backend) {
    let app = TestApp::spawn_with(&backend, |s| {
        s.npd.webhook_secret = Some(format!("{NPD_SECRET} {NPD_SECRET_NEXT}").into());
    })
    .await;
    let body = fixture("npd/contact.created.json");
    let ts = now();
    for (i, secret) in [NPD_SECRET, NPD_SECRET_NEXT].into_iter().enumerate() {
        let id = format!("msg_rot_{i}");
        let response = app
            .post_npd(
                &id,
                &ts.to_string(),
                &sign_npd(secret, &id, ts, body.as_bytes()),
                &body,
            )
            .await;
        assert_eq!(response.status().as_u16(), 202, "secret {i}");
    }
    // A header carrying both signatures (the sender mid-rotation) verifies as well.
    let both = format!(
        "{} {}",
        sign_npd(NPD_SECRET, "msg_rot_both", ts, body.as_bytes()),
        sign_npd(NPD_SECRET_NEXT, "msg_rot_both", ts, body.as_bytes())
    );
    let response = app
        .post_npd("msg_rot_both", &ts.to_string(), &both, &body)
        .await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(app.store.inbox_count().await.expect("count"), 3);
}

async fn events_are_refused_when_no_secret_is_configured(backend: Backend) {
    let app = TestApp::spawn_with(&backend, |s| s.npd.webhook_secret = None).await;
    let response = app
        .post_npd_signed("msg_nosecret", &fixture("npd/contact.created.json"))
        .await;
    let problem = problem(response, 401).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("NPD_WEBHOOK_SECRET")
    );
    assert_eq!(app.store.inbox_count().await.expect("count"), 0);
}
