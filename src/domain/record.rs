//! An NPD record (contact or organization) as one typed value, from the event or API answer that
//! carried it to the ledger row that keeps it.
//!
//! Owns: `NpdRecord` (the identity and sync header every record has, plus its fields by name) and
//! `NpdValue` (one field as NPD sends it). A record is validated against its kind's typed
//! snapshot (`ContactSnapshot`, `OrganizationSnapshot`) when it is read, so a wrongly typed known
//! field is refused with its name; fields beyond the contract's list (NPD's custom fields) are
//! kept when they are strings, numbers, booleans or lists of strings, and left out otherwise (the
//! inbox keeps the raw body).
//! May import: std, serde, serde_json, time, crate::domain.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::domain::entity::{
    ContactSnapshot, EntityKind, MondayItemId, NpdId, OrganizationSnapshot,
};

/// One field of an NPD record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NpdValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Text(String),
    List(Vec<String>),
}

impl NpdValue {
    /// The value as NPD's JSON has it; `None` for a shape the gateway does not sync (an object,
    /// a list of non-strings).
    pub fn from_json(value: Value) -> Option<NpdValue> {
        match value {
            Value::Null => Some(NpdValue::Null),
            Value::Bool(b) => Some(NpdValue::Bool(b)),
            Value::Number(n) => Some(NpdValue::Number(n)),
            Value::String(s) => Some(NpdValue::Text(s)),
            Value::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(NpdValue::List),
            Value::Object(_) => None,
        }
    }

    /// The text of a string value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            NpdValue::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// An NPD record as NPD sends it in an event's `data` and in its REST answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NpdRecord {
    pub id: NpdId,
    /// Increases with every change of the record.
    pub version: i64,
    /// `false`: the record is kept, nothing is sent to Monday.
    #[serde(default = "default_true")]
    pub sync_enabled: bool,
    /// The record's Monday item, as NPD knows it.
    #[serde(default)]
    pub monday_id: Option<MondayItemId>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// Every other field (`first_name`, `organization_id`, custom fields, ...).
    #[serde(flatten)]
    pub fields: BTreeMap<String, NpdValue>,
}

fn default_true() -> bool {
    true
}

/// The header keys of a record: everything else is a field.
const HEADER: [&str; 5] = ["id", "version", "sync_enabled", "monday_id", "updated_at"];

/// A record that does not have the shape of its kind.
#[derive(Debug)]
pub struct RecordShapeError(pub serde_path_to_error::Error<serde_json::Error>);

impl NpdRecord {
    /// Reads the `data` object of a record of `kind`. The known fields are checked against the
    /// kind's typed snapshot first, so an error names the field that is wrong.
    pub fn from_object(
        kind: EntityKind,
        data: Map<String, Value>,
    ) -> Result<Self, RecordShapeError> {
        let (id, version, sync_enabled, monday_id, updated_at) = match kind {
            EntityKind::Contact => {
                let c: ContactSnapshot =
                    serde_path_to_error::deserialize(&data).map_err(RecordShapeError)?;
                (c.id, c.version, c.sync_enabled, c.monday_id, c.updated_at)
            }
            EntityKind::Organization => {
                let o: OrganizationSnapshot =
                    serde_path_to_error::deserialize(&data).map_err(RecordShapeError)?;
                (o.id, o.version, o.sync_enabled, o.monday_id, o.updated_at)
            }
        };
        let fields = data
            .into_iter()
            .filter(|(k, _)| !HEADER.contains(&k.as_str()))
            .filter_map(|(k, v)| NpdValue::from_json(v).map(|v| (k, v)))
            .collect();
        Ok(NpdRecord {
            id,
            version,
            sync_enabled,
            monday_id,
            updated_at,
            fields,
        })
    }

    /// The text of a string field (`None` when absent, null or not a string).
    pub fn text(&self, field: &str) -> Option<&str> {
        self.fields.get(field).and_then(NpdValue::as_text)
    }

    /// Whether `other` holds the same fields and sync switch (only the header's version, time or
    /// link may differ).
    pub fn same_fields(&self, other: &NpdRecord) -> bool {
        self.fields == other.fields && self.sync_enabled == other.sync_enabled
    }
}

impl From<ContactSnapshot> for NpdRecord {
    fn from(c: ContactSnapshot) -> Self {
        let text = |v: Option<String>| v.map_or(NpdValue::Null, NpdValue::Text);
        let fields = [
            ("first_name", text(c.first_name)),
            ("last_name", text(c.last_name)),
            ("email", text(c.email)),
            ("phone", text(c.phone)),
            ("role_title", text(c.role_title)),
            ("notes", text(c.notes)),
            (
                "organization_id",
                text(c.organization_id.map(|o| o.to_string())),
            ),
        ];
        let mut fields: BTreeMap<String, NpdValue> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        for (name, value) in c.custom {
            if let Some(value) = NpdValue::from_json(value) {
                fields.entry(name).or_insert(value);
            }
        }
        NpdRecord {
            id: c.id,
            version: c.version,
            sync_enabled: c.sync_enabled,
            monday_id: c.monday_id,
            updated_at: c.updated_at,
            fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn custom_fields_are_kept_when_their_shape_is_syncable() {
        let data = object(json!({
            "id": "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10", "version": 3, "first_name": "Ada",
            "score": 4.5, "vip": true, "tags": ["a", "b"], "since": "2021-10-11",
            "address": {"city": "London"}, "mixed": [1, "x"], "notes": null,
        }));
        let r = NpdRecord::from_object(EntityKind::Contact, data).expect("valid");
        assert_eq!(r.text("first_name"), Some("Ada"));
        assert_eq!(r.fields.get("vip"), Some(&NpdValue::Bool(true)));
        assert_eq!(
            r.fields.get("tags"),
            Some(&NpdValue::List(vec!["a".into(), "b".into()]))
        );
        assert_eq!(r.fields.get("notes"), Some(&NpdValue::Null));
        assert!(r.fields.contains_key("score") && r.fields.contains_key("since"));
        assert!(!r.fields.contains_key("address") && !r.fields.contains_key("mixed"));
        assert!(!r.fields.contains_key("id") && !r.fields.contains_key("version"));
        assert!(r.sync_enabled, "absent sync_enabled means the record syncs");
    }

    #[test]
    fn a_wrongly_typed_known_field_is_named() {
        let data =
            object(json!({"id": "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10", "version": 1, "email": 5}));
        let err = NpdRecord::from_object(EntityKind::Contact, data).err();
        assert_eq!(
            err.map(|e| e.0.path().to_string()).as_deref(),
            Some("email")
        );
    }

    #[test]
    fn a_record_round_trips_through_its_stored_json() {
        let data = object(json!({
            "id": "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10", "version": 3, "sync_enabled": false,
            "monday_id": "42", "name": "Engines", "updated_at": "2026-11-26T09:59:58Z",
        }));
        let r = NpdRecord::from_object(EntityKind::Organization, data).expect("valid");
        let stored = serde_json::to_string(&r).expect("serialises");
        let back: NpdRecord = serde_json::from_str(&stored).expect("reads back");
        assert_eq!(back, r);
        assert_eq!(back.monday_id, Some(MondayItemId(42)));
    }
}
