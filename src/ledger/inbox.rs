//! The inbox: every accepted delivery from NPD or Monday, deduplicated on (source, delivery id).
//!
//! Owns: `inbox_events` rows, their insertion (one multi-row statement per group commit) and reads,
//! and the claiming of processing lanes and entity keys (transaction advisory locks).
//! May import: std, sqlx, crate::ledger, crate::domain.

use std::collections::HashSet;

use sqlx::{FromRow, QueryBuilder};

use crate::domain::entity::{BoardId, EntityKind, MondayItemId, NpdId, Side};
use crate::domain::lane::{EntityKey, lane_of};
use crate::domain::state::InboxOutcome;
use crate::ledger::tx::{Tx, on_pool, on_tx};
use crate::ledger::{LedgerResult, Store, now_ms};

/// A verified, parsed delivery about to be stored. Holds nothing secret: the payload is the body
/// the sender signed (Monday's `shortLivedToken` travels in the JWT header, never in the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInboxEvent {
    pub source: Side,
    /// `webhook-id` for NPD, `event.triggerUuid` for Monday: the dedupe key.
    pub delivery_id: String,
    /// `contact.updated`, `update_column_value`, ...
    pub event_type: String,
    pub entity_kind: Option<EntityKind>,
    pub npd_id: Option<NpdId>,
    pub board_id: Option<BoardId>,
    pub monday_item_id: Option<MondayItemId>,
    /// NPD's per-entity `version`.
    pub entity_version: Option<i64>,
    /// NPD `updated_at` or Monday `changedAt`, in ms.
    pub occurred_at_ms: Option<i64>,
    /// The raw body as received.
    pub payload: String,
    pub request_id: Option<String>,
    /// When set, the event is stored already processed with outcome `ignored` and this reason
    /// (an unmapped board or column, or an event type the gateway does not sync).
    pub ignored_reason: Option<String>,
}

/// What storing one delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// New; this is its inbox id.
    Accepted(i64),
    /// The same (source, delivery id) was already stored; nothing changed.
    Duplicate,
}

/// One stored inbox row.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct InboxRow {
    pub id: i64,
    pub source: Side,
    pub delivery_id: String,
    pub event_type: String,
    pub entity_kind: Option<EntityKind>,
    pub npd_id: Option<NpdId>,
    pub board_id: Option<BoardId>,
    pub monday_item_id: Option<MondayItemId>,
    pub entity_version: Option<i64>,
    pub occurred_at: Option<i64>,
    pub payload: String,
    pub request_id: Option<String>,
    pub received_at: i64,
    pub processed_at: Option<i64>,
    pub outcome: Option<InboxOutcome>,
    pub outcome_detail: Option<String>,
    /// The processing lane (`domain::lane::lane_of` of its routing key, at ingest).
    pub lane: i32,
}

const INBOX_COLUMNS: &str = "id, source, delivery_id, event_type, entity_kind, npd_id, board_id, \
     monday_item_id, entity_version, occurred_at, payload, request_id, received_at, processed_at, \
     outcome, outcome_detail, lane";

/// Tells, for each of `events` in order, whether the insert returned its row: the first request for
/// a (source, delivery id) gets the row, later ones in the same batch are duplicates of it.
fn outcomes(events: &[NewInboxEvent], inserted: &[(i64, Side, String)]) -> Vec<InsertOutcome> {
    let mut taken: HashSet<(Side, &str)> = HashSet::new();
    events
        .iter()
        .map(|e| {
            let key = (e.source, e.delivery_id.as_str());
            let row = inserted
                .iter()
                .find(|(_, s, d)| *s == key.0 && d == key.1)
                .map(|(id, _, _)| *id);
            match row {
                Some(id) if taken.insert(key) => InsertOutcome::Accepted(id),
                _ => InsertOutcome::Duplicate,
            }
        })
        .collect()
}

/// Inserts `events` with one multi-row statement on the caller's connection (inside its
/// transaction) and tells, for each, whether it was new. One function per backend, same SQL.
macro_rules! insert_batch_fn {
    ($name:ident, $db:ty, $conn:ty) => {
        pub(crate) async fn $name(conn: &mut $conn, events: &[NewInboxEvent]) -> LedgerResult<Vec<InsertOutcome>> {
            if events.is_empty() {
                return Ok(Vec::new());
            }
            let now = now_ms();
            let mut qb: QueryBuilder<'_, $db> = QueryBuilder::new(
                "insert into inbox_events (source, delivery_id, event_type, entity_kind, npd_id, \
                 board_id, monday_item_id, entity_version, occurred_at, payload, request_id, \
                 received_at, processed_at, outcome, outcome_detail, created_at, updated_at, lane) ",
            );
            qb.push_values(events, |mut b, e| {
                let ignored = e.ignored_reason.is_some();
                b.push_bind(e.source)
                    .push_bind(e.delivery_id.as_str())
                    .push_bind(e.event_type.as_str())
                    .push_bind(e.entity_kind)
                    .push_bind(e.npd_id)
                    .push_bind(e.board_id)
                    .push_bind(e.monday_item_id)
                    .push_bind(e.entity_version)
                    .push_bind(e.occurred_at_ms)
                    .push_bind(e.payload.as_str())
                    .push_bind(e.request_id.as_deref())
                    .push_bind(now)
                    .push_bind(ignored.then_some(now))
                    .push_bind(ignored.then_some(InboxOutcome::Ignored))
                    .push_bind(e.ignored_reason.as_deref())
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(lane_of(e.source, e.entity_kind, e.npd_id, e.monday_item_id));
            });
            qb.push(" on conflict (source, delivery_id) do nothing returning id, source, delivery_id");
            let inserted: Vec<(i64, Side, String)> = qb.build_query_as().fetch_all(&mut *conn).await?;
            Ok(outcomes(events, &inserted))
        }
    };
}
insert_batch_fn!(insert_batch_sqlite, sqlx::Sqlite, sqlx::SqliteConnection);
insert_batch_fn!(insert_batch_postgres, sqlx::Postgres, sqlx::PgConnection);

impl Store {
    /// The inbox row of one delivery, if stored.
    pub async fn find_inbox_event(
        &self,
        source: Side,
        delivery_id: &str,
    ) -> LedgerResult<Option<InboxRow>> {
        let sql = format!(
            "select {INBOX_COLUMNS} from inbox_events where source = $1 and delivery_id = $2"
        );
        Ok(on_pool!(self, optional InboxRow, &sql, source, delivery_id)?)
    }

    /// All inbox rows of one source, oldest first (tests and diagnostics; bounded by `limit`).
    pub async fn inbox_events(&self, source: Side, limit: i64) -> LedgerResult<Vec<InboxRow>> {
        let sql = format!(
            "select {INBOX_COLUMNS} from inbox_events where source = $1 order by id limit $2"
        );
        Ok(on_pool!(self, all InboxRow, &sql, source, limit)?)
    }

    /// How many inbox rows exist, in all.
    pub async fn inbox_count(&self) -> LedgerResult<i64> {
        Ok(on_pool!(self, scalar i64, "select count(*) from inbox_events")?)
    }

    /// How many inbox rows still wait for processing.
    pub async fn unprocessed_count(&self) -> LedgerResult<i64> {
        let sql = "select count(*) from inbox_events where processed_at is null";
        Ok(on_pool!(self, scalar i64, sql)?)
    }
}

/// The oldest unprocessed inbox rows of every lane, in arrival order.
pub async fn next_unprocessed(tx: &mut Tx, limit: i64) -> LedgerResult<Vec<InboxRow>> {
    let sql = format!(
        "select {INBOX_COLUMNS} from inbox_events where processed_at is null order by id limit $1"
    );
    Ok(on_tx!(tx, all InboxRow, &sql, limit)?)
}

/// The advisory locks of lanes (`LANE_LOCK + lane`) and of entity keys (`ENTITY_LOCK ^ hash`).
const LANE_LOCK: i64 = 0x6e70_645f_6c61_6e00;
const ENTITY_LOCK: i64 = 0x6e70_645f_656e_7400;

/// How many of the oldest unprocessed rows are looked at to find lanes with work.
const LANE_CANDIDATES: i64 = 512;

/// Claims lanes for this transaction and returns up to `limit` of their oldest unprocessed rows,
/// in arrival order: for every claimed lane a prefix of its rows, so within a lane inbox order is
/// processing order. On PostgreSQL the lanes of the oldest waiting rows are try-locked (transaction
/// advisory locks, released at commit) until `max_lanes` are held; lanes another transaction holds
/// are skipped, never waited for. On SQLite, whose write transactions are serial already, this is
/// `next_unprocessed` (every lane at once).
pub async fn claim_lanes(tx: &mut Tx, limit: i64, max_lanes: usize) -> LedgerResult<Vec<InboxRow>> {
    if tx.is_serial() {
        return next_unprocessed(tx, limit).await;
    }
    let sql = "select lane from inbox_events where processed_at is null order by id limit $1";
    let candidates: Vec<(i32,)> = on_tx!(tx, all(i32,), sql, LANE_CANDIDATES)?;
    let mut tried = HashSet::new();
    let mut held: Vec<i32> = Vec::new();
    for (lane,) in candidates {
        if held.len() >= max_lanes.max(1) {
            break;
        }
        if tried.insert(lane) && tx.try_exclusive(LANE_LOCK + i64::from(lane)).await? {
            held.push(lane);
        }
    }
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "select {INBOX_COLUMNS} from inbox_events where processed_at is null and lane = any($1) \
         order by id limit $2"
    );
    let Tx::Postgres(t) = tx else {
        return next_unprocessed(tx, limit).await;
    };
    Ok(sqlx::query_as::<_, InboxRow>(&sql)
        .bind(held)
        .bind(limit)
        .fetch_all(&mut **t)
        .await?)
}

/// Try-locks one lane for the rest of the transaction (always true on SQLite).
pub async fn try_lock_lane(tx: &mut Tx, lane: i32) -> LedgerResult<bool> {
    tx.try_exclusive(LANE_LOCK + i64::from(lane)).await
}

/// Try-locks every key for the rest of the transaction: true when all are held (a key this
/// transaction holds already counts), false as soon as one is held by another transaction.
/// Never waits, so transactions that lock keys in different orders cannot deadlock.
pub async fn try_lock_keys(tx: &mut Tx, keys: &[EntityKey]) -> LedgerResult<bool> {
    for key in keys {
        if !tx.try_exclusive(ENTITY_LOCK ^ key.hash64()).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Records what processing decided for an inbox row.
pub async fn mark_processed(
    tx: &mut Tx,
    id: i64,
    outcome: InboxOutcome,
    detail: Option<&str>,
) -> LedgerResult<()> {
    let sql = "update inbox_events set processed_at = $2, outcome = $3, outcome_detail = $4, \
               updated_at = $2 where id = $1";
    on_tx!(tx, execute, sql, id, now_ms(), outcome, detail)?;
    Ok(())
}
