//! Drift scans: repair what webhooks and events missed. Both sides are read page by page into the
//! staging area (mapped columns only); each linked entity's values are compared with what the
//! ledger knows of each side, and every difference is fed into the same merge as a webhook or
//! event would be (policies, conflicts, echo bookkeeping), with history entries of reason
//! "drift" and its writes queued at drift priority. Deletions are detected: an item gone from
//! the board (deleted or archived) unlinks its entity; a record NPD answers 404 for has its item
//! archived.
//!
//! Owns: `Scans::start_drift`, `Scans::run_drift`, `Scans::drift_status`, the comparison, and the
//! page checksums: a page whose checksum equals the last scan's (and whose entities were all in
//! sync then) is not compared again. An entity with an outbound write still open, or that changed
//! (or has a delivery waiting) since its page was read, is skipped: its difference is on its way,
//! or the page is older than the ledger.
//! May import: std, sha2, tracing, crate::{connectors, domain, ledger, sync}.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};

use crate::domain::entity::{EntityKind, MondayItemId, NpdId, Side, unix_ms};
use crate::domain::job::{Operation, Priority};
use crate::domain::record::NpdRecord;
use crate::domain::scan::{DriftCounts, RunStatus, ScanKind, Scope, StagedItem, Summary};
use crate::domain::state::{EntityStatus, HistoryKind, InboxOutcome};
use crate::ledger::LedgerResult;
use crate::ledger::entities::{self, EntityRow};
use crate::ledger::jobs;
use crate::ledger::scans::{self, RunRow, Staged};
use crate::ledger::tx::Tx;
use crate::sync::history::{Cause, record};
use crate::sync::process::Merge;
use crate::sync::scan::{OnPage, ScanError, Scans};
use crate::sync::{outbox, relation};

/// Keeps a drift run's heartbeat while it reads.
struct Heartbeat<'a> {
    scans: &'a Scans,
    run_id: i64,
}

#[async_trait::async_trait]
impl OnPage for Heartbeat<'_> {
    async fn page(&self) -> Result<(), ScanError> {
        let summary = Summary::Drift(DriftCounts::default());
        self.scans
            .store
            .save_run(self.run_id, "reading", &summary)
            .await?;
        Ok(())
    }
}

/// What the comparison of one entity found.
enum Compared {
    InSync,
    Skipped,
    Repaired {
        to_monday: bool,
        to_npd: bool,
        conflict: bool,
    },
}

/// The pages of one kind as staged, by record and item, with their checksums.
struct Pages {
    records: HashMap<NpdId, Staged<NpdRecord>>,
    items: HashMap<MondayItemId, Staged<StagedItem>>,
    npd_sums: BTreeMap<i64, String>,
    monday_sums: BTreeMap<i64, String>,
    npd_unchanged: BTreeSet<i64>,
    monday_unchanged: BTreeSet<i64>,
}

impl Scans {
    /// Records a new drift scan of `scope` (both sides must be configured for it).
    pub async fn start_drift(&self, scope: Scope) -> Result<i64, ScanError> {
        self.check_scope(scope)?;
        let summary = Summary::Drift(DriftCounts::default());
        Ok(self
            .store
            .create_run(ScanKind::Drift, scope, false, &summary)
            .await?)
    }

    /// The configured kinds a scheduled scan covers: every kind with a board.
    pub fn drift_scope(&self) -> Option<Scope> {
        let contacts = self.settings.board_for(EntityKind::Contact).is_some();
        let organizations = self.settings.board_for(EntityKind::Organization).is_some();
        match (contacts, organizations) {
            (true, true) => Some(Scope::All),
            (true, false) => Some(Scope::Contacts),
            (false, true) => Some(Scope::Organizations),
            (false, false) => None,
        }
    }

    /// Runs (or resumes) drift scan `run_id` to its end, recording `done` or `failed`.
    pub async fn run_drift(&self, run_id: i64) -> Result<RunRow, ScanError> {
        let result = self.drift_steps(run_id).await;
        let (status, summary, error) = match &result {
            Ok(counts) => (RunStatus::Done, Summary::Drift(counts.clone()), None),
            Err(e) => {
                tracing::error!(run.id = run_id, error = %e, "drift scan failed");
                (
                    RunStatus::Failed,
                    Summary::Drift(DriftCounts::default()),
                    Some(e.to_string()),
                )
            }
        };
        self.store
            .finish_run(run_id, status, &summary, error.as_deref())
            .await?;
        self.store.clear_staging(run_id).await?;
        let run = self.drift_status(run_id).await?;
        run.ok_or_else(|| ScanError::NotConfigured(format!("drift scan {run_id} vanished")))
    }

    pub async fn drift_status(&self, run_id: i64) -> LedgerResult<Option<RunRow>> {
        Ok(self
            .store
            .run(run_id)
            .await?
            .filter(|r| r.scan == ScanKind::Drift))
    }

    async fn drift_steps(&self, run_id: i64) -> Result<DriftCounts, ScanError> {
        let run = self
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| ScanError::NotConfigured(format!("no drift scan {run_id}")))?;
        let heartbeat = Heartbeat {
            scans: self,
            run_id,
        };
        let mut counts = DriftCounts::default();
        for kind in self.kinds_of(run.scope) {
            self.read_npd(run_id, kind, &heartbeat).await?;
            self.read_monday(run_id, kind, Priority::Drift, &heartbeat)
                .await?;
            self.compare_kind(run_id, kind, &mut counts).await?;
            let summary = Summary::Drift(counts.clone());
            self.store.save_run(run_id, "comparing", &summary).await?;
        }
        Ok(counts)
    }

    /// Compares every linked entity of `kind` with the staged pages, repairs, detects deletions,
    /// and keeps the checksums of the pages found in sync.
    async fn compare_kind(
        &self,
        run_id: i64,
        kind: EntityKind,
        counts: &mut DriftCounts,
    ) -> Result<(), ScanError> {
        let pages = self.pages(run_id, kind).await?;
        let linked: Vec<EntityRow> = self
            .store
            .entities_of_kind(kind)
            .await?
            .into_iter()
            .filter(|e| e.npd_id.is_some() && e.monday_item_id.is_some())
            .filter(|e| e.status != EntityStatus::Deleted)
            .collect();
        let (mut dirty_npd, mut dirty_monday) = (BTreeSet::new(), BTreeSet::new());
        for entity in &linked {
            counts.scanned += 1;
            let (Some(npd_id), Some(item)) = (entity.npd_id, entity.monday_item_id) else {
                continue;
            };
            let (Some(r), Some(i)) = (pages.records.get(&npd_id), pages.items.get(&item)) else {
                self.gone(entity, pages.records.contains_key(&npd_id), counts)
                    .await?;
                continue;
            };
            if pages.npd_unchanged.contains(&r.page) && pages.monday_unchanged.contains(&i.page) {
                counts.in_sync += 1;
                continue;
            }
            match self.compare(entity, r, i).await? {
                Compared::InSync => counts.in_sync += 1,
                other => {
                    dirty_npd.insert(r.page);
                    dirty_monday.insert(i.page);
                    count_repair(other, counts);
                }
            }
        }
        let clean = |sums: &BTreeMap<i64, String>, dirty: &BTreeSet<i64>| -> Vec<(i64, String)> {
            sums.iter()
                .filter(|(p, _)| !dirty.contains(p))
                .map(|(p, s)| (*p, s.clone()))
                .collect()
        };
        self.store
            .save_page_checksums(Side::Npd, kind, &clean(&pages.npd_sums, &dirty_npd))
            .await?;
        let monday = clean(&pages.monday_sums, &dirty_monday);
        self.store
            .save_page_checksums(Side::Monday, kind, &monday)
            .await?;
        Ok(())
    }

    /// The staged pages of `kind` with their checksums, and which equal the last scan's.
    async fn pages(&self, run_id: i64, kind: EntityKind) -> LedgerResult<Pages> {
        let records = self.store.staged_records(run_id, kind).await?;
        let items = self.store.staged_items(run_id, kind).await?;
        let npd_sums = checksums(
            records
                .iter()
                .map(|r| (r.page, serde_json::to_string(&r.value))),
        );
        let monday_sums = checksums(
            items
                .iter()
                .map(|i| (i.page, serde_json::to_string(&i.value))),
        );
        let unchanged = |sums: &BTreeMap<i64, String>, last: Vec<(i64, String)>| -> BTreeSet<i64> {
            let last: BTreeMap<i64, String> = last.into_iter().collect();
            sums.iter()
                .filter(|(p, s)| last.get(p) == Some(s))
                .map(|(p, _)| *p)
                .collect()
        };
        let npd_unchanged = unchanged(&npd_sums, self.store.page_checksums(Side::Npd, kind).await?);
        let last_monday = self.store.page_checksums(Side::Monday, kind).await?;
        let monday_unchanged = unchanged(&monday_sums, last_monday);
        Ok(Pages {
            records: records.into_iter().map(|r| (r.value.id, r)).collect(),
            items: items.into_iter().map(|i| (i.value.id, i)).collect(),
            npd_sums,
            monday_sums,
            npd_unchanged,
            monday_unchanged,
        })
    }

    /// Compares one linked entity with its record and item, and feeds what differs from what the
    /// ledger knows of each side into the merge, in one transaction.
    async fn compare(
        &self,
        entity: &EntityRow,
        r: &Staged<NpdRecord>,
        i: &Staged<StagedItem>,
    ) -> LedgerResult<Compared> {
        let mut tx = self.store.begin().await?;
        let entity = entities::lock(&mut tx, entity.id)
            .await?
            .unwrap_or_else(|| entity.clone());
        let busy = !jobs::open_jobs(&mut tx, entity.id).await?.is_empty()
            || scans::touched_since(&mut tx, &entity, r.read_at.min(i.read_at)).await?
            || entity.monday_item_id != Some(i.value.id);
        if busy {
            tx.rollback().await?;
            return Ok(Compared::Skipped);
        }
        let mapping = self.settings.mapping.for_kind(entity.kind);
        let fields = entities::load_fields(&mut tx, entity.id).await?;
        let known = |side: Side, field: &str| {
            fields
                .get(field)
                .map(|s| s.value(side).clone())
                .unwrap_or_default()
        };
        let npd_differs = entity.npd_version.is_none_or(|v| r.value.version > v)
            && mapping
                .npd_values(&r.value)
                .iter()
                .any(|(f, v)| *v != known(Side::Npd, f));
        let staged = relation::staged_values(&mut tx, mapping, &i.value.values).await?;
        let monday_changes: Vec<(String, Option<String>)> = staged
            .iter()
            .filter(|(f, v)| mapping.column_type_of(f).is_some() && **v != known(Side::Monday, f))
            .map(|(f, v)| (f.clone(), v.clone()))
            .collect();
        if !npd_differs && monday_changes.is_empty() {
            tx.rollback().await?;
            return Ok(Compared::InSync);
        }
        let cause = Cause::drift();
        let mut conflict = false;
        if npd_differs {
            let at_ms = r.value.updated_at.map(unix_ms);
            let outcome = self
                .processor
                .apply_npd_snapshot(&mut tx, &entity, &r.value, at_ms, &cause)
                .await?;
            conflict |= outcome.outcome == InboxOutcome::Conflict;
        }
        if !monday_changes.is_empty() {
            let entity = entities::find_by_id(&mut tx, entity.id)
                .await?
                .unwrap_or(entity.clone());
            let merge = Merge {
                side: Side::Monday,
                changes: monday_changes,
                at_ms: None,
                cause,
                echo_hint: None,
                policy: None,
            };
            conflict |= self.processor.merge(&mut tx, &entity, merge).await?.outcome
                == InboxOutcome::Conflict;
        }
        let to_monday = outbox::has_open(&mut tx, entity.id, Operation::PushItem).await?;
        let to_npd = outbox::has_open(&mut tx, entity.id, Operation::PatchNpd).await?;
        tx.commit().await?;
        Ok(Compared::Repaired {
            to_monday,
            to_npd,
            conflict,
        })
    }

    /// A linked entity whose item (or record) the walk did not find: asked for directly, and
    /// when really gone, unlinked (item) or archived in Monday (record).
    async fn gone(
        &self,
        entity: &EntityRow,
        record_seen: bool,
        counts: &mut DriftCounts,
    ) -> Result<(), ScanError> {
        let (_, monday, npd) = self.remotes_for(entity.kind)?;
        let (Some(npd_id), Some(item)) = (entity.npd_id, entity.monday_item_id) else {
            return Ok(());
        };
        let state = if record_seen {
            match monday.get_item(item).await {
                Ok(None) => Some("deleted".to_owned()),
                Ok(Some(found)) if found.state != "active" => Some(found.state),
                Ok(Some(_)) => None,
                Err(e) => {
                    return Err(ScanError::Remote {
                        what: format!("Monday item {item}"),
                        error: e,
                    });
                }
            }
        } else {
            match npd.get(entity.kind, npd_id).await {
                Ok(None) => Some("gone".to_owned()),
                Ok(Some(_)) => None,
                Err(e) => {
                    return Err(ScanError::Remote {
                        what: format!("NPD {} {npd_id}", entity.kind),
                        error: e,
                    });
                }
            }
        };
        let Some(state) = state else {
            counts.skipped += 1;
            return Ok(());
        };
        let mut tx = self.store.begin().await?;
        let done = self
            .mark_gone(&mut tx, entity, item, record_seen, &state)
            .await?;
        tx.commit().await?;
        if done && record_seen {
            counts.deleted.in_monday += 1;
        } else if done {
            counts.deleted.in_npd += 1;
        }
        Ok(())
    }

    async fn mark_gone(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        item: MondayItemId,
        in_monday: bool,
        state: &str,
    ) -> LedgerResult<bool> {
        let Some(entity) = entities::lock(tx, entity.id).await? else {
            return Ok(false);
        };
        if entity.monday_item_id != Some(item) || entity.status == EntityStatus::Deleted {
            return Ok(false);
        }
        let cause = Cause::drift();
        if in_monday {
            entities::set_link(tx, entity.id, None, None).await?;
            entities::set_status(tx, entity.id, EntityStatus::Unlinked, None).await?;
            let text = format!(
                "Monday item {item} was {state} in Monday: the link is removed; NPD is not changed"
            );
            record(tx, entity.id, &cause, HistoryKind::Unlinked, text, None).await?;
        } else {
            entities::mark_deleted(tx, entity.id, entity.npd_version.unwrap_or_default()).await?;
            outbox::ensure(tx, &self.settings, &entity, Operation::ArchiveItem, &cause).await?;
            let text =
                format!("NPD answered 404 for the record: Monday item {item} will be archived");
            record(tx, entity.id, &cause, HistoryKind::Decided, text, None).await?;
        }
        Ok(true)
    }
}

fn count_repair(compared: Compared, counts: &mut DriftCounts) {
    match compared {
        Compared::InSync => counts.in_sync += 1,
        Compared::Skipped => counts.skipped += 1,
        Compared::Repaired {
            to_monday,
            to_npd,
            conflict,
        } => {
            counts.repaired.to_monday += u64::from(to_monday);
            counts.repaired.to_npd += u64::from(to_npd);
            counts.conflicts += u64::from(conflict);
            if !(to_monday || to_npd || conflict) {
                counts.in_sync += 1;
            }
        }
    }
}

/// SHA-256 of each page's rows (in id order), by page number.
fn checksums(
    rows: impl Iterator<Item = (i64, Result<String, serde_json::Error>)>,
) -> BTreeMap<i64, String> {
    let mut hashers: BTreeMap<i64, Sha256> = BTreeMap::new();
    for (page, row) in rows {
        let hasher = hashers.entry(page).or_default();
        hasher.update(row.unwrap_or_default().as_bytes());
        hasher.update(b"\n");
    }
    hashers
        .into_iter()
        .map(|(page, h)| (page, format!("{:x}", h.finalize())))
        .collect()
}
