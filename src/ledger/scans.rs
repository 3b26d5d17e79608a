//! Scans of existing data: runs, their checkpoints, the staging area of what each side's pages
//! held, the review queue, the items a backfill queued, and the page checksums of drift scans.
//!
//! Owns: `scan_runs`, `scan_cursors`, `scan_npd_records`, `scan_monday_items`, `scan_creates`,
//! `match_reviews` and `scan_page_checksums` rows, and the reads of `entities` and `inbox_events`
//! a scan makes (linked entities by kind; whether an entity changed or has a delivery waiting
//! since a page was read). A page is staged and its cursor checkpointed in one transaction, so a
//! run killed at any point resumes at the page after the last one committed.
//! May import: std, sqlx, serde, serde_json, crate::{domain, ledger}.

use sqlx::FromRow;

use crate::domain::entity::{EntityKind, MondayItemId, NpdId, Side};
use crate::domain::record::NpdRecord;
use crate::domain::scan::{
    Candidates, MatchStatus, RunStatus, ScanKind, Scope, StagedItem, Summary,
};
use crate::ledger::entities::EntityRow;
use crate::ledger::tx::{Tx, on_pool, on_tx};
use crate::ledger::{LedgerError, LedgerResult, Store, now_ms};

/// One `scan_runs` row.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RunRow {
    pub id: i64,
    pub scan: ScanKind,
    pub scope: Scope,
    pub dry_run: bool,
    pub status: RunStatus,
    pub phase: String,
    pub summary: Summary,
    pub error: Option<String>,
    pub heartbeat_at: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

const RUN_COLUMNS: &str = "id, scan, scope, dry_run, status, phase, summary, error, heartbeat_at, \
     started_at, finished_at";

/// Where one side's read of one kind stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow)]
pub struct CursorRow {
    /// The cursor of the next page; `None` before the first page (or after a restart).
    pub cursor: Option<String>,
    /// Pages staged so far in this walk.
    pub pages: i64,
    pub done: bool,
}

impl CursorRow {
    /// The page this walk reads next, of run `run_id` and `kind`, leading to `next`.
    pub fn page_at<'a>(
        &self,
        run_id: i64,
        kind: EntityKind,
        next: Option<&'a str>,
        read_at: i64,
    ) -> PageAt<'a> {
        PageAt {
            run_id,
            kind,
            page: self.pages,
            next,
            read_at,
        }
    }

    /// Moves the walk past a staged page whose successor is `next`.
    pub fn advance(&mut self, next: Option<String>) {
        self.done = next.is_none();
        self.cursor = next;
        self.pages += 1;
    }
}

/// One page to stage, with the checkpoint it leads to.
#[derive(Debug, Clone, Copy)]
pub struct PageAt<'a> {
    pub run_id: i64,
    pub kind: EntityKind,
    /// The page's number in its walk (0 is the first).
    pub page: i64,
    /// The cursor of the page after this one; `None`: this was the last page.
    pub next: Option<&'a str>,
    /// When the page was asked for.
    pub read_at: i64,
}

/// A staged NPD record or Monday item, with where and when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged<T> {
    pub value: T,
    pub page: i64,
    pub read_at: i64,
}

impl<T> From<(T, i64, i64)> for Staged<T> {
    fn from((value, page, read_at): (T, i64, i64)) -> Self {
        Staged {
            value,
            page,
            read_at,
        }
    }
}

/// One `match_reviews` row.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ReviewRow {
    pub id: i64,
    pub run_id: i64,
    pub entity_kind: EntityKind,
    pub npd_id: NpdId,
    pub candidates: Candidates,
    pub status: MatchStatus,
    pub resolved_item: Option<MondayItemId>,
    pub resolved_by: Option<String>,
}

const REVIEW_COLUMNS: &str =
    "id, run_id, entity_kind, npd_id, candidates, status, resolved_item, resolved_by";

impl Store {
    pub async fn create_run(
        &self,
        scan: ScanKind,
        scope: Scope,
        dry_run: bool,
        summary: &Summary,
    ) -> LedgerResult<i64> {
        let sql = "insert into scan_runs (scan, scope, dry_run, status, phase, summary, heartbeat_at, \
                   started_at, created_at, updated_at) values ($1, $2, $3, $4, 'reading', $5, $6, $6, $6, $6) \
                   returning id";
        let running = RunStatus::Running;
        Ok(on_pool!(self, scalar i64, sql, scan, scope, dry_run, running, summary, now_ms())?)
    }

    pub async fn run(&self, id: i64) -> LedgerResult<Option<RunRow>> {
        let sql = format!("select {RUN_COLUMNS} from scan_runs where id = $1");
        Ok(on_pool!(self, optional RunRow, &sql, id)?)
    }

    /// Runs of one kind, newest first, with ids below `before` (paging).
    pub async fn runs(&self, scan: ScanKind, before: i64, limit: i64) -> LedgerResult<Vec<RunRow>> {
        let sql = format!(
            "select {RUN_COLUMNS} from scan_runs where scan = $1 and id < $2 order by id desc limit $3"
        );
        Ok(on_pool!(self, all RunRow, &sql, scan, before, limit)?)
    }

    /// Records a run's progress (and that its process is alive).
    pub async fn save_run(&self, id: i64, phase: &str, summary: &Summary) -> LedgerResult<()> {
        let sql = "update scan_runs set phase = $2, summary = $3, heartbeat_at = $4, updated_at = $4 \
                   where id = $1";
        on_pool!(self, execute, sql, id, phase, summary, now_ms())?;
        Ok(())
    }

    /// Shows that a run's process is alive (while it waits to retry a read, say).
    pub async fn touch_run(&self, id: i64) -> LedgerResult<()> {
        let sql = "update scan_runs set heartbeat_at = $2 where id = $1";
        on_pool!(self, execute, sql, id, now_ms())?;
        Ok(())
    }

    /// Ends a run.
    pub async fn finish_run(
        &self,
        id: i64,
        status: RunStatus,
        summary: &Summary,
        error: Option<&str>,
    ) -> LedgerResult<()> {
        let sql = "update scan_runs set status = $2, summary = $3, error = $4, finished_at = $5, \
                   heartbeat_at = $5, updated_at = $5 where id = $1";
        on_pool!(self, execute, sql, id, status, summary, error, now_ms())?;
        Ok(())
    }

    /// Takes over a running run whose heartbeat is older than `stale_before` (its process died):
    /// true for the one caller that gets it.
    pub async fn adopt_run(&self, id: i64, stale_before: i64) -> LedgerResult<bool> {
        let sql = "update scan_runs set heartbeat_at = $3, updated_at = $3 where id = $1 \
                   and status = 'running' and heartbeat_at < $2";
        Ok(on_pool!(self, execute, sql, id, stale_before, now_ms())? == 1)
    }

    /// Running runs of one kind whose heartbeat is older than `stale_before`, oldest first.
    pub async fn abandoned_runs(
        &self,
        scan: ScanKind,
        stale_before: i64,
    ) -> LedgerResult<Vec<RunRow>> {
        let sql = format!(
            "select {RUN_COLUMNS} from scan_runs where scan = $1 and status = 'running' \
             and heartbeat_at < $2 order by id"
        );
        Ok(on_pool!(self, all RunRow, &sql, scan, stale_before)?)
    }

    /// The checkpoint of one side's read of one kind.
    pub async fn scan_cursor(
        &self,
        run_id: i64,
        side: Side,
        kind: EntityKind,
    ) -> LedgerResult<CursorRow> {
        let sql = "select cursor, pages, done from scan_cursors where run_id = $1 and side = $2 \
                   and entity_kind = $3";
        Ok(on_pool!(self, optional CursorRow, sql, run_id, side, kind)?.unwrap_or_default())
    }

    /// Starts one side's walk again from its first page (its cursor expired); what it staged
    /// stays.
    pub async fn restart_walk(
        &self,
        run_id: i64,
        side: Side,
        kind: EntityKind,
    ) -> LedgerResult<()> {
        let mut tx = self.begin().await?;
        checkpoint(&mut tx, run_id, side, kind, (None, 0, false)).await?;
        tx.commit().await
    }

    /// Stages one page of NPD records and checkpoints the walk, in one transaction.
    pub async fn stage_npd_page(&self, at: PageAt<'_>, records: &[NpdRecord]) -> LedgerResult<()> {
        let rows: Vec<(String, &NpdRecord)> =
            records.iter().map(|r| (r.id.to_string(), r)).collect();
        self.stage_page(Side::Npd, at, &rows).await
    }

    /// Stages one page of Monday items and checkpoints the walk, in one transaction.
    pub async fn stage_monday_page(
        &self,
        at: PageAt<'_>,
        items: &[StagedItem],
    ) -> LedgerResult<()> {
        let rows: Vec<(String, &StagedItem)> =
            items.iter().map(|i| (i.id.to_string(), i)).collect();
        self.stage_page(Side::Monday, at, &rows).await
    }

    /// Upserts (key, document) rows of one side's page (documents as JSON text, as the codec
    /// stores them) and checkpoints that side's walk.
    async fn stage_page<T: serde::Serialize>(
        &self,
        side: Side,
        at: PageAt<'_>,
        rows: &[(String, &T)],
    ) -> LedgerResult<()> {
        let sql = match side {
            Side::Npd => {
                "insert into scan_npd_records (run_id, entity_kind, npd_id, record, page, read_at) \
                          values ($1, $2, $3, $4, $5, $6) on conflict (run_id, entity_kind, npd_id) do update \
                          set record = excluded.record, page = excluded.page, read_at = excluded.read_at"
            }
            Side::Monday => {
                "insert into scan_monday_items (run_id, entity_kind, item_id, item, page, read_at) \
                             values ($1, $2, $3, $4, $5, $6) on conflict (run_id, item_id) do update \
                             set item = excluded.item, page = excluded.page, read_at = excluded.read_at"
            }
        };
        let mut tx = self.begin().await?;
        for (key, value) in rows {
            let document = serde_json::to_string(value)
                .map_err(|e| LedgerError::Corrupt(format!("a staged row: {e}")))?;
            on_tx!(
                &mut tx, execute, sql, at.run_id, at.kind, key, document, at.page, at.read_at
            )?;
        }
        let next = (at.next.map(str::to_owned), at.page + 1, at.next.is_none());
        checkpoint(&mut tx, at.run_id, side, at.kind, next).await?;
        tx.commit().await
    }

    /// The NPD records a run staged for `kind`, by id.
    pub async fn staged_records(
        &self,
        run_id: i64,
        kind: EntityKind,
    ) -> LedgerResult<Vec<Staged<NpdRecord>>> {
        let sql = "select record, page, read_at from scan_npd_records where run_id = $1 \
                   and entity_kind = $2 order by npd_id";
        let rows = on_pool!(self, all(NpdRecord, i64, i64), sql, run_id, kind)?;
        Ok(rows.into_iter().map(Staged::from).collect())
    }

    /// The Monday items a run staged for `kind`, by id.
    pub async fn staged_items(
        &self,
        run_id: i64,
        kind: EntityKind,
    ) -> LedgerResult<Vec<Staged<StagedItem>>> {
        let sql = "select item, page, read_at from scan_monday_items where run_id = $1 \
                   and entity_kind = $2 order by item_id";
        let rows = on_pool!(self, all(StagedItem, i64, i64), sql, run_id, kind)?;
        Ok(rows.into_iter().map(Staged::from).collect())
    }

    /// How many NPD records and Monday items a run staged (every kind).
    pub async fn staged_counts(&self, run_id: i64) -> LedgerResult<(i64, i64)> {
        let npd = "select count(*) from scan_npd_records where run_id = $1";
        let monday = "select count(*) from scan_monday_items where run_id = $1";
        Ok((
            on_pool!(self, scalar i64, npd, run_id)?,
            on_pool!(self, scalar i64, monday, run_id)?,
        ))
    }

    /// Drops what a finished run staged (its counts stay with the run).
    pub async fn clear_staging(&self, run_id: i64) -> LedgerResult<()> {
        let mut tx = self.begin().await?;
        for table in ["scan_npd_records", "scan_monday_items", "scan_cursors"] {
            let sql = format!("delete from {table} where run_id = $1");
            on_tx!(&mut tx, execute, &sql, run_id)?;
        }
        tx.commit().await
    }

    /// Every entity of `kind` the ledger knows (linked or not), with its NPD id or its item.
    pub async fn entities_of_kind(&self, kind: EntityKind) -> LedgerResult<Vec<EntityRow>> {
        let sql = format!(
            "select {} from entities where kind = $1 order by id",
            crate::ledger::entities::ENTITY_COLUMNS
        );
        Ok(on_pool!(self, all EntityRow, &sql, kind)?)
    }

    /// How many of the entities a backfill queued an item for are linked now.
    pub async fn created_count(&self, run_id: i64) -> LedgerResult<i64> {
        let sql = "select count(*) from scan_creates c join entities e on e.id = c.entity_id \
                   where c.run_id = $1 and e.monday_item_id is not null";
        Ok(on_pool!(self, scalar i64, sql, run_id)?)
    }

    /// Open reviews (or those in another status), oldest first, with ids above `after`.
    pub async fn reviews(
        &self,
        status: MatchStatus,
        after: i64,
        limit: i64,
    ) -> LedgerResult<Vec<ReviewRow>> {
        let sql = format!(
            "select {REVIEW_COLUMNS} from match_reviews where status = $1 and id > $2 order by id limit $3"
        );
        Ok(on_pool!(self, all ReviewRow, &sql, status, after, limit)?)
    }

    /// The checksum the last drift scan recorded for a page.
    pub async fn page_checksums(
        &self,
        side: Side,
        kind: EntityKind,
    ) -> LedgerResult<Vec<(i64, String)>> {
        let sql =
            "select page, checksum from scan_page_checksums where side = $1 and entity_kind = $2";
        Ok(on_pool!(self, all(i64, String), sql, side, kind)?)
    }

    /// Records the checksums of the pages a drift scan compared.
    pub async fn save_page_checksums(
        &self,
        side: Side,
        kind: EntityKind,
        pages: &[(i64, String)],
    ) -> LedgerResult<()> {
        let mut tx = self.begin().await?;
        let sql = "insert into scan_page_checksums (side, entity_kind, page, checksum, updated_at) \
                   values ($1, $2, $3, $4, $5) on conflict (side, entity_kind, page) do update \
                   set checksum = excluded.checksum, updated_at = excluded.updated_at";
        for (page, checksum) in pages {
            on_tx!(&mut tx, execute, sql, side, kind, *page, checksum, now_ms())?;
        }
        tx.commit().await
    }
}

/// Sets one side's checkpoint: (next cursor, pages so far, done).
async fn checkpoint(
    tx: &mut Tx,
    run_id: i64,
    side: Side,
    kind: EntityKind,
    (cursor, pages, done): (Option<String>, i64, bool),
) -> LedgerResult<()> {
    let sql = "insert into scan_cursors (run_id, side, entity_kind, cursor, pages, done, updated_at) \
               values ($1, $2, $3, $4, $5, $6, $7) on conflict (run_id, side, entity_kind) do update \
               set cursor = excluded.cursor, pages = excluded.pages, done = excluded.done, \
               updated_at = excluded.updated_at";
    on_tx!(
        tx,
        execute,
        sql,
        run_id,
        side,
        kind,
        cursor,
        pages,
        done,
        now_ms()
    )?;
    Ok(())
}

/// Opens (or refreshes) the review of a record: one open review per record.
pub async fn open_review(
    tx: &mut Tx,
    run_id: i64,
    kind: EntityKind,
    npd_id: NpdId,
    candidates: &Candidates,
) -> LedgerResult<()> {
    let now = now_ms();
    let update = "update match_reviews set run_id = $3, candidates = $4, updated_at = $5 \
                  where entity_kind = $1 and npd_id = $2 and status = 'review'";
    if on_tx!(tx, execute, update, kind, npd_id, run_id, candidates, now)? == 1 {
        return Ok(());
    }
    let insert = "insert into match_reviews (run_id, entity_kind, npd_id, candidates, status, \
                  created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $6)";
    let review = MatchStatus::Review;
    on_tx!(
        tx, execute, insert, run_id, kind, npd_id, candidates, review, now
    )?;
    Ok(())
}

/// A review, locked for the rest of the transaction on PostgreSQL.
pub async fn find_review(tx: &mut Tx, id: i64) -> LedgerResult<Option<ReviewRow>> {
    let lock = match tx {
        Tx::Sqlite(..) => "",
        Tx::Postgres(_) => " for update",
    };
    let sql = format!("select {REVIEW_COLUMNS} from match_reviews where id = $1{lock}");
    Ok(on_tx!(tx, optional ReviewRow, &sql, id)?)
}

/// Closes an open review; false when it was no longer open.
pub async fn close_review(
    tx: &mut Tx,
    id: i64,
    status: MatchStatus,
    item: Option<MondayItemId>,
    by: &str,
) -> LedgerResult<bool> {
    let sql = "update match_reviews set status = $2, resolved_item = $3, resolved_by = $4, \
               resolved_at = $5, updated_at = $5 where id = $1 and status = 'review'";
    Ok(on_tx!(tx, execute, sql, id, status, item, by, now_ms())? == 1)
}

/// Remembers that a backfill queued an item for this entity.
pub async fn note_create(tx: &mut Tx, run_id: i64, entity_id: i64) -> LedgerResult<()> {
    let sql = "insert into scan_creates (run_id, entity_id) values ($1, $2) on conflict do nothing";
    on_tx!(tx, execute, sql, run_id, entity_id)?;
    Ok(())
}

/// Whether the entity changed, or a delivery about it waits, since `since` (unix ms): a page read
/// before then may be older than what the ledger knows.
pub async fn touched_since(tx: &mut Tx, entity: &EntityRow, since: i64) -> LedgerResult<bool> {
    let fields = "select count(*) from field_state where entity_id = $1 and updated_at >= $2";
    if entity.updated_at >= since || on_tx!(tx, scalar i64, fields, entity.id, since)? > 0 {
        return Ok(true);
    }
    let waiting = "select count(*) from inbox_events where processed_at is null \
                   and ((source = 'npd' and npd_id = $1) or (source = 'monday' and monday_item_id = $2))";
    let npd = entity.npd_id.map(|id| id.to_string());
    let item = entity.monday_item_id.map(|id| id.to_string());
    Ok(on_tx!(tx, scalar i64, waiting, npd, item)? > 0)
}
