//! Durability: a 2xx means committed (kill -9 and restart), 503 and never 2xx when the store cannot
//! commit, and group commit under concurrency loses and duplicates nothing.

use npd_monday_gateway::config::DatabaseSettings;
use npd_monday_gateway::domain::entity::Side;
use npd_monday_gateway::ledger::Store;
use secrecy::SecretString;

use crate::helpers::{
    Backend, GatewayProcess, NPD_SECRET, TestApp, TestDatabase, fixture, now, problem, sign_npd,
};
use crate::store_tests;

store_tests!(
    an_acknowledged_event_survives_kill_9_and_restart,
    the_store_being_unavailable_gives_503_never_2xx,
    concurrent_deliveries_are_all_committed_once,
);

async fn an_acknowledged_event_survives_kill_9_and_restart(backend: Backend) {
    // Arrange
    let db = TestDatabase::create(&backend).await;
    let gateway = GatewayProcess::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    let body = fixture("npd/contact.created.json");
    let ts = now();

    // Act: acknowledged, then killed without any chance to flush anything.
    let response = client
        .post(format!("http://{}/api/v1/npd/events", gateway.addr))
        .header("webhook-id", "msg_kill9")
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            sign_npd(NPD_SECRET, "msg_kill9", ts, body.as_bytes()),
        )
        .body(body.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 202);
    gateway.kill_9().await;

    // Assert: a restarted gateway finds it, and the retry NPD would send is a duplicate.
    let gateway = GatewayProcess::start(&db.url, &[]).await;
    let store = open_store(&db.url).await;
    let row = store
        .find_inbox_event(Side::Npd, "msg_kill9")
        .await
        .expect("query")
        .expect("the acknowledged event is in the inbox after kill -9");
    assert_eq!(row.payload, body);
    let ts = now();
    let retry = client
        .post(format!("http://{}/api/v1/npd/events", gateway.addr))
        .header("webhook-id", "msg_kill9")
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            sign_npd(NPD_SECRET, "msg_kill9", ts, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("request");
    let answer: serde_json::Value = retry.json().await.expect("json");
    assert_eq!(answer["status"], "duplicate");
    assert_eq!(store.inbox_count().await.expect("count"), 1);
    gateway.kill_9().await;
    store.close().await;
}

pub async fn open_store(url: &str) -> Store {
    let settings = DatabaseSettings {
        url: SecretString::from(url.to_owned()),
        max_connections: 2,
        ingest_batch_max: 1,
        ingest_writers: 1,
        acquire_timeout_ms: 5_000,
        ..DatabaseSettings::default()
    };
    Store::connect(&settings).await.expect("open store")
}

async fn the_store_being_unavailable_gives_503_never_2xx(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    app.store.close().await;

    let npd = app
        .post_npd_signed("msg_down", &fixture("npd/contact.created.json"))
        .await;
    let monday = app
        .post_monday_signed(&fixture("monday/update_name.json"))
        .await;

    for response in [npd, monday] {
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("5")
        );
        problem(response, 503).await;
    }
}

async fn concurrent_deliveries_are_all_committed_once(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(&backend).await);
    let template: serde_json::Value =
        serde_json::from_str(&fixture("npd/contact.updated.json")).expect("json");
    // 200 distinct events, each sent twice, 64 at a time: group commit must keep every answer
    // truthful (one accepted and one duplicate per id) and store each event once.
    let mut tasks = Vec::new();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    for i in 0..400 {
        let app = std::sync::Arc::clone(&app);
        let semaphore = std::sync::Arc::clone(&semaphore);
        let mut event = template.clone();
        event["data"]["version"] = (i % 200 + 1).into();
        let body = event.to_string();
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.expect("permit");
            let id = format!("msg_conc_{}", i % 200);
            let response = app.post_npd_signed(&id, &body).await;
            assert_eq!(response.status().as_u16(), 202);
            let answer: serde_json::Value = response.json().await.expect("json");
            (id, answer["status"].as_str().unwrap_or_default().to_owned())
        }));
    }
    let mut accepted = std::collections::HashMap::<String, usize>::new();
    for task in tasks {
        let (id, status) = task.await.expect("task");
        if status == "accepted" {
            *accepted.entry(id).or_default() += 1;
        } else {
            assert_eq!(status, "duplicate");
        }
    }
    assert_eq!(accepted.len(), 200, "every id was accepted once");
    assert!(
        accepted.values().all(|n| *n == 1),
        "no id was accepted twice"
    );
    assert_eq!(app.store.inbox_count().await.expect("count"), 200);
}
