//! Board set-up in the Monday simulator: `webhooks(board_id:)`, `create_webhook` (only for a URL
//! that answered monday's challenge) and `create_column`, and which registered webhooks a change
//! fires.
//!
//! Owns: the challenge (a POST of `{"challenge": token}` that must be echoed, FACTS.md §1.3), the
//! registration rules (a known board, not a duplicate column id), the event each kind of change
//! is subscribed as, and the deliveries of registered webhooks: to their URL, unsigned, as
//! monday sends the webhooks made with a personal API token (FACTS.md §1.7), with the webhook's
//! id as `subscriptionId`.
//! May import: std, reqwest, serde_json, uuid, crate::domain::entity, the sibling modules.

use std::time::Duration;

use serde_json::{Value, json};

use super::store::{Change, FieldError, Store};
use super::{SimColumn, SimWebhook};
use crate::domain::entity::BoardId;

/// How long the URL has to answer the challenge.
const CHALLENGE_TIMEOUT: Duration = Duration::from_secs(5);
/// The first id handed to a registered webhook.
const FIRST_WEBHOOK_ID: u64 = 82_000_001;

/// Sends `url` a challenge; true when it answered 200 with the same token.
pub(super) async fn challenge(client: &reqwest::Client, url: &str) -> bool {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let sent = client
        .post(url)
        .json(&json!({ "challenge": token }))
        .timeout(CHALLENGE_TIMEOUT)
        .send()
        .await;
    let Ok(response) = sent else {
        return false;
    };
    if response.status().as_u16() != 200 {
        return false;
    }
    let answer: Option<Value> = response.json().await.ok();
    answer.as_ref().and_then(|a| a.get("challenge")) == Some(&json!(token))
}

fn board_of(store: &Store, board: &Value) -> Result<BoardId, FieldError> {
    super::exec::id_arg(board)
        .map(BoardId)
        .filter(|b| store.board(*b).is_some())
        .ok_or_else(|| FieldError::board_not_found(board))
}

/// The webhooks of a board.
pub(super) fn board_webhooks(store: &Store, board: &Value) -> Result<Vec<SimWebhook>, FieldError> {
    let board = board_of(store, board)?;
    Ok(store
        .webhooks()
        .iter()
        .filter(|w| w.board_id == board)
        .cloned()
        .collect())
}

/// Registers a webhook, if its URL answered the challenge (`verified`).
pub(super) fn create_webhook(
    store: &mut Store,
    board: &Value,
    (url, event, config): (&str, &str, Option<String>),
    verified: &[String],
) -> Result<SimWebhook, FieldError> {
    let board = board_of(store, board)?;
    if !verified.iter().any(|v| v == url) {
        return Err(FieldError::invalid_argument(
            "Webhook URL verification failed: the URL did not answer the challenge",
        ));
    }
    let id = FIRST_WEBHOOK_ID + store.webhooks().len() as u64;
    let webhook = SimWebhook {
        id,
        board_id: board,
        event: event.to_owned(),
        config: config.filter(|c| !c.is_empty()),
        url: url.to_owned(),
    };
    store.webhooks_mut().push(webhook.clone());
    Ok(webhook)
}

/// Adds a column; an id is made up when none is given.
pub(super) fn create_column(
    store: &mut Store,
    board: &Value,
    (id, title, column_type): (Option<&str>, &str, &str),
) -> Result<SimColumn, FieldError> {
    let board = board_of(store, board)?;
    let Some(columns) = store.board_mut(board).map(|b| &mut b.columns) else {
        return Err(FieldError::board_not_found(&json!(board.0)));
    };
    let id = id.map_or_else(
        || format!("{column_type}_{}", columns.len() + 1),
        str::to_owned,
    );
    if columns.iter().any(|c| c.id == id) {
        return Err(FieldError::invalid_argument(format!(
            "A column with the id {id} already exists on the board"
        )));
    }
    let column = SimColumn::new(&id, column_type, title);
    columns.push(column.clone());
    Ok(column)
}

/// The `WebhookEventType` a change fires.
fn subscribed_event(change: &Change) -> &'static str {
    match change {
        Change::Created { .. } => "create_item",
        Change::ColumnChanged { .. } => "change_column_value",
        Change::Renamed { .. } => "change_name",
        Change::Archived { .. } => "item_archived",
        Change::Deleted { .. } => "item_deleted",
    }
}

/// The registered webhooks `change` fires (events with a config are not simulated).
pub(super) fn fired_by(store: &Store, change: &Change) -> Vec<SimWebhook> {
    let event = subscribed_event(change);
    store
        .webhooks()
        .iter()
        .filter(|w| w.board_id == change.board() && w.event == event && w.config.is_none())
        .cloned()
        .collect()
}
