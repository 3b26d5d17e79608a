//! Ingest: store one verified, parsed delivery in the inbox, durably, exactly once.
//!
//! Owns: the translation of `NpdEvent` and `MondayEvent` into inbox rows, including the decision
//! that a Monday event is not for the gateway (unmapped board or column, subitems, update threads),
//! which is recorded as `ignored` with its reason instead of being refused: Monday would otherwise
//! redeliver it every minute for 30 minutes.
//! Nothing else happens on the request path: processing reads the inbox later.
//! May import: std, crate::domain, crate::config, crate::ledger.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Settings;
use crate::domain::entity::{Side, unix_ms};
use crate::domain::event::{MondayEvent, MondayEventKind, NpdEvent};
use crate::ledger::LedgerResult;
use crate::ledger::group_commit::InboxWriter;
use crate::ledger::inbox::{InsertOutcome, NewInboxEvent};

/// The ingest use case: settings to classify events, and the group-commit writer.
#[derive(Debug, Clone)]
pub struct Ingest {
    settings: Arc<Settings>,
    writer: InboxWriter,
    /// Woken after a new event is committed, so processing starts at once.
    processing: Arc<Notify>,
}

impl Ingest {
    pub fn new(settings: Arc<Settings>, writer: InboxWriter, processing: Arc<Notify>) -> Self {
        Ingest {
            settings,
            writer,
            processing,
        }
    }

    async fn store(&self, row: NewInboxEvent) -> LedgerResult<InsertOutcome> {
        let outcome = self.writer.insert(row).await?;
        if matches!(outcome, InsertOutcome::Accepted(_)) {
            self.processing.notify_one();
        }
        Ok(outcome)
    }

    /// Stores an NPD event under its `webhook-id`.
    pub async fn npd_event(
        &self,
        webhook_id: &str,
        event: &NpdEvent,
        raw_body: &[u8],
        request_id: Option<String>,
    ) -> LedgerResult<InsertOutcome> {
        self.store(npd_inbox_row(webhook_id, event, raw_body, request_id))
            .await
    }

    /// Stores a Monday event under its `triggerUuid` (or its body's hash, for the legacy shape).
    pub async fn monday_event(
        &self,
        event: &MondayEvent,
        raw_body: &[u8],
        request_id: Option<String>,
    ) -> LedgerResult<InsertOutcome> {
        self.store(monday_inbox_row(
            &self.settings,
            event,
            raw_body,
            request_id,
        ))
        .await
    }
}

fn npd_inbox_row(
    webhook_id: &str,
    event: &NpdEvent,
    raw_body: &[u8],
    request_id: Option<String>,
) -> NewInboxEvent {
    NewInboxEvent {
        source: Side::Npd,
        delivery_id: webhook_id.to_owned(),
        event_type: event.event_type.as_str().to_owned(),
        entity_kind: Some(event.entity_kind()),
        npd_id: Some(event.npd_id()),
        board_id: None,
        monday_item_id: None,
        entity_version: Some(event.version()),
        occurred_at_ms: event.updated_at().map(unix_ms),
        payload: String::from_utf8_lossy(raw_body).into_owned(),
        request_id,
        ignored_reason: None,
    }
}

fn monday_inbox_row(
    settings: &Settings,
    event: &MondayEvent,
    raw_body: &[u8],
    request_id: Option<String>,
) -> NewInboxEvent {
    let entity_kind = event.board_id.and_then(|b| settings.kind_for_board(b));
    NewInboxEvent {
        source: Side::Monday,
        delivery_id: event.trigger_uuid.clone(),
        event_type: event.event_type.clone(),
        entity_kind,
        npd_id: None,
        board_id: event.board_id,
        monday_item_id: event.item_id,
        entity_version: None,
        occurred_at_ms: event.changed_at_ms(),
        payload: String::from_utf8_lossy(raw_body).into_owned(),
        request_id,
        ignored_reason: ignored_reason(settings, event),
    }
}

/// Why a Monday event is not the gateway's business, or `None` when processing must look at it.
pub fn ignored_reason(settings: &Settings, event: &MondayEvent) -> Option<String> {
    let Some(board) = event.board_id else {
        return Some(format!("`{}` names no board", event.event_type));
    };
    let Some(kind) = settings.kind_for_board(board) else {
        return Some(format!("board {board} is not a synced board"));
    };
    if event.is_subitem() {
        return Some("subitems are not synced".into());
    }
    match event.kind {
        MondayEventKind::ItemCreated
        | MondayEventKind::NameChanged
        | MondayEventKind::ItemArchived
        | MondayEventKind::ItemDeleted
        | MondayEventKind::ItemRestored => None,
        MondayEventKind::ColumnValueChanged => {
            let mapping = settings.mapping.for_kind(kind);
            match event.column_id.as_deref() {
                Some(column) if mapping.is_mapped_column(column) => None,
                Some(column) => Some(format!(
                    "column `{column}` is not mapped for {}",
                    kind.plural()
                )),
                None => Some("column change without a column id".into()),
            }
        }
        MondayEventKind::ItemMovedToGroup
        | MondayEventKind::SubitemMoved
        | MondayEventKind::UpdateCreated
        | MondayEventKind::UpdateEdited
        | MondayEventKind::UpdateDeleted
        | MondayEventKind::ColumnCreated
        | MondayEventKind::Other => Some(format!("`{}` events are not synced", event.event_type)),
    }
}
