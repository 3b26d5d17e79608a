//! The binary as operators run it: SIGTERM drains and exits 0, and no secret reaches the logs
//! even at TRACE.

use std::time::Duration;

use npd_monday_gateway::ledger::inbox::Source;

use crate::helpers::{
    Backend, GatewayProcess, MONDAY_PATH_TOKEN, MONDAY_SIGNING_SECRET, NPD_SECRET, TestDatabase,
    fixture, monday_audience, monday_jwt, now, sign_npd,
};
use crate::store_tests;

store_tests!(sigterm_exits_0_promptly_and_logs_hold_no_secret);

const ADMIN_TOKEN: &str = "gwa_admin-token-that-must-never-be-logged";

async fn sigterm_exits_0_promptly_and_logs_hold_no_secret(backend: Backend) {
    // Arrange: every secret configured, logging at its most verbose.
    let db = TestDatabase::create(&backend).await;
    let gateway = GatewayProcess::start(
        &db.url,
        &[
            ("GATEWAY_LOG", "trace"),
            ("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN),
            ("MONDAY_WEBHOOK_TOKEN", MONDAY_PATH_TOKEN),
            ("MONDAY_API_TOKEN", "monday-api-token-never-logged"),
            ("GATEWAY_PUBLIC_URL", "https://gateway.example.com"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let npd_body = fixture("npd/contact.created.json");
    let ts = now();
    let signature = sign_npd(NPD_SECRET, "msg_ops", ts, npd_body.as_bytes());
    let jwt = monday_jwt(now() + 60, &monday_audience());
    let monday_body = fixture("monday/update_column_value_email.json");

    // Act: accepted and refused deliveries of every kind, then SIGTERM.
    let npd = |sig: String| {
        client
            .post(gateway.url("/api/v1/npd/events"))
            .header("webhook-id", "msg_ops")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(npd_body.clone())
            .send()
    };
    assert_eq!(
        npd(signature.clone()).await.expect("npd").status().as_u16(),
        202
    );
    assert_eq!(
        npd(format!("{signature}x"))
            .await
            .expect("npd")
            .status()
            .as_u16(),
        401
    );
    let monday = |path: String, auth: Option<String>| {
        let mut req = client.post(gateway.url(&path)).body(monday_body.clone());
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.send()
    };
    let signed = monday("/webhooks/monday".into(), Some(jwt.clone()))
        .await
        .expect("monday");
    assert_eq!(signed.status().as_u16(), 200);
    let bad_jwt = monday("/webhooks/monday".into(), Some(format!("{jwt}x")))
        .await
        .expect("monday");
    assert_eq!(bad_jwt.status().as_u16(), 401);
    let tokened = monday(format!("/webhooks/monday/{MONDAY_PATH_TOKEN}"), None)
        .await
        .expect("monday");
    assert_eq!(tokened.status().as_u16(), 200);
    let wrong_token = monday(format!("/webhooks/monday/{MONDAY_PATH_TOKEN}x"), None)
        .await
        .expect("monday");
    assert_eq!(wrong_token.status().as_u16(), 404);
    let admin = client
        .get(gateway.url("/readyz"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(admin.status().as_u16(), 200);

    let (status, logs) = gateway.terminate(Duration::from_secs(10)).await;

    // Assert: a clean exit, the work kept, and not one secret in the log.
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let all = logs.join("\n");
    assert!(
        all.contains("request"),
        "the log should show the requests at TRACE"
    );
    assert!(
        all.contains("/webhooks/monday/{token}"),
        "routes are logged by their template"
    );
    let secrets = [
        NPD_SECRET,
        NPD_SECRET.trim_start_matches("whsec_"),
        MONDAY_SIGNING_SECRET,
        MONDAY_PATH_TOKEN,
        ADMIN_TOKEN,
        "monday-api-token-never-logged",
        "SHORT_LIVED_TOKEN_SECRET_VALUE",
        jwt.as_str(),
        signature.as_str(),
    ];
    for secret in secrets {
        assert!(!all.contains(secret), "a secret reached the log: {secret}");
    }
    let store = crate::durability::open_store(&db.url).await;
    assert!(
        store
            .find_inbox_event(Source::Npd, "msg_ops")
            .await
            .expect("query")
            .is_some()
    );
    store.close().await;
}
