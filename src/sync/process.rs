//! Process: take inbox events in arrival order, reconcile each against the ledger, and store in ONE
//! transaction the decision (history, field states, conflicts, entity), the outbox jobs it implies,
//! and the event's outcome.
//!
//! Owns: turning an NPD snapshot or a Monday delivery into per-field `Change`s, running
//! `domain::reconcile::decide` on each, and the outcome of the event (`applied`, `echo`, `stale`,
//! `ignored`, `conflict`, `failed`). Processing is serialised: one processing transaction at a time
//! across every replica (a PostgreSQL advisory lock; SQLite's write lock), so per-entity order is the
//! inbox order and no two processors ever decide on the same entity at once. It is pure database
//! work, fast enough for one at a time; the remote calls happen in `dispatch`, in parallel.
//! Outbound writes go through `outbox`: a change joins an unsent job of its entity when there is
//! one (coalescing), so a burst of edits becomes one write.
//! May import: std, serde_json, tracing, crate::{config, domain, ledger, sync}.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Value, json};

use crate::config::Settings;
use crate::domain::entity::{BoardId, EntityKind, MondayItemId, NpdId};
use crate::domain::event::{MondayEvent, MondayEventKind, NpdData, NpdEvent};
use crate::domain::mapping::FieldValue;
use crate::domain::reconcile::{Change, Decision, Side, decide};
use crate::ledger::conflicts::{self, ConflictValues};
use crate::ledger::entities::{self, EntityRow, NewEntity, status};
use crate::ledger::history::{self, Entry};
use crate::ledger::inbox::{self, InboxRow};
use crate::ledger::tx::Tx;
use crate::ledger::{LedgerError, LedgerResult, Store};
use crate::sync::outbox::{self, Operation};

/// The advisory lock that serialises processing across replicas.
const PROCESSING_LOCK: i64 = 0x6e70_645f_6d6f_6e01;

/// What became of one inbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `applied`, `echo`, `stale`, `ignored`, `conflict` or `failed`.
    pub outcome: &'static str,
    pub detail: String,
}

impl Outcome {
    fn new(outcome: &'static str, detail: impl Into<String>) -> Self {
        Outcome {
            outcome,
            detail: detail.into(),
        }
    }
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
        }
    }

    /// Processes up to `limit` unprocessed events in one transaction. Returns how many were
    /// processed (0 when there is nothing to do or another replica is processing). An event
    /// whose processing fails for a reason other than the store being unreachable is marked
    /// `failed` with the error, alone, so it cannot block the events behind it.
    pub async fn process_batch(&self, limit: i64) -> LedgerResult<usize> {
        match self.try_batch(limit).await {
            Ok(n) => Ok(n),
            Err(e @ LedgerError::Unavailable(_)) => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "a batch failed; processing its events one at a time");
                self.one_at_a_time(limit).await
            }
        }
    }

    async fn try_batch(&self, limit: i64) -> LedgerResult<usize> {
        let mut tx = self.store.begin().await?;
        if !tx.try_exclusive(PROCESSING_LOCK).await? {
            tx.rollback().await?;
            return Ok(0);
        }
        let events = inbox::next_unprocessed(&mut tx, limit).await?;
        for event in &events {
            self.process_and_mark(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(events.len())
    }

    async fn one_at_a_time(&self, limit: i64) -> LedgerResult<usize> {
        let mut done = 0;
        for _ in 0..limit {
            let mut tx = self.store.begin().await?;
            if !tx.try_exclusive(PROCESSING_LOCK).await? {
                tx.rollback().await?;
                break;
            }
            let Some(event) = inbox::next_unprocessed(&mut tx, 1).await?.pop() else {
                tx.rollback().await?;
                break;
            };
            match self.process_and_mark(&mut tx, &event).await {
                Ok(()) => tx.commit().await?,
                Err(e @ LedgerError::Unavailable(_)) => return Err(e),
                Err(e) => {
                    tx.rollback().await?;
                    tracing::error!(inbox.id = event.id, error = %e, "event could not be processed; marked failed");
                    let mut tx = self.store.begin().await?;
                    inbox::mark_processed(
                        &mut tx,
                        event.id,
                        "failed",
                        Some(&format!("processing failed: {e}")),
                    )
                    .await?;
                    tx.commit().await?;
                }
            }
            done += 1;
        }
        Ok(done)
    }

    async fn process_and_mark(&self, tx: &mut Tx, event: &InboxRow) -> LedgerResult<()> {
        let outcome = self.process_one(tx, event).await?;
        tracing::debug!(
            inbox.id = event.id,
            inbox.source = %event.source,
            inbox.event_type = %event.event_type,
            outcome = outcome.outcome,
            "{}",
            outcome.detail
        );
        inbox::mark_processed(tx, event.id, outcome.outcome, Some(&outcome.detail)).await
    }

    async fn process_one(&self, tx: &mut Tx, row: &InboxRow) -> LedgerResult<Outcome> {
        match row.source.as_str() {
            "npd" => match NpdEvent::parse(row.payload.as_bytes()) {
                Ok(event) => self.process_npd(tx, row, &event).await,
                Err(e) => Ok(Outcome::new(
                    "failed",
                    format!("stored payload no longer parses: {e}"),
                )),
            },
            "monday" => match crate::domain::event::MondayDelivery::parse(row.payload.as_bytes()) {
                Ok(crate::domain::event::MondayDelivery::Event(event)) => {
                    self.process_monday(tx, row, &event).await
                }
                Ok(_) => Ok(Outcome::new("ignored", "a challenge is not an event")),
                Err(e) => Ok(Outcome::new(
                    "failed",
                    format!("stored payload no longer parses: {e}"),
                )),
            },
            other => Ok(Outcome::new("failed", format!("unknown source `{other}`"))),
        }
    }

    // ---------------------------------------------------------------- NPD

    async fn process_npd(
        &self,
        tx: &mut Tx,
        row: &InboxRow,
        event: &NpdEvent,
    ) -> LedgerResult<Outcome> {
        let kind = event.entity_kind();
        let npd_id = event.npd_id();
        let version = event.version();
        let existing = entities::find_by_npd(tx, kind, npd_id).await?;
        if let NpdData::Deleted { .. } = event.data {
            let Some(entity) = existing else {
                return Ok(Outcome::new(
                    "ignored",
                    format!("{kind} {npd_id} was deleted before the gateway knew it"),
                ));
            };
            let entity = locked(tx, entity).await?;
            return self.npd_deleted(tx, row, &entity, version).await;
        }
        let snapshot = snapshot_json(&row.payload);
        let updated_at = event.updated_at().map(ms);
        let entity = match existing {
            Some(e) => locked(tx, e).await?,
            None => {
                let e = self.insert_npd_entity(tx, kind, npd_id, &snapshot).await?;
                record(
                    tx,
                    &e,
                    Some(row.id),
                    None,
                    "received",
                    format!(
                        "first seen: {} version {version}",
                        event.event_type.as_str()
                    ),
                    None,
                )
                .await?;
                e
            }
        };
        // Older than what is known is stale. The one exception is the event of the gateway's own
        // last write when nothing newer is known (NPD answered the PATCH with that version): it is
        // processed like any other, since NPD's full snapshot may also carry changes made just
        // before the write, whose own events are now stale.
        let own_write =
            entity.npd_echo_version == Some(version) && entity.npd_version == Some(version);
        if let Some(last) = entity.npd_version
            && version <= last
            && !own_write
        {
            let reason = format!("version {version} is not newer than the applied version {last}");
            record(
                tx,
                &entity,
                Some(row.id),
                None,
                "stale",
                reason.clone(),
                None,
            )
            .await?;
            return Ok(Outcome::new("stale", reason));
        }
        self.apply_npd_snapshot(
            tx,
            &entity,
            kind,
            &snapshot,
            version,
            updated_at,
            Some(row.id),
            0,
            None,
        )
        .await
    }

    pub(crate) async fn insert_npd_entity(
        &self,
        tx: &mut Tx,
        kind: EntityKind,
        npd_id: NpdId,
        snapshot: &Value,
    ) -> LedgerResult<EntityRow> {
        let sync_enabled = snapshot
            .get("sync_enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let link = snapshot_monday_id(snapshot);
        // NPD may already hold a link the ledger lost (or that another gateway made): adopt it
        // unless another entity owns that item.
        let link = match link {
            Some(item) if entities::find_by_item(tx, item).await?.is_none() => Some(item),
            _ => None,
        };
        entities::insert(
            tx,
            &NewEntity {
                kind,
                npd_id: Some(npd_id),
                monday_item_id: link,
                board_id: link.and(self.settings.board_for(kind)),
                sync_enabled,
                status: status::PENDING,
            },
        )
        .await
    }

    /// Applies one NPD snapshot: records it, runs the merge on every synced field, and enqueues
    /// the writes it implies. Shared by events and admin pushes of records the gateway did not know.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site per caller, each names every part"
    )]
    pub(crate) async fn apply_npd_snapshot(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        kind: EntityKind,
        snapshot: &Value,
        version: i64,
        updated_at: Option<i64>,
        inbox_id: Option<i64>,
        priority: i64,
        request_id: Option<&str>,
    ) -> LedgerResult<Outcome> {
        let sync_enabled = snapshot
            .get("sync_enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let previous: Option<Value> = entity
            .npd_snapshot
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok());
        entities::record_npd_snapshot(tx, entity.id, version, &snapshot.to_string(), sync_enabled)
            .await?;
        if entity.monday_item_id.is_none()
            && let Some(item) = snapshot_monday_id(snapshot)
            && entities::find_by_item(tx, item).await?.is_none()
        {
            entities::set_link(tx, entity.id, Some(item), self.settings.board_for(kind)).await?;
            record(
                tx,
                entity,
                inbox_id,
                None,
                "linked",
                format!("linked to Monday item {item} named by NPD's monday_id"),
                None,
            )
            .await?;
        }
        if !sync_enabled {
            entities::set_status(tx, entity.id, status::DISABLED, None).await?;
            let reason =
                "sync_enabled is false: the snapshot is kept, nothing is sent to Monday".to_owned();
            record(tx, entity, inbox_id, None, "ignored", reason.clone(), None).await?;
            return Ok(Outcome::new("ignored", reason));
        }
        if !self.monday_ready(kind) {
            let reason = format!(
                "Monday is not configured for {}: nothing is sent",
                kind.plural()
            );
            record(tx, entity, inbox_id, None, "ignored", reason.clone(), None).await?;
            return Ok(Outcome::new("ignored", reason));
        }
        if entity.status == status::DISABLED || entity.status == status::DELETED {
            entities::set_status(tx, entity.id, status::PENDING, None).await?;
        }
        let mapping = self.settings.mapping.for_kind(kind);
        let changes: Vec<(String, FieldValue)> = mapping.npd_values(snapshot).into_iter().collect();
        let echo_of_writeback = is_link_writeback(previous.as_ref(), snapshot, entity)
            .then_some("the gateway's own write-back of monday_id came back");
        self.reconcile(
            tx,
            entity,
            kind,
            Side::Npd,
            changes,
            updated_at,
            inbox_id,
            priority,
            request_id,
            echo_of_writeback,
        )
        .await
    }

    async fn npd_deleted(
        &self,
        tx: &mut Tx,
        row: &InboxRow,
        entity: &EntityRow,
        version: i64,
    ) -> LedgerResult<Outcome> {
        if let Some(last) = entity.npd_version
            && version <= last
        {
            let reason =
                format!("delete at version {version} is not newer than the applied version {last}");
            record(
                tx,
                entity,
                Some(row.id),
                None,
                "stale",
                reason.clone(),
                None,
            )
            .await?;
            return Ok(Outcome::new("stale", reason));
        }
        entities::mark_deleted(tx, entity.id, version).await?;
        let kind = entity.entity_kind()?;
        let reason = match entity.monday_item_id() {
            Some(item) if entity.sync_enabled && self.monday_ready(kind) => {
                outbox::ensure(
                    tx,
                    entity,
                    Operation::ArchiveItem,
                    0,
                    row.request_id.as_deref(),
                )
                .await?;
                format!("deleted in NPD: Monday item {item} will be archived")
            }
            Some(item) => format!(
                "deleted in NPD; Monday item {item} is left alone (sync disabled or Monday not configured)"
            ),
            None => "deleted in NPD; it had no Monday item".to_owned(),
        };
        record(
            tx,
            entity,
            Some(row.id),
            None,
            "decided",
            reason.clone(),
            None,
        )
        .await?;
        Ok(Outcome::new("applied", reason))
    }

    // ---------------------------------------------------------------- Monday

    async fn process_monday(
        &self,
        tx: &mut Tx,
        row: &InboxRow,
        event: &MondayEvent,
    ) -> LedgerResult<Outcome> {
        let Some(kind) = row
            .entity_kind
            .as_deref()
            .and_then(|k| k.parse::<EntityKind>().ok())
        else {
            return Ok(Outcome::new("ignored", "not a synced board"));
        };
        let Some(item) = event.item_id else {
            return Ok(Outcome::new("ignored", "the delivery names no item"));
        };
        let mapping = self.settings.mapping.for_kind(kind);
        let mut entity = entities::find_by_item(tx, item).await?;
        if entity.is_none() && event.kind == MondayEventKind::ItemCreated {
            // The webhook of the gateway's own create_item may arrive before the create is recorded:
            // the item carries the NPD id in its npd_id column, so link it now. The check is made
            // under the entity's lock: the create job's outcome may be linking it at this moment.
            if let Some(npd_id) = created_npd_id(event, &mapping.npd_id_column)
                && let Some(e) = entities::find_by_npd(tx, kind, npd_id).await?
            {
                let e = locked(tx, e).await?;
                if e.monday_item_id.is_none() {
                    entities::set_link(tx, e.id, Some(item), event.board_id).await?;
                    outbox::write_link_back(
                        tx,
                        &self.settings,
                        &e,
                        item,
                        0,
                        row.request_id.as_deref(),
                    )
                    .await?;
                    record(
                        tx,
                        &e,
                        Some(row.id),
                        None,
                        "linked",
                        format!("linked to Monday item {item} by its npd_id column"),
                        None,
                    )
                    .await?;
                }
                entity = entities::find_by_item(tx, item).await?;
            }
        }
        let Some(entity) = entity else {
            return self.unknown_item(tx, row, event, kind, item).await;
        };
        let entity = locked(tx, entity).await?;
        // Changes to the item itself are reported; NPD is never changed by them.
        let reported = match event.kind {
            MondayEventKind::ItemArchived if entity.status == status::DELETED => {
                return Ok(Outcome::new(
                    "echo",
                    "the gateway archived this item after NPD deleted the record",
                ));
            }
            MondayEventKind::ItemArchived => Some(format!(
                "Monday item {item} was archived in Monday; NPD is not changed"
            )),
            MondayEventKind::ItemDeleted => {
                entities::set_link(tx, entity.id, None, None).await?;
                if entity.status != status::DELETED {
                    entities::set_status(tx, entity.id, status::UNLINKED, None).await?;
                }
                Some(format!(
                    "Monday item {item} was deleted in Monday: the link is removed; NPD is not changed"
                ))
            }
            MondayEventKind::ItemRestored => {
                Some(format!("Monday item {item} was restored in Monday"))
            }
            _ => None,
        };
        if let Some(reason) = reported {
            record(
                tx,
                &entity,
                Some(row.id),
                None,
                "reported",
                reason.clone(),
                None,
            )
            .await?;
            return Ok(Outcome::new("applied", reason));
        }
        if entity.npd_id.is_none() {
            return Ok(Outcome::new(
                "ignored",
                format!("Monday item {item} has no NPD record"),
            ));
        }
        if entity.status == status::DELETED {
            return Ok(Outcome::new("ignored", "the NPD record is deleted"));
        }
        if !entity.sync_enabled {
            return Ok(Outcome::new(
                "ignored",
                "sync_enabled is false for this record",
            ));
        }
        if self.settings.npd.api_url.is_none() {
            let reason =
                "NPD_API_URL is not configured: Monday edits cannot be written to NPD".to_owned();
            record(
                tx,
                &entity,
                Some(row.id),
                None,
                "ignored",
                reason.clone(),
                None,
            )
            .await?;
            return Ok(Outcome::new("ignored", reason));
        }
        let changes = match monday_changes(event, mapping) {
            Ok(changes) if changes.is_empty() => {
                return Ok(Outcome::new("ignored", "no synced field in this delivery"));
            }
            Ok(changes) => changes,
            Err(reason) => {
                record(
                    tx,
                    &entity,
                    Some(row.id),
                    None,
                    "failed",
                    reason.clone(),
                    None,
                )
                .await?;
                return Ok(Outcome::new("failed", reason));
            }
        };
        let at = event.changed_at_ms().or_else(|| event.trigger_time.map(ms));
        // A delivery the gateway's own Monday user authored is one of its writes coming back,
        // perhaps late and out of order: it may confirm a write, never count as a person's edit.
        let ours = event.user_id.is_some() && event.user_id == self.own_monday_user.get();
        self.reconcile(
            tx,
            &entity,
            kind,
            Side::Monday,
            changes,
            at,
            Some(row.id),
            0,
            row.request_id.as_deref(),
            ours.then_some("the gateway's own write came back"),
        )
        .await
    }

    async fn unknown_item(
        &self,
        tx: &mut Tx,
        row: &InboxRow,
        event: &MondayEvent,
        kind: EntityKind,
        item: MondayItemId,
    ) -> LedgerResult<Outcome> {
        if event.kind != MondayEventKind::ItemCreated {
            return Ok(Outcome::new(
                "ignored",
                format!("Monday item {item} is not linked to an NPD record"),
            ));
        }
        let entity = entities::insert(
            tx,
            &NewEntity {
                kind,
                npd_id: None,
                monday_item_id: Some(item),
                board_id: event.board_id,
                sync_enabled: true,
                status: status::UNLINKED,
            },
        )
        .await?;
        let create = self.settings.sync.create_in_npd
            && kind == EntityKind::Contact
            && self.settings.npd.api_url.is_some();
        let reason = if create {
            let mapping = self.settings.mapping.for_kind(kind);
            let values = monday_changes(event, mapping).unwrap_or_default();
            let fields = entities::load_fields(tx, entity.id).await?;
            for (field, value) in &values {
                let mut state = fields.get(field).cloned().unwrap_or_default();
                state.monday = value.clone();
                entities::save_field(tx, entity.id, field, &state).await?;
            }
            outbox::ensure(
                tx,
                &entity,
                Operation::CreateNpdContact,
                0,
                row.request_id.as_deref(),
            )
            .await?;
            format!(
                "Monday item {item} has no npd_id: an NPD contact will be created ([sync] create_in_npd)"
            )
        } else {
            format!(
                "Monday item {item} was created without an npd_id: recorded, not created in NPD ([sync] create_in_npd = false)"
            )
        };
        record(
            tx,
            &entity,
            Some(row.id),
            None,
            "reported",
            reason.clone(),
            None,
        )
        .await?;
        Ok(Outcome::new(
            if create { "applied" } else { "ignored" },
            reason,
        ))
    }

    // ---------------------------------------------------------------- the merge

    /// Runs the merge for each changed field, saves the new field states, opens conflicts,
    /// enqueues the writes, writes one history entry, and says what became of the event.
    /// `echo_hint` names a write of the gateway that the event reflects: when no field changed,
    /// the event is an echo; for a Monday delivery (authored by the gateway's own user), no
    /// field may be read as changed at all.
    #[expect(clippy::too_many_arguments, reason = "the parts of one decision")]
    async fn reconcile(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        kind: EntityKind,
        side: Side,
        changes: Vec<(String, FieldValue)>,
        at_ms: Option<i64>,
        inbox_id: Option<i64>,
        priority: i64,
        request_id: Option<&str>,
        echo_hint: Option<&str>,
    ) -> LedgerResult<Outcome> {
        let fields = entities::load_fields(tx, entity.id).await?;
        let mut decisions: Vec<(String, Decision)> = Vec::new();
        for (field, value) in changes {
            let state = fields.get(&field).cloned().unwrap_or_default();
            let policy = self.settings.conflicts.policy(kind, &field);
            let change = Change { side, value, at_ms };
            let (mut decision, mut new_state) = decide(&state, &change, policy);
            if side == Side::Monday
                && echo_hint.is_some()
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
                conflicts::open(
                    tx,
                    entity.id,
                    &field,
                    &ConflictValues {
                        base: base.as_deref(),
                        npd: npd.as_deref(),
                        monday: monday.as_deref(),
                    },
                    policy.as_str(),
                )
                .await?;
            }
            decisions.push((field, decision));
        }
        let to_monday = decisions.iter().any(|(_, d)| {
            matches!(
                d,
                Decision::Push {
                    to: Side::Monday,
                    ..
                }
            )
        });
        let to_npd = decisions
            .iter()
            .any(|(_, d)| matches!(d, Decision::Push { to: Side::Npd, .. }));
        let conflict = decisions
            .iter()
            .any(|(_, d)| matches!(d, Decision::Conflict { .. }));
        let first_push = entity.monday_item_id.is_none() && side == Side::Npd;
        if to_monday
            || (first_push
                && !conflict
                && !outbox::has_open(tx, entity.id, Operation::PushItem).await?)
        {
            outbox::ensure(tx, entity, Operation::PushItem, priority, request_id).await?;
        }
        if to_npd {
            outbox::ensure(tx, entity, Operation::PatchNpd, priority, request_id).await?;
        }
        if conflict {
            entities::set_status(tx, entity.id, status::CONFLICT, None).await?;
        }
        let mut outcome = summarise(side, &decisions);
        if let Some(hint) = echo_hint
            && outcome.detail == NOTHING_CHANGED
        {
            outcome = Outcome::new("echo", hint);
        }
        let detail = json!(
            decisions
                .iter()
                .map(|(f, d)| (f.clone(), describe(d)))
                .collect::<BTreeMap<String, String>>()
        );
        let kind_label = match outcome.outcome {
            "echo" => "echo",
            "stale" => "stale",
            "conflict" => "conflict",
            _ => "decided",
        };
        record(
            tx,
            entity,
            inbox_id,
            None,
            kind_label,
            outcome.detail.clone(),
            Some(detail),
        )
        .await?;
        Ok(outcome)
    }

    fn monday_ready(&self, kind: EntityKind) -> bool {
        self.settings.monday.api_token.is_some() && self.settings.board_for(kind).is_some()
    }
}

const NOTHING_CHANGED: &str = "no synced field changed";

/// Takes the entity's lock and returns its row as of now.
async fn locked(tx: &mut Tx, entity: EntityRow) -> LedgerResult<EntityRow> {
    Ok(entities::lock(tx, entity.id).await?.unwrap_or(entity))
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
            "conflict",
            format!("conflict on {conflicts}: waiting for an admin (manual policy)"),
        );
    }
    let pushed = names(&|d| matches!(d, Decision::Push { .. }));
    let agreed = names(&|d| matches!(d, Decision::Agreed));
    if !pushed.is_empty() || !agreed.is_empty() {
        let mut parts = Vec::new();
        if !pushed.is_empty() {
            parts.push(format!("{} changed {pushed}", side.as_str()));
        }
        if !agreed.is_empty() {
            parts.push(format!("both sides already agree on {agreed}"));
        }
        return Outcome::new("applied", parts.join("; "));
    }
    let echoes = names(&|d| matches!(d, Decision::Echo));
    if !echoes.is_empty() {
        return Outcome::new(
            "echo",
            format!("the gateway's own write of {echoes} came back"),
        );
    }
    if !decisions.is_empty() && decisions.iter().all(|(_, d)| matches!(d, Decision::Stale)) {
        return Outcome::new("stale", "every change is older than one already applied");
    }
    Outcome::new("applied", NOTHING_CHANGED)
}

fn describe(d: &Decision) -> String {
    match d {
        Decision::Push { to, value, reason } => {
            format!(
                "push to {}: {} ({})",
                to.as_str(),
                value.as_deref().unwrap_or("<empty>"),
                reason.describe()
            )
        }
        Decision::Conflict { .. } => "conflict: waiting for an admin".into(),
        other => other.as_str().into(),
    }
}

/// The per-field changes a Monday delivery carries.
fn monday_changes(
    event: &MondayEvent,
    mapping: &crate::domain::mapping::EntityMapping,
) -> Result<Vec<(String, FieldValue)>, String> {
    let mut changes = Vec::new();
    match event.kind {
        MondayEventKind::ColumnValueChanged => {
            let Some(column) = event.column_id.as_deref() else {
                return Ok(changes);
            };
            let Some(field) = mapping.field_for_column(column) else {
                return Ok(changes);
            };
            let column_type = mapping.fields[field].column_type;
            let value = column_type
                .from_webhook(event.value.as_ref())
                .map_err(|e| format!("column `{column}`: {e}"))?;
            changes.push((field.to_owned(), value));
        }
        MondayEventKind::NameChanged => {
            if let Some(name) = event.item_name.as_deref() {
                changes.extend(mapping.split_item_name(name));
            }
        }
        MondayEventKind::ItemCreated => {
            if let Some(name) = event.item_name.as_deref() {
                changes.extend(mapping.split_item_name(name));
            }
            let columns = event.column_values.clone().unwrap_or_default();
            for (field, column) in &mapping.fields {
                let value = column
                    .column_type
                    .from_webhook(columns.get(&column.column))
                    .map_err(|e| format!("column `{}`: {e}", column.column))?;
                changes.push((field.clone(), value));
            }
        }
        _ => {}
    }
    Ok(changes)
}

/// The NPD id in a created item's npd_id column, if any.
fn created_npd_id(event: &MondayEvent, npd_id_column: &str) -> Option<NpdId> {
    let value = event.column_values.as_ref()?.get(npd_id_column)?;
    let text = crate::domain::mapping::ColumnType::Text
        .from_webhook(Some(value))
        .ok()??;
    NpdId::parse(&text).ok()
}

/// The `data` object of a stored NPD event.
fn snapshot_json(payload: &str) -> Value {
    serde_json::from_str::<Value>(payload)
        .ok()
        .and_then(|v| v.get("data").cloned())
        .unwrap_or(Value::Null)
}

fn snapshot_monday_id(snapshot: &Value) -> Option<MondayItemId> {
    serde_json::from_value(snapshot.get("monday_id")?.clone()).ok()
}

/// Whether the only difference from the previous snapshot is `monday_id` becoming the link the
/// gateway wrote back.
fn is_link_writeback(previous: Option<&Value>, snapshot: &Value, entity: &EntityRow) -> bool {
    let (Some(Value::Object(prev)), Value::Object(now)) = (previous, snapshot) else {
        return false;
    };
    let ignored = ["version", "updated_at", "monday_id"];
    let same_otherwise = now
        .iter()
        .filter(|(k, _)| !ignored.contains(&k.as_str()))
        .all(|(k, v)| prev.get(k) == Some(v));
    let link = snapshot_monday_id(snapshot).map(|i| i.to_string());
    same_otherwise
        && link.is_some()
        && link == entity.monday_item_id
        && prev.get("monday_id") != now.get("monday_id")
}

fn ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Appends one history entry for `entity`.
pub(crate) async fn record(
    tx: &mut Tx,
    entity: &EntityRow,
    inbox_id: Option<i64>,
    job_id: Option<i64>,
    kind: &str,
    reason: String,
    detail: Option<Value>,
) -> LedgerResult<()> {
    history::append(
        tx,
        &Entry {
            entity_id: entity.id,
            inbox_event_id: inbox_id,
            job_id,
            kind,
            reason,
            detail,
        },
    )
    .await
}

/// The board an entity's item lives on.
pub(crate) fn board_of(
    settings: &Settings,
    entity: &EntityRow,
    kind: EntityKind,
) -> Option<BoardId> {
    entity.board_id().or_else(|| settings.board_for(kind))
}
