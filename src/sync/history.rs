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
}

impl<'a> Cause<'a> {
    /// Routine sync of one inbox event.
    pub fn event(inbox_id: i64, request_id: Option<&'a str>) -> Self {
        Cause {
            inbox_id: Some(inbox_id),
            priority: Priority::Live,
            request_id,
            accepted_at: None,
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
        Cause {
            inbox_id: None,
            priority: Priority::Admin,
            request_id,
            accepted_at: None,
        }
    }

    /// A job's follow-up work, as urgent as the job.
    pub fn job(priority: Priority, request_id: Option<&'a str>) -> Self {
        Cause {
            inbox_id: None,
            priority,
            request_id,
            accepted_at: None,
        }
    }
}

/// What a history entry is tied to: the inbox event behind a decision (if any), or an outbox job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Event(Option<i64>),
    Job(i64),
}

impl From<&Cause<'_>> for Origin {
    fn from(cause: &Cause<'_>) -> Self {
        Origin::Event(cause.inbox_id)
    }
}

/// Appends one history entry for `entity_id`, tied to `origin` (a cause's inbox event, or a job).
pub async fn record(
    tx: &mut Tx,
    entity_id: i64,
    origin: impl Into<Origin>,
    kind: HistoryKind,
    reason: impl Into<String>,
    detail: Option<HistoryDetail>,
) -> LedgerResult<()> {
    let (inbox_event_id, job_id) = match origin.into() {
        Origin::Event(inbox) => (inbox, None),
        Origin::Job(job) => (None, Some(job)),
    };
    let entry = Entry {
        entity_id,
        inbox_event_id,
        job_id,
        kind,
        reason: reason.into(),
        detail,
    };
    history::append(tx, &entry).await
}
