//! Backfill: the first sync of existing data. Reads the whole board and NPD's list into the
//! staging area, matches records with items (`domain::scan::plan`), and hands every link, first
//! value and create to the same merge and outbox as a webhook or event, at the lowest priority.
//!
//! Owns: `Scans::start_backfill`, `Scans::run_backfill` (reading, then applying; a run killed at
//! any point is resumed from its checkpoint by the next call, and applying again is harmless:
//! links already made are the ledger's own links, creates coalesce and look the item up by its
//! npd_id first), `Scans::backfill_status`, and the dry run's counts with
//! `estimated_monday_calls`. By concern: `apply` (one verdict into the ledger and the outbox),
//! `review` (the review queue: listing and resolving).
//! May import: std, tokio, tracing, crate::{config, connectors, domain, ledger, sync}.

mod apply;
mod review;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::domain::entity::{EntityKind, NpdId};
use crate::domain::job::Priority;
use crate::domain::mapping::{ColumnType, EntityMapping, FieldValue};
use crate::domain::record::NpdRecord;
use crate::domain::scan::{
    BackfillCounts, ItemKeys, RecordKeys, RunStatus, ScanKind, Scope, StagedItem, Summary, Verdict,
    first_writes, plan,
};
use crate::ledger::entities::EntityRow;
use crate::ledger::scans::RunRow;
use crate::ledger::{LedgerResult, now_ms};
use crate::sync::history::Cause;
use crate::sync::scan::{OnPage, PAGE_SIZE, ScanError, Scans};

pub use review::{ReviewChoice, ReviewError};

/// Verdicts applied per transaction.
const APPLY_CHUNK: usize = 100;
/// A running run whose heartbeat is older than this was abandoned by its process.
pub const ABANDONED_AFTER_MS: i64 = 30_000;

/// Saves a backfill's scanned counts after each page.
struct Progress<'a> {
    scans: &'a Scans,
    run_id: i64,
}

#[async_trait::async_trait]
impl OnPage for Progress<'_> {
    async fn page(&self) -> Result<(), ScanError> {
        let (npd, monday) = self.scans.store.staged_counts(self.run_id).await?;
        let mut counts = BackfillCounts::default();
        counts.scanned.npd = u64::try_from(npd).unwrap_or_default();
        counts.scanned.monday = u64::try_from(monday).unwrap_or_default();
        let summary = Summary::Backfill(counts);
        self.scans
            .store
            .save_run(self.run_id, "reading", &summary)
            .await?;
        Ok(())
    }
}

impl Scans {
    /// Records a new backfill run of `scope` (checking first that both sides are configured for
    /// it); `run_backfill` carries it out.
    pub async fn start_backfill(&self, scope: Scope, dry_run: bool) -> Result<i64, ScanError> {
        self.check_scope(scope)?;
        let summary = Summary::Backfill(BackfillCounts::default());
        Ok(self
            .store
            .create_run(ScanKind::Backfill, scope, dry_run, &summary)
            .await?)
    }

    /// Runs (or resumes) backfill `run_id` to its end, recording `done` or `failed`.
    pub async fn run_backfill(&self, run_id: i64) -> Result<RunRow, ScanError> {
        let result = self.backfill_steps(run_id).await;
        let status = match &result {
            Ok(_) => RunStatus::Done,
            Err(_) => RunStatus::Failed,
        };
        let summary = match &result {
            Ok(counts) => Summary::Backfill(counts.clone()),
            Err(_) => self.store.run(run_id).await?.map_or_else(
                || Summary::Backfill(BackfillCounts::default()),
                |r| r.summary,
            ),
        };
        let error = result.as_ref().err().map(ToString::to_string);
        if let Some(e) = &error {
            tracing::error!(run.id = run_id, error = %e, "backfill failed");
        }
        self.store
            .finish_run(run_id, status, &summary, error.as_deref())
            .await?;
        self.store.clear_staging(run_id).await?;
        let run = self.backfill_status(run_id).await?;
        run.ok_or_else(|| ScanError::NotConfigured(format!("backfill {run_id} vanished")))
    }

    async fn backfill_steps(&self, run_id: i64) -> Result<BackfillCounts, ScanError> {
        let run = self
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| ScanError::NotConfigured(format!("no backfill {run_id}")))?;
        let progress = Progress {
            scans: self,
            run_id,
        };
        for kind in self.kinds_of(run.scope) {
            self.read_npd(run_id, kind, &progress).await?;
            self.read_monday(run_id, kind, Priority::Backfill, &progress)
                .await?;
        }
        let mut counts = BackfillCounts::default();
        for kind in self.kinds_of(run.scope) {
            self.backfill_kind(&run, kind, &mut counts).await?;
        }
        Ok(counts)
    }

    /// Matches the staged records and items of `kind` and, unless a dry run, applies every
    /// verdict; adds to `counts`.
    async fn backfill_kind(
        &self,
        run: &RunRow,
        kind: EntityKind,
        counts: &mut BackfillCounts,
    ) -> Result<(), ScanError> {
        let mapping = self.settings.mapping.for_kind(kind);
        let records: Vec<NpdRecord> = self.staged_values(run.id, kind).await?;
        let items: Vec<StagedItem> = self
            .store
            .staged_items(run.id, kind)
            .await?
            .into_iter()
            .map(|s| s.value)
            .collect();
        let entities: HashMap<NpdId, EntityRow> = self
            .store
            .entities_of_kind(kind)
            .await?
            .into_iter()
            .filter_map(|e| Some((e.npd_id?, e)))
            .collect();
        let keys: Vec<RecordKeys> = records
            .iter()
            .map(|r| record_keys(mapping, r, entities.get(&r.id)))
            .collect();
        let item_keys: Vec<ItemKeys> = items.iter().map(|i| item_keys(mapping, i)).collect();
        let plan = plan(&keys, &item_keys);
        self.count(kind, &records, &items, &plan, counts);
        if run.dry_run {
            return Ok(());
        }
        self.apply_plan(run, kind, &records, &items, &plan, counts)
            .await
    }

    async fn staged_values(&self, run_id: i64, kind: EntityKind) -> LedgerResult<Vec<NpdRecord>> {
        let staged = self.store.staged_records(run_id, kind).await?;
        Ok(staged.into_iter().map(|s| s.value).collect())
    }

    /// Adds a plan's counts (and the Monday calls it will cost) to `counts`.
    fn count(
        &self,
        kind: EntityKind,
        records: &[NpdRecord],
        items: &[StagedItem],
        plan: &crate::domain::scan::Plan,
        counts: &mut BackfillCounts,
    ) {
        let mapping = self.settings.mapping.for_kind(kind);
        let by_item: HashMap<_, _> = items.iter().map(|i| (i.id, i)).collect();
        let winner = self.settings.backfill.initial_winner;
        counts.scanned.npd += records.len() as u64;
        counts.scanned.monday += items.len() as u64;
        counts.unmatched_in_monday += plan.unmatched_items.len() as u64;
        let pages = (items.len() as u64).div_ceil(u64::from(PAGE_SIZE)).max(1);
        let mut calls = pages;
        for (record, (_, verdict)) in records.iter().zip(&plan.verdicts) {
            match verdict {
                Verdict::Link {
                    item,
                    reason,
                    known,
                    ..
                } => {
                    counts.linked += 1;
                    if let Some(reason) = reason {
                        counts.matched.add(*reason);
                    }
                    let Some(staged) = by_item.get(item) else {
                        continue;
                    };
                    let column_empty = staged.npd_id.is_none();
                    let values_differ = !known
                        && first_writes(&mapping.npd_values(record), &staged.values, winner).0;
                    calls += u64::from(record.sync_enabled && (column_empty || values_differ));
                }
                Verdict::Review(_) => counts.to_review += 1,
                Verdict::NoCandidate if record.sync_enabled => {
                    counts.to_create_in_monday += 1;
                    // A lookup by npd_id, then the create.
                    calls += 2;
                }
                Verdict::NoCandidate => {}
            }
        }
        counts.estimated_monday_calls += calls;
    }

    /// Applies the plan's verdicts in chunks, one transaction each, then records the items no
    /// record had as a candidate.
    async fn apply_plan(
        &self,
        run: &RunRow,
        kind: EntityKind,
        records: &[NpdRecord],
        items: &[StagedItem],
        plan: &crate::domain::scan::Plan,
        counts: &BackfillCounts,
    ) -> Result<(), ScanError> {
        let by_item: HashMap<_, _> = items.iter().map(|i| (i.id, i)).collect();
        let cause = Cause::backfill(None);
        let pairs: Vec<(&NpdRecord, &Verdict)> = records
            .iter()
            .zip(plan.verdicts.iter().map(|(_, v)| v))
            .collect();
        for chunk in pairs.chunks(APPLY_CHUNK) {
            let mut tx = self.store.begin().await?;
            for (record, verdict) in chunk {
                self.apply_verdict(&mut tx, (run.id, kind), record, verdict, &by_item, &cause)
                    .await?;
            }
            tx.commit().await?;
            let summary = Summary::Backfill(counts.clone());
            self.store.save_run(run.id, "applying", &summary).await?;
        }
        for chunk in plan.unmatched_items.chunks(APPLY_CHUNK) {
            let mut tx = self.store.begin().await?;
            for item in chunk.iter().filter_map(|id| by_item.get(id)) {
                self.record_monday_only(&mut tx, kind, item, &cause).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// A run with `created_in_monday` as of now.
    pub async fn backfill_status(&self, run_id: i64) -> LedgerResult<Option<RunRow>> {
        let Some(mut run) = self.store.run(run_id).await? else {
            return Ok(None);
        };
        if run.scan != ScanKind::Backfill {
            return Ok(None);
        }
        if let Summary::Backfill(counts) = &mut run.summary {
            let created = self.store.created_count(run_id).await?;
            counts.created_in_monday = u64::try_from(created).unwrap_or_default();
        }
        Ok(Some(run))
    }

    /// Resumes the runs of `scan` whose process died (their heartbeat stopped), one at a time.
    pub async fn resume_abandoned(&self, scan: ScanKind) -> Result<usize, ScanError> {
        let stale_before = now_ms() - ABANDONED_AFTER_MS;
        let mut resumed = 0;
        for run in self.store.abandoned_runs(scan, stale_before).await? {
            if !self.store.adopt_run(run.id, stale_before).await? {
                continue;
            }
            tracing::info!(run.id = run.id, scan = %scan, "resuming an abandoned run");
            match scan {
                ScanKind::Backfill => drop(self.run_backfill(run.id).await?),
                ScanKind::Drift => drop(self.run_drift(run.id).await?),
            }
            resumed += 1;
        }
        Ok(resumed)
    }
}

/// The field of `mapping` whose column is of `column_type` (the email, the phone), if any.
fn field_of_type(mapping: &EntityMapping, column_type: ColumnType) -> Option<&str> {
    mapping
        .fields
        .iter()
        .find(|(_, m)| m.column_type == column_type)
        .map(|(f, _)| f.as_str())
}

fn value_of(
    values: &std::collections::BTreeMap<String, FieldValue>,
    field: Option<&str>,
) -> FieldValue {
    field.and_then(|f| values.get(f).cloned().flatten())
}

fn record_keys(
    mapping: &EntityMapping,
    record: &NpdRecord,
    entity: Option<&EntityRow>,
) -> RecordKeys {
    let values = mapping.npd_values(record);
    RecordKeys {
        id: record.id,
        monday_id: record.monday_id,
        email: value_of(&values, field_of_type(mapping, ColumnType::Email)),
        phone: value_of(&values, field_of_type(mapping, ColumnType::Phone)),
        linked: entity.and_then(|e| e.monday_item_id),
    }
}

fn item_keys(mapping: &EntityMapping, item: &StagedItem) -> ItemKeys {
    ItemKeys {
        id: item.id,
        name: item.name.clone(),
        npd_id: item
            .npd_id
            .as_deref()
            .and_then(|t| NpdId::parse(t.trim()).ok()),
        email: value_of(&item.values, field_of_type(mapping, ColumnType::Email)),
        phone: value_of(&item.values, field_of_type(mapping, ColumnType::Phone)),
    }
}
