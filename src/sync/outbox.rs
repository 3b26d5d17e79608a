//! How outbound operations are enqueued.
//!
//! Owns: `ensure` (enqueue unless an unsent job of the same entity and operation exists: that job
//! will carry the new values too, since a job's payload is computed from the field states when it
//! is first sent), forced pushes, the write-back of a new link, the npd_id column write of a
//! backfill's link (with the relations waiting for a newly linked organization), and the retry budget of new jobs (`[sync] max_attempts`, stored with each
//! job: the limit the dispatcher and the API go by).
//! The operations themselves are `domain::job::Operation`.
//! May import: crate::{config, domain, ledger, sync}.

use crate::config::Settings;
use crate::domain::entity::MondayItemId;
use crate::domain::job::{JobPayload, Operation};
use crate::ledger::LedgerResult;
use crate::ledger::entities::EntityRow;
use crate::ledger::jobs::{self, NewJob};
use crate::ledger::tx::Tx;
use crate::sync::history::Cause;

/// Enqueues `operation` for `entity` unless an unsent job for it already exists. Returns the job id.
pub async fn ensure(
    tx: &mut Tx,
    settings: &Settings,
    entity: &EntityRow,
    operation: Operation,
    cause: &Cause<'_>,
) -> LedgerResult<i64> {
    if let Some(job) = jobs::find_unsent(tx, entity.id, operation).await? {
        if let Some(at) = cause.accepted_at {
            jobs::note_accepted(tx, job.id, at).await?;
        }
        return Ok(job.id);
    }
    enqueue(
        tx,
        settings,
        entity,
        operation,
        JobPayload::default(),
        cause,
    )
    .await
}

/// Enqueues a new job unconditionally.
pub async fn enqueue(
    tx: &mut Tx,
    settings: &Settings,
    entity: &EntityRow,
    operation: Operation,
    payload: JobPayload,
    cause: &Cause<'_>,
) -> LedgerResult<i64> {
    jobs::enqueue(
        tx,
        &NewJob {
            entity_id: entity.id,
            operation,
            payload,
            priority: cause.priority,
            max_attempts: settings.sync.max_attempts,
            request_id: cause.request_id,
            accepted_at: cause.accepted_at,
        },
    )
    .await
}

/// Whether the entity has an open (pending or leased) job of this operation.
pub async fn has_open(tx: &mut Tx, entity_id: i64, operation: Operation) -> LedgerResult<bool> {
    Ok(jobs::open_jobs(tx, entity_id)
        .await?
        .iter()
        .any(|j| j.operation == operation))
}

/// Enqueues a forced push (every synced field) for `entity`, or turns its unsent push into one.
pub async fn ensure_forced_push(
    tx: &mut Tx,
    settings: &Settings,
    entity: &EntityRow,
    cause: &Cause<'_>,
) -> LedgerResult<i64> {
    let forced = |_: JobPayload| JobPayload::forced();
    let id = amend_push(tx, settings, entity, cause, forced).await?;
    jobs::raise_priority(tx, id, cause.priority).await?;
    Ok(id)
}

/// Amends the entity's unsent push with `amend` (of its payload), or queues a new push whose
/// payload is `amend` of the default one; the push's id.
async fn amend_push(
    tx: &mut Tx,
    settings: &Settings,
    entity: &EntityRow,
    cause: &Cause<'_>,
    amend: impl Fn(JobPayload) -> JobPayload,
) -> LedgerResult<i64> {
    if let Some(job) = jobs::find_unsent(tx, entity.id, Operation::PushItem).await? {
        jobs::set_payload(tx, job.id, &amend(job.payload)).await?;
        return Ok(job.id);
    }
    let payload = amend(JobPayload::default());
    enqueue(tx, settings, entity, Operation::PushItem, payload, cause).await
}

/// Queues the write-back of a new link to NPD (`PATCH … {"monday_id"}`), unless NPD already holds
/// it, the record has no NPD id, or NPD's API is not configured. Called wherever an entity gets
/// linked, after the link is written in the same transaction; a newly linked organization's
/// waiting contacts get their relation written too (`relation::write_waiting_relations`).
pub async fn write_link_back(
    tx: &mut Tx,
    settings: &Settings,
    entity: &EntityRow,
    item: MondayItemId,
    cause: &Cause<'_>,
) -> LedgerResult<()> {
    crate::sync::relation::write_waiting_relations(tx, settings, entity, cause).await?;
    let npd_holds = entity.npd_snapshot.as_ref().and_then(|r| r.monday_id);
    if entity.npd_id.is_none() || settings.npd.api_url.is_none() || npd_holds == Some(item) {
        return Ok(());
    }
    // Bookkeeping, not the sync of anyone's edit: it is not measured as sync latency, whichever
    // delivery made the link (the create's own answer, or its webhook arriving first).
    let cause = Cause {
        accepted_at: None,
        ..*cause
    };
    ensure(tx, settings, entity, Operation::WriteLink, &cause).await?;
    Ok(())
}

/// Makes the entity's next push write its NPD id into the item's npd_id column too (a backfill
/// linked an item whose column was empty): its unsent push carries it, or a new push does.
pub async fn ensure_npd_id_write(
    tx: &mut Tx,
    settings: &Settings,
    entity: &EntityRow,
    cause: &Cause<'_>,
) -> LedgerResult<i64> {
    let with_npd_id = |payload: JobPayload| JobPayload {
        write_npd_id: true,
        ..payload
    };
    amend_push(tx, settings, entity, cause, with_npd_id).await
}
