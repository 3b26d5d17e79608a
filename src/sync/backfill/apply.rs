//! One verdict of a backfill's plan into the ledger and the outbox, inside the caller's
//! transaction: a link (its npd_id column written where empty, the link written back to NPD,
//! and its first values through the merge), a review, a create, or a Monday-only item recorded.
//!
//! Owns: `apply_verdict`, `link_pair`, `queue_create`, `record_monday_only`, `first_values`.
//! May import: std, crate::{domain, ledger, sync}.

use std::collections::HashMap;

use crate::domain::entity::{EntityKind, MondayItemId, Side, unix_ms};
use crate::domain::job::Operation;
use crate::domain::mapping::FieldValue;
use crate::domain::reconcile::{ConflictPolicy, FieldState};
use crate::domain::record::NpdRecord;
use crate::domain::scan::{Candidates, InitialWinner, MatchReason, StagedItem, Verdict};
use crate::domain::state::{EntityStatus, HistoryKind};
use crate::ledger::LedgerResult;
use crate::ledger::entities::{self, EntityRow, NewEntity};
use crate::ledger::scans;
use crate::ledger::tx::Tx;
use crate::sync::history::{Cause, record};
use crate::sync::process::Merge;
use crate::sync::scan::Scans;
use crate::sync::{outbox, relation};

impl Scans {
    pub(super) async fn apply_verdict(
        &self,
        tx: &mut Tx,
        (run_id, kind): (i64, EntityKind),
        npd_record: &NpdRecord,
        verdict: &Verdict,
        items: &HashMap<MondayItemId, &StagedItem>,
        cause: &Cause<'_>,
    ) -> LedgerResult<()> {
        match verdict {
            Verdict::Link { item, reason, .. } => match items.get(item) {
                Some(staged) => {
                    self.link_pair(tx, kind, npd_record, staged, *reason, cause)
                        .await
                }
                None => Ok(()),
            },
            Verdict::Review(candidates) => {
                let candidates = Candidates(candidates.clone());
                scans::open_review(tx, run_id, kind, npd_record.id, &candidates).await
            }
            Verdict::NoCandidate if npd_record.sync_enabled => {
                self.queue_create(tx, kind, Some(run_id), npd_record, cause)
                    .await
            }
            Verdict::NoCandidate => Ok(()),
        }
    }

    /// Links `npd_record` to `item` (unless another NPD record holds the item), writes the npd_id
    /// column where it is empty and the link back to NPD where NPD lacks it, and gives a new link
    /// its first values.
    pub(crate) async fn link_pair(
        &self,
        tx: &mut Tx,
        kind: EntityKind,
        npd_record: &NpdRecord,
        item: &StagedItem,
        reason: Option<MatchReason>,
        cause: &Cause<'_>,
    ) -> LedgerResult<()> {
        let existing = entities::find_by_npd(tx, kind, npd_record.id).await?;
        if let Some(owner) = entities::find_by_item(tx, item.id).await?
            && Some(owner.id) != existing.as_ref().map(|e| e.id)
        {
            if owner.npd_id.is_some() {
                return Ok(());
            }
            // A Monday-only entity of this item gives it up to its NPD record.
            entities::set_link(tx, owner.id, None, None).await?;
        }
        let fresh = existing
            .as_ref()
            .is_none_or(|e| e.monday_item_id != Some(item.id));
        let entity = match existing {
            Some(e) => entities::lock(tx, e.id).await?.unwrap_or(e),
            None => self.insert_entity(tx, kind, npd_record).await?,
        };
        let board = self.settings.board_for(kind);
        if fresh {
            entities::set_link(tx, entity.id, Some(item.id), board).await?;
            entities::record_npd_snapshot(tx, entity.id, npd_record).await?;
            let why = reason.map_or("the ledger", |r| match r {
                MatchReason::NpdId => "its npd_id column",
                MatchReason::MondayId => "NPD's monday_id",
                MatchReason::Email => "the email",
                MatchReason::Phone => "the phone",
            });
            let text = format!("linked to Monday item {} by {why}", item.id);
            record(tx, entity.id, cause, HistoryKind::Linked, text, None).await?;
        }
        let entity = entities::find_by_id(tx, entity.id).await?.unwrap_or(entity);
        if !entity.sync_enabled {
            return entities::set_status(tx, entity.id, EntityStatus::Disabled, None).await;
        }
        if fresh {
            self.first_values(tx, &entity, npd_record, item, cause)
                .await?;
        }
        if item.npd_id.as_deref().is_none_or(|t| t.trim().is_empty()) {
            outbox::ensure_npd_id_write(tx, &self.settings, &entity, cause).await?;
        }
        outbox::write_link_back(tx, &self.settings, &entity, item.id, cause).await
    }

    async fn insert_entity(
        &self,
        tx: &mut Tx,
        kind: EntityKind,
        npd_record: &NpdRecord,
    ) -> LedgerResult<EntityRow> {
        let new = NewEntity {
            kind,
            npd_id: Some(npd_record.id),
            monday_item_id: None,
            board_id: None,
            sync_enabled: npd_record.sync_enabled,
            status: EntityStatus::Pending,
        };
        entities::insert(tx, &new).await
    }

    /// The first values of a new link, through the merge: each field's state starts with
    /// nothing agreed and the other side's value known; NPD's non-empty values come in as NPD's
    /// changes, then Monday's values for the fields NPD leaves empty as Monday's, settled by the
    /// policy `[backfill] initial_winner` names.
    async fn first_values(
        &self,
        tx: &mut Tx,
        entity: &EntityRow,
        npd_record: &NpdRecord,
        item: &StagedItem,
        cause: &Cause<'_>,
    ) -> LedgerResult<()> {
        let mapping = self.settings.mapping.for_kind(entity.kind);
        let item_values = relation::staged_values(tx, mapping, &item.values).await?;
        let (mut from_npd, mut from_monday) = (Vec::new(), Vec::new());
        for (field, npd_value) in mapping.npd_values(npd_record) {
            let monday_value: FieldValue = item_values.get(&field).cloned().flatten();
            let state = match (&npd_value, &monday_value) {
                (None, None) => continue,
                (Some(_), _) => {
                    from_npd.push((field.clone(), npd_value));
                    FieldState {
                        monday: monday_value,
                        ..FieldState::default()
                    }
                }
                (None, Some(_)) => {
                    from_monday.push((field.clone(), monday_value));
                    FieldState::default()
                }
            };
            entities::save_field(tx, entity.id, &field, &state).await?;
        }
        let policy = match self.settings.backfill.initial_winner {
            InitialWinner::Npd => ConflictPolicy::NpdWins,
            InitialWinner::Monday => ConflictPolicy::MondayWins,
            InitialWinner::Manual => ConflictPolicy::Manual,
        };
        let at_ms = npd_record.updated_at.map(unix_ms);
        for (side, changes, at_ms) in [
            (Side::Npd, from_npd, at_ms),
            (Side::Monday, from_monday, None),
        ] {
            if changes.is_empty() {
                continue;
            }
            let merge = Merge {
                side,
                changes,
                at_ms,
                cause: *cause,
                echo_hint: None,
                policy: Some(policy),
            };
            self.processor.merge(tx, entity, merge).await?;
        }
        let open = crate::ledger::jobs::open_jobs(tx, entity.id).await?;
        let conflicts = crate::ledger::conflicts::open_count(tx, entity.id).await?;
        if open.is_empty() && conflicts == 0 {
            entities::set_status(tx, entity.id, EntityStatus::Synced, None).await?;
        }
        Ok(())
    }

    /// Queues the Monday item of a record no item matched, through the merge as NPD's event
    /// would (a lookup by npd_id and a create, at the cause's priority). NPD's `monday_id`, if
    /// any, names no item of the board: it is not trusted, and the new link is written back.
    pub(crate) async fn queue_create(
        &self,
        tx: &mut Tx,
        kind: EntityKind,
        run_id: Option<i64>,
        npd_record: &NpdRecord,
        cause: &Cause<'_>,
    ) -> LedgerResult<()> {
        let entity = match entities::find_by_npd(tx, kind, npd_record.id).await? {
            Some(e) => entities::lock(tx, e.id).await?.unwrap_or(e),
            None => self.insert_entity(tx, kind, npd_record).await?,
        };
        if entity.monday_item_id.is_some() {
            entities::set_link(tx, entity.id, None, None).await?;
        }
        let entity = entities::find_by_id(tx, entity.id).await?.unwrap_or(entity);
        let untrusted = NpdRecord {
            monday_id: None,
            ..npd_record.clone()
        };
        let at_ms = npd_record.updated_at.map(unix_ms);
        self.processor
            .apply_npd_snapshot(tx, &entity, &untrusted, at_ms, cause)
            .await?;
        if let Some(run_id) = run_id
            && outbox::has_open(tx, entity.id, Operation::PushItem).await?
        {
            scans::note_create(tx, run_id, entity.id).await?;
        }
        Ok(())
    }

    /// An item no record had as a candidate: recorded as a Monday-only entity (and, with
    /// `[sync] create_in_npd`, created in NPD as a contact).
    pub(super) async fn record_monday_only(
        &self,
        tx: &mut Tx,
        kind: EntityKind,
        item: &StagedItem,
        cause: &Cause<'_>,
    ) -> LedgerResult<()> {
        if entities::find_by_item(tx, item.id).await?.is_some() {
            return Ok(());
        }
        let new = NewEntity {
            kind,
            npd_id: None,
            monday_item_id: Some(item.id),
            board_id: self.settings.board_for(kind),
            sync_enabled: true,
            status: EntityStatus::Unlinked,
        };
        let entity = entities::insert(tx, &new).await?;
        let create = self.settings.sync.create_in_npd
            && kind == EntityKind::Contact
            && self.settings.npd.api_url.is_some();
        let text = if create {
            let mapping = self.settings.mapping.for_kind(kind);
            for (field, value) in &relation::staged_values(tx, mapping, &item.values).await? {
                let state = FieldState {
                    monday: value.clone(),
                    ..FieldState::default()
                };
                entities::save_field(tx, entity.id, field, &state).await?;
            }
            outbox::ensure(
                tx,
                &self.settings,
                &entity,
                Operation::CreateNpdContact,
                cause,
            )
            .await?;
            format!(
                "Monday item {} has no NPD record: an NPD contact will be created",
                item.id
            )
        } else {
            format!(
                "Monday item {} has no NPD record: recorded, not created in NPD",
                item.id
            )
        };
        record(tx, entity.id, cause, HistoryKind::Reported, text, None).await
    }
}
