//! The merge step of processing: every changed field through `domain::reconcile::decide`, the
//! new field states saved, conflicts opened, the writes queued, one history entry written, and
//! the event's outcome summarised.
//!
//! Owns: `Merge` (one event's changes and what caused them), `Processor::merge`, `summarise`.
//! May import: std, crate::{domain, ledger, sync}.

use std::collections::BTreeMap;

use crate::domain::entity::Side;
use crate::domain::job::Operation;
use crate::domain::mapping::FieldValue;
use crate::domain::reconcile::{Change, ConflictPolicy, Decision, decide};
use crate::domain::state::{EntityStatus, HistoryDetail, HistoryKind, InboxOutcome};
use crate::ledger::LedgerResult;
use crate::ledger::conflicts::{self, ConflictValues};
use crate::ledger::entities::{self, EntityRow};
use crate::ledger::tx::Tx;
use crate::sync::history::{Cause, record};
use crate::sync::outbox;
use crate::sync::process::{Outcome, Processor};

/// One event's changes to one entity, ready for the merge.
#[derive(Debug, Clone)]
pub(crate) struct Merge<'a> {
    /// The side the changes come from.
    pub side: Side,
    pub changes: Vec<(String, FieldValue)>,
    /// Source time of the changes (NPD `updated_at`, Monday `changedAt`), unix ms.
    pub at_ms: Option<i64>,
    pub cause: Cause<'a>,
    /// Names a write of the gateway that the event reflects: when no field changed, the event is
    /// an echo; for a Monday delivery (authored by the gateway's own user), no field may be read
    /// as changed at all.
    pub echo_hint: Option<&'static str>,
    /// Settles conflicts with this policy instead of the configured one (a backfill's
    /// `initial_winner`).
    pub policy: Option<ConflictPolicy>,
}

const NOTHING_CHANGED: &str = "no synced field changed";

impl Processor {
    /// Runs the merge for each changed field, saves the new field states, opens conflicts,
    /// enqueues the writes, writes one history entry, and says what became of the event.
    pub(crate) async fn merge(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        merge: Merge<'_>,
    ) -> LedgerResult<Outcome> {
        let (merge, ignored) = self.one_way(tx, entity, merge).await?;
        if merge.changes.is_empty()
            && let Some(reason) = ignored
        {
            return Ok(Outcome::new(InboxOutcome::Ignored, reason));
        }
        let (decisions, opened) = self.decide_fields(tx, entity, &merge).await?;
        self.queue_writes(tx, entity, &merge, &decisions).await?;
        let mut outcome = summarise(merge.side, &decisions);
        outcome.conflicts_opened = opened;
        if let Some(hint) = merge.echo_hint
            && outcome.detail == NOTHING_CHANGED
        {
            outcome = Outcome::new(InboxOutcome::Echo, hint);
        }
        let detail = decisions
            .iter()
            .map(|(f, d)| (f.clone(), describe(d)))
            .collect::<BTreeMap<String, String>>();
        let kind = match outcome.outcome {
            InboxOutcome::Echo | InboxOutcome::Stale | InboxOutcome::Conflict => {
                HistoryKind::from(outcome.outcome)
            }
            _ => HistoryKind::Decided,
        };
        record(
            tx,
            entity.id,
            &merge.cause,
            kind,
            outcome.detail.clone(),
            Some(HistoryDetail::Decisions(detail)),
        )
        .await?;
        Ok(outcome)
    }

    /// Takes out of `merge` the fields whose `direction` does not flow from its side: the owning
    /// side is the only one that can change them. Those whose value differs from what the ledger
    /// knows of that side are recorded as ignored (one history entry), and the reason returned.
    async fn one_way<'a>(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        mut merge: Merge<'a>,
    ) -> LedgerResult<(Merge<'a>, Option<String>)> {
        let mapping = self.settings.mapping.for_kind(entity.kind);
        let side = merge.side;
        let (kept, refused): (Vec<_>, Vec<_>) = merge
            .changes
            .into_iter()
            .partition(|(field, _)| mapping.direction_of(field).accepts_from(side));
        merge.changes = kept;
        if refused.is_empty() {
            return Ok((merge, None));
        }
        // What that side held before: NPD's previous snapshot (NPD sends every field each time),
        // the ledger's view of Monday (its deliveries name the changed column).
        let known: BTreeMap<String, FieldValue> = match side {
            Side::Npd => entity
                .npd_snapshot
                .as_ref()
                .map(|r| mapping.npd_values(r))
                .unwrap_or_default(),
            Side::Monday => entities::load_fields(tx, entity.id)
                .await?
                .into_iter()
                .map(|(f, s)| (f, s.monday))
                .collect(),
        };
        let changed: Vec<String> = refused
            .into_iter()
            .filter(|(field, value)| known.get(field).cloned().flatten() != *value)
            .map(|(field, _)| {
                let direction = mapping.direction_of(&field);
                format!("{field} (direction {direction})")
            })
            .collect();
        if changed.is_empty() {
            return Ok((merge, None));
        }
        let reason = format!(
            "{side}'s change of one-way field(s) {} ignored: only the other side can change them, and nothing is written back",
            changed.join(", ")
        );
        record(
            tx,
            entity.id,
            &merge.cause,
            HistoryKind::Ignored,
            reason.clone(),
            None,
        )
        .await?;
        Ok((merge, Some(reason)))
    }

    /// Decides each changed field, saving its new state and opening its conflict; also says how
    /// many conflicts are new.
    async fn decide_fields(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        merge: &Merge<'_>,
    ) -> LedgerResult<(Vec<(String, Decision)>, u64)> {
        let fields = entities::load_fields(tx, entity.id).await?;
        let mut decisions = Vec::new();
        let mut opened = 0;
        for (field, value) in merge.changes.iter().cloned() {
            let state = fields.get(&field).cloned().unwrap_or_default();
            let policy = merge
                .policy
                .unwrap_or_else(|| self.settings.conflicts.policy(entity.kind, &field));
            let change = Change {
                side: merge.side,
                value,
                at_ms: merge.at_ms,
            };
            let (mut decision, mut new_state) = decide(&state, &change, policy);
            if merge.side == Side::Monday
                && merge.echo_hint.is_some()
                && !matches!(
                    decision,
                    Decision::Echo | Decision::Unchanged | Decision::Stale
                )
            {
                // An older write of the gateway's: the side's newer value is already known.
                decision = Decision::Echo;
                new_state = state.clone();
            }
            if new_state != state {
                entities::save_field(tx, entity.id, &field, &new_state).await?;
            }
            if let Decision::Conflict { base, npd, monday } = &decision {
                let values = ConflictValues {
                    base: base.as_deref(),
                    npd: npd.as_deref(),
                    monday: monday.as_deref(),
                };
                opened += u64::from(
                    conflicts::open(tx, entity.id, &field, &values, policy)
                        .await?
                        .new,
                );
            }
            decisions.push((field, decision));
        }
        Ok((decisions, opened))
    }

    /// Queues the writes the decisions imply (a new entity's first push included) and marks an
    /// entity with a conflict.
    async fn queue_writes(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        merge: &Merge<'_>,
        decisions: &[(String, Decision)],
    ) -> LedgerResult<()> {
        let pushes_to = |side: Side| {
            decisions
                .iter()
                .any(|(_, d)| matches!(d, Decision::Push { to, .. } if *to == side))
        };
        let conflict = decisions
            .iter()
            .any(|(_, d)| matches!(d, Decision::Conflict { .. }));
        let first_push = entity.monday_item_id.is_none() && merge.side == Side::Npd;
        if pushes_to(Side::Monday)
            || (first_push
                && !conflict
                && !outbox::has_open(tx, entity.id, Operation::PushItem).await?)
        {
            outbox::ensure(
                tx,
                &self.settings,
                entity,
                Operation::PushItem,
                &merge.cause,
            )
            .await?;
        }
        if pushes_to(Side::Npd) {
            outbox::ensure(
                tx,
                &self.settings,
                entity,
                Operation::PatchNpd,
                &merge.cause,
            )
            .await?;
        }
        if conflict {
            entities::set_status(tx, entity.id, EntityStatus::Conflict, None).await?;
        }
        Ok(())
    }
}

/// The event's outcome from its field decisions.
fn summarise(side: Side, decisions: &[(String, Decision)]) -> Outcome {
    let names = |pred: &dyn Fn(&Decision) -> bool| {
        decisions
            .iter()
            .filter(|(_, d)| pred(d))
            .map(|(f, _)| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let conflicts = names(&|d| matches!(d, Decision::Conflict { .. }));
    if !conflicts.is_empty() {
        return Outcome::new(
            InboxOutcome::Conflict,
            format!("conflict on {conflicts}: waiting for an admin (manual policy)"),
        );
    }
    let pushed = names(&|d| matches!(d, Decision::Push { .. }));
    let agreed = names(&|d| matches!(d, Decision::Agreed));
    if !pushed.is_empty() || !agreed.is_empty() {
        let mut parts = Vec::new();
        if !pushed.is_empty() {
            parts.push(format!("{side} changed {pushed}"));
        }
        if !agreed.is_empty() {
            parts.push(format!("both sides already agree on {agreed}"));
        }
        return Outcome::new(InboxOutcome::Applied, parts.join("; "));
    }
    let echoes = names(&|d| matches!(d, Decision::Echo));
    if !echoes.is_empty() {
        return Outcome::new(
            InboxOutcome::Echo,
            format!("the gateway's own write of {echoes} came back"),
        );
    }
    if !decisions.is_empty() && decisions.iter().all(|(_, d)| matches!(d, Decision::Stale)) {
        return Outcome::new(
            InboxOutcome::Stale,
            "every change is older than one already applied",
        );
    }
    Outcome::new(InboxOutcome::Applied, NOTHING_CHANGED)
}

fn describe(d: &Decision) -> String {
    match d {
        Decision::Push { to, value, reason } => {
            format!(
                "push to {to}: {} ({})",
                value.as_deref().unwrap_or("<empty>"),
                reason.describe()
            )
        }
        Decision::Conflict { .. } => "conflict: waiting for an admin".into(),
        other => other.as_str().into(),
    }
}
