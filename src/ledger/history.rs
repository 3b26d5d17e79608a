//! The history: an append-only timeline per entity of what arrived, what was decided and why, what
//! was sent and what came back. It is what an admin reads to answer "why did this sync, or not".
//!
//! Owns: `history` rows. Details are `HistoryDetail`s decided by `sync`, stored as JSON text;
//! they never hold secrets.
//! May import: sqlx, serde_json, crate::{domain, ledger}.

use sqlx::FromRow;

use crate::domain::state::{HistoryDetail, HistoryKind};
use crate::ledger::tx::{Tx, on_pool, on_tx};
use crate::ledger::{LedgerError, LedgerResult, Store, now_ms};

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
    let detail = e
        .detail
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|err| LedgerError::Corrupt(format!("history detail: {err}")))?;
    let sql = "insert into history (entity_id, inbox_event_id, job_id, at, kind, reason, detail, created_at) \
               values ($1, $2, $3, $4, $5, $6, $7, $4)";
    let (entity, inbox, job) = (e.entity_id, e.inbox_event_id, e.job_id);
    on_tx!(
        tx,
        execute,
        sql,
        entity,
        inbox,
        job,
        now_ms(),
        e.kind,
        &e.reason,
        detail
    )?;
    Ok(())
}

impl Store {
    /// The newest `limit` history entries of an entity, newest first.
    pub async fn history(&self, entity_id: i64, limit: i64) -> LedgerResult<Vec<HistoryRow>> {
        let sql = "select id, entity_id, inbox_event_id, job_id, at, kind, reason, detail from history \
                   where entity_id = $1 order by id desc limit $2";
        Ok(on_pool!(self, all HistoryRow, sql, entity_id, limit)?)
    }
}
