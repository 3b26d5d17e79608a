//! Step 1 of a job: decide what it sends (frozen at the first attempt), and mark those values as
//! going out, in one transaction fenced by the lease token (`prepare_all`: on SQLite, one
//! transaction for a whole batch, each job fenced on its own).
//!
//! Owns: `Dispatcher::prepare`, `prepare_all`, the computation of a job's `Work` from the field states (and the
//! organization links its board_relation values are written with, read in the same transaction),
//! `still_pending` (a retry sends only what is still the gateway's intention).
//! May import: std, crate::{domain, ledger, sync}.

use std::collections::BTreeMap;

use crate::domain::entity::Side;
use crate::domain::job::{JobPayload, Operation, Work};
use crate::domain::mapping::{FieldValue, OrgLinks};
use crate::domain::reconcile::{FieldState, Pending, mark_sent};
use crate::ledger::entities::{self, EntityRow};
use crate::ledger::jobs::{self, JobRow};
use crate::ledger::tx::Tx;
use crate::ledger::{LedgerError, LedgerResult, Store};
use crate::sync::dispatch::outcome::update_fields;
use crate::sync::dispatch::{Dispatcher, Prepared};
use crate::sync::relation;

impl Dispatcher {
    /// Freezes what the job sends (first attempt) and marks it pending. `None` when the lease was
    /// lost.
    pub(super) async fn prepare(
        &self,
        job: &JobRow,
        token: i64,
    ) -> LedgerResult<Option<(Work, EntityRow, OrgLinks)>> {
        let mut tx = self.store.begin().await?;
        let prepared = self.prepare_in(&mut tx, job, token).await?;
        tx.commit().await?;
        Ok(prepared)
    }

    /// `prepare` for every job of a batch: the prepared ones, and the ids of those whose lease
    /// was lost. On SQLite in one transaction (one commit for the batch, as `record_all`), on
    /// PostgreSQL one each.
    pub(super) async fn prepare_all(
        &self,
        jobs: Vec<JobRow>,
    ) -> LedgerResult<(Vec<Prepared>, Vec<i64>)> {
        let (mut prepared, mut fenced) = (Vec::new(), Vec::new());
        let serial = matches!(self.store, Store::Sqlite(_)) && jobs.len() > 1;
        let mut shared = if serial {
            Some(self.store.begin().await?)
        } else {
            None
        };
        for job in jobs {
            let Some(token) = job.lease_token else {
                fenced.push(job.id);
                continue;
            };
            let frozen = match shared.as_mut() {
                Some(tx) => self.prepare_in(tx, &job, token).await?,
                None => self.prepare(&job, token).await?,
            };
            match frozen {
                Some((work, entity, links)) => prepared.push(Prepared {
                    job,
                    token,
                    work,
                    entity,
                    links,
                }),
                None => fenced.push(job.id),
            }
        }
        if let Some(tx) = shared {
            tx.commit().await?;
        }
        Ok((prepared, fenced))
    }

    /// `prepare` inside `tx`; nothing is written for a job whose lease was lost.
    async fn prepare_in(
        &self,
        tx: &mut Tx,
        job: &JobRow,
        token: i64,
    ) -> LedgerResult<Option<(Work, EntityRow, OrgLinks)>> {
        if jobs::fenced(tx, job.id, token).await?.is_none() {
            return Ok(None);
        }
        let entity = entities::lock(tx, job.entity_id)
            .await?
            .ok_or_else(|| LedgerError::Corrupt(format!("job {} names no entity", job.id)))?;
        let work = match &job.payload.frozen {
            Some(work) => {
                // A retry sends only what is still the gateway's intention: a value whose pending
                // write was superseded (a newer decision, or the side's own newer edit) would
                // overwrite something newer if it landed now.
                let fields = entities::load_fields(tx, entity.id).await?;
                still_pending(work.clone(), &fields)
            }
            None => {
                let force = job.payload.force;
                let work = self.compute_work(tx, job, &entity, force).await?;
                let payload = JobPayload {
                    frozen: Some(work.clone()),
                    ..job.payload.clone()
                };
                jobs::set_payload(tx, job.id, &payload).await?;
                work
            }
        };
        // From here the values are going out: should a newer decision replace them before they
        // are confirmed, their reports must still be known as the gateway's own.
        if let Some((side, values)) = work.field_values() {
            update_fields(tx, &entity, values, |state, value| {
                mark_sent(state, side, value)
            })
            .await?;
        }
        let links = self.org_links(tx, &entity, &work).await?;
        Ok(Some((work, entity, links)))
    }

    /// The Monday items of the organizations a push names in its board_relation fields, as the
    /// ledger links them now: the one reading the send and its outcome go by.
    async fn org_links(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        work: &Work,
    ) -> LedgerResult<OrgLinks> {
        let Work::PushItem { values, .. } = work else {
            return Ok(OrgLinks::default());
        };
        let mapping = self.settings.mapping.for_kind(entity.kind);
        relation::links_of_organizations(tx, &mapping.related_organizations(values)).await
    }

    async fn compute_work(
        &self,
        tx: &mut Tx,
        job: &JobRow,
        entity: &EntityRow,
        force: bool,
    ) -> LedgerResult<Work> {
        let work = match job.operation {
            // A create (no link yet) or a forced push writes every synced field; an update
            // writes the values pending for Monday.
            Operation::PushItem => {
                let all = force || entity.monday_item_id.is_none();
                let npd_id = job.payload.write_npd_id && entity.monday_item_id.is_some();
                self.push_work(tx, entity, all, npd_id).await?
            }
            Operation::ArchiveItem => Work::ArchiveItem,
            Operation::PatchNpd => {
                let fields = entities::load_fields(tx, entity.id).await?;
                let values: BTreeMap<String, FieldValue> = fields
                    .iter()
                    .filter_map(|(f, s)| pending_to(s, Side::Npd).map(|v| (f.clone(), v)))
                    .collect();
                if values.is_empty() {
                    Work::Nothing
                } else {
                    Work::PatchNpd { values }
                }
            }
            Operation::WriteLink => match entity.monday_item_id {
                Some(monday_id) => Work::WriteLink { monday_id },
                None => Work::Nothing,
            },
            Operation::CreateNpdContact => Work::CreateNpdContact {
                values: entities::load_fields(tx, entity.id)
                    .await?
                    .into_iter()
                    .map(|(f, s)| (f, s.monday))
                    .collect(),
            },
        };
        Ok(work)
    }

    /// The values a push sends: the ones pending for Monday, or (`all`) every synced field, NPD's
    /// value where nothing is pending, recorded as pending before the call so its echo is
    /// recognised.
    async fn push_work(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        all: bool,
        npd_id: bool,
    ) -> LedgerResult<Work> {
        let mut fields = entities::load_fields(tx, entity.id).await?;
        let mut values = BTreeMap::new();
        for (field, _) in self.settings.mapping.for_kind(entity.kind).synced_fields() {
            let mut state = fields.remove(&field).unwrap_or_default();
            let value = match (all, pending_to(&state, Side::Monday)) {
                (_, Some(v)) => v,
                (true, None) => {
                    let value = state.npd.clone();
                    state.pending_monday = Some(Pending {
                        value: value.clone(),
                        sent: false,
                    });
                    entities::save_field(tx, entity.id, &field, &state).await?;
                    value
                }
                (false, None) => continue,
            };
            values.insert(field, value);
        }
        Ok(Work::push_item(values, all, npd_id))
    }
}

/// `work` without the values whose pending write is no longer theirs.
fn still_pending(work: Work, fields: &BTreeMap<String, FieldState>) -> Work {
    let keep = |side: Side, values: BTreeMap<String, FieldValue>| -> BTreeMap<String, FieldValue> {
        values
            .into_iter()
            .filter(|(f, v)| {
                fields
                    .get(f)
                    .and_then(|s| s.pending(side))
                    .is_some_and(|p| &p.value == v)
            })
            .collect()
    };
    match work {
        Work::PushItem {
            values,
            all,
            npd_id,
        } => Work::push_item(keep(Side::Monday, values), all, npd_id),
        Work::PatchNpd { values } => {
            let values = keep(Side::Npd, values);
            if values.is_empty() {
                Work::Nothing
            } else {
                Work::PatchNpd { values }
            }
        }
        other => other,
    }
}

/// The value in flight to `side`, if any.
fn pending_to(state: &FieldState, side: Side) -> Option<FieldValue> {
    state.pending(side).map(|p| p.value.clone())
}
