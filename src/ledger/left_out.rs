//! Values left out of a write: a field whose value cannot be written to the other side (a
//! national phone number with no default country, ...) is left out of that write while the other
//! fields go. The latest one per entity, field and direction is kept, for the entity's sync status,
//! and cleared once that field writes fine.
//!
//! Owns: `left_out_values` rows.
//! May import: sqlx, crate::{domain, ledger}.

use sqlx::FromRow;

use crate::domain::entity::Side;
use crate::domain::mapping::{LeftOut, LeftOutReason};
use crate::ledger::tx::{Tx, on_pool, on_tx};
use crate::ledger::{LedgerResult, Store, now_ms};

/// One recorded left-out value.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LeftOutRow {
    pub field: String,
    /// The side the write was for.
    pub direction: Side,
    pub value: String,
    pub reason: LeftOutReason,
    /// Unix ms of the write it was left out of.
    pub at: i64,
}

/// Records `left_out` for the entity, replacing what an earlier write left out of that field.
pub async fn record(tx: &mut Tx, entity_id: i64, left_out: &LeftOut) -> LedgerResult<()> {
    let sql = "insert into left_out_values (entity_id, field, direction, value, reason, at) \
               values ($1, $2, $3, $4, $5, $6) on conflict (entity_id, field, direction) do update \
               set value = excluded.value, reason = excluded.reason, at = excluded.at";
    on_tx!(
        tx,
        execute,
        sql,
        entity_id,
        &left_out.field,
        left_out.to,
        &left_out.value,
        left_out.reason,
        now_ms()
    )?;
    Ok(())
}

/// `field` was written to `to`: what an earlier write left out of it is no longer true.
pub async fn clear(tx: &mut Tx, entity_id: i64, field: &str, to: Side) -> LedgerResult<()> {
    let sql = "delete from left_out_values where entity_id = $1 and field = $2 and direction = $3";
    on_tx!(tx, execute, sql, entity_id, field, to)?;
    Ok(())
}

/// The entities whose `field` towards `to` was left out for `reason` with this `value` (the
/// contacts waiting for an organization's item, by its NPD id).
pub async fn waiting(
    tx: &mut Tx,
    field: &str,
    to: Side,
    reason: LeftOutReason,
    value: &str,
) -> LedgerResult<Vec<i64>> {
    let sql = "select entity_id from left_out_values \
               where field = $1 and direction = $2 and reason = $3 and value = $4 order by entity_id";
    let rows: Vec<(i64,)> = on_tx!(tx, all(i64,), sql, field, to, reason, value)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

impl Store {
    /// What is left out of the entity's writes now, by field.
    pub async fn left_out(&self, entity_id: i64) -> LedgerResult<Vec<LeftOutRow>> {
        let sql = "select field, direction, value, reason, at from left_out_values \
                   where entity_id = $1 order by field, direction";
        Ok(on_pool!(self, all LeftOutRow, sql, entity_id)?)
    }
}
