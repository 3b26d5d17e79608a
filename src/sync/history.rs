//! History recording: the one place the use cases append to an entity's timeline, and what caused
//! a write.
//!
//! Owns: `Cause` (the inbox event, priority and request behind a decision, carried into the jobs
//! it queues), `Origin` and `record` (one history entry, tied to an event or to a job).
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
    /// When the event was accepted (its inbox row's `received_at`, unix ms): the jobs it queues
    /// carry it, and the sync latency is measured from it.
    pub accepted_at: Option<i64>,
    /// What produced the change when no delivery did ("drift", "backfill"): every history
    /// entry recorded under this cause starts with it.
    pub label: Option<&'static str>,
}

impl<'a> Cause<'a> {
    /// A cause with nothing but its priority and request.
    fn of(priority: Priority, request_id: Option<&'a str>) -> Self {
        Cause {
            inbox_id: None,
            priority,
            request_id,
            accepted_at: None,
            label: None,
        }
    }

    /// Routine sync of one inbox event.
    pub fn event(inbox_id: i64, request_id: Option<&'a str>) -> Self {
        Cause {
            inbox_id: Some(inbox_id),
            ..Cause::of(Priority::Live, request_id)
        }
    }

    /// The same cause, for an event accepted at `received_at` (unix ms).
    pub fn accepted(self, received_at: i64) -> Self {
        Cause {
            accepted_at: Some(received_at),
            ..self
        }
    }

    /// An admin's action (no inbox event).
    pub fn admin(request_id: Option<&'a str>) -> Self {
        Cause::of(Priority::Admin, request_id)
    }

    /// A difference a drift scan found (reason "drift", below live sync).
    pub fn drift() -> Self {
        Cause {
            label: Some("drift"),
            ..Cause::of(Priority::Drift, None)
        }
    }

    /// The first sync of existing data (reason "backfill", the lowest priority).
    pub fn backfill(request_id: Option<&'a str>) -> Self {
        Cause {
            label: Some("backfill"),
            ..Cause::of(Priority::Backfill, request_id)
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
        Cause::of(priority, request_id)
    }
}

/// What a history entry is tied to: the inbox event behind a decision (if any, with the label of
/// what produced it), or an outbox job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Event {
        inbox: Option<i64>,
        label: Option<&'static str>,
    },
    Job(i64),
}

impl From<&Cause<'_>> for Origin {
    fn from(cause: &Cause<'_>) -> Self {
        Origin::Event {
            inbox: cause.inbox_id,
            label: cause.label,
        }
    }
}

/// Appends one history entry for `entity_id`, tied to `origin` (a cause's inbox event, or a job);
/// a cause's label starts the reason.
pub async fn record(
    tx: &mut Tx,
    entity_id: i64,
    origin: impl Into<Origin>,
    kind: HistoryKind,
    reason: impl Into<String>,
    detail: Option<HistoryDetail>,
) -> LedgerResult<()> {
    let (inbox_event_id, job_id, label) = match origin.into() {
        Origin::Event { inbox, label } => (inbox, None, label),
        Origin::Job(job) => (None, Some(job), None),
    };
    let reason = match label {
        Some(label) => format!("{label}: {}", reason.into()),
        None => reason.into(),
    };
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
