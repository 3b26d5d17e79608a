//! Board webhooks of the Monday simulator: the delivered event bodies and their delivery.
//!
//! Owns: turning a `Change` into the `{"event": {...}}` body real monday sends (legacy `type`
//! vocabulary, fixture shapes of `fixtures/monday/*.json`), the HS256 JWT each delivery carries in
//! `Authorization` (signed with the app's signing secret), and the single FIFO delivery task per
//! simulator, which retries a non-200 answer 3 times, 200 ms apart, with `isRetry: true` and the
//! same `triggerUuid`.
//! May import: std, tokio, reqwest, serde_json, time, rand, uuid, crate::auth::monday_jwt,
//! crate::domain::entity, the sibling modules.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::SentWebhook;
use super::store::{Change, iso_ms, legacy_column_type, unix_seconds};
use crate::auth::monday_jwt::sign_hs256;

/// The `userId` of changes made by the simulated human in monday's UI.
pub(super) const HUMAN_USER_ID: i64 = 4_012_689;
/// The `accountId` claim of every delivery's JWT.
pub(super) const ACCOUNT_ID: i64 = 1_825_529;
/// Redeliveries after a non-200 answer.
const MAX_RETRIES: u32 = 3;
const RETRY_DELAY: Duration = Duration::from_millis(200);
/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of a delivery's JWT.
const JWT_LIFETIME_SECS: i64 = 60;

/// One event to deliver.
pub(super) struct Job {
    pub body: Value,
    pub user_id: i64,
    pub url: String,
    /// The `aud` of the delivery's JWT; None: an unsigned delivery (a webhook made with a
    /// personal API token).
    pub audience: Option<String>,
    /// Signalled once the event was delivered (or given up on).
    pub done: Option<oneshot::Sender<()>>,
    /// Counts the event as pending until the job is dropped, once delivered (or given up on).
    pub _delivery: crate::sim::Delivery,
}

/// The legacy `type` of a change, and the `subscriptionId` offset of the webhook that sends it.
fn event_type(change: &Change) -> (&'static str, u64) {
    match change {
        Change::Created { .. } => ("create_pulse", 1),
        Change::ColumnChanged { .. } => ("update_column_value", 3),
        Change::Renamed { .. } => ("update_name", 6),
        Change::Archived { .. } => ("archive_pulse", 7),
        Change::Deleted { .. } => ("delete_pulse", 9),
    }
}

/// A new `triggerUuid`: 32 lowercase hex digits.
fn trigger_uuid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The body monday delivers for `change` made by `user_id`; `board_index` (the board's place in
/// the simulator's configuration) makes `subscriptionId` stable per board and event.
pub(super) fn event_body(
    change: &Change,
    user_id: i64,
    board_index: usize,
    now: OffsetDateTime,
) -> Value {
    let (kind, offset) = event_type(change);
    let board = change.board();
    let mut event = Map::new();
    let mut put = |k: &str, v: Value| {
        event.insert(k.to_owned(), v);
    };
    put("app", json!("monday"));
    put("type", json!(kind));
    put("triggerTime", json!(iso_ms(now)));
    put(
        "subscriptionId",
        json!(81_000_000 + (board_index as u64 + 1) * 100 + offset),
    );
    put("isRetry", json!(false));
    put("userId", json!(user_id));
    put("originalTriggerUuid", Value::Null);
    put("boardId", json!(board.0));
    // An item that is still on the board is a "pulse" in its group; creations and column changes
    // also name it and say it is in the top group.
    match change {
        Change::Created { item, name, .. }
        | Change::ColumnChanged {
            item,
            item_name: name,
            ..
        } => {
            put("groupId", json!("topics"));
            put("pulseId", json!(item.0));
            put("pulseName", json!(name));
            put("isTopGroup", json!(true));
        }
        Change::Renamed { item, .. } => {
            put("groupId", json!("topics"));
            put("pulseId", json!(item.0));
        }
        Change::Archived { .. } | Change::Deleted { .. } => {}
    }
    match change {
        Change::Created { column_values, .. } => {
            put("groupName", json!("Group Title"));
            put("groupColor", json!("#579bfc"));
            put("columnValues", Value::Object(column_values.clone()));
        }
        Change::ColumnChanged {
            column,
            value,
            previous,
            changed_at,
            ..
        } => {
            put("columnId", json!(column.id));
            put("columnType", json!(legacy_column_type(&column.column_type)));
            put("columnTitle", json!(column.title));
            put("value", value.clone());
            put("previousValue", previous.clone());
            put("changedAt", json!(unix_seconds(*changed_at)));
        }
        Change::Renamed { previous, name, .. } => {
            put("value", json!({ "name": name }));
            put("previousValue", json!({ "name": previous }));
        }
        Change::Archived { item, name, .. } | Change::Deleted { item, name, .. } => {
            put("itemId", json!(item.0));
            put("itemName", json!(name));
        }
    }
    put("triggerUuid", json!(trigger_uuid()));
    json!({ "event": event })
}

/// The JWT of one signed delivery.
fn jwt_for(signing_secret: &[u8], user_id: i64, audience: &str) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let short_lived: u128 = rand::rng().random();
    let claims = json!({
        "accountId": ACCOUNT_ID,
        "userId": user_id,
        "aud": audience,
        "exp": now + JWT_LIFETIME_SECS,
        "iat": now,
        "shortLivedToken": format!("{short_lived:032x}"),
    });
    sign_hs256(signing_secret, &claims)
}

/// The delivery task: one job at a time, in order.
pub(super) async fn deliver_all(
    mut jobs: mpsc::UnboundedReceiver<Job>,
    client: reqwest::Client,
    signing_secret: Vec<u8>,
    log: Arc<Mutex<Vec<SentWebhook>>>,
) {
    while let Some(mut job) = jobs.recv().await {
        for attempt in 0..=MAX_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(RETRY_DELAY).await;
                if let Some(event) = job.body.get_mut("event").and_then(Value::as_object_mut) {
                    event.insert("isRetry".into(), Value::Bool(true));
                }
            }
            let jwt = job
                .audience
                .as_deref()
                .map(|aud| jwt_for(&signing_secret, job.user_id, aud))
                .unwrap_or_default();
            let mut request = client.post(&job.url).json(&job.body);
            if !jwt.is_empty() {
                request = request.header(reqwest::header::AUTHORIZATION, &jwt);
            }
            let sent = request.timeout(DELIVERY_TIMEOUT).send().await;
            let status = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    // Drain the answer so the connection can be reused.
                    let _ = response.bytes().await;
                    Some(status)
                }
                Err(_) => None,
            };
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(SentWebhook {
                    body: job.body.clone(),
                    authorization: jwt,
                    status,
                });
            if status == Some(200) {
                break;
            }
        }
        if let Some(done) = job.done.take() {
            let _ = done.send(());
        }
    }
}
