//! The entity keys a processing transaction holds before it decides on an event.
//!
//! Owns: `Processor::claim_keys`. One entity can receive events in two lanes (its NPD record's and
//! its Monday item's), so before an event touches an entity its transaction try-locks the natural
//! keys of everything it may touch: the event's own key, the key it names on the other side (an
//! NPD record's `monday_id`, a created item's npd_id column), and the other key of each entity
//! those find. A busy key stops the event's lane in this batch before the event (nothing of it is
//! written); it and the rest of its lane are left for the next round.
//! SQLite's write transactions are serial: nothing is locked or read there.
//! May import: crate::{domain, ledger, sync}.

use crate::domain::entity::Side;
use crate::domain::event::{MondayDelivery, MondayEventKind, NpdData, NpdEvent};
use crate::domain::lane::EntityKey;
use crate::ledger::LedgerResult;
use crate::ledger::entities::{self, EntityRow};
use crate::ledger::inbox::{self, InboxRow};
use crate::ledger::tx::Tx;
use crate::sync::process::{Processor, monday::created_npd_id};

impl Processor {
    /// Try-locks every entity key processing `row` may touch: true when all are held, false when
    /// another transaction holds one (nothing of the event has been written then).
    pub(super) async fn claim_keys(&self, tx: &mut Tx, row: &InboxRow) -> LedgerResult<bool> {
        if tx.is_serial() {
            return Ok(true);
        }
        let named = self.named_keys(row);
        if !inbox::try_lock_keys(tx, &named).await? {
            return Ok(false);
        }
        let mut others = Vec::new();
        for key in &named {
            let entity = match *key {
                EntityKey::Npd(kind, id) => entities::find_by_npd(tx, kind, id).await?,
                EntityKey::Item(item) => entities::find_by_item(tx, item).await?,
            };
            others.extend(entity.as_ref().map(keys_of).unwrap_or_default());
        }
        others.retain(|k| !named.contains(k));
        inbox::try_lock_keys(tx, &others).await
    }

    /// The keys an inbox row names: its own, and the other side's when the payload names one.
    fn named_keys(&self, row: &InboxRow) -> Vec<EntityKey> {
        let mut keys = Vec::with_capacity(2);
        match row.source {
            Side::Npd => {
                if let (Some(kind), Some(id)) = (row.entity_kind, row.npd_id) {
                    keys.push(EntityKey::Npd(kind, id));
                }
                if let Ok(NpdEvent {
                    data: NpdData::Record(record),
                    ..
                }) = NpdEvent::parse(row.payload.as_bytes())
                {
                    keys.extend(record.monday_id.map(EntityKey::Item));
                }
            }
            Side::Monday => {
                keys.extend(row.monday_item_id.map(EntityKey::Item));
                if let (Some(kind), Ok(MondayDelivery::Event(event))) = (
                    row.entity_kind,
                    MondayDelivery::parse(row.payload.as_bytes()),
                ) && event.kind == MondayEventKind::ItemCreated
                {
                    let column = &self.settings.mapping.for_kind(kind).npd_id_column;
                    keys.extend(created_npd_id(&event, column).map(|id| EntityKey::Npd(kind, id)));
                }
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }
}

/// An entity's natural keys.
fn keys_of(entity: &EntityRow) -> Vec<EntityKey> {
    let npd = entity.npd_id.map(|id| EntityKey::Npd(entity.kind, id));
    npd.into_iter()
        .chain(entity.monday_item_id.map(EntityKey::Item))
        .collect()
}
