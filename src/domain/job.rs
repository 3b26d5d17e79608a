//! What an outbox job is: its operation, its priority, the payload stored with it and the typed
//! answer of its remote call.
//!
//! Owns: `Operation`, `Priority`, `JobPayload` (serialised once into the job's ledger column),
//! `Work` (what a job sends, frozen at its first attempt so every retry sends the same thing under
//! the same idempotency key) and `Sent` (what the remote answered, as the job records it).
//! May import: std, serde, crate::domain.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::entity::{BoardId, MondayItemId, NpdId, Side};
use crate::domain::mapping::FieldValue;
use crate::domain::names::named_enum;

named_enum! {
    /// What an outbox job does.
    pub enum Operation ("operation") {
        /// Create the entity's Monday item (after a lookup by npd_id) or update it with the
        /// pending values; with `force`, every synced field.
        PushItem = "push_item",
        /// Archive the entity's Monday item (the NPD record was deleted).
        ArchiveItem = "archive_item",
        /// PATCH the NPD record with the fields Monday changed.
        PatchNpd = "patch_npd",
        /// PATCH the NPD record with its new `monday_id`.
        WriteLink = "write_link",
        /// POST a new NPD contact for a Monday item created without an npd_id
        /// (`[sync] create_in_npd`).
        CreateNpdContact = "create_npd_contact",
    }
}

impl Operation {
    /// The system the job writes to.
    pub fn target(self) -> Side {
        match self {
            Operation::PushItem | Operation::ArchiveItem => Side::Monday,
            Operation::PatchNpd | Operation::WriteLink | Operation::CreateNpdContact => Side::Npd,
        }
    }
}

/// How urgent a job is. Higher runs first, and only admin work may spend the reserve of the
/// Monday budget. Stored as its number, so the ledger can order and compare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// The first sync of existing data: runs when nothing else needs the budget.
    Backfill,
    /// Repairs found by a drift scan.
    Drift,
    /// Routine sync of webhooks and events.
    Live,
    /// An admin's push or resolution.
    Admin,
}

impl Priority {
    /// Lowest first.
    pub const ALL: [Priority; 4] = [
        Priority::Backfill,
        Priority::Drift,
        Priority::Live,
        Priority::Admin,
    ];

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Backfill => "backfill",
            Priority::Drift => "drift",
            Priority::Live => "live",
            Priority::Admin => "admin",
        }
    }

    pub fn as_i64(self) -> i64 {
        match self {
            Priority::Backfill => -20,
            Priority::Drift => -10,
            Priority::Live => 0,
            Priority::Admin => 10,
        }
    }

    /// The priority stored as `n`: the highest one not above it (the lowest for anything below).
    pub fn from_i64(n: i64) -> Priority {
        Priority::ALL
            .into_iter()
            .rev()
            .find(|p| p.as_i64() <= n)
            .unwrap_or(Priority::Backfill)
    }
}

/// The payload column of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPayload {
    /// Push every synced field, not only the pending ones (an admin's push, a re-create).
    #[serde(default)]
    pub force: bool,
    /// What the first attempt sent; every retry sends it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<Work>,
    /// Also write the entity's NPD id into the item's npd_id column (a backfill linked an item
    /// whose column was empty).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub write_npd_id: bool,
}

impl JobPayload {
    /// A payload that pushes every synced field.
    pub fn forced() -> Self {
        JobPayload {
            force: true,
            ..JobPayload::default()
        }
    }
}

/// What a job sends, frozen at its first attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "work", rename_all = "snake_case")]
pub enum Work {
    /// Create or update the entity's item with these field values (`all`: every synced field;
    /// `npd_id`: the npd_id column too).
    PushItem {
        values: BTreeMap<String, FieldValue>,
        all: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        npd_id: bool,
    },
    ArchiveItem,
    /// PATCH these NPD fields.
    PatchNpd {
        values: BTreeMap<String, FieldValue>,
    },
    /// PATCH `monday_id`.
    WriteLink {
        monday_id: MondayItemId,
    },
    /// POST a new contact with these fields.
    CreateNpdContact {
        values: BTreeMap<String, FieldValue>,
    },
    /// Nothing left to send (the values were already written by an earlier job).
    Nothing,
}

impl Work {
    /// A push of `values` (with the npd_id column when `npd_id`), or `Nothing` when that writes
    /// nothing at all.
    pub fn push_item(values: BTreeMap<String, FieldValue>, all: bool, npd_id: bool) -> Work {
        if values.is_empty() && !npd_id {
            Work::Nothing
        } else {
            Work::PushItem {
                values,
                all,
                npd_id,
            }
        }
    }

    /// The side this work writes field values to, with the values: what the merge state tracks
    /// as pending (`None` for work that writes no field).
    pub fn field_values(&self) -> Option<(Side, &BTreeMap<String, FieldValue>)> {
        match self {
            Work::PushItem { values, .. } => Some((Side::Monday, values)),
            Work::PatchNpd { values } => Some((Side::Npd, values)),
            _ => None,
        }
    }
}

/// What a job's remote call achieved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "sent", rename_all = "snake_case")]
pub enum Sent {
    /// Nothing was sent.
    Nothing,
    /// The entity's item was created, or updated (`adopted`: an item found by its npd_id).
    Item {
        item_id: MondayItemId,
        board_id: BoardId,
        created: bool,
        adopted: bool,
    },
    /// The item was archived (`None`: there was no item, or it was already gone).
    Archived { item_id: Option<MondayItemId> },
    /// NPD took these fields and answered with its record's new version.
    NpdPatched {
        fields: Vec<String>,
        npd_version: Option<i64>,
    },
    /// NPD took the link.
    LinkWritten {
        monday_id: MondayItemId,
        npd_version: Option<i64>,
    },
    /// NPD created the contact.
    NpdCreated { npd_id: NpdId },
}

impl Sent {
    /// The version NPD answered a write with: its own event for that version is an echo.
    pub fn npd_version(&self) -> Option<i64> {
        match self {
            Sent::NpdPatched { npd_version, .. } | Sent::LinkWritten { npd_version, .. } => {
                *npd_version
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_written_by_earlier_versions_still_read() {
        let cases = [
            ("{}", JobPayload::default()),
            (r#"{"force": true}"#, JobPayload::forced()),
            (
                r#"{"force": false, "frozen": {"work": "write_link", "monday_id": "42"}}"#,
                JobPayload {
                    frozen: Some(Work::WriteLink {
                        monday_id: MondayItemId(42),
                    }),
                    ..JobPayload::default()
                },
            ),
        ];
        for (json, expected) in cases {
            let read: Result<JobPayload, _> = serde_json::from_str(json);
            assert_eq!(read.ok(), Some(expected), "{json}");
        }
    }

    #[test]
    fn priorities_order_and_survive_storage() {
        assert!(Priority::Admin > Priority::Live);
        assert!(Priority::Live > Priority::Drift && Priority::Drift > Priority::Backfill);
        for p in Priority::ALL {
            assert_eq!(Priority::from_i64(p.as_i64()), p);
        }
    }

    #[test]
    fn operations_know_their_target() {
        assert_eq!(Operation::PushItem.target(), Side::Monday);
        assert_eq!(Operation::WriteLink.target(), Side::Npd);
        assert_eq!(
            "archive_item".parse::<Operation>().ok(),
            Some(Operation::ArchiveItem)
        );
    }
}
