//! Processing of Monday deliveries: the link of a newly created item, what happened to an item
//! itself (archived, deleted, restored: recorded, NPD never changed by it), unknown items, and
//! column or name changes turned into per-field changes for the merge.
//!
//! Owns: `process_monday` and its steps, `monday_changes`.
//! May import: crate::{domain, ledger, sync}.

use crate::domain::entity::{EntityKind, MondayItemId, NpdId, Side, unix_ms};
use crate::domain::event::{MondayEvent, MondayEventKind};
use crate::domain::job::Operation;
use crate::domain::mapping::{ColumnType, EntityMapping, FieldValue, LeftOut};
use crate::domain::state::{EntityStatus, HistoryKind, InboxOutcome};
use crate::ledger::LedgerResult;
use crate::ledger::entities::{self, EntityRow, NewEntity};
use crate::ledger::inbox::InboxRow;
use crate::ledger::left_out;
use crate::ledger::tx::Tx;
use crate::sync::history::{Cause, record};
use crate::sync::process::{Merge, Outcome, Processor, locked, noted, noted_as};
use crate::sync::{outbox, relation};

/// Ends processing without a history entry (nothing is known of an entity, or nothing of it
/// changes).
fn ignored(detail: impl Into<String>) -> LedgerResult<Outcome> {
    Ok(Outcome::new(InboxOutcome::Ignored, detail))
}

impl Processor {
    pub(super) async fn process_monday(
        &self,
        tx: &mut Tx,
        row: &InboxRow,
        event: &MondayEvent,
    ) -> LedgerResult<Outcome> {
        let Some(kind) = row.entity_kind else {
            return ignored("not a synced board");
        };
        let Some(item) = event.item_id else {
            return ignored("the delivery names no item");
        };
        let cause = Cause::event(row.id, row.request_id.as_deref()).accepted(row.received_at);
        let mut entity = entities::find_by_item(tx, item).await?;
        if entity.is_none() && event.kind == MondayEventKind::ItemCreated {
            self.link_created_item(tx, event, kind, item, &cause)
                .await?;
            entity = entities::find_by_item(tx, item).await?;
        }
        let Some(entity) = entity else {
            return self.unknown_item(tx, event, kind, item, &cause).await;
        };
        let entity = locked(tx, entity).await?;
        if let Some(outcome) = self.item_report(tx, &entity, event, item, &cause).await? {
            return Ok(outcome);
        }
        if entity.npd_id.is_none() {
            return ignored(format!("Monday item {item} has no NPD record"));
        }
        if entity.status == EntityStatus::Deleted {
            return ignored("the NPD record is deleted");
        }
        if !entity.sync_enabled {
            return ignored("sync_enabled is false for this record");
        }
        if self.settings.npd.api_url.is_none() {
            let reason =
                "NPD_API_URL is not configured: Monday edits cannot be written to NPD".to_owned();
            return noted(tx, &entity, &cause, InboxOutcome::Ignored, reason).await;
        }
        let changes =
            match delivery_changes(tx, event, self.settings.mapping.for_kind(kind)).await? {
                Ok(changes) => changes,
                Err(reason) => {
                    return noted(tx, &entity, &cause, InboxOutcome::Failed, reason).await;
                }
            };
        let changes = match left_out_of(tx, &entity, &cause, changes).await? {
            Ok(changes) => changes,
            Err(reason) => return noted(tx, &entity, &cause, InboxOutcome::Ignored, reason).await,
        };
        if changes.is_empty() {
            return ignored("no synced field in this delivery");
        }
        // A delivery the gateway's own Monday user authored is one of its writes coming back,
        // perhaps late and out of order: it may confirm a write, never count as a person's edit.
        let ours = event.user_id.is_some() && event.user_id == self.own_monday_user.get();
        let merge = Merge {
            side: Side::Monday,
            changes,
            at_ms: event
                .changed_at_ms()
                .or_else(|| event.trigger_time.map(unix_ms)),
            cause,
            echo_hint: ours.then_some("the gateway's own write came back"),
            policy: None,
        };
        self.merge(tx, &entity, merge).await
    }

    /// The webhook of the gateway's own `create_item` may arrive before the create is recorded:
    /// the item carries the NPD id in its npd_id column, so link it now. The check is made under
    /// the entity's lock: the create job's outcome may be linking it at this moment.
    async fn link_created_item(
        &self,
        tx: &mut Tx,
        event: &MondayEvent,
        kind: EntityKind,
        item: MondayItemId,
        cause: &Cause<'_>,
    ) -> LedgerResult<()> {
        let column = &self.settings.mapping.for_kind(kind).npd_id_column;
        let Some(npd_id) = created_npd_id(event, column) else {
            return Ok(());
        };
        let Some(entity) = entities::find_by_npd(tx, kind, npd_id).await? else {
            return Ok(());
        };
        let entity = locked(tx, entity).await?;
        if entity.monday_item_id.is_some() {
            return Ok(());
        }
        entities::set_link(tx, entity.id, Some(item), event.board_id).await?;
        outbox::write_link_back(tx, &self.settings, &entity, item, cause).await?;
        let reason = format!("linked to Monday item {item} by its npd_id column");
        record(tx, entity.id, cause, HistoryKind::Linked, reason, None).await
    }

    /// A change to the item itself (archived, deleted, restored) is recorded; NPD is never
    /// changed by it. `None` when the delivery is not about the item itself.
    async fn item_report(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        event: &MondayEvent,
        item: MondayItemId,
        cause: &Cause<'_>,
    ) -> LedgerResult<Option<Outcome>> {
        let reason = match event.kind {
            MondayEventKind::ItemArchived if entity.status == EntityStatus::Deleted => {
                return Ok(Some(Outcome::new(
                    InboxOutcome::Echo,
                    "the gateway archived this item after NPD deleted the record",
                )));
            }
            MondayEventKind::ItemArchived => {
                format!("Monday item {item} was archived in Monday; NPD is not changed")
            }
            MondayEventKind::ItemDeleted => {
                entities::set_link(tx, entity.id, None, None).await?;
                if entity.status != EntityStatus::Deleted {
                    entities::set_status(tx, entity.id, EntityStatus::Unlinked, None).await?;
                }
                format!(
                    "Monday item {item} was deleted in Monday: the link is removed; NPD is not changed"
                )
            }
            MondayEventKind::ItemRestored => format!("Monday item {item} was restored in Monday"),
            _ => return Ok(None),
        };
        noted_as(
            tx,
            entity,
            cause,
            HistoryKind::Reported,
            InboxOutcome::Applied,
            reason,
        )
        .await
        .map(Some)
    }

    /// An item no entity is linked to: a created one naming an NPD id is linked to that record; one
    /// without is recorded (and, with `[sync] create_in_npd`, created as an NPD contact); other
    /// deliveries about it are ignored.
    async fn unknown_item(
        &self,
        tx: &mut Tx,
        event: &MondayEvent,
        kind: EntityKind,
        item: MondayItemId,
        cause: &Cause<'_>,
    ) -> LedgerResult<Outcome> {
        if event.kind != MondayEventKind::ItemCreated {
            return ignored(format!("Monday item {item} is not linked to an NPD record"));
        }
        let column = &self.settings.mapping.for_kind(kind).npd_id_column;
        if let Some(npd_id) = created_npd_id(event, column) {
            return self
                .link_to_unseen_record(tx, event, kind, item, npd_id, cause)
                .await;
        }
        let entity = entities::insert(
            tx,
            &NewEntity {
                kind,
                npd_id: None,
                monday_item_id: Some(item),
                board_id: event.board_id,
                sync_enabled: true,
                status: EntityStatus::Unlinked,
            },
        )
        .await?;
        let create = self.settings.sync.create_in_npd
            && kind == EntityKind::Contact
            && self.settings.npd.api_url.is_some();
        let (outcome, reason) = if create {
            self.queue_npd_create(tx, &entity, event, cause).await?;
            (
                InboxOutcome::Applied,
                format!(
                    "Monday item {item} has no npd_id: an NPD contact will be created ([sync] create_in_npd)"
                ),
            )
        } else {
            (
                InboxOutcome::Ignored,
                format!(
                    "Monday item {item} was created without an npd_id: recorded, not created in NPD ([sync] create_in_npd = false)"
                ),
            )
        };
        noted_as(tx, &entity, cause, HistoryKind::Reported, outcome, reason).await
    }

    /// An item created with an NPD id in its npd_id column that the ledger does not know yet (the
    /// record's event has not arrived, or NPD's earlier sync made it): the item belongs to that
    /// record, so it is linked to it and no second NPD contact is ever created for it.
    async fn link_to_unseen_record(
        &self,
        tx: &mut Tx,
        event: &MondayEvent,
        kind: EntityKind,
        item: MondayItemId,
        npd_id: NpdId,
        cause: &Cause<'_>,
    ) -> LedgerResult<Outcome> {
        let new = NewEntity {
            kind,
            npd_id: Some(npd_id),
            monday_item_id: Some(item),
            board_id: event.board_id,
            sync_enabled: true,
            status: EntityStatus::Pending,
        };
        let entity = entities::insert(tx, &new).await?;
        relation::write_waiting_relations(tx, &self.settings, &entity, cause).await?;
        let reason = format!(
            "Monday item {item} names NPD {kind} {npd_id} in its npd_id column: linked to it, \
             although the gateway has not seen that record yet"
        );
        record(
            tx,
            entity.id,
            cause,
            HistoryKind::Linked,
            reason.clone(),
            None,
        )
        .await?;
        Ok(Outcome::new(InboxOutcome::Applied, reason))
    }

    /// Keeps the created item's values as Monday's side of each field and queues the NPD create.
    async fn queue_npd_create(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        event: &MondayEvent,
        cause: &Cause<'_>,
    ) -> LedgerResult<()> {
        let mapping = self.settings.mapping.for_kind(entity.kind);
        let values = delivery_changes(tx, event, mapping)
            .await?
            .map(|c| c.values)
            .unwrap_or_default();
        let fields = entities::load_fields(tx, entity.id).await?;
        for (field, value) in values {
            let mut state = fields.get(&field).cloned().unwrap_or_default();
            state.monday = value;
            entities::save_field(tx, entity.id, &field, &state).await?;
        }
        outbox::ensure(
            tx,
            &self.settings,
            entity,
            Operation::CreateNpdContact,
            cause,
        )
        .await?;
        Ok(())
    }
}

/// A delivery's per-field changes, as NPD values, and what is left out of them.
#[derive(Debug, Default)]
struct Changes {
    values: Vec<(String, FieldValue)>,
    /// Monday values with no NPD value (a label `labels` does not name).
    left_out: Vec<LeftOut>,
}

/// Records what the delivery leaves out for the entity, and clears what its fields left out
/// before; the changes that remain, or (when nothing remains but left-out values) the reason.
/// When other changes remain, what was left out is recorded in the history too.
async fn left_out_of(
    tx: &mut Tx,
    entity: &EntityRow,
    cause: &Cause<'_>,
    changes: Changes,
) -> LedgerResult<Result<Vec<(String, FieldValue)>, String>> {
    for (field, _) in &changes.values {
        left_out::clear(tx, entity.id, field, Side::Npd).await?;
    }
    for l in &changes.left_out {
        left_out::record(tx, entity.id, l).await?;
    }
    if changes.left_out.is_empty() {
        return Ok(Ok(changes.values));
    }
    let reasons: Vec<String> = changes
        .left_out
        .iter()
        .map(|l| format!("{} left out ({}): {}", l.field, l.value, l.reason.explain()))
        .collect();
    let reason = reasons.join("; ");
    if changes.values.is_empty() {
        return Ok(Err(reason));
    }
    record(tx, entity.id, cause, HistoryKind::Ignored, reason, None).await?;
    Ok(Ok(changes.values))
}

/// The per-field changes a Monday delivery carries, as NPD values: through each field's `labels`,
/// and a board_relation's linked item as its organization's NPD id (the ledger's links); a value
/// with no NPD value is left out. `Err`: a column value does not read.
async fn delivery_changes(
    tx: &mut Tx,
    event: &MondayEvent,
    mapping: &EntityMapping,
) -> LedgerResult<Result<Changes, String>> {
    let read = match monday_values(event, mapping) {
        Ok(read) => read,
        Err(reason) => return Ok(Err(reason)),
    };
    let links = relation::links_of_items(tx, &mapping.related_items(&read)).await?;
    let mut changes = Changes::default();
    for (field, value) in read {
        match mapping.npd_value_linked(&field, value, &links) {
            Ok(value) => changes.values.push((field, value)),
            Err(left_out) => changes.left_out.push(left_out),
        }
    }
    Ok(Ok(changes))
}

/// The per-field values a Monday delivery carries, as Monday has them (canonical).
fn monday_values(
    event: &MondayEvent,
    mapping: &EntityMapping,
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
pub(super) fn created_npd_id(event: &MondayEvent, npd_id_column: &str) -> Option<NpdId> {
    let value = event.column_values.as_ref()?.get(npd_id_column)?;
    let text = ColumnType::Text.from_webhook(Some(value)).ok()??;
    NpdId::parse(&text).ok()
}
