//! Push: an admin forces a full push of one NPD record to Monday.
//!
//! Owns: `Pusher`. It only enqueues work on the normal path (a forced `push_item` job ahead of
//! routine sync); it never calls Monday itself. A record the gateway has never seen is first
//! looked up with `GET` on NPD's API and recorded like an NPD event would be.
//! May import: std, tokio, serde_json, crate::{config, domain, ledger, connectors, sync}.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::connectors::ConnectorError;
use crate::connectors::npd::NpdClient;
use crate::domain::entity::{EntityKind, NpdId};
use crate::ledger::entities::{self, status};
use crate::ledger::jobs::state;
use crate::ledger::{LedgerError, Store};
use crate::sync::outbox::{self, ADMIN_PRIORITY};
use crate::sync::process::{OwnMondayUser, Processor, record};

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
    pub monday_id: Option<String>,
    pub message: String,
}

/// How a push ended, seen by `?wait=true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Synced,
    Failed,
    Pending,
}

impl PushOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PushOutcome::Synced => "synced",
            PushOutcome::Failed => "failed",
            PushOutcome::Pending => "pending",
        }
    }
}

#[derive(Clone)]
pub struct Pusher {
    settings: Arc<Settings>,
    store: Store,
    processor: Processor,
    npd: Option<NpdClient>,
}

impl Pusher {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        npd: Option<NpdClient>,
        own_monday_user: OwnMondayUser,
    ) -> Self {
        let processor = Processor::new(Arc::clone(&settings), store.clone(), own_monday_user);
        Pusher {
            settings,
            store,
            processor,
            npd,
        }
    }

    /// Queues a forced push of `kind` `id` to Monday on behalf of `actor`.
    pub async fn push(
        &self,
        kind: EntityKind,
        id: NpdId,
        actor: &str,
        request_id: Option<&str>,
    ) -> Result<PushQueued, PushError> {
        if self.settings.monday.api_token.is_none() || self.settings.board_for(kind).is_none() {
            let board_var = match kind {
                EntityKind::Contact => "MONDAY_CONTACTS_BOARD_ID",
                EntityKind::Organization => "MONDAY_ORGANIZATIONS_BOARD_ID",
            };
            return Err(PushError::NotConfigured(format!(
                "Monday is not configured for {}: MONDAY_API_TOKEN and {board_var} are needed",
                kind.plural()
            )));
        }
        // A record the gateway never saw: ask NPD (outside any transaction).
        let fetched = match self.store.entity_by_npd(kind, id).await? {
            Some(_) => None,
            None => {
                let npd = self.npd.as_ref().ok_or(PushError::NotFound { kind, id })?;
                let data = npd.get(kind, id).await.map_err(PushError::Lookup)?;
                Some(data.ok_or(PushError::NotFound { kind, id })?)
            }
        };
        let mut tx = self.store.begin().await?;
        let entity = match entities::find_by_npd(&mut tx, kind, id).await? {
            Some(e) => entities::lock(&mut tx, e.id).await?.unwrap_or(e),
            None => {
                let snapshot = fetched.unwrap_or(serde_json::Value::Null);
                let version = snapshot
                    .get("version")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0);
                let updated_at = snapshot
                    .get("updated_at")
                    .and_then(serde_json::Value::as_str)
                    .and_then(|s| {
                        time::OffsetDateTime::parse(
                            s,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    })
                    .map(|t| {
                        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
                    });
                let entity = self
                    .processor
                    .insert_npd_entity(&mut tx, kind, id, &snapshot)
                    .await?;
                record(
                    &mut tx,
                    &entity,
                    None,
                    None,
                    "received",
                    format!("looked up in NPD for an admin push by {actor}"),
                    None,
                )
                .await?;
                self.processor
                    .apply_npd_snapshot(
                        &mut tx,
                        &entity,
                        kind,
                        &snapshot,
                        version,
                        updated_at,
                        None,
                        ADMIN_PRIORITY,
                        request_id,
                    )
                    .await?;
                entities::find_by_id(&mut tx, entity.id)
                    .await?
                    .unwrap_or(entity)
            }
        };
        if entity.status == status::DELETED {
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
            outbox::ensure_forced_push(&mut tx, &entity, ADMIN_PRIORITY, request_id).await?;
        record(
            &mut tx,
            &entity,
            None,
            Some(job_id),
            "requested",
            format!("forced push to Monday requested by {actor}"),
            None,
        )
        .await?;
        tx.commit().await?;
        let message = match &entity.monday_item_id {
            Some(item) => format!("push of every synced field to Monday item {item} queued"),
            None => "push queued: a Monday item will be created".to_owned(),
        };
        Ok(PushQueued {
            job_id: Some(job_id),
            monday_id: entity.monday_item_id,
            message,
        })
    }

    /// Waits up to `timeout` for a push job to end; returns its outcome and the entity's link.
    pub async fn wait(
        &self,
        kind: EntityKind,
        id: NpdId,
        job_id: i64,
        timeout: Duration,
    ) -> Result<(PushOutcome, Option<String>), PushError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let outcome = loop {
            let job = self.store.job(job_id).await?;
            match job.as_ref().map(|j| j.state.as_str()) {
                Some(state::DONE) => break PushOutcome::Synced,
                Some(state::DEAD) | None => break PushOutcome::Failed,
                _ if tokio::time::Instant::now() >= deadline => break PushOutcome::Pending,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let link = self
            .store
            .entity_by_npd(kind, id)
            .await?
            .and_then(|e| e.monday_item_id);
        Ok((outcome, link))
    }
}
