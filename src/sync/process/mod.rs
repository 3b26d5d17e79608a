//! Process: take inbox events in arrival order, reconcile each against the ledger, and store in ONE
//! transaction the decision (history, field states, conflicts, entity), the outbox jobs it implies,
//! and the event's outcome.
//!
//! Owns: `Processor` (batches, lane claiming, one failed event never blocking the rest) and
//! `Outcome`. By concern: `npd` (an NPD snapshot or delete into per-field changes), `monday` (a
//! Monday delivery: links, item reports, per-field changes), `merge` (running
//! `domain::reconcile::decide` on each change and queuing the writes it implies), `keys` (the
//! entity keys a transaction holds before it decides on an event).
//! Processing runs in parallel by lane: each inbox row has a lane from its routing key (NPD record,
//! Monday item); a processing transaction claims lanes (PostgreSQL advisory locks, skipped when
//! another transaction holds them) and takes their oldest events, so one record's versions and one
//! item's deliveries are processed in inbox order, while other lanes run in other tasks and
//! replicas. Before an event touches an entity its transaction try-locks the entity's natural
//! keys, so no two transactions ever decide on one entity at once; a busy key stops that lane's
//! part of the batch there (the rest of the lane waits, in order), and a collision with a concurrent transaction (a unique violation, a deadlock) is
//! retried, never recorded as a failed event. SQLite's writes are serial: there the batch is
//! simply the oldest events. It is pure database work; the remote calls happen in `dispatch`, in
//! parallel. Outbound writes go through `outbox`: a change joins an unsent job of its entity when
//! there is one (coalescing), so a burst of edits becomes one write.
//! May import: std, tracing, crate::{config, domain, metrics, ledger, sync}.

mod keys;
mod merge;
mod monday;
mod npd;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::config::Settings;
use crate::domain::entity::{EntityKind, Side};
use crate::domain::event::{MondayDelivery, NpdEvent};
use crate::domain::state::{HistoryKind, InboxOutcome};
use crate::ledger::entities::{self, EntityRow};
use crate::ledger::inbox::{self, InboxRow};
use crate::ledger::tx::Tx;
use crate::ledger::{LedgerError, LedgerResult, Store};
use crate::metrics::Metrics;
use crate::sync::history::{Cause, record};

pub(crate) use merge::Merge;

/// The most lanes one processing transaction claims, so that several share the inbox.
const MAX_LANES: usize = 16;

/// What became of one inbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub outcome: InboxOutcome,
    pub detail: String,
    /// Conflicts the event opened (counted once its transaction commits).
    pub conflicts_opened: u64,
}

impl Outcome {
    pub fn new(outcome: InboxOutcome, detail: impl Into<String>) -> Self {
        Outcome {
            outcome,
            detail: detail.into(),
            conflicts_opened: 0,
        }
    }
}

/// Records `reason` in the entity's history, as the kind that matches `outcome`, and returns that
/// outcome: the end of every path that stops before the merge.
async fn noted(
    tx: &mut Tx,
    entity: &EntityRow,
    cause: &Cause<'_>,
    outcome: InboxOutcome,
    reason: String,
) -> LedgerResult<Outcome> {
    noted_as(
        tx,
        entity,
        cause,
        HistoryKind::from(outcome),
        outcome,
        reason,
    )
    .await
}

/// `noted`, recorded as `kind`.
async fn noted_as(
    tx: &mut Tx,
    entity: &EntityRow,
    cause: &Cause<'_>,
    kind: HistoryKind,
    outcome: InboxOutcome,
    reason: String,
) -> LedgerResult<Outcome> {
    record(tx, entity.id, cause, kind, reason.clone(), None).await?;
    Ok(Outcome::new(outcome, reason))
}

/// The Monday user the gateway's API token acts as, once known (configured, or learned with
/// `me { id }`). Webhooks it authored are the gateway's own writes coming back.
#[derive(Debug, Clone, Default)]
pub struct OwnMondayUser(Arc<AtomicI64>);

impl OwnMondayUser {
    pub fn set(&self, id: i64) {
        self.0.store(id, Ordering::SeqCst);
    }

    pub fn get(&self) -> Option<i64> {
        Some(self.0.load(Ordering::SeqCst)).filter(|id| *id != 0)
    }
}

/// The processing use case.
#[derive(Debug, Clone)]
pub struct Processor {
    settings: Arc<Settings>,
    store: Store,
    own_monday_user: OwnMondayUser,
    metrics: Metrics,
}

impl Processor {
    pub fn new(settings: Arc<Settings>, store: Store, own_monday_user: OwnMondayUser) -> Self {
        if let Some(id) = settings.monday.integration_user_id {
            own_monday_user.set(id);
        }
        Processor {
            settings,
            store,
            own_monday_user,
            metrics: Metrics::default(),
        }
    }

    /// Counts what this processor commits (outcomes, echoes, conflicts) in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The metrics this processor counts in (drift scans count their repairs here:
    /// `processor.metrics().drift_repaired(side)`).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Processes up to `limit` unprocessed events in one transaction. Returns how many were
    /// processed (0 when there is nothing to do, or other transactions hold what there is). An
    /// event whose processing fails for a reason other than the store being unreachable or a
    /// concurrent transaction is marked `failed` with the error, alone, so it cannot block the
    /// events behind it.
    pub async fn process_batch(&self, limit: i64) -> LedgerResult<usize> {
        match self.try_batch(limit).await {
            Ok(n) => Ok(n),
            Err(e @ LedgerError::Unavailable(_)) => Err(e),
            Err(e) if e.is_conflict() => {
                tracing::info!(error = %e, "a batch met a concurrent transaction; its events are retried");
                Ok(0)
            }
            Err(e) => {
                tracing::warn!(error = %e, "a batch failed; processing its events one at a time");
                self.one_at_a_time(limit).await
            }
        }
    }

    async fn try_batch(&self, limit: i64) -> LedgerResult<usize> {
        let mut tx = self.store.begin().await?;
        let events = inbox::claim_lanes(&mut tx, limit, MAX_LANES).await?;
        let mut outcomes = Vec::with_capacity(events.len());
        // Lanes stopped at an event whose entity another transaction holds: the rest of such a
        // lane waits for the next round, in order; other lanes go on.
        let mut stopped = HashSet::new();
        for event in &events {
            if stopped.contains(&event.lane) {
                continue;
            }
            if !self.claim_keys(&mut tx, event).await? {
                stopped.insert(event.lane);
                continue;
            }
            outcomes.push((event.source, self.process_and_mark(&mut tx, event).await?));
        }
        if outcomes.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        tx.commit().await?;
        for (source, outcome) in &outcomes {
            self.count(*source, outcome);
        }
        Ok(outcomes.len())
    }

    /// Counts one committed outcome.
    fn count(&self, source: Side, outcome: &Outcome) {
        self.metrics.event_processed(source, outcome.outcome);
        if outcome.conflicts_opened > 0 {
            self.metrics.conflicts_opened(outcome.conflicts_opened);
        }
    }

    async fn one_at_a_time(&self, limit: i64) -> LedgerResult<usize> {
        let mut done = 0;
        for _ in 0..limit {
            let mut tx = self.store.begin().await?;
            let Some(event) = inbox::claim_lanes(&mut tx, 1, 1).await?.pop() else {
                tx.rollback().await?;
                break;
            };
            if !self.claim_keys(&mut tx, &event).await? {
                tx.rollback().await?;
                break;
            }
            match self.process_and_mark(&mut tx, &event).await {
                Ok(outcome) => {
                    tx.commit().await?;
                    self.count(event.source, &outcome);
                }
                Err(e @ LedgerError::Unavailable(_)) => return Err(e),
                Err(e) if e.is_conflict() => {
                    tx.rollback().await?;
                    break;
                }
                Err(e) => {
                    tx.rollback().await?;
                    self.mark_failed(&event, &e).await?;
                }
            }
            done += 1;
        }
        Ok(done)
    }

    /// Marks an event whose processing failed, in a transaction of its own that holds its lane
    /// (when another transaction holds the lane, that one meets the event and decides).
    async fn mark_failed(&self, event: &InboxRow, error: &LedgerError) -> LedgerResult<()> {
        tracing::error!(inbox.id = event.id, error = %error, "event could not be processed; marked failed");
        let mut tx = self.store.begin().await?;
        if !inbox::try_lock_lane(&mut tx, event.lane).await? {
            return tx.rollback().await;
        }
        let detail = format!("processing failed: {error}");
        inbox::mark_processed(&mut tx, event.id, InboxOutcome::Failed, Some(&detail)).await?;
        tx.commit().await?;
        self.count(event.source, &Outcome::new(InboxOutcome::Failed, detail));
        Ok(())
    }

    async fn process_and_mark(&self, tx: &mut Tx, event: &InboxRow) -> LedgerResult<Outcome> {
        let outcome = self.process_one(tx, event).await?;
        tracing::debug!(
            inbox.id = event.id,
            inbox.source = %event.source,
            inbox.event_type = %event.event_type,
            outcome = %outcome.outcome,
            "{}",
            outcome.detail
        );
        inbox::mark_processed(tx, event.id, outcome.outcome, Some(&outcome.detail)).await?;
        Ok(outcome)
    }

    async fn process_one(&self, tx: &mut Tx, row: &InboxRow) -> LedgerResult<Outcome> {
        let unreadable = |e: &dyn std::fmt::Display| {
            Outcome::new(
                InboxOutcome::Failed,
                format!("stored payload no longer parses: {e}"),
            )
        };
        match row.source {
            Side::Npd => match NpdEvent::parse(row.payload.as_bytes()) {
                Ok(event) => self.process_npd(tx, row, &event).await,
                Err(e) => Ok(unreadable(&e)),
            },
            Side::Monday => match MondayDelivery::parse(row.payload.as_bytes()) {
                Ok(MondayDelivery::Event(event)) => self.process_monday(tx, row, &event).await,
                Ok(_) => Ok(Outcome::new(
                    InboxOutcome::Ignored,
                    "a challenge is not an event",
                )),
                Err(e) => Ok(unreadable(&e)),
            },
        }
    }

    /// Whether writes to Monday can be made for `kind` (a token and a board).
    fn monday_ready(&self, kind: EntityKind) -> bool {
        self.settings.monday.api_token.is_some() && self.settings.board_for(kind).is_some()
    }
}

/// Takes the entity's lock and returns its row as of now.
async fn locked(tx: &mut Tx, entity: EntityRow) -> LedgerResult<EntityRow> {
    Ok(entities::lock(tx, entity.id).await?.unwrap_or(entity))
}
