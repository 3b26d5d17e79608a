//! Retention: deleting what the ledger no longer needs, oldest first, one small batch per
//! transaction, each batch found through an index on the row's age.
//!
//! Owns: `Prunable` and `Store::prune`. Only processed inbox rows, history entries, done jobs and
//! audit rows are ever deleted; entities, their links and field states, conflicts, unprocessed
//! inbox rows and pending, leased or dead jobs never are.
//! May import: crate::{domain, ledger}.

use crate::ledger::tx::on_tx;
use crate::ledger::{LedgerResult, Store};

/// What may be pruned, each by its own age column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prunable {
    /// Processed inbox rows, by `received_at`.
    ProcessedEvents,
    /// History entries, by `at`.
    History,
    /// Done outbox jobs, by `done_at`.
    FinishedJobs,
    /// Audit rows, by `at`.
    Audit,
}

impl Prunable {
    pub const ALL: [Prunable; 4] = [
        Prunable::ProcessedEvents,
        Prunable::History,
        Prunable::FinishedJobs,
        Prunable::Audit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Prunable::ProcessedEvents => "processed_events",
            Prunable::History => "history",
            Prunable::FinishedJobs => "finished_jobs",
            Prunable::Audit => "audit",
        }
    }

    /// The statement deleting one batch: `$1` the cut-off (unix ms), `$2` the batch size.
    fn statement(self) -> &'static str {
        match self {
            Prunable::ProcessedEvents => {
                "delete from inbox_events where id in (select id from inbox_events \
                 where processed_at is not null and received_at < $1 order by received_at limit $2)"
            }
            Prunable::History => {
                "delete from history where id in (select id from history \
                 where at < $1 order by at limit $2)"
            }
            Prunable::FinishedJobs => {
                "delete from outbox_jobs where id in (select id from outbox_jobs \
                 where state = 'done' and done_at < $1 order by done_at limit $2)"
            }
            Prunable::Audit => {
                "delete from audit_log where id in (select id from audit_log \
                 where at < $1 order by at limit $2)"
            }
        }
    }
}

impl Store {
    /// Deletes at most `batch` rows of `what` older than `before_ms`, in one short transaction
    /// (on SQLite it takes its turn at the single writer like any write); how many were deleted.
    pub async fn prune(&self, what: Prunable, before_ms: i64, batch: i64) -> LedgerResult<u64> {
        let mut tx = self.begin().await?;
        let deleted = on_tx!(&mut tx, execute, what.statement(), before_ms, batch)?;
        tx.commit().await?;
        Ok(deleted)
    }
}
