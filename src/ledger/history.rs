//! The history: an append-only timeline per entity of what arrived, what was decided and why, what
//! was sent and what came back. It is what an admin reads to answer "why did this sync, or not".
//!
//! Owns: `history` rows. Details are `HistoryDetail`s decided by `sync`, stored as JSON text;
//! they never hold secrets.
//! May import: sqlx, serde_json, crate::{domain, ledger}.

use sqlx::FromRow;

use crate::domain::state::{HistoryDetail, HistoryKind};
use crate::ledger::tx::{Tx, with_tx};
use crate::ledger::{LedgerError, LedgerResult, Store, now_ms, with_pool};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct HistoryRow {
    pub id: i64,
    pub entity_id: i64,
    pub inbox_event_id: Option<i64>,
    pub job_id: Option<i64>,
    pub at: i64,
    pub kind: HistoryKind,
    /// One readable sentence.
    pub reason: String,
    /// The entry's structured detail as stored (JSON text of a `HistoryDetail`), shown as is.
    pub detail: Option<String>,
}

/// One history entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub entity_id: i64,
    pub inbox_event_id: Option<i64>,
    pub job_id: Option<i64>,
    pub kind: HistoryKind,
    pub reason: String,
    pub detail: Option<HistoryDetail>,
}

pub async fn append(tx: &mut Tx, e: &Entry) -> LedgerResult<()> {
    let now = now_ms();
    let detail = e
        .detail
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|err| LedgerError::Corrupt(format!("history detail: {err}")))?;
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
        .bind(detail)
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
