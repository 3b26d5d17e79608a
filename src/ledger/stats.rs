//! Counts for `/metrics`: read from the ledger at scrape time, so every replica reports the same
//! truth about the shared queue.
//!
//! Owns: `LedgerStats`.
//! May import: sqlx, crate::ledger.

use crate::ledger::{LedgerResult, Store, with_pool};

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
        let inbox = with_pool!(self, pool => {
            sqlx::query_as::<_, (String, String, i64)>(
                "select source, coalesce(outcome, 'unprocessed'), count(*) from inbox_events group by 1, 2 order by 1, 2",
            )
            .fetch_all(pool)
            .await
        })?;
        let jobs = with_pool!(self, pool => {
            sqlx::query_as::<_, (String, String, String, i64)>(
                "select target, operation, state, count(*) from outbox_jobs group by 1, 2, 3 order by 1, 2, 3",
            )
            .fetch_all(pool)
            .await
        })?;
        let open_conflicts = with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("select count(*) from conflicts where status = 'open'")
                .fetch_one(pool)
                .await
        })?;
        let entities = with_pool!(self, pool => {
            sqlx::query_as::<_, (String, String, i64)>(
                "select kind, status, count(*) from entities group by 1, 2 order by 1, 2",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(LedgerStats {
            inbox,
            jobs,
            open_conflicts,
            entities,
        })
    }
}
