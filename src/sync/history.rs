//! History recording: the one place the use cases append to an entity's timeline, and what caused
//! a write.
//!
//! Owns: `Cause` (the inbox event, priority and request behind a decision, carried into the jobs
//! it queues) and `record`/`record_job` (one history entry, tied to an event or to a job).
//! May import: crate::{domain, ledger}.

use crate::domain::job::Priority;
use crate::domain::state::{HistoryDetail, HistoryKind};
use crate::ledger::LedgerResult;
use crate::ledger::history::{self, Entry};
use crate::ledger::tx::Tx;

/// What a decision came from: the inbox event (if any), how urgent its writes are, and the
/// request that brought it (for logs and the audit trail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause<'a> {
    pub inbox_id: Option<i64>,
    pub priority: Priority,
    pub request_id: Option<&'a str>,
    /// What produced the change when no delivery did ("drift", "backfill"): every history
    /// entry recorded under this cause starts with it.
    pub label: Option<&'static str>,
}

impl<'a> Cause<'a> {
    /// Routine sync of one inbox event.
    pub fn event(inbox_id: i64, request_id: Option<&'a str>) -> Self {
        Cause {
            inbox_id: Some(inbox_id),
            priority: Priority::Live,
            request_id,
            label: None,
        }
    }

    /// An admin's action (no inbox event).
    pub fn admin(request_id: Option<&'a str>) -> Self {
        Cause {
            inbox_id: None,
            priority: Priority::Admin,
            request_id,
            label: None,
        }
    }

    /// A difference a drift scan found (reason "drift", below live sync).
    pub fn drift() -> Self {
        Cause {
            inbox_id: None,
            priority: Priority::Drift,
            request_id: None,
            label: Some("drift"),
        }
    }

    /// The first sync of existing data (reason "backfill", the lowest priority).
    pub fn backfill(request_id: Option<&'a str>) -> Self {
        Cause {
            inbox_id: None,
            priority: Priority::Backfill,
            request_id,
            label: Some("backfill"),
        }
    }

    /// An admin's resolution of a backfill's review: admin priority, reason "backfill".
    pub fn review(request_id: Option<&'a str>) -> Self {
        Cause {
            label: Some("backfill"),
            ..Cause::admin(request_id)
        }
    }

    /// A job's follow-up work, as urgent as the job.
    pub fn job(priority: Priority, request_id: Option<&'a str>) -> Self {
        Cause {
            inbox_id: None,
            priority,
            request_id,
            label: None,
        }
    }
}

/// Appends one history entry for `entity_id`, tied to the cause's inbox event.
pub async fn record(
    tx: &mut Tx,
    entity_id: i64,
    cause: &Cause<'_>,
    kind: HistoryKind,
    reason: impl Into<String>,
    detail: Option<HistoryDetail>,
) -> LedgerResult<()> {
    let reason = match cause.label {
        Some(label) => format!("{label}: {}", reason.into()),
        None => reason.into(),
    };
    append(tx, entity_id, (cause.inbox_id, None), kind, reason, detail).await
}

/// Appends one history entry for `entity_id`, tied to outbox job `job_id`.
pub async fn record_job(
    tx: &mut Tx,
    entity_id: i64,
    job_id: i64,
    kind: HistoryKind,
    reason: impl Into<String>,
    detail: Option<HistoryDetail>,
) -> LedgerResult<()> {
    append(
        tx,
        entity_id,
        (None, Some(job_id)),
        kind,
        reason.into(),
        detail,
    )
    .await
}

async fn append(
    tx: &mut Tx,
    entity_id: i64,
    (inbox_event_id, job_id): (Option<i64>, Option<i64>),
    kind: HistoryKind,
    reason: String,
    detail: Option<HistoryDetail>,
) -> LedgerResult<()> {
    let entry = Entry {
        entity_id,
        inbox_event_id,
        job_id,
        kind,
        reason,
        detail,
    };
    history::append(tx, &entry).await
}
