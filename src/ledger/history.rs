//! The history: an append-only timeline per entity of what arrived, what was decided and why, what
//! was sent and what came back. It is what an admin reads to answer "why did this sync, or not".
//!
//! Owns: `history` rows. Details are JSON built by `sync`; they never hold secrets.
//! May import: sqlx, serde_json, crate::ledger.

use sqlx::FromRow;

use crate::ledger::tx::{Tx, with_tx};
use crate::ledger::{LedgerResult, Store, now_ms, with_pool};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct HistoryRow {
    pub id: i64,
    pub entity_id: i64,
    pub inbox_event_id: Option<i64>,
    pub job_id: Option<i64>,
    pub at: i64,
    /// `received`, `decided`, `sent`, `failed`, `dead`, `echo`, `stale`, `conflict`, `linked`, ...
    pub kind: String,
    /// One readable sentence.
    pub reason: String,
    pub detail: Option<String>,
}

/// One history entry.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub entity_id: i64,
    pub inbox_event_id: Option<i64>,
    pub job_id: Option<i64>,
    pub kind: &'a str,
    pub reason: String,
    pub detail: Option<serde_json::Value>,
}

pub async fn append(tx: &mut Tx, e: &Entry<'_>) -> LedgerResult<()> {
    let now = now_ms();
    with_tx!(tx, conn => {
        sqlx::query(
            "insert into history (entity_id, inbox_event_id, job_id, at, kind, reason, detail, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $4)",
        )
        .bind(e.entity_id)
        .bind(e.inbox_event_id)
        .bind(e.job_id)
        .bind(now)
        .bind(e.kind)
        .bind(&e.reason)
        .bind(e.detail.as_ref().map(|d| d.to_string()))
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

impl Store {
    /// The newest `limit` history entries of an entity, newest first.
    pub async fn history(&self, entity_id: i64, limit: i64) -> LedgerResult<Vec<HistoryRow>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, HistoryRow>(
                "select id, entity_id, inbox_event_id, job_id, at, kind, reason, detail from history \
                 where entity_id = $1 order by id desc limit $2",
            )
            .bind(entity_id)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}
