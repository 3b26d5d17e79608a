//! The board set-up calls of the Monday client (`webhooks`, `create_webhook`, `create_column`)
//! against the simulator, which sends monday's challenge before it registers a webhook and then
//! delivers the board's changes to it, unsigned as for a personal API token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::tests::start;
use super::*;
use crate::connectors::FailureClass;

const CONTACTS: BoardId = BoardId(4_100_000_001);

/// What reached the endpoint: (whether it carried `Authorization`, body).
type Seen = Arc<Mutex<Vec<(bool, Value)>>>;

/// A webhook endpoint on loopback: it echoes challenges when `echo`, answers `{}` otherwise.
async fn endpoint(echo: bool) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = |State((echo, seen)): State<(bool, Seen)>,
                  headers: HeaderMap,
                  body: Json<Value>| async move {
        let signed = headers.contains_key("authorization");
        seen.lock().expect("lock").push((signed, body.0.clone()));
        match body.0.get("challenge") {
            Some(c) if echo => Json(json!({ "challenge": c })),
            _ => Json(json!({})),
        }
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(record))
        .with_state((echo, Arc::clone(&seen)));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn a_webhook_is_registered_after_its_url_echoes_the_challenge_and_then_gets_the_changes() {
    let (sim, client) = start().await;
    let (url, seen) = endpoint(true).await;
    assert_eq!(client.board_webhooks(CONTACTS).await.expect("list"), []);
    let id = client
        .create_webhook(CONTACTS, &url, "create_item", "key-1")
        .await
        .expect("registered");
    let challenge = seen.lock().expect("lock")[0].1.clone();
    assert!(challenge["challenge"].is_string(), "{challenge}");
    let listed = client.board_webhooks(CONTACTS).await.expect("list");
    let expected = BoardWebhook {
        id: id.clone(),
        event: "create_item".into(),
        config: None,
    };
    assert_eq!(listed, [expected]);
    assert_eq!(sim.registered_webhooks(CONTACTS)[0].url, url);

    let columns = ColumnValues::default();
    let item = client
        .create_item(CONTACTS, "Ada", &columns.0, "key-2")
        .await
        .expect("item");
    assert!(sim.webhooks_delivered(Duration::from_secs(5)).await);
    let (signed, body) = seen.lock().expect("lock")[1].clone();
    assert!(!signed, "made with a personal token: unsigned");
    assert_eq!(body["event"]["type"], "create_pulse");
    assert_eq!(body["event"]["pulseId"], json!(item.0));
    assert_eq!(body["event"]["subscriptionId"].to_string(), id);
}

#[tokio::test]
async fn a_url_that_does_not_echo_the_challenge_is_not_registered() {
    let (sim, client) = start().await;
    let (url, seen) = endpoint(false).await;
    let err = client
        .create_webhook(CONTACTS, &url, "change_name", "key-1")
        .await
        .expect_err("the challenge failed");
    assert_eq!(err.class, FailureClass::Permanent, "{err:?}");
    assert!(err.message.contains("challenge"), "{err:?}");
    assert_eq!(
        seen.lock().expect("lock").len(),
        1,
        "one challenge was sent"
    );
    assert!(sim.registered_webhooks(CONTACTS).is_empty());
}

#[tokio::test]
async fn a_column_is_created_with_the_id_and_type_asked_for_and_only_once() {
    let (sim, client) = start().await;
    client
        .create_column(CONTACTS, "linkedin", "LinkedIn", ColumnType::Link, "key-1")
        .await
        .expect("created");
    let columns = client.board_columns(CONTACTS).await.expect("read");
    let columns = columns.expect("the board exists");
    assert!(columns.contains(&("linkedin".to_owned(), "link".to_owned())));
    assert_eq!(
        sim.columns(CONTACTS).last().map(|c| c.title.clone()),
        Some("LinkedIn".to_owned())
    );
    let again = client
        .create_column(CONTACTS, "linkedin", "LinkedIn", ColumnType::Link, "key-2")
        .await
        .expect_err("the id is taken");
    assert_eq!(again.class, FailureClass::Permanent, "{again:?}");
}
