//! Step 3 of a job: record what the call achieved, in one transaction fenced by the lease token
//! (`record_all`: on SQLite, one transaction for a whole batch, each job fenced on its own).
//!
//! Owns: `Dispatcher::record`, `record_all` and their outcomes: success (links, confirmed values, follow-up
//! jobs, the NPD version a write produced), a vanished item (unlinked and created again), retry
//! later and dead letter (the one retry policy decides which), and the field-state bookkeeping
//! they share (`update_fields`).
//! May import: std, rand, crate::{connectors, domain, ledger, sync}.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::connectors::{ConnectorError, FailureClass};
use crate::domain::entity::{NpdId, Side};
use crate::domain::job::{JobPayload, Sent, Work};
use crate::domain::mapping::{FieldValue, LeftOutReason::OrganizationNotSynced, OrgLinks};
use crate::domain::reconcile::{FieldState, abandon, confirm};
use crate::domain::state::{EntityStatus, HistoryDetail, HistoryKind};
use crate::ledger::entities::{self, EntityRow};
use crate::ledger::jobs::{self, JobRow};
use crate::ledger::left_out;
use crate::ledger::tx::Tx;
use crate::ledger::{LedgerResult, Store, now_ms};
use crate::sync::dispatch::{Dispatcher, JobEnd, Prepared};
use crate::sync::history::{Cause, Origin, record};
use crate::sync::retry::Verdict;
use crate::sync::{outbox, relation};

impl Dispatcher {
    /// Records one job's outcome in a transaction of its own, fenced by the lease token.
    pub(super) async fn record(
        &self,
        p: &Prepared,
        result: Result<Sent, ConnectorError>,
    ) -> LedgerResult<JobEnd> {
        let mut tx = self.store.begin().await?;
        let (end, wrote) = self.record_in(&mut tx, p, result).await?;
        tx.commit().await?;
        self.count(&p.job, &end, wrote);
        Ok(end)
    }

    /// Records the outcomes of a batch, each fenced by its lease token. On SQLite, whose writes
    /// are serial, in one transaction (one commit, not one per job: the single writer is shared
    /// with ingest and processing); on PostgreSQL one transaction each, so a batch never holds
    /// its entities' locks together (processing locks them in another order).
    pub(super) async fn record_all(
        &self,
        outcomes: Vec<(&Prepared, Result<Sent, ConnectorError>)>,
    ) -> LedgerResult<Vec<(i64, JobEnd)>> {
        let mut ends = Vec::with_capacity(outcomes.len());
        if !matches!(self.store, Store::Sqlite(_)) || outcomes.len() < 2 {
            for (p, result) in outcomes {
                ends.push((p.job.id, self.record(p, result).await?));
            }
            return Ok(ends);
        }
        let mut tx = self.store.begin().await?;
        let mut counted = Vec::with_capacity(outcomes.len());
        for (p, result) in outcomes {
            let (end, wrote) = self.record_in(&mut tx, p, result).await?;
            counted.push((p, end, wrote));
        }
        tx.commit().await?;
        for (p, end, wrote) in counted {
            self.count(&p.job, &end, wrote);
            ends.push((p.job.id, end));
        }
        Ok(ends)
    }

    /// Records one job's outcome inside `tx`: nothing is written for a job whose lease was taken
    /// over (`Fenced`). Whether the remote was written, for the metrics once committed.
    async fn record_in(
        &self,
        tx: &mut Tx,
        p: &Prepared,
        result: Result<Sent, ConnectorError>,
    ) -> LedgerResult<(JobEnd, bool)> {
        let (job, token, work, links) = (&p.job, p.token, &p.work, &p.links);
        if jobs::fenced(tx, job.id, token).await?.is_none() {
            return Ok((JobEnd::Fenced, false));
        }
        // Current row, under the entity's lock (processing may have moved it on meanwhile).
        let entity = &entities::lock(tx, p.entity.id)
            .await?
            .unwrap_or_else(|| p.entity.clone());
        let wrote = matches!(&result, Ok(sent) if *sent != Sent::Nothing);
        let end = match result {
            Ok(sent) => {
                self.succeeded(tx, job, entity, (work, links), &sent)
                    .await?;
                jobs::complete(tx, job.id, token, &sent).await?;
                JobEnd::Done
            }
            Err(error)
                if error.class == FailureClass::NotFound
                    && matches!(work, Work::PushItem { .. })
                    && entity.monday_item_id.is_some() =>
            {
                self.item_gone(tx, job, token, entity, &error).await?
            }
            Err(error) => self.failed(tx, job, token, entity, work, &error).await?,
        };
        Ok((end, wrote))
    }

    /// Counts a committed outcome: the sync latency of a write the remote acknowledged (from the
    /// acceptance of the oldest event the job carries), or one more dead letter.
    fn count(&self, job: &JobRow, end: &JobEnd, wrote: bool) {
        match end {
            JobEnd::Done if wrote => {
                if let Some(accepted_at) = job.accepted_at {
                    let ms = u64::try_from(now_ms() - accepted_at).unwrap_or(0);
                    self.metrics
                        .sync_latency(job.target, Duration::from_millis(ms));
                }
            }
            JobEnd::Dead(_) => self.metrics.dead_lettered(job.target),
            _ => {}
        }
    }

    async fn succeeded(
        &self,
        tx: &mut Tx,
        job: &JobRow,
        entity: &EntityRow,
        (work, links): (&Work, &OrgLinks),
        sent: &Sent,
    ) -> LedgerResult<()> {
        let fields = |values: &BTreeMap<String, FieldValue>| {
            values.keys().cloned().collect::<Vec<_>>().join(", ")
        };
        let (reason, detail) = match (work, sent) {
            (
                Work::PushItem { values, .. },
                Sent::Item {
                    item_id, created, ..
                },
            ) => {
                self.item_pushed(tx, job, entity, values, links, sent)
                    .await?;
                let what = if *created { "created" } else { "updated" };
                let mut reason = format!("Monday item {item_id} {what}: {}", fields(values));
                let mapping = self.settings.mapping.for_kind(entity.kind);
                let written = mapping.with_org_items(values, links);
                for l in mapping.monday_column_values(&written, None).left_out {
                    reason.push_str(&format!("; {} left out: {}", l.field, l.reason.explain()));
                }
                (reason, Some(HistoryDetail::Sent(sent.clone())))
            }
            (Work::ArchiveItem, _) => (
                "Monday item archived".to_owned(),
                Some(HistoryDetail::Sent(sent.clone())),
            ),
            (Work::PatchNpd { values }, _) => {
                self.confirm_all(tx, entity, Side::Npd, values).await?;
                mark_synced(tx, entity).await?;
                (format!("NPD patched: {}", fields(values)), None)
            }
            (Work::WriteLink { monday_id }, _) => {
                (format!("monday_id {monday_id} written back to NPD"), None)
            }
            (Work::CreateNpdContact { values }, Sent::NpdCreated { npd_id }) => {
                entities::set_npd_id(tx, entity.id, *npd_id).await?;
                self.confirm_all(tx, entity, Side::Npd, values).await?;
                mark_synced(tx, entity).await?;
                // The item learns its NPD id: a forced push writes its npd_id column.
                let cause = Cause::job(job.priority, job.request_id.as_deref());
                outbox::ensure_forced_push(tx, &self.settings, entity, &cause).await?;
                (
                    format!("NPD contact {npd_id} created from the Monday item"),
                    None,
                )
            }
            _ => (format!("{}: nothing left to send", job.operation), None),
        };
        // NPD answered with the version its record now has: the event it sends for this write
        // is an echo, and any event older than it is stale (however late it arrives).
        if let Some(version) = sent.npd_version() {
            entities::record_npd_write(tx, entity.id, version).await?;
        }
        record(
            tx,
            entity.id,
            Origin::Job(job.id),
            HistoryKind::Sent,
            reason,
            detail,
        )
        .await
    }

    /// The item was created or updated: link it (and write the new link back to NPD, after,
    /// never before, it is committed here) and confirm the values.
    async fn item_pushed(
        &self,
        tx: &mut Tx,
        job: &JobRow,
        entity: &EntityRow,
        values: &BTreeMap<String, FieldValue>,
        links: &OrgLinks,
        sent: &Sent,
    ) -> LedgerResult<()> {
        let Sent::Item {
            item_id, board_id, ..
        } = *sent
        else {
            return Ok(());
        };
        let linked_now = entity.monday_item_id != Some(item_id);
        if linked_now {
            entities::set_link(tx, entity.id, Some(item_id), Some(board_id)).await?;
        }
        let cause = Cause::job(job.priority, job.request_id.as_deref());
        self.confirm_written(tx, entity, values, links, &cause)
            .await?;
        mark_synced(tx, entity).await?;
        if linked_now {
            let fresh = entities::find_by_id(tx, entity.id)
                .await?
                .unwrap_or_else(|| entity.clone());
            outbox::write_link_back(tx, &self.settings, &fresh, item_id, &cause).await?;
        }
        Ok(())
    }

    /// The linked item is gone: unlink, and let the retry create a new one.
    async fn item_gone(
        &self,
        tx: &mut Tx,
        job: &JobRow,
        token: i64,
        entity: &EntityRow,
        error: &ConnectorError,
    ) -> LedgerResult<JobEnd> {
        entities::set_link(tx, entity.id, None, None).await?;
        let reason = format!("Monday item is gone ({error}): a new item will be created");
        record(
            tx,
            entity.id,
            Origin::Job(job.id),
            HistoryKind::Unlinked,
            reason,
            None,
        )
        .await?;
        jobs::set_payload(tx, job.id, &JobPayload::forced()).await?;
        jobs::retry_later(tx, job.id, token, &error.to_string(), now_ms()).await?;
        Ok(JobEnd::RetryLater(Duration::ZERO))
    }

    /// A failed call: retried later, or moved to the dead letters, as the retry policy says.
    async fn failed(
        &self,
        tx: &mut Tx,
        job: &JobRow,
        token: i64,
        entity: &EntityRow,
        work: &Work,
        error: &ConnectorError,
    ) -> LedgerResult<JobEnd> {
        let (attempts, max) = (job.attempts, job.max_attempts);
        let verdict = self.policy.verdict(attempts, max, error, &mut rand::rng());
        match verdict {
            Verdict::RetryAfter(delay) => {
                let at = now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(0));
                let message = error.to_string();
                // A rate-limited request was not processed: its retry gets a new key.
                if error.is_rate_limited() {
                    jobs::retry_later_with_new_key(tx, job.id, token, &message, at).await?;
                } else {
                    jobs::retry_later(tx, job.id, token, &message, at).await?;
                }
                let reason = format!(
                    "{} attempt {} failed, retry in {} ms: {error}",
                    job.operation,
                    job.attempts,
                    delay.as_millis()
                );
                record(
                    tx,
                    entity.id,
                    Origin::Job(job.id),
                    HistoryKind::Failed,
                    reason,
                    None,
                )
                .await?;
                Ok(JobEnd::RetryLater(delay))
            }
            Verdict::Dead(reason) => {
                if let Some((side, values)) = work.field_values() {
                    // The values are no longer in flight.
                    update_fields(tx, entity, values, |state, value| {
                        abandon(state, side, value)
                    })
                    .await?;
                }
                jobs::bury(tx, job.id, token, &reason).await?;
                entities::set_status(tx, entity.id, EntityStatus::Failed, Some(&reason)).await?;
                let history = format!("{} moved to the dead letters: {reason}", job.operation);
                record(
                    tx,
                    entity.id,
                    Origin::Job(job.id),
                    HistoryKind::Dead,
                    history,
                    None,
                )
                .await?;
                Ok(JobEnd::Dead(reason))
            }
        }
    }

    /// The push landed: the fields it wrote are confirmed (and no longer left out); the ones left
    /// out of it (`monday_column_values`, with the organization links it was sent with) are
    /// recorded, and their pending writes dropped. A relation left out for an organization that
    /// has been linked since is queued again at once.
    async fn confirm_written(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        values: &BTreeMap<String, FieldValue>,
        links: &OrgLinks,
        cause: &Cause<'_>,
    ) -> LedgerResult<()> {
        let mapping = self.settings.mapping.for_kind(entity.kind);
        let left_out = mapping
            .monday_column_values(&mapping.with_org_items(values, links), None)
            .left_out;
        let mut written = values.clone();
        for l in &left_out {
            written.remove(&l.field);
            left_out::record(tx, entity.id, l).await?;
        }
        for field in written.keys() {
            left_out::clear(tx, entity.id, field, Side::Monday).await?;
        }
        self.confirm_all(tx, entity, Side::Monday, &written).await?;
        let dropped: BTreeMap<String, FieldValue> = values
            .iter()
            .filter(|(f, _)| !written.contains_key(*f))
            .map(|(f, v)| (f.clone(), v.clone()))
            .collect();
        update_fields(tx, entity, &dropped, |state, value| {
            abandon(state, Side::Monday, value)
        })
        .await?;
        let waiting = left_out
            .iter()
            .filter(|l| l.reason == OrganizationNotSynced);
        for l in waiting {
            let ids: Vec<NpdId> = NpdId::parse(&l.value).into_iter().collect();
            if relation::links_of_organizations(tx, &ids).await? != OrgLinks::default() {
                relation::queue_relation(tx, &self.settings, entity, &l.field, cause).await?;
            }
        }
        Ok(())
    }

    async fn confirm_all(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        side: Side,
        values: &BTreeMap<String, FieldValue>,
    ) -> LedgerResult<()> {
        update_fields(tx, entity, values, |state, value| {
            confirm(state, side, value)
        })
        .await
    }
}

/// Applies `step` to the state of each field in `values`, saving the ones that changed.
pub(super) async fn update_fields(
    tx: &mut Tx,
    entity: &EntityRow,
    values: &BTreeMap<String, FieldValue>,
    step: impl Fn(&FieldState, &FieldValue) -> FieldState,
) -> LedgerResult<()> {
    let fields = entities::load_fields(tx, entity.id).await?;
    for (field, value) in values {
        let state = fields.get(field).cloned().unwrap_or_default();
        let next = step(&state, value);
        if next != state {
            entities::save_field(tx, entity.id, field, &next).await?;
        }
    }
    Ok(())
}

/// After a successful write: `synced`, unless a conflict still waits for an admin.
async fn mark_synced(tx: &mut Tx, entity: &EntityRow) -> LedgerResult<()> {
    let next = if crate::ledger::conflicts::open_count(tx, entity.id).await? > 0 {
        EntityStatus::Conflict
    } else {
        EntityStatus::Synced
    };
    entities::set_status(tx, entity.id, next, None).await
}
