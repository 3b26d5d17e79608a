//! Counts for `/metrics`: read from the ledger at scrape time, so every replica reports the same
//! truth about the shared queue.
//!
//! Owns: `LedgerStats`.
//! May import: sqlx, crate::ledger.

use crate::ledger::tx::on_pool;
use crate::ledger::{LedgerResult, Store};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerStats {
    /// (source, outcome or "unprocessed", count)
    pub inbox: Vec<(String, String, i64)>,
    /// (target, operation, state, count)
    pub jobs: Vec<(String, String, String, i64)>,
    pub open_conflicts: i64,
    /// (kind, status, count)
    pub entities: Vec<(String, String, i64)>,
}

impl Store {
    pub async fn stats(&self) -> LedgerResult<LedgerStats> {
        let inbox = "select source, coalesce(outcome, 'unprocessed'), count(*) from inbox_events \
                     group by 1, 2 order by 1, 2";
        let jobs = "select target, operation, state, count(*) from outbox_jobs \
                    group by 1, 2, 3 order by 1, 2, 3";
        let conflicts = "select count(*) from conflicts where status = 'open'";
        let entities = "select kind, status, count(*) from entities group by 1, 2 order by 1, 2";
        Ok(LedgerStats {
            inbox: on_pool!(self, all(String, String, i64), inbox)?,
            jobs: on_pool!(self, all(String, String, String, i64), jobs)?,
            open_conflicts: on_pool!(self, scalar i64, conflicts)?,
            entities: on_pool!(self, all(String, String, i64), entities)?,
        })
    }
}
