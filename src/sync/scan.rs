//! Reading both sides of existing data page by page into the ledger's staging area: what backfills
//! and drift scans share.
//!
//! Owns: `Scans` (the use case object of `backfill` and `drift`: settings, store, remotes, the
//! processor whose merge they feed, the read budget), `ScanBudget` (the one place a scan's Monday
//! read spends budget), the page walks (`read_npd`, `read_monday`: each page staged and its cursor
//! checkpointed in one commit, retryable failures retried with the one retry policy, a Monday
//! cursor that expired mid-walk answered by walking again from the first page while keeping what
//! was staged) and `staged_item` (an item's mapped columns read into canonical values with each
//! column type's `from_api_value`).
//! May import: std, tokio, tracing, rand, crate::{config, connectors, domain, ledger, sync}.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::connectors::monday::ItemSnapshot;
use crate::connectors::{ConnectorError, FailureClass, MondayApi, NpdApi};
use crate::domain::budget::Cost;
use crate::domain::entity::{BoardId, EntityKind, Side};
use crate::domain::job::Priority;
use crate::domain::mapping::{ColumnType, EntityMapping};
use crate::domain::scan::{Scope, StagedItem};
use crate::ledger::{LedgerError, Store, now_ms};
use crate::sync::budget::MondayBudget;
use crate::sync::process::Processor;
use crate::sync::retry::{RetryPolicy, Verdict};

/// Records or items asked for per page (the most both APIs give).
pub const PAGE_SIZE: u32 = 500;
/// Complexity points a page read is counted at.
const PAGE_POINTS: u64 = 1_000;
/// How often a run waiting to retry shows it is alive (well within `ABANDONED_AFTER_MS`).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Walks of one board begun again after expired cursors before the run gives up.
const MAX_RESTARTS: u32 = 3;

/// Why a scan could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    NotConfigured(String),
    #[error("reading {what} failed: {error}")]
    Remote { what: String, error: ConnectorError },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The Monday budget a scan's page reads spend: the account's one budget, at the scan's
/// priority (drift repairs below live sync, backfill below drift), so live sync and admin pushes
/// keep flowing during a long scan. Monday's `RateLimit` header keeps it honest.
#[derive(Debug, Clone)]
pub struct ScanBudget(Arc<MondayBudget>);

impl ScanBudget {
    /// Waits until one page read fits `priority`'s share, then counts it.
    pub async fn spend_page(
        &self,
        monday: &dyn MondayApi,
        priority: Priority,
    ) -> Result<(), ScanError> {
        if let Some(rl) = monday.last_rate_limit() {
            self.0
                .observe(rl.minute_remaining, rl.complexity_remaining, rl.reset_in)
                .await?;
        }
        let spent = self
            .0
            .acquire(Cost::request(PAGE_POINTS), priority, Duration::MAX)
            .await?;
        if let Ok(waited) = spent
            && waited > Duration::from_millis(100)
        {
            tracing::info!(
                waited_ms = waited.as_millis() as u64,
                "a scan waited for Monday's budget"
            );
        }
        Ok(())
    }
}

/// What a run does after each committed page (record its counts, show that it is alive).
#[async_trait::async_trait]
pub(crate) trait OnPage: Send + Sync {
    async fn page(&self) -> Result<(), ScanError>;
}

/// The use cases that read existing data: backfill and drift scans.
#[derive(Clone)]
pub struct Scans {
    pub(crate) settings: Arc<Settings>,
    pub(crate) store: Store,
    pub(crate) monday: Option<Arc<dyn MondayApi>>,
    pub(crate) npd: Option<Arc<dyn NpdApi>>,
    pub(crate) processor: Processor,
    budget: ScanBudget,
    policy: RetryPolicy,
}

impl Scans {
    /// The scans of `processor`'s ledger, reading through `monday` and `npd` and spending from
    /// `budget` (the dispatcher's: the account has one).
    pub fn new(
        processor: Processor,
        monday: Option<Arc<dyn MondayApi>>,
        npd: Option<Arc<dyn NpdApi>>,
        budget: Arc<MondayBudget>,
    ) -> Self {
        let settings = Arc::clone(processor.settings());
        Scans {
            store: processor.store().clone(),
            budget: ScanBudget(budget),
            policy: RetryPolicy::from(&settings.sync),
            settings,
            monday,
            npd,
            processor,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    /// The kinds of `scope` a run covers: for `all`, the kinds with a board; otherwise the kind
    /// named (which must then be configured, see `check_scope`).
    pub(crate) fn kinds_of(&self, scope: Scope) -> Vec<EntityKind> {
        match scope {
            Scope::All => scope
                .kinds()
                .into_iter()
                .filter(|k| self.settings.board_for(*k).is_some())
                .collect(),
            _ => scope.kinds(),
        }
    }

    /// Refuses a scope whose kinds cannot be scanned (no board, no clients).
    pub(crate) fn check_scope(&self, scope: Scope) -> Result<(), ScanError> {
        let kinds = self.kinds_of(scope);
        if kinds.is_empty() {
            return Err(ScanError::NotConfigured(
                "no Monday board is configured".into(),
            ));
        }
        for kind in kinds {
            self.remotes_for(kind)?;
        }
        Ok(())
    }

    /// The board and both clients a scan of `kind` needs.
    pub(crate) fn remotes_for(
        &self,
        kind: EntityKind,
    ) -> Result<(BoardId, &dyn MondayApi, &dyn NpdApi), ScanError> {
        let board = self.settings.board_for(kind).ok_or_else(|| {
            ScanError::NotConfigured(format!(
                "no Monday board is configured for {}",
                kind.plural()
            ))
        })?;
        let monday = self
            .monday
            .as_deref()
            .ok_or_else(|| ScanError::NotConfigured("MONDAY_API_TOKEN is not configured".into()))?;
        let npd = self
            .npd
            .as_deref()
            .ok_or_else(|| ScanError::NotConfigured("NPD_API_URL is not configured".into()))?;
        Ok((board, monday, npd))
    }

    /// Stages every NPD record of `kind` not staged yet, from the run's checkpoint on; `on_page`
    /// runs after each committed page.
    pub(crate) async fn read_npd(
        &self,
        run_id: i64,
        kind: EntityKind,
        on_page: &dyn OnPage,
    ) -> Result<(), ScanError> {
        let (_, _, npd) = self.remotes_for(kind)?;
        let mut at = self.store.scan_cursor(run_id, Side::Npd, kind).await?;
        while !at.done {
            let read_at = now_ms();
            let what = format!("NPD's {}", kind.plural());
            let cursor = at.cursor.clone();
            let page = self
                .retrying(run_id, &what, || {
                    npd.list(kind, cursor.as_deref(), PAGE_SIZE)
                })
                .await?;
            let page_at = at.page_at(run_id, kind, page.next_cursor.as_deref(), read_at);
            self.store.stage_npd_page(page_at, &page.records).await?;
            at.advance(page.next_cursor);
            on_page.page().await?;
        }
        Ok(())
    }

    /// Stages every item of `kind`'s board (mapped columns only) not staged yet, from the run's
    /// checkpoint on. An expired cursor starts the walk again from the first page; what was
    /// staged stays (pages are staged by item id, so a page read twice is staged once).
    pub(crate) async fn read_monday(
        &self,
        run_id: i64,
        kind: EntityKind,
        priority: Priority,
        on_page: &dyn OnPage,
    ) -> Result<(), ScanError> {
        let (board, monday, _) = self.remotes_for(kind)?;
        let mapping = self.settings.mapping.for_kind(kind);
        let columns = mapped_columns(mapping);
        let mut at = self.store.scan_cursor(run_id, Side::Monday, kind).await?;
        let mut restarts = 0;
        while !at.done {
            let read_at = now_ms();
            let what = format!("Monday board {board}");
            let cursor = at.cursor.clone();
            let page = self
                .retrying(run_id, &what, || async {
                    if let Err(e) = self.budget.spend_page(monday, priority).await {
                        tracing::warn!(error = %e, "the Monday budget could not be read; reading on");
                    }
                    monday
                        .items_page(board, &columns, cursor.as_deref(), PAGE_SIZE)
                        .await
                })
                .await;
            let page = match page {
                Err(ScanError::Remote { error, .. })
                    if error.class == FailureClass::NotFound
                        && cursor.is_some()
                        && restarts < MAX_RESTARTS =>
                {
                    restarts += 1;
                    tracing::warn!(monday.board_id = %board, restarts, "the board's cursor expired; walking it again from the first page");
                    self.store.restart_walk(run_id, Side::Monday, kind).await?;
                    at = Default::default();
                    continue;
                }
                other => other?,
            };
            let items: Vec<StagedItem> =
                page.items.iter().map(|i| staged_item(mapping, i)).collect();
            let page_at = at.page_at(run_id, kind, page.cursor.as_deref(), read_at);
            self.store.stage_monday_page(page_at, &items).await?;
            at.advance(page.cursor);
            on_page.page().await?;
        }
        Ok(())
    }

    /// Calls `call` until it succeeds, retrying what the retry policy retries; run `run_id`'s
    /// heartbeat goes on while it waits, so no other process takes the run over.
    async fn retrying<T, F, Fut>(
        &self,
        run_id: i64,
        what: &str,
        mut call: F,
    ) -> Result<T, ScanError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match call().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let verdict =
                self.policy
                    .verdict(attempt, self.policy.max_attempts, &error, &mut rand::rng());
            match verdict {
                Verdict::RetryAfter(delay) => {
                    tracing::warn!(attempt, error = %error, "reading {what} failed; retrying");
                    let mut left = delay;
                    while !left.is_zero() {
                        let step = left.min(HEARTBEAT);
                        tokio::time::sleep(step).await;
                        left -= step;
                        self.store.touch_run(run_id).await?;
                    }
                }
                Verdict::Dead(_) => {
                    return Err(ScanError::Remote {
                        what: what.to_owned(),
                        error,
                    });
                }
            }
        }
    }
}

/// The columns a scan reads: every mapped field's and the npd_id column.
pub(crate) fn mapped_columns(mapping: &EntityMapping) -> Vec<String> {
    let mut columns: Vec<String> = mapping.fields.values().map(|m| m.column.clone()).collect();
    columns.push(mapping.npd_id_column.clone());
    columns
}

/// An item's synced values in canonical form: the item-name fields from its name, every mapped
/// column through its type's `from_api_value` (a value that does not read is left empty, and
/// logged), and the text of its npd_id column.
pub fn staged_item(mapping: &EntityMapping, item: &ItemSnapshot) -> StagedItem {
    let mut values = mapping.split_item_name(&item.name);
    for (field, column) in &mapping.fields {
        if mapping.item_name.contains(field) {
            continue;
        }
        let cell = item.column_values.get(&column.column);
        let (text, raw) = (
            cell.and_then(|c| c.text.as_deref()),
            cell.and_then(|c| c.value.as_deref()),
        );
        let value = column.column_type.from_api(text, raw).unwrap_or_else(|e| {
            tracing::warn!(monday.item_id = %item.id, column = %column.column, error = %e, "a column value does not read");
            None
        });
        // As NPD's value (through `labels`); a label with no NPD value reads as empty.
        let value = column.npd_value(&value).unwrap_or_default();
        values.insert(field.clone(), value);
    }
    let npd_id = item
        .column_values
        .get(&mapping.npd_id_column)
        .and_then(|c| {
            ColumnType::Text
                .from_api_value(c.value.as_deref())
                .ok()
                .flatten()
        });
    StagedItem {
        id: item.id,
        name: item.name.clone(),
        npd_id,
        values,
    }
}
