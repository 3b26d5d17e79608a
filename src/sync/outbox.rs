//! The outbound operations and how they are enqueued.
//!
//! Owns: `Operation` (what a job does), `ensure` (enqueue unless an unsent job of the same entity
//! and operation exists: that job will carry the new values too, since a job's payload is computed
//! from the field states when it is first sent) and the retry budget of new jobs.
//! May import: serde_json, crate::{config, domain, ledger}.

use serde_json::json;

use crate::ledger::LedgerResult;
use crate::ledger::entities::EntityRow;
use crate::ledger::jobs::{self, NewJob};
use crate::ledger::tx::Tx;

/// Attempts before a job goes to the dead letters.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 10;
/// Priority of admin pushes: ahead of routine sync.
pub const ADMIN_PRIORITY: i64 = 10;

/// What an outbox job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Create the entity's Monday item (after a lookup by npd_id) or update it with the pending
    /// values; with `force`, every synced field.
    PushItem,
    /// Archive the entity's Monday item (the NPD record was deleted).
    ArchiveItem,
    /// PATCH the NPD record with the fields Monday changed.
    PatchNpd,
    /// PATCH the NPD record with its new `monday_id`.
    WriteLink,
    /// POST a new NPD contact for a Monday item created without an npd_id (`[sync] create_in_npd`).
    CreateNpdContact,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::PushItem,
        Operation::ArchiveItem,
        Operation::PatchNpd,
        Operation::WriteLink,
        Operation::CreateNpdContact,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::PushItem => "push_item",
            Operation::ArchiveItem => "archive_item",
            Operation::PatchNpd => "patch_npd",
            Operation::WriteLink => "write_link",
            Operation::CreateNpdContact => "create_npd_contact",
        }
    }

    pub fn parse(s: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// `monday` or `npd`.
    pub fn target(self) -> &'static str {
        match self {
            Operation::PushItem | Operation::ArchiveItem => "monday",
            Operation::PatchNpd | Operation::WriteLink | Operation::CreateNpdContact => "npd",
        }
    }
}

/// Enqueues `operation` for `entity` unless an unsent job for it already exists. Returns the job id.
pub async fn ensure(
    tx: &mut Tx,
    entity: &EntityRow,
    operation: Operation,
    priority: i64,
    request_id: Option<&str>,
) -> LedgerResult<i64> {
    if let Some(job) =
        jobs::find_unsent(tx, entity.id, operation.target(), operation.as_str()).await?
    {
        return Ok(job.id);
    }
    enqueue(tx, entity, operation, json!({}), priority, request_id).await
}

/// Enqueues a new job unconditionally.
pub async fn enqueue(
    tx: &mut Tx,
    entity: &EntityRow,
    operation: Operation,
    payload: serde_json::Value,
    priority: i64,
    request_id: Option<&str>,
) -> LedgerResult<i64> {
    jobs::enqueue(
        tx,
        &NewJob {
            entity_id: entity.id,
            target: operation.target(),
            operation: operation.as_str(),
            payload,
            priority,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            request_id,
        },
    )
    .await
}

/// Whether the entity has an open (pending or leased) job of this operation.
pub async fn has_open(tx: &mut Tx, entity_id: i64, operation: Operation) -> LedgerResult<bool> {
    Ok(jobs::open_jobs(tx, entity_id)
        .await?
        .iter()
        .any(|j| j.operation == operation.as_str()))
}

/// Enqueues a forced push (every synced field) for `entity`, or turns its unsent push into one.
pub async fn ensure_forced_push(
    tx: &mut Tx,
    entity: &EntityRow,
    priority: i64,
    request_id: Option<&str>,
) -> LedgerResult<i64> {
    let operation = Operation::PushItem;
    if let Some(job) =
        jobs::find_unsent(tx, entity.id, operation.target(), operation.as_str()).await?
    {
        jobs::set_payload(tx, job.id, &json!({"force": true})).await?;
        jobs::raise_priority(tx, job.id, priority).await?;
        return Ok(job.id);
    }
    enqueue(
        tx,
        entity,
        operation,
        json!({"force": true}),
        priority,
        request_id,
    )
    .await
}

/// Queues the write-back of a new link to NPD (`PATCH … {"monday_id"}`), unless NPD already holds
/// it, the record has no NPD id, or NPD's API is not configured. Called wherever an entity gets
/// linked, after the link is written in the same transaction.
pub async fn write_link_back(
    tx: &mut Tx,
    settings: &crate::config::Settings,
    entity: &EntityRow,
    item: crate::domain::entity::MondayItemId,
    priority: i64,
    request_id: Option<&str>,
) -> LedgerResult<()> {
    let npd_holds = entity
        .npd_snapshot
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| {
            serde_json::from_value::<crate::domain::entity::MondayItemId>(
                v.get("monday_id")?.clone(),
            )
            .ok()
        });
    if entity.npd_id.is_none() || settings.npd.api_url.is_none() || npd_holds == Some(item) {
        return Ok(());
    }
    if jobs::find_unsent(
        tx,
        entity.id,
        Operation::WriteLink.target(),
        Operation::WriteLink.as_str(),
    )
    .await?
    .is_none()
    {
        enqueue(
            tx,
            entity,
            Operation::WriteLink,
            json!({}),
            priority,
            request_id,
        )
        .await?;
    }
    Ok(())
}
