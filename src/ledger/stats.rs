//! Counts read from the ledger: the cheap gauges every `/metrics` scrape reads, and the full
//! breakdown tests and diagnostics use.
//!
//! Owns: `QueueGauges` (`Store::gauges`: each reading is one statement over an index, bounded by
//! the queue it measures, never by the size of a table, so a scrape stays cheap however much
//! history the ledger holds; every replica reports the same shared queue) and `LedgerStats`
//! (`Store::stats`: group-bys over whole tables, for tests and diagnostics only, never a scrape).
//! May import: sqlx, crate::{domain, ledger}.

use crate::domain::state::JobState;
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

/// The queues at one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueGauges {
    /// Inbox rows not processed yet.
    pub inbox_unprocessed: i64,
    /// When the oldest unprocessed inbox row was accepted (unix ms).
    pub inbox_oldest_unprocessed_at: Option<i64>,
    /// Jobs per open or dead state: pending, leased, dead.
    pub jobs: Vec<(JobState, i64)>,
    /// The due time of the most overdue pending job (unix ms), if one is due by `now`.
    pub oldest_due_at: Option<i64>,
    pub open_conflicts: i64,
}

/// The statements of `Store::gauges`, each served by an index (a test reads SQLite's plans).
pub const GAUGE_QUERIES: &[&str] = &[
    // inbox_events_unprocessed_idx (partial, where processed_at is null)
    "select count(*) from inbox_events where processed_at is null",
    "select received_at from inbox_events where processed_at is null order by id limit 1",
    // outbox_jobs_ready_idx (state, next_attempt_at)
    "select count(*) from outbox_jobs where state = $1",
    "select next_attempt_at from outbox_jobs where state = 'pending' and next_attempt_at <= $1 \
     order by next_attempt_at limit 1",
    // conflicts_one_open_per_field_idx (partial, where status = 'open')
    "select count(*) from conflicts where status = 'open'",
];

impl Store {
    /// The cheap readings a scrape takes (see `GAUGE_QUERIES`).
    pub async fn gauges(&self, now_ms: i64) -> LedgerResult<QueueGauges> {
        let q = GAUGE_QUERIES;
        let mut jobs = Vec::new();
        for state in [JobState::Pending, JobState::Leased, JobState::Dead] {
            jobs.push((state, on_pool!(self, scalar i64, q[2], state)?));
        }
        Ok(QueueGauges {
            inbox_unprocessed: on_pool!(self, scalar i64, q[0])?,
            inbox_oldest_unprocessed_at: on_pool!(self, scalar_optional i64, q[1])?,
            jobs,
            oldest_due_at: on_pool!(self, scalar_optional i64, q[3], now_ms)?,
            open_conflicts: on_pool!(self, scalar i64, q[4])?,
        })
    }

    /// Everything by group, over whole tables: for tests and diagnostics, never for a scrape.
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

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::config::DatabaseSettings;

    /// SQLite's plan of each gauge statement: every table is searched through an index, none is
    /// scanned whole (a plain `SCAN <table>` line without an index).
    #[tokio::test]
    async fn every_gauge_statement_uses_an_index() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = DatabaseSettings {
            url: SecretString::from(format!("sqlite://{}/g.db", dir.path().display())),
            ..DatabaseSettings::default()
        };
        let store = Store::connect(&settings).await.expect("connect");
        store.migrate().await.expect("migrate");
        let Store::Sqlite(sqlite) = &store else {
            panic!("a SQLite store");
        };
        for sql in GAUGE_QUERIES {
            let explain = format!("explain query plan {}", sql.replace("$1", "'pending'"));
            let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&explain)
                .fetch_all(&sqlite.pool)
                .await
                .expect("explain");
            let details: Vec<&str> = plan.iter().map(|(.., d)| d.as_str()).collect();
            assert!(
                details.iter().all(|d| d.contains("INDEX")),
                "{sql}: {details:?}"
            );
        }
        assert_eq!(
            store.gauges(0).await.expect("gauges"),
            QueueGauges {
                jobs: vec![
                    (JobState::Pending, 0),
                    (JobState::Leased, 0),
                    (JobState::Dead, 0)
                ],
                ..QueueGauges::default()
            }
        );
    }
}
