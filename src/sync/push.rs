//! Push: an admin forces a full push of one NPD record to Monday.
//!
//! Owns: `Pusher`. It only enqueues work on the normal path (a forced `push_item` job ahead of
//! routine sync); it never calls Monday itself. A record the gateway has never seen is first
//! looked up with `GET` on NPD's API and recorded like an NPD event would be (through the same
//! `Processor` that handles events).
//! May import: std, tokio, crate::{config, connectors, domain, ledger, sync}.

use std::sync::Arc;
use std::time::Duration;

use crate::connectors::{ConnectorError, NpdApi};
use crate::domain::entity::{EntityKind, MondayItemId, NpdId, unix_ms};
use crate::domain::names::named_enum;
use crate::domain::record::NpdRecord;
use crate::domain::state::{EntityStatus, HistoryKind, JobState};
use crate::ledger::entities::{self, EntityRow};
use crate::ledger::tx::Tx;
use crate::ledger::{LedgerError, Store};
use crate::sync::history::{Cause, Origin, record};
use crate::sync::outbox;
use crate::sync::process::Processor;

/// Why a push could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    NotConfigured(String),
    #[error("{kind} {id} is unknown to the gateway and to NPD")]
    NotFound { kind: EntityKind, id: NpdId },
    #[error("{kind} {id} is deleted in NPD")]
    Deleted { kind: EntityKind, id: NpdId },
    #[error("NPD could not be asked about the record: {0}")]
    Lookup(ConnectorError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// A queued (or declined) push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushQueued {
    /// The push job, None when nothing was queued (sync disabled in NPD).
    pub job_id: Option<i64>,
    pub monday_id: Option<MondayItemId>,
    pub message: String,
}

named_enum! {
    /// How a push ended, seen by `?wait=true`.
    pub enum PushOutcome ("push outcome") {
        /// The push job is done: Monday holds the values.
        Synced = "synced",
        /// The push job went to the dead letters.
        Failed = "failed",
        /// Still queued or in flight when the wait ended.
        Pending = "pending",
    }
}

/// Who asked for a push, and through which request.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub actor: &'a str,
    pub request_id: Option<&'a str>,
}

#[derive(Clone)]
pub struct Pusher {
    processor: Processor,
    npd: Option<Arc<dyn NpdApi>>,
}

impl Pusher {
    pub fn new(processor: Processor, npd: Option<Arc<dyn NpdApi>>) -> Self {
        Pusher { processor, npd }
    }

    fn store(&self) -> &Store {
        self.processor.store()
    }

    /// Queues a forced push of `kind` `id` to Monday on behalf of `by`.
    pub async fn push(
        &self,
        kind: EntityKind,
        id: NpdId,
        by: Requester<'_>,
    ) -> Result<PushQueued, PushError> {
        self.check_configured(kind)?;
        // A record the gateway never saw: ask NPD (outside any transaction).
        let fetched = match self.store().entity_by_npd(kind, id).await? {
            Some(_) => None,
            None => Some(self.look_up(kind, id).await?),
        };
        let cause = Cause::admin(by.request_id);
        let mut tx = self.store().begin().await?;
        let entity = match entities::find_by_npd(&mut tx, kind, id).await? {
            Some(e) => entities::lock(&mut tx, e.id).await?.unwrap_or(e),
            None => {
                let record = fetched.ok_or(PushError::NotFound { kind, id })?;
                self.record_fetched(&mut tx, kind, &record, by, &cause)
                    .await?
            }
        };
        if entity.status == EntityStatus::Deleted {
            tx.rollback().await?;
            return Err(PushError::Deleted { kind, id });
        }
        if !entity.sync_enabled {
            tx.rollback().await?;
            return Ok(PushQueued {
                job_id: None,
                monday_id: entity.monday_item_id,
                message: "sync_enabled is false in NPD: nothing is pushed".into(),
            });
        }
        let job_id =
            outbox::ensure_forced_push(&mut tx, self.processor.settings(), &entity, &cause).await?;
        let reason = format!("forced push to Monday requested by {}", by.actor);
        record(
            &mut tx,
            entity.id,
            Origin::Job(job_id),
            HistoryKind::Requested,
            reason,
            None,
        )
        .await?;
        tx.commit().await?;
        let message = match entity.monday_item_id {
            Some(item) => format!("push of every synced field to Monday item {item} queued"),
            None => "push queued: a Monday item will be created".to_owned(),
        };
        Ok(PushQueued {
            job_id: Some(job_id),
            monday_id: entity.monday_item_id,
            message,
        })
    }

    fn check_configured(&self, kind: EntityKind) -> Result<(), PushError> {
        let settings = self.processor.settings();
        if settings.monday.api_token.is_some() && settings.board_for(kind).is_some() {
            return Ok(());
        }
        let board_var = match kind {
            EntityKind::Contact => "MONDAY_CONTACTS_BOARD_ID",
            EntityKind::Organization => "MONDAY_ORGANIZATIONS_BOARD_ID",
        };
        Err(PushError::NotConfigured(format!(
            "Monday is not configured for {}: MONDAY_API_TOKEN and {board_var} are needed",
            kind.plural()
        )))
    }

    async fn look_up(&self, kind: EntityKind, id: NpdId) -> Result<NpdRecord, PushError> {
        let npd = self.npd.as_ref().ok_or(PushError::NotFound { kind, id })?;
        npd.get(kind, id)
            .await
            .map_err(PushError::Lookup)?
            .ok_or(PushError::NotFound { kind, id })
    }

    /// Records a record fetched from NPD like an event would be, and returns its entity.
    async fn record_fetched(
        &self,
        tx: &mut Tx,
        kind: EntityKind,
        npd_record: &NpdRecord,
        by: Requester<'_>,
        cause: &Cause<'_>,
    ) -> Result<EntityRow, PushError> {
        let entity = self
            .processor
            .insert_npd_entity(tx, kind, npd_record)
            .await?;
        let reason = format!("looked up in NPD for an admin push by {}", by.actor);
        record(tx, entity.id, cause, HistoryKind::Received, reason, None).await?;
        let at_ms = npd_record.updated_at.map(unix_ms);
        self.processor
            .apply_npd_snapshot(tx, &entity, npd_record, at_ms, cause)
            .await?;
        Ok(entities::find_by_id(tx, entity.id).await?.unwrap_or(entity))
    }

    /// Waits up to `timeout` for a push job to end; returns its outcome and the entity's link.
    pub async fn wait(
        &self,
        kind: EntityKind,
        id: NpdId,
        job_id: i64,
        timeout: Duration,
    ) -> Result<(PushOutcome, Option<MondayItemId>), PushError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let outcome = loop {
            match self.store().job(job_id).await?.map(|j| j.state) {
                Some(JobState::Done) => break PushOutcome::Synced,
                Some(JobState::Dead) | None => break PushOutcome::Failed,
                _ if tokio::time::Instant::now() >= deadline => break PushOutcome::Pending,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let link = self
            .store()
            .entity_by_npd(kind, id)
            .await?
            .and_then(|e| e.monday_item_id);
        Ok((outcome, link))
    }
}
