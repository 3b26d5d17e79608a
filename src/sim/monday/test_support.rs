//! Test helpers around the Monday simulator (compiled for tests only).
//!
//! Owns: `WebhookReceiver`, a tiny axum server standing in for the gateway's webhook endpoint:
//! it verifies each delivery's JWT with `MondayJwtVerifier` (aud = its own URL), parses the body
//! with `MondayDelivery::parse`, and records what arrived; it can answer chosen statuses first.
//! May import: std, axum, tokio, serde_json, time, crate::{auth, domain}.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use time::OffsetDateTime;

use crate::auth::monday_jwt::{MondayClaims, MondayJwtVerifier};
use crate::domain::event::{MondayDelivery, MondayEvent};

/// One delivery that reached the receiver.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub event: MondayEvent,
    pub raw: Value,
    pub claims: MondayClaims,
    /// The status the receiver answered.
    pub status: u16,
    pub at: Instant,
}

struct ReceiverState {
    verifier: MondayJwtVerifier,
    received: Mutex<Vec<Received>>,
    /// Statuses to answer before answering 200 again.
    statuses: Mutex<VecDeque<u16>>,
    /// Deliveries refused because their JWT or body was bad.
    refused: Mutex<Vec<String>>,
    /// How many deliveries were answered 200: wakes `wait_for`.
    accepted: watch::Sender<usize>,
}

/// A webhook endpoint for tests.
#[derive(Clone)]
pub(crate) struct WebhookReceiver {
    pub url: String,
    state: Arc<ReceiverState>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let claims = match state
        .verifier
        .verify(auth, OffsetDateTime::now_utc().unix_timestamp())
    {
        Ok(claims) => claims,
        Err(e) => {
            lock(&state.refused).push(format!("jwt: {e}"));
            return StatusCode::UNAUTHORIZED;
        }
    };
    let event = match MondayDelivery::parse(&body) {
        Ok(MondayDelivery::Event(event)) => *event,
        Ok(MondayDelivery::Challenge(_)) => {
            lock(&state.refused).push("a challenge".into());
            return StatusCode::BAD_REQUEST;
        }
        Err(e) => {
            lock(&state.refused).push(format!("body: {e}"));
            return StatusCode::BAD_REQUEST;
        }
    };
    let status = lock(&state.statuses).pop_front().unwrap_or(200);
    lock(&state.received).push(Received {
        event,
        raw: serde_json::from_slice(&body).unwrap_or(Value::Null),
        claims,
        status,
        at: Instant::now(),
    });
    if status == 200 {
        state.accepted.send_modify(|n| *n += 1);
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

impl WebhookReceiver {
    /// Listens on 127.0.0.1:0 and verifies JWTs signed with `signing_secret` whose `aud` is its URL.
    pub(crate) async fn start(signing_secret: &str) -> WebhookReceiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind a loopback port for the webhook receiver");
        let url = format!(
            "http://{}/webhooks/monday",
            listener.local_addr().expect("local address")
        );
        let state = Arc::new(ReceiverState {
            verifier: MondayJwtVerifier::new(signing_secret.as_bytes(), Some(url.clone()), 10),
            received: Mutex::new(Vec::new()),
            statuses: Mutex::new(VecDeque::new()),
            refused: Mutex::new(Vec::new()),
            accepted: watch::Sender::new(0),
        });
        let app = Router::new()
            .route("/webhooks/monday", post(receive))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookReceiver { url, state }
    }

    /// Deliveries answered 200, in order of arrival.
    pub(crate) fn events(&self) -> Vec<Received> {
        lock(&self.state.received)
            .iter()
            .filter(|r| r.status == 200)
            .cloned()
            .collect()
    }

    /// Every delivery that passed the JWT and body checks, whatever it was answered.
    pub(crate) fn attempts(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// Why deliveries were refused (bad JWT or body).
    pub(crate) fn refused(&self) -> Vec<String> {
        lock(&self.state.refused).clone()
    }

    /// Answers these statuses to the next deliveries, then 200 again.
    pub(crate) fn answer_next(&self, statuses: &[u16]) {
        lock(&self.state.statuses).extend(statuses.iter().copied());
    }

    /// Waits (up to 5 s) until `n` deliveries were answered 200, and returns those answered 200
    /// by then (fewer when the wait ran out: the caller's assertion says what was missing).
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        let mut accepted = self.state.accepted.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            accepted.wait_for(|count| *count >= n),
        )
        .await;
        self.events()
    }
}
