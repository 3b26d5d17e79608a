//! Admin views and actions that are not pushes: an entity's sync status with the reasons behind
//! it, the dead letters with their replay, and the audit log every admin call writes.
//!
//! Owns: `SyncStatus`, `sync_status`, `dead_letters`, `replay_dead_letter`, `audit`, and the
//! console's reads: `overview` (the queues and the last runs) and `search_entities`.
//! May import: std, tracing, crate::{domain, ledger, sync}.

use std::collections::BTreeMap;

use crate::domain::entity::{EntityKind, NpdId};
use crate::domain::job::Work;
use crate::domain::reconcile::{self, FieldState};
use crate::domain::scan::ScanKind;
use crate::domain::search::{SearchQuery, prefix_range};
use crate::domain::state::JobState;
use crate::ledger::admin::AuditEntry;
use crate::ledger::conflicts::ConflictRow;
use crate::ledger::entities::{self, EntityRow};
use crate::ledger::history::HistoryRow;
use crate::ledger::jobs::{self, DeadLetterRow, JobRow};
use crate::ledger::left_out::LeftOutRow;
use crate::ledger::scans::RunRow;
use crate::ledger::stats::QueueGauges;
use crate::ledger::{LedgerResult, Store, now_ms};

/// Everything an admin needs to see why an entity synced or not.
#[derive(Debug, Clone)]
pub struct SyncStatus {
    pub entity: EntityRow,
    pub fields: BTreeMap<String, FieldState>,
    /// Pending and leased jobs, oldest first.
    pub open_jobs: Vec<JobRow>,
    /// Dead jobs of this entity, newest first.
    pub dead_jobs: Vec<JobRow>,
    pub conflicts: Vec<ConflictRow>,
    /// The last 50 history entries, newest first.
    pub history: Vec<HistoryRow>,
    /// Values left out of writes, by field.
    pub left_out: Vec<LeftOutRow>,
}

pub async fn sync_status(
    store: &Store,
    kind: EntityKind,
    id: NpdId,
) -> LedgerResult<Option<SyncStatus>> {
    let Some(entity) = store.entity_by_npd(kind, id).await? else {
        return Ok(None);
    };
    let fields = store.entity_fields(entity.id).await?;
    let jobs = store.entity_jobs(entity.id, 200).await?;
    let (mut open_jobs, dead_jobs): (Vec<JobRow>, Vec<JobRow>) = jobs
        .into_iter()
        .filter(|j| j.state != JobState::Done)
        .partition(|j| j.state.is_open());
    open_jobs.sort_by_key(|j| j.id);
    let conflicts = store.entity_conflicts(entity.id).await?;
    let history = store.history(entity.id, 50).await?;
    let left_out = store.left_out(entity.id).await?;
    Ok(Some(SyncStatus {
        entity,
        fields,
        open_jobs,
        dead_jobs,
        conflicts,
        history,
        left_out,
    }))
}

/// A page of the dead letters with their entities: those after job `after`, oldest first.
pub async fn dead_letters(
    store: &Store,
    after: i64,
    limit: i64,
) -> LedgerResult<Vec<DeadLetterRow>> {
    store.dead_letters(after, limit).await
}

/// Puts a dead job back in the queue with `allowance` attempts (`[sync] max_attempts`), its
/// values pending again where their source still holds them (so it sends them, under a new key,
/// rather than nothing). False when no dead job has that id.
pub async fn replay_dead_letter(store: &Store, id: i64, allowance: i64) -> LedgerResult<bool> {
    let mut tx = store.begin().await?;
    let Some(job) = jobs::dead(&mut tx, id).await? else {
        tx.rollback().await?;
        return Ok(false);
    };
    let _entity = entities::lock(&mut tx, job.entity_id).await?;
    if let Some((side, values)) = job.payload.frozen.as_ref().and_then(Work::field_values) {
        let fields = entities::load_fields(&mut tx, job.entity_id).await?;
        for (field, value) in values {
            let state = fields.get(field).cloned().unwrap_or_default();
            let next = reconcile::retry(&state, side, value);
            if next != state {
                entities::save_field(&mut tx, job.entity_id, field, &next).await?;
            }
        }
    }
    let replayed = jobs::replay(&mut tx, id, allowance).await?;
    tx.commit().await?;
    Ok(replayed)
}

/// Records one admin call in the audit log. The call's answer never depends on it: a failure
/// to write is logged, not returned.
pub async fn audit(store: &Store, entry: &AuditEntry<'_>) {
    if let Err(e) = store.audit(entry).await {
        tracing::warn!(error = %e, action = entry.action, "audit row could not be written");
    }
}

/// The queues and the last runs, as the console's overview shows them.
#[derive(Debug, Clone)]
pub struct Overview {
    /// Inbox and outbox depth, dead letters and open conflicts: the cheap gauges of `/metrics`.
    pub gauges: QueueGauges,
    pub last_backfill: Option<RunRow>,
    pub last_drift_scan: Option<RunRow>,
}

pub async fn overview(store: &Store) -> LedgerResult<Overview> {
    let gauges = store.gauges(now_ms()).await?;
    let newest = async |scan| {
        store
            .runs(scan, i64::MAX, 1)
            .await
            .map(|runs| runs.into_iter().next())
    };
    Ok(Overview {
        gauges,
        last_backfill: newest(ScanKind::Backfill).await?,
        last_drift_scan: newest(ScanKind::Drift).await?,
    })
}

/// The entities a search finds, at most `limit`: by NPD id or Monday item id (a unique index
/// each), or by the prefix of a name word, a whole name or an e-mail address (one range over the
/// search terms' index).
pub async fn search_entities(
    store: &Store,
    query: &SearchQuery,
    limit: i64,
) -> LedgerResult<Vec<EntityRow>> {
    match query {
        SearchQuery::NpdId(id) => store.entities_by_npd(*id).await,
        SearchQuery::MondayId(item) => store.entities_by_item(*item).await,
        SearchQuery::Prefix(prefix) => {
            let (low, high) = prefix_range(prefix);
            store.entities_by_term((&low, &high), limit).await
        }
    }
}
