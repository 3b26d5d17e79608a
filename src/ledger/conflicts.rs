//! Conflicts: a field both sides changed to different values under the `manual` policy, waiting
//! for an admin.
//!
//! Owns: `conflicts` rows (at most one open per entity and field).
//! May import: sqlx, crate::{domain, ledger}.

use sqlx::FromRow;

use crate::domain::reconcile::ConflictPolicy;
use crate::domain::state::{ConflictStatus, Resolution};
use crate::ledger::tx::{Tx, on_pool, on_tx};
use crate::ledger::{LedgerResult, Store, now_ms};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ConflictRow {
    pub id: i64,
    pub entity_id: i64,
    pub field: String,
    pub base_value: Option<String>,
    pub npd_value: Option<String>,
    pub monday_value: Option<String>,
    pub policy: ConflictPolicy,
    pub status: ConflictStatus,
    pub resolution: Option<Resolution>,
    pub resolved_value: Option<String>,
    pub resolved_by: Option<String>,
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
}

const CONFLICT_COLUMNS: &str = "id, entity_id, field, base_value, npd_value, monday_value, policy, status, \
     resolution, resolved_value, resolved_by, opened_at, resolved_at";

/// The values of a conflict as the ledger shows them (canonical field values).
#[derive(Debug, Clone)]
pub struct ConflictValues<'a> {
    pub base: Option<&'a str>,
    pub npd: Option<&'a str>,
    pub monday: Option<&'a str>,
}

/// A conflict `open` wrote: its id, and whether it is new (else an open one was refreshed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub id: i64,
    pub new: bool,
}

/// Opens a conflict on a field, or refreshes the values of the one already open.
pub async fn open(
    tx: &mut Tx,
    entity_id: i64,
    field: &str,
    v: &ConflictValues<'_>,
    policy: ConflictPolicy,
) -> LedgerResult<Opened> {
    let now = now_ms();
    if let Some(id) = open_for_field(tx, entity_id, field).await?.map(|c| c.id) {
        let sql = "update conflicts set base_value = $2, npd_value = $3, monday_value = $4, \
                   updated_at = $5 where id = $1";
        on_tx!(tx, execute, sql, id, v.base, v.npd, v.monday, now)?;
        return Ok(Opened { id, new: false });
    }
    let sql = "insert into conflicts (entity_id, field, base_value, npd_value, monday_value, policy, \
               status, opened_at, created_at, updated_at) \
               values ($1, $2, $3, $4, $5, $6, $8, $7, $7, $7) returning id";
    let open = ConflictStatus::Open;
    let id =
        on_tx!(tx, scalar i64, sql, entity_id, field, v.base, v.npd, v.monday, policy, now, open)?;
    Ok(Opened { id, new: true })
}

/// The open conflict of a field, if any.
pub async fn open_for_field(
    tx: &mut Tx,
    entity_id: i64,
    field: &str,
) -> LedgerResult<Option<ConflictRow>> {
    let sql = format!(
        "select {CONFLICT_COLUMNS} from conflicts where entity_id = $1 and field = $2 and status = 'open'"
    );
    Ok(on_tx!(tx, optional ConflictRow, &sql, entity_id, field)?)
}

pub async fn find(tx: &mut Tx, id: i64) -> LedgerResult<Option<ConflictRow>> {
    let sql = format!("select {CONFLICT_COLUMNS} from conflicts where id = $1");
    Ok(on_tx!(tx, optional ConflictRow, &sql, id)?)
}

/// Closes an open conflict with the chosen resolution.
pub async fn close(
    tx: &mut Tx,
    id: i64,
    resolution: Resolution,
    value: Option<&str>,
    resolved_by: &str,
) -> LedgerResult<bool> {
    let sql = "update conflicts set status = $6, resolution = $2, resolved_value = $3, resolved_by = $4, \
               resolved_at = $5, updated_at = $5 where id = $1 and status = 'open'";
    let resolved = ConflictStatus::Resolved;
    let done = on_tx!(
        tx,
        execute,
        sql,
        id,
        resolution,
        value,
        resolved_by,
        now_ms(),
        resolved
    )?;
    Ok(done == 1)
}

/// How many conflicts of an entity are open.
pub async fn open_count(tx: &mut Tx, entity_id: i64) -> LedgerResult<i64> {
    let sql = "select count(*) from conflicts where entity_id = $1 and status = 'open'";
    Ok(on_tx!(tx, scalar i64, sql, entity_id)?)
}

impl Store {
    /// Conflicts in a status, oldest first, bounded by `limit`.
    pub async fn conflicts(
        &self,
        status: ConflictStatus,
        limit: i64,
    ) -> LedgerResult<Vec<ConflictRow>> {
        let sql = format!(
            "select {CONFLICT_COLUMNS} from conflicts where status = $1 order by id limit $2"
        );
        Ok(on_pool!(self, all ConflictRow, &sql, status, limit)?)
    }

    /// One page of the conflicts in a status: those after conflict `after` (0: from the start),
    /// oldest first, at most `limit` (keyset pagination over `conflicts_status_id_idx`).
    pub async fn conflicts_page(
        &self,
        status: ConflictStatus,
        after: i64,
        limit: i64,
    ) -> LedgerResult<Vec<ConflictRow>> {
        let sql = format!(
            "select {CONFLICT_COLUMNS} from conflicts where status = $1 and id > $2 order by id limit $3"
        );
        Ok(on_pool!(self, all ConflictRow, &sql, status, after, limit)?)
    }

    /// Open conflicts of one entity.
    pub async fn entity_conflicts(&self, entity_id: i64) -> LedgerResult<Vec<ConflictRow>> {
        let sql = format!(
            "select {CONFLICT_COLUMNS} from conflicts where entity_id = $1 and status = 'open' order by id"
        );
        Ok(on_pool!(self, all ConflictRow, &sql, entity_id)?)
    }
}
