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
use crate::domain::state::EntityStatus;
use crate::ledger::tx::{Tx, with_tx};
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

const ENTITY_COLUMNS: &str = "id, kind, npd_id, monday_item_id, board_id, npd_version, npd_echo_version, npd_snapshot, \
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
    let row = with_tx!(tx, conn => {
        sqlx::query_as::<_, EntityRow>(&sql)
            .bind(kind)
            .bind(npd_id)
            .fetch_optional(conn)
            .await
    })?;
    Ok(row)
}

pub async fn find_by_item(tx: &mut Tx, item: MondayItemId) -> LedgerResult<Option<EntityRow>> {
    let sql = format!("select {ENTITY_COLUMNS} from entities where monday_item_id = $1");
    let row = with_tx!(tx, conn => {
        sqlx::query_as::<_, EntityRow>(&sql)
            .bind(item)
            .fetch_optional(conn)
            .await
    })?;
    Ok(row)
}

pub async fn find_by_id(tx: &mut Tx, id: i64) -> LedgerResult<Option<EntityRow>> {
    let sql = format!("select {ENTITY_COLUMNS} from entities where id = $1");
    let row = with_tx!(tx, conn => {
        sqlx::query_as::<_, EntityRow>(&sql).bind(id).fetch_optional(conn).await
    })?;
    Ok(row)
}

/// Locks an entity for the rest of the transaction and returns its current row. Every
/// read-modify-write of an entity's field states (processing an event, recording a job's outcome,
/// an admin's resolution) takes this lock first, so on PostgreSQL, where those run in parallel,
/// none overwrites another's committed state. SQLite's write transactions are serial already.
pub async fn lock(tx: &mut Tx, id: i64) -> LedgerResult<Option<EntityRow>> {
    let sql = match tx {
        Tx::Sqlite(..) => format!("select {ENTITY_COLUMNS} from entities where id = $1"),
        Tx::Postgres(_) => {
            format!("select {ENTITY_COLUMNS} from entities where id = $1 for update")
        }
    };
    let row = with_tx!(tx, conn => {
        sqlx::query_as::<_, EntityRow>(&sql).bind(id).fetch_optional(conn).await
    })?;
    Ok(row)
}

pub async fn insert(tx: &mut Tx, e: &NewEntity) -> LedgerResult<EntityRow> {
    let now = now_ms();
    let sql = format!(
        "insert into entities (kind, npd_id, monday_item_id, board_id, sync_enabled, status, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $7) returning {ENTITY_COLUMNS}"
    );
    let row = with_tx!(tx, conn => {
        sqlx::query_as::<_, EntityRow>(&sql)
            .bind(e.kind)
            .bind(e.npd_id)
            .bind(e.monday_item_id)
            .bind(e.board_id)
            .bind(e.sync_enabled)
            .bind(e.status)
            .bind(now)
            .fetch_one(conn)
            .await
    })?;
    Ok(row)
}

/// Records the newest NPD snapshot of an entity.
pub async fn record_npd_snapshot(tx: &mut Tx, id: i64, record: &NpdRecord) -> LedgerResult<()> {
    with_tx!(tx, conn => {
        sqlx::query(
            "update entities set npd_version = case when npd_version is null or npd_version < $2 then $2 \
             else npd_version end, npd_snapshot = $3, sync_enabled = $4, updated_at = $5 where id = $1",
        )
        .bind(id)
        .bind(record.version)
        .bind(record)
        .bind(record.sync_enabled)
        .bind(now_ms())
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Records the NPD version the gateway's own write produced: later events must be newer, and
/// the event of exactly this version is that write's echo.
pub async fn record_npd_write(tx: &mut Tx, id: i64, version: i64) -> LedgerResult<()> {
    with_tx!(tx, conn => {
        sqlx::query(
            "update entities set npd_version = case when npd_version is null or npd_version < $2 \
             then $2 else npd_version end, npd_echo_version = $2, updated_at = $3 where id = $1",
        )
        .bind(id)
        .bind(version)
        .bind(now_ms())
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Links an entity to a Monday item, or unlinks it (`None`).
pub async fn set_link(
    tx: &mut Tx,
    id: i64,
    item: Option<MondayItemId>,
    board: Option<BoardId>,
) -> LedgerResult<()> {
    with_tx!(tx, conn => {
        sqlx::query("update entities set monday_item_id = $2, board_id = $3, updated_at = $4 where id = $1")
            .bind(id)
            .bind(item)
            .bind(board)
            .bind(now_ms())
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Records the NPD id of an entity that started as a Monday item (`[sync] create_in_npd`).
pub async fn set_npd_id(tx: &mut Tx, id: i64, npd_id: NpdId) -> LedgerResult<()> {
    with_tx!(tx, conn => {
        sqlx::query("update entities set npd_id = $2, updated_at = $3 where id = $1")
            .bind(id)
            .bind(npd_id)
            .bind(now_ms())
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Sets the admin-visible status; `last_error` is replaced (None clears it).
pub async fn set_status(
    tx: &mut Tx,
    id: i64,
    status: EntityStatus,
    last_error: Option<&str>,
) -> LedgerResult<()> {
    with_tx!(tx, conn => {
        sqlx::query("update entities set status = $2, last_error = $3, updated_at = $4 where id = $1")
            .bind(id)
            .bind(status)
            .bind(last_error)
            .bind(now_ms())
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

pub async fn mark_deleted(tx: &mut Tx, id: i64, version: i64) -> LedgerResult<()> {
    let now = now_ms();
    with_tx!(tx, conn => {
        sqlx::query(
            "update entities set status = $4, deleted_at = $2, npd_version = $3, updated_at = $2 where id = $1",
        )
        .bind(id)
        .bind(now)
        .bind(version)
        .bind(EntityStatus::Deleted)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Every field's merge state of an entity.
pub async fn load_fields(
    tx: &mut Tx,
    entity_id: i64,
) -> LedgerResult<BTreeMap<String, FieldState>> {
    let rows: Vec<(String, FieldState)> = with_tx!(tx, conn => {
        sqlx::query_as("select field, state from field_state where entity_id = $1")
            .bind(entity_id)
            .fetch_all(conn)
            .await
    })?;
    Ok(rows.into_iter().collect())
}

pub async fn save_field(
    tx: &mut Tx,
    entity_id: i64,
    field: &str,
    state: &FieldState,
) -> LedgerResult<()> {
    let now = now_ms();
    with_tx!(tx, conn => {
        sqlx::query(
            "insert into field_state (entity_id, field, state, created_at, updated_at) values ($1, $2, $3, $4, $4) \
             on conflict (entity_id, field) do update set state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(entity_id)
        .bind(field)
        .bind(state)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
    })?;
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
