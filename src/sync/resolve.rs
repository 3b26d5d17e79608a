//! Resolve: an admin settles a conflict (a field both sides changed under the `manual` policy).
//!
//! Owns: `resolve_conflict`. The chosen value (NPD's, Monday's, or one given by the admin, in the
//! field's canonical form) becomes each side's pending write where it differs, the writes are
//! enqueued on the normal path, and the conflict closes, all in one transaction.
//! May import: std, crate::{config, domain, metrics, ledger, sync}.

use std::sync::Arc;

use crate::config::Settings;
use crate::domain::entity::Side;
use crate::domain::job::Operation;
use crate::domain::mapping::{ColumnType, FieldValue};
use crate::domain::reconcile;
use crate::domain::state::{ConflictStatus, EntityStatus, HistoryKind, Resolution};
use crate::ledger::conflicts::{self, ConflictRow};
use crate::ledger::entities;
use crate::ledger::{LedgerError, Store};
use crate::metrics::Metrics;
use crate::sync::history::{Cause, record};
use crate::sync::outbox;
use crate::sync::push::Requester;

/// What the admin chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    Npd,
    Monday,
    /// A value of the admin's own (None clears the field on both sides).
    Value(FieldValue),
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no conflict {0}")]
    NotFound(i64),
    #[error("conflict {0} is already resolved")]
    AlreadyResolved(i64),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// A settled conflict: the value chosen and the sides it is being written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub conflict: ConflictRow,
    pub value: FieldValue,
    pub pushed_to: Vec<Side>,
}

/// Settles conflict `id` with `take` on behalf of `actor`: the chosen value is queued for each
/// side that does not hold it, and the conflict closes, in one transaction.
pub async fn resolve_conflict(
    store: &Store,
    settings: &Arc<Settings>,
    metrics: &Metrics,
    id: i64,
    take: Take,
    by: Requester<'_>,
) -> Result<Resolved, ResolveError> {
    let mut tx = store.begin().await?;
    let conflict = conflicts::find(&mut tx, id)
        .await?
        .ok_or(ResolveError::NotFound(id))?;
    if conflict.status != ConflictStatus::Open {
        tx.rollback().await?;
        return Err(ResolveError::AlreadyResolved(id));
    }
    let entity = entities::lock(&mut tx, conflict.entity_id)
        .await?
        .ok_or_else(|| LedgerError::Corrupt(format!("conflict {id} names no entity")))?;
    let fields = entities::load_fields(&mut tx, entity.id).await?;
    let state = fields.get(&conflict.field).cloned().unwrap_or_default();
    let (resolution, value) = match take {
        Take::Npd => (Resolution::Npd, state.npd.clone()),
        Take::Monday => (Resolution::Monday, state.monday.clone()),
        Take::Value(v) => {
            let column_type = settings
                .mapping
                .for_kind(entity.kind)
                .column_type_of(&conflict.field)
                .unwrap_or(ColumnType::Text);
            (
                Resolution::Value,
                v.and_then(|raw| column_type.canonical(&raw)),
            )
        }
    };
    let (pushes, next) = reconcile::resolve(&state, &value);
    if next != state {
        entities::save_field(&mut tx, entity.id, &conflict.field, &next).await?;
    }
    let cause = Cause::admin(by.request_id);
    let mut pushed_to = Vec::new();
    for (side, _) in &pushes {
        let operation = match side {
            Side::Monday => Operation::PushItem,
            Side::Npd => Operation::PatchNpd,
        };
        outbox::ensure(&mut tx, settings, &entity, operation, &cause).await?;
        pushed_to.push(*side);
    }
    conflicts::close(&mut tx, id, resolution, value.as_deref(), by.actor).await?;
    let still_open = conflicts::open_count(&mut tx, entity.id).await?;
    if still_open == 0 && entity.status == EntityStatus::Conflict {
        entities::set_status(&mut tx, entity.id, EntityStatus::Pending, None).await?;
    }
    let reason = describe(&conflict.field, by.actor, resolution, &value, &pushed_to);
    record(
        &mut tx,
        entity.id,
        &cause,
        HistoryKind::Resolved,
        reason,
        None,
    )
    .await?;
    let conflict = conflicts::find(&mut tx, id).await?.unwrap_or(conflict);
    tx.commit().await?;
    metrics.conflict_resolved();
    Ok(Resolved {
        conflict,
        value,
        pushed_to,
    })
}

/// The history sentence of a resolution.
fn describe(
    field: &str,
    actor: &str,
    resolution: Resolution,
    value: &FieldValue,
    pushed_to: &[Side],
) -> String {
    let sides = pushed_to
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" and ");
    format!(
        "conflict on {field} resolved by {actor}: took {resolution} ({}){}",
        value.as_deref().unwrap_or("<empty>"),
        if sides.is_empty() {
            String::new()
        } else {
            format!(", written to {sides}")
        }
    )
}
