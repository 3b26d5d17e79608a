//! The binary as operators run it: SIGTERM drains and exits 0, and no secret reaches the logs
//! even at TRACE.

use std::time::Duration;

use npd_monday_gateway::domain::entity::Side;

use crate::helpers::{
    Backend, GatewayProcess, MONDAY_PATH_TOKEN, MONDAY_SIGNING_SECRET, NPD_SECRET, TestDatabase,
    fixture, monday_audience, monday_jwt, now, sign_npd,
};
use crate::store_tests;

store_tests!(
    sigterm_exits_0_promptly_and_logs_hold_no_secret,
    an_admin_token_made_on_the_command_line_works_and_only_its_hash_is_stored,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_a_round_trip_on_a_fresh_machine_and_exits_0() {
    // No configuration at all: only PATH, in a fresh working directory.
    let dir = tempfile::tempdir().expect("temp dir");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_npd-monday-gateway"))
        .arg("demo")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir.path())
        .output()
        .await
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "1. NPD created contact",
        "2. A Monday user changed",
        "3. NPD sent contact.updated",
        "4. Admin POST",
        "demo finished",
    ] {
        assert!(stdout.contains(step), "missing `{step}` in:\n{stdout}");
    }
}

async fn an_admin_token_made_on_the_command_line_works_and_only_its_hash_is_stored(
    backend: Backend,
) {
    let db = TestDatabase::create(&backend).await;
    let create = |name: &'static str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_npd-monday-gateway"))
            .args(["admin-token", "create", "--name", name])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GATEWAY_DATABASE_URL", &db.url)
            .env("GATEWAY_LOG", "warn")
            .output()
    };
    let output = create("ops").await.expect("run admin-token create");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(token.starts_with("gwa_"), "printed: {token}");
    let again = create("ops").await.expect("run admin-token create");
    assert_eq!(again.status.code(), Some(1), "a taken name is refused");

    // The token authenticates against a gateway on the same store; only its hash is kept.
    let world = npd_monday_gateway::demo::World::start(&db.url, |_| {})
        .await
        .expect("world");
    let response = world
        .client
        .get(world.url("/api/v1/dead-letters"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let audit = world.store.audit_log(10).await.expect("audit");
    assert!(
        audit.iter().any(|a| a.actor == "ops"),
        "the call is audited under the token's name"
    );
    let stored = crate::durability::open_store(&db.url).await;
    let hash = npd_monday_gateway::auth::admin_token::hash(&token);
    assert_eq!(
        stored.admin_token_name(&hash).await.expect("q").as_deref(),
        Some("ops")
    );
    assert_eq!(
        stored.admin_token_name(&token).await.expect("q"),
        None,
        "the token itself is not stored"
    );
    let dump = format!("{:?}", stored.audit_log(100).await.expect("audit"));
    assert!(!dump.contains(&token), "nor audited");
    stored.close().await;
}

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
            // Tests never leave the machine: Monday is a closed loopback port here.
            ("MONDAY_API_URL", "http://127.0.0.1:9/v2"),
            ("GATEWAY_PUBLIC_URL", "https://gateway.example.com"),
        ],
    )
    .await;
    let ts = now();
    let signature = sign_npd(
        NPD_SECRET,
        "msg_ops",
        ts,
        fixture("npd/contact.created.json").as_bytes(),
    );
    let jwt = monday_jwt(now() + 60, &monday_audience());

    // Act: accepted and refused deliveries of every kind, then SIGTERM.
    send_every_kind(&gateway, ts, &signature, &jwt).await;
    let (status, logs) = gateway.terminate(Duration::from_secs(10)).await;

    // Assert: a clean exit, the work kept, and not one secret in the log.
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert_no_secret_in(&logs.join("\n"), &[jwt.as_str(), signature.as_str()]);
    let store = crate::durability::open_store(&db.url).await;
    assert!(
        store
            .find_inbox_event(Side::Npd, "msg_ops")
            .await
            .expect("query")
            .is_some()
    );
    store.close().await;
}

/// Accepted and refused deliveries of every kind: NPD signed and mis-signed, Monday with a good
/// and a bad JWT, on the token route with the right and a wrong token, and an admin call.
async fn send_every_kind(gateway: &GatewayProcess, ts: i64, signature: &str, jwt: &str) {
    let client = reqwest::Client::new();
    let npd_body = fixture("npd/contact.created.json");
    let monday_body = fixture("monday/update_column_value_email.json");
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
        npd(signature.to_owned())
            .await
            .expect("npd")
            .status()
            .as_u16(),
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
    let signed = monday("/webhooks/monday".into(), Some(jwt.to_owned()))
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
}

/// The TRACE log shows the requests by route template and holds none of the configured secrets
/// nor any of `sent` (credentials the test sent).
fn assert_no_secret_in(all: &str, sent: &[&str]) {
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
    ];
    for secret in secrets.iter().chain(sent) {
        assert!(!all.contains(secret), "a secret reached the log: {secret}");
    }
}
