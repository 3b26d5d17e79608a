//! Processing of NPD events: a snapshot becomes per-field changes for the merge; a delete archives
//! the item; older versions are stale.
//!
//! Owns: `process_npd`, `insert_npd_entity` and `apply_npd_snapshot` (shared with admin pushes of
//! records the gateway did not know), `npd_deleted`.
//! May import: crate::{domain, ledger, sync}.

use crate::domain::entity::{EntityKind, Side, unix_ms};
use crate::domain::event::{NpdData, NpdEvent};
use crate::domain::job::Operation;
use crate::domain::record::NpdRecord;
use crate::domain::state::{EntityStatus, HistoryKind, InboxOutcome};
use crate::ledger::LedgerResult;
use crate::ledger::entities::{self, EntityRow, NewEntity};
use crate::ledger::inbox::InboxRow;
use crate::ledger::tx::Tx;
use crate::sync::history::{Cause, record};
use crate::sync::outbox;
use crate::sync::process::{Merge, Outcome, Processor, locked, noted};

impl Processor {
    pub(super) async fn process_npd(
        &self,
        tx: &mut Tx,
        row: &InboxRow,
        event: &NpdEvent,
    ) -> LedgerResult<Outcome> {
        let (kind, npd_id, version) = (event.entity_kind(), event.npd_id(), event.version());
        let existing = entities::find_by_npd(tx, kind, npd_id).await?;
        let snapshot = match &event.data {
            NpdData::Record(snapshot) => snapshot,
            NpdData::Deleted { .. } => {
                let Some(entity) = existing else {
                    return Ok(Outcome::new(
                        InboxOutcome::Ignored,
                        format!("{kind} {npd_id} was deleted before the gateway knew it"),
                    ));
                };
                let entity = locked(tx, entity).await?;
                return self.npd_deleted(tx, row, &entity, version).await;
            }
        };
        let cause = Cause::event(row.id, None).accepted(row.received_at);
        let entity = match existing {
            Some(e) => locked(tx, e).await?,
            None => {
                let e = self.insert_npd_entity(tx, kind, snapshot).await?;
                let reason = format!(
                    "first seen: {} version {version}",
                    event.event_type.as_str()
                );
                record(tx, e.id, &cause, HistoryKind::Received, reason, None).await?;
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
            return noted(tx, &entity, &cause, InboxOutcome::Stale, reason).await;
        }
        let at_ms = event.updated_at().map(unix_ms);
        self.apply_npd_snapshot(tx, &entity, snapshot, at_ms, &cause)
            .await
    }

    /// Inserts the entity of an NPD record the ledger does not know yet.
    pub(crate) async fn insert_npd_entity(
        &self,
        tx: &mut Tx,
        kind: EntityKind,
        record: &NpdRecord,
    ) -> LedgerResult<EntityRow> {
        // The record NPD created for a Monday item (`create_in_npd`), whose event beat the
        // create's answer: it is that item's entity, not a new one (which would make a second item).
        if let Some(item) = record.monday_id
            && let Some(owner) = entities::find_by_item(tx, item).await?
            && owner.npd_id.is_none()
            && owner.kind == kind
        {
            entities::set_npd_id(tx, owner.id, record.id).await?;
            return Ok(entities::find_by_id(tx, owner.id).await?.unwrap_or(owner));
        }
        // NPD may already hold a link the ledger lost (or that another gateway made): adopt it
        // unless another entity owns that item.
        let link = match record.monday_id {
            Some(item) if entities::find_by_item(tx, item).await?.is_none() => Some(item),
            _ => None,
        };
        entities::insert(
            tx,
            &NewEntity {
                kind,
                npd_id: Some(record.id),
                monday_item_id: link,
                board_id: link.and(self.settings.board_for(kind)),
                sync_enabled: record.sync_enabled,
                status: EntityStatus::Pending,
            },
        )
        .await
    }

    /// Applies one NPD record: records it, runs the merge on every synced field, and enqueues
    /// the writes it implies. Shared by events and admin pushes of records the gateway did not know.
    pub(crate) async fn apply_npd_snapshot(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        record: &NpdRecord,
        at_ms: Option<i64>,
        cause: &Cause<'_>,
    ) -> LedgerResult<Outcome> {
        let kind = entity.kind;
        let previous = entity.npd_snapshot.as_ref();
        entities::record_npd_snapshot(tx, entity.id, record).await?;
        self.adopt_npd_link(tx, entity, record, cause).await?;
        if !record.sync_enabled {
            entities::set_status(tx, entity.id, EntityStatus::Disabled, None).await?;
            let reason =
                "sync_enabled is false: the snapshot is kept, nothing is sent to Monday".to_owned();
            return noted(tx, entity, cause, InboxOutcome::Ignored, reason).await;
        }
        if !self.monday_ready(kind) {
            let reason = format!(
                "Monday is not configured for {}: nothing is sent",
                kind.plural()
            );
            return noted(tx, entity, cause, InboxOutcome::Ignored, reason).await;
        }
        if matches!(
            entity.status,
            EntityStatus::Disabled | EntityStatus::Deleted
        ) {
            entities::set_status(tx, entity.id, EntityStatus::Pending, None).await?;
        }
        let mapping = self.settings.mapping.for_kind(kind);
        let echo_hint = is_link_writeback(previous, record, entity)
            .then_some("the gateway's own write-back of monday_id came back");
        let merge = Merge {
            side: Side::Npd,
            changes: mapping.npd_values(record).into_iter().collect(),
            at_ms,
            cause: *cause,
            echo_hint,
            policy: None,
        };
        self.merge(tx, entity, merge).await
    }

    /// Links an unlinked entity to the item NPD's `monday_id` names, unless another entity owns it.
    async fn adopt_npd_link(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        snapshot: &NpdRecord,
        cause: &Cause<'_>,
    ) -> LedgerResult<()> {
        if entity.monday_item_id.is_some() {
            return Ok(());
        }
        let Some(item) = snapshot.monday_id else {
            return Ok(());
        };
        if entities::find_by_item(tx, item).await?.is_some() {
            return Ok(());
        }
        let board = self.settings.board_for(entity.kind);
        entities::set_link(tx, entity.id, Some(item), board).await?;
        crate::sync::relation::write_waiting_relations(tx, &self.settings, entity, cause).await?;
        let reason = format!("linked to Monday item {item} named by NPD's monday_id");
        record(tx, entity.id, cause, HistoryKind::Linked, reason, None).await
    }

    async fn npd_deleted(
        &self,
        tx: &mut Tx,
        row: &InboxRow,
        entity: &EntityRow,
        version: i64,
    ) -> LedgerResult<Outcome> {
        let cause = Cause::event(row.id, row.request_id.as_deref()).accepted(row.received_at);
        if let Some(last) = entity.npd_version
            && version <= last
        {
            let reason =
                format!("delete at version {version} is not newer than the applied version {last}");
            return noted(tx, entity, &cause, InboxOutcome::Stale, reason).await;
        }
        entities::mark_deleted(tx, entity.id, version).await?;
        let reason = match entity.monday_item_id {
            Some(item) if entity.sync_enabled && self.monday_ready(entity.kind) => {
                outbox::ensure(tx, &self.settings, entity, Operation::ArchiveItem, &cause).await?;
                format!("deleted in NPD: Monday item {item} will be archived")
            }
            Some(item) => format!(
                "deleted in NPD; Monday item {item} is left alone (sync disabled or Monday not configured)"
            ),
            None => "deleted in NPD; it had no Monday item".to_owned(),
        };
        record(
            tx,
            entity.id,
            &cause,
            HistoryKind::Decided,
            reason.clone(),
            None,
        )
        .await?;
        Ok(Outcome::new(InboxOutcome::Applied, reason))
    }
}

/// Whether the only difference from the previous record is `monday_id` becoming the link the
/// gateway wrote back.
fn is_link_writeback(previous: Option<&NpdRecord>, record: &NpdRecord, entity: &EntityRow) -> bool {
    let Some(previous) = previous else {
        return false;
    };
    record.same_fields(previous)
        && record.monday_id.is_some()
        && record.monday_id == entity.monday_item_id
        && previous.monday_id != record.monday_id
}
