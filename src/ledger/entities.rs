//! Entities (one row per synced contact or organization) and their per-field merge state.
//!
//! Owns: `entities` and `field_state` rows. A field's state is the JSON of
//! `domain::reconcile::FieldState`, read and written whole; the NPD snapshot is the JSON of
//! `domain::record::NpdRecord` (both through `ledger::codec`).
//! May import: std, sqlx, crate::ledger, crate::domain.

use std::collections::BTreeMap;

use sqlx::FromRow;

use crate::domain::entity::{BoardId, EntityKind, MondayItemId, NpdId};
use crate::domain::reconcile::FieldState;
use crate::domain::record::NpdRecord;
use crate::domain::search;
use crate::domain::state::EntityStatus;
use crate::ledger::tx::{Tx, on_tx};
use crate::ledger::{LedgerResult, Store, now_ms};

/// One `entities` row.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct EntityRow {
    pub id: i64,
    pub kind: EntityKind,
    pub npd_id: Option<NpdId>,
    pub monday_item_id: Option<MondayItemId>,
    pub board_id: Option<BoardId>,
    pub npd_version: Option<i64>,
    pub npd_echo_version: Option<i64>,
    /// The newest NPD record the gateway applied.
    pub npd_snapshot: Option<NpdRecord>,
    pub sync_enabled: bool,
    pub status: EntityStatus,
    pub last_error: Option<String>,
    pub deleted_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) const ENTITY_COLUMNS: &str = "id, kind, npd_id, monday_item_id, board_id, npd_version, npd_echo_version, npd_snapshot, \
     sync_enabled, status, last_error, deleted_at, created_at, updated_at";

/// A new entity row.
#[derive(Debug, Clone)]
pub struct NewEntity {
    pub kind: EntityKind,
    pub npd_id: Option<NpdId>,
    pub monday_item_id: Option<MondayItemId>,
    pub board_id: Option<BoardId>,
    pub sync_enabled: bool,
    pub status: EntityStatus,
}

pub async fn find_by_npd(
    tx: &mut Tx,
    kind: EntityKind,
    npd_id: NpdId,
) -> LedgerResult<Option<EntityRow>> {
    let sql = format!("select {ENTITY_COLUMNS} from entities where kind = $1 and npd_id = $2");
    Ok(on_tx!(tx, optional EntityRow, &sql, kind, npd_id)?)
}

pub async fn find_by_item(tx: &mut Tx, item: MondayItemId) -> LedgerResult<Option<EntityRow>> {
    let sql = format!("select {ENTITY_COLUMNS} from entities where monday_item_id = $1");
    Ok(on_tx!(tx, optional EntityRow, &sql, item)?)
}

pub async fn find_by_id(tx: &mut Tx, id: i64) -> LedgerResult<Option<EntityRow>> {
    let sql = format!("select {ENTITY_COLUMNS} from entities where id = $1");
    Ok(on_tx!(tx, optional EntityRow, &sql, id)?)
}

/// Locks an entity for the rest of the transaction and returns its current row. Every
/// read-modify-write of an entity's field states (processing an event, recording a job's outcome,
/// an admin's resolution) takes this lock first, so on PostgreSQL, where those run in parallel,
/// none overwrites another's committed state. SQLite's write transactions are serial already.
pub async fn lock(tx: &mut Tx, id: i64) -> LedgerResult<Option<EntityRow>> {
    let lock = match tx {
        Tx::Sqlite(..) => "",
        Tx::Postgres(_) => " for update",
    };
    let sql = format!("select {ENTITY_COLUMNS} from entities where id = $1{lock}");
    Ok(on_tx!(tx, optional EntityRow, &sql, id)?)
}

pub async fn insert(tx: &mut Tx, e: &NewEntity) -> LedgerResult<EntityRow> {
    let sql = format!(
        "insert into entities (kind, npd_id, monday_item_id, board_id, sync_enabled, status, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $7) returning {ENTITY_COLUMNS}"
    );
    Ok(on_tx!(
        tx,
        one EntityRow,
        &sql,
        e.kind,
        e.npd_id,
        e.monday_item_id,
        e.board_id,
        e.sync_enabled,
        e.status,
        now_ms()
    )?)
}

/// Records the newest NPD snapshot of an entity, and the terms the console's search finds it by.
pub async fn record_npd_snapshot(tx: &mut Tx, id: i64, record: &NpdRecord) -> LedgerResult<()> {
    on_tx!(
        tx,
        execute,
        "update entities set npd_version = case when npd_version is null or npd_version < $2 then $2 \
         else npd_version end, npd_snapshot = $3, sync_enabled = $4, updated_at = $5 where id = $1",
        id,
        record.version,
        record,
        record.sync_enabled,
        now_ms()
    )?;
    crate::ledger::console::replace_search_terms(tx, id, &search::terms(record)).await
}

/// Records the NPD version the gateway's own write produced: later events must be newer, and
/// the event of exactly this version is that write's echo.
pub async fn record_npd_write(tx: &mut Tx, id: i64, version: i64) -> LedgerResult<()> {
    on_tx!(
        tx,
        execute,
        "update entities set npd_version = case when npd_version is null or npd_version < $2 \
         then $2 else npd_version end, npd_echo_version = $2, updated_at = $3 where id = $1",
        id,
        version,
        now_ms()
    )?;
    Ok(())
}

/// Links an entity to a Monday item, or unlinks it (`None`).
pub async fn set_link(
    tx: &mut Tx,
    id: i64,
    item: Option<MondayItemId>,
    board: Option<BoardId>,
) -> LedgerResult<()> {
    on_tx!(
        tx,
        execute,
        "update entities set monday_item_id = $2, board_id = $3, updated_at = $4 where id = $1",
        id,
        item,
        board,
        now_ms()
    )?;
    Ok(())
}

/// Records the NPD id of an entity that started as a Monday item (`[sync] create_in_npd`).
pub async fn set_npd_id(tx: &mut Tx, id: i64, npd_id: NpdId) -> LedgerResult<()> {
    on_tx!(
        tx,
        execute,
        "update entities set npd_id = $2, updated_at = $3 where id = $1",
        id,
        npd_id,
        now_ms()
    )?;
    Ok(())
}

/// Sets the admin-visible status; `last_error` is replaced (None clears it).
pub async fn set_status(
    tx: &mut Tx,
    id: i64,
    status: EntityStatus,
    last_error: Option<&str>,
) -> LedgerResult<()> {
    on_tx!(
        tx,
        execute,
        "update entities set status = $2, last_error = $3, updated_at = $4 where id = $1",
        id,
        status,
        last_error,
        now_ms()
    )?;
    Ok(())
}

/// Marks an entity deleted in NPD at `version`.
pub async fn mark_deleted(tx: &mut Tx, id: i64, version: i64) -> LedgerResult<()> {
    on_tx!(
        tx,
        execute,
        "update entities set status = $4, deleted_at = $2, npd_version = $3, updated_at = $2 where id = $1",
        id,
        now_ms(),
        version,
        EntityStatus::Deleted
    )?;
    Ok(())
}

/// Every field's merge state of an entity.
pub async fn load_fields(
    tx: &mut Tx,
    entity_id: i64,
) -> LedgerResult<BTreeMap<String, FieldState>> {
    let sql = "select field, state from field_state where entity_id = $1";
    let rows = on_tx!(tx, all(String, FieldState), sql, entity_id)?;
    Ok(rows.into_iter().collect())
}

pub async fn save_field(
    tx: &mut Tx,
    entity_id: i64,
    field: &str,
    state: &FieldState,
) -> LedgerResult<()> {
    on_tx!(
        tx,
        execute,
        "insert into field_state (entity_id, field, state, created_at, updated_at) values ($1, $2, $3, $4, $4) \
         on conflict (entity_id, field) do update set state = excluded.state, updated_at = excluded.updated_at",
        entity_id,
        field,
        state,
        now_ms()
    )?;
    Ok(())
}

impl Store {
    /// The entity of an NPD record, if the gateway knows it.
    pub async fn entity_by_npd(
        &self,
        kind: EntityKind,
        npd_id: NpdId,
    ) -> LedgerResult<Option<EntityRow>> {
        let mut tx = self.begin_read().await?;
        let row = find_by_npd(&mut tx, kind, npd_id).await;
        tx.rollback().await?;
        row
    }

    /// The entity linked to Monday item `item`, if any.
    pub async fn entity_by_item(&self, item: MondayItemId) -> LedgerResult<Option<EntityRow>> {
        let mut tx = self.begin_read().await?;
        let found = find_by_item(&mut tx, item).await;
        tx.rollback().await?;
        found
    }

    /// Every field's merge state of an entity (read-only view).
    pub async fn entity_fields(
        &self,
        entity_id: i64,
    ) -> LedgerResult<BTreeMap<String, FieldState>> {
        let mut tx = self.begin_read().await?;
        let fields = load_fields(&mut tx, entity_id).await;
        tx.rollback().await?;
        fields
    }
}
