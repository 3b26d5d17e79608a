//! Typed inbound events of both sides and their parsing from raw bytes.
//!
//! Owns: `NpdEvent` (the body of `POST /api/v1/npd/events`), `MondayDelivery` / `MondayEvent` (the
//! body of a Monday webhook delivery, legacy `event.type` vocabulary of FACTS.md §1.2), and
//! `EventParseError`, the reason a body was refused. An error names the JSON path of the offending
//! field and what was expected, never the offending value or any other payload content.
//! A Monday delivery without `triggerUuid` (the legacy shape) is accepted: its dedupe key is
//! `sha256:` and the SHA-256 of its body, so a redelivery of the same bytes is a duplicate.
//! May import: std, serde, serde_json, serde_path_to_error, sha2, time, crate::domain::entity.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::domain::entity::{BoardId, EntityKind, MondayItemId, NpdId};
use crate::domain::record::NpdRecord;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a body was refused. `field` is the JSON path of the offending field (`type`, `data.id`,
/// `data.version`, `event.pulseId`, ...) when one can be named. Display: "field `data.version`:
/// has the wrong type, expected an integer" or the message alone.
///
/// Neither part contains the offending value or any other payload content: error bodies must
/// never echo payloads. serde's own messages quote values, so they are never forwarded verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventParseError {
    pub field: Option<String>,
    pub message: String,
}

impl EventParseError {
    fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        EventParseError {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    fn body(message: impl Into<String>) -> Self {
        EventParseError {
            field: None,
            message: message.into(),
        }
    }

    fn missing(field: impl Into<String>) -> Self {
        Self::at(field, "is missing")
    }

    fn wrong_type(field: impl Into<String>, expected: &str) -> Self {
        Self::at(field, format!("has the wrong type, expected {expected}"))
    }
}

impl fmt::Display for EventParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "field `{field}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for EventParseError {}

/// Parses a body as JSON. The error names the position only: serde_json's message is not used.
fn parse_json(body: &[u8]) -> Result<Value, EventParseError> {
    serde_json::from_slice(body).map_err(|e| {
        EventParseError::body(format!(
            "body is not valid JSON at line {} column {}",
            e.line(),
            e.column()
        ))
    })
}

/// Deserializes `value` (found at path `prefix`) into `T`, naming the offending field on failure.
fn decode<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, EventParseError> {
    serde_path_to_error::deserialize(value).map_err(|e| describe(prefix, &e))
}

/// Turns a path-tracked serde error into an `EventParseError` without any payload content.
fn describe(prefix: &str, err: &serde_path_to_error::Error<serde_json::Error>) -> EventParseError {
    let mut path = prefix.to_owned();
    for segment in err.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => {
                path.push_str(&format!("[{index}]"));
            }
            serde_path_to_error::Segment::Map { key } => push_key(&mut path, key),
            serde_path_to_error::Segment::Enum { variant } => push_key(&mut path, variant),
            serde_path_to_error::Segment::Unknown => push_key(&mut path, "?"),
        }
    }
    let inner = err.inner().to_string();

    if let Some(rest) = inner.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("?");
        push_key(&mut path, name);
        return EventParseError::missing(path);
    }
    let expected = expectation_for(&path).or_else(|| serde_expectation(&inner));
    let message = if inner.starts_with("invalid type: ") {
        match expected {
            Some(e) => format!("has the wrong type, expected {e}"),
            None => "has the wrong type".to_owned(),
        }
    } else {
        // "invalid value", "invalid length" and the custom messages of the id, UUID and time
        // deserializers, which quote the value: say only what was expected.
        match expected {
            Some(e) => format!("has an invalid value, expected {e}"),
            None => "has an invalid value".to_owned(),
        }
    };
    EventParseError::at(path, message)
}

/// Appends `.key`; a key that does not look like one of our field names is replaced by `?` so a
/// path can never carry payload text.
fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key.len() <= 64
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(if plain { key } else { "?" });
}

/// What a known field expects, by the last segment of its path (wire names of both sides).
fn expectation_for(path: &str) -> Option<&'static str> {
    let last = path.rsplit('.').next().unwrap_or(path);
    Some(match last {
        "id" | "organization_id" => "a UUID",
        "version" => "an integer",
        "monday_id" => "a numeric id",
        "sync_enabled" | "isRetry" => "a boolean",
        "timestamp" | "updated_at" | "triggerTime" => "an RFC 3339 timestamp",
        "boardId" | "destBoardId" | "pulseId" | "itemId" | "subitem" | "parentItemId"
        | "parentItemBoardId" | "parentBoardId" => "a numeric id (number or string of digits)",
        "changedAt" => "unix seconds (number or numeric string)",
        "userId" => "an integer",
        "subscriptionId" | "updateId" => "a non-negative integer",
        "columnValues" => "an object",
        _ => return None,
    })
}

/// The "expected ..." tail of serde's `invalid type` / `invalid value` messages, humanized. The
/// tail comes from our own visitors (`expecting`), after the quoted value; it is still dropped if
/// it contains anything that could be a quote.
fn serde_expectation(message: &str) -> Option<&'static str> {
    let tail = &message[message.rfind(", expected ")? + ", expected ".len()..];
    Some(match tail {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "f32" | "f64" => "a number",
        "a string" => "a string",
        "a boolean" => "a boolean",
        "a sequence" => "an array",
        t if t.starts_with("struct ") || t == "a map" => "an object",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// NPD change events
// ---------------------------------------------------------------------------------------------

/// The `type` of an NPD change event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NpdEventType {
    ContactCreated,
    ContactUpdated,
    ContactDeleted,
    OrganizationCreated,
    OrganizationUpdated,
    OrganizationDeleted,
}

impl NpdEventType {
    pub const ALL: [NpdEventType; 6] = [
        NpdEventType::ContactCreated,
        NpdEventType::ContactUpdated,
        NpdEventType::ContactDeleted,
        NpdEventType::OrganizationCreated,
        NpdEventType::OrganizationUpdated,
        NpdEventType::OrganizationDeleted,
    ];

    /// The wire name: `contact.created`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            NpdEventType::ContactCreated => "contact.created",
            NpdEventType::ContactUpdated => "contact.updated",
            NpdEventType::ContactDeleted => "contact.deleted",
            NpdEventType::OrganizationCreated => "organization.created",
            NpdEventType::OrganizationUpdated => "organization.updated",
            NpdEventType::OrganizationDeleted => "organization.deleted",
        }
    }

    /// The inverse of `as_str` (exact match).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn entity_kind(self) -> EntityKind {
        match self {
            NpdEventType::ContactCreated
            | NpdEventType::ContactUpdated
            | NpdEventType::ContactDeleted => EntityKind::Contact,
            NpdEventType::OrganizationCreated
            | NpdEventType::OrganizationUpdated
            | NpdEventType::OrganizationDeleted => EntityKind::Organization,
        }
    }

    pub fn is_delete(self) -> bool {
        matches!(
            self,
            NpdEventType::ContactDeleted | NpdEventType::OrganizationDeleted
        )
    }
}

impl fmt::Display for NpdEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `data` of an NPD event: the full snapshot, or only the identity of a deleted record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NpdData {
    /// The record as it is now (`*.created`, `*.updated`).
    Record(NpdRecord),
    Deleted {
        id: NpdId,
        version: i64,
    },
}

/// A parsed NPD change event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpdEvent {
    pub event_type: NpdEventType,
    pub timestamp: Option<OffsetDateTime>,
    pub data: NpdData,
}

/// `data` of a `*.deleted` event: only `id` and `version` are read, other fields are ignored.
#[derive(Deserialize)]
struct DeletedData {
    id: NpdId,
    version: i64,
}

/// The envelope `timestamp`, decoded on its own so that its error is named `timestamp`.
#[derive(Deserialize)]
struct Rfc3339(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);

impl NpdEvent {
    /// Parses the raw body of `POST /api/v1/npd/events`.
    pub fn parse(body: &[u8]) -> Result<NpdEvent, EventParseError> {
        let Value::Object(mut root) = parse_json(body)? else {
            return Err(EventParseError::body("body must be a JSON object"));
        };

        let event_type = match root.get("type") {
            None => return Err(EventParseError::missing("type")),
            Some(Value::String(s)) => NpdEventType::parse(s)
                .ok_or_else(|| EventParseError::at("type", "unknown event type"))?,
            Some(_) => return Err(EventParseError::wrong_type("type", "a string")),
        };

        let timestamp = match root.remove("timestamp") {
            None | Some(Value::Null) => None,
            Some(v) => Some(decode::<Rfc3339>(v, "timestamp")?.0),
        };

        let data = match root.remove("data") {
            None => return Err(EventParseError::missing("data")),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(EventParseError::wrong_type("data", "an object")),
        };

        let data = if event_type.is_delete() {
            let DeletedData { id, version } = decode(Value::Object(data), "data")?;
            NpdData::Deleted { id, version }
        } else {
            NpdData::Record(
                NpdRecord::from_object(event_type.entity_kind(), data)
                    .map_err(|e| describe("data", &e.0))?,
            )
        };

        Ok(NpdEvent {
            event_type,
            timestamp,
            data,
        })
    }

    pub fn npd_id(&self) -> NpdId {
        match &self.data {
            NpdData::Record(r) => r.id,
            NpdData::Deleted { id, .. } => *id,
        }
    }

    pub fn version(&self) -> i64 {
        match &self.data {
            NpdData::Record(r) => r.version,
            NpdData::Deleted { version, .. } => *version,
        }
    }

    pub fn entity_kind(&self) -> EntityKind {
        self.event_type.entity_kind()
    }

    /// data.updated_at, else the envelope timestamp.
    pub fn updated_at(&self) -> Option<OffsetDateTime> {
        let from_data = match &self.data {
            NpdData::Record(r) => r.updated_at,
            NpdData::Deleted { .. } => None,
        };
        from_data.or(self.timestamp)
    }
}

// ---------------------------------------------------------------------------------------------
// Monday webhook deliveries
// ---------------------------------------------------------------------------------------------

/// One POST to the Monday webhook endpoint: the URL-verification challenge or an event.
#[derive(Debug, Clone, PartialEq)]
pub enum MondayDelivery {
    Challenge(String),
    Event(Box<MondayEvent>),
}

impl MondayDelivery {
    /// A body `{"challenge": "<string>"}` without `event` is a Challenge; `{"event": {...}}` is an
    /// Event; anything else is an error.
    pub fn parse(body: &[u8]) -> Result<MondayDelivery, EventParseError> {
        let Value::Object(mut root) = parse_json(body)? else {
            return Err(EventParseError::body("body must be a JSON object"));
        };
        match root.remove("event") {
            Some(Value::Object(event)) => {
                MondayEvent::from_object(event, body).map(|e| MondayDelivery::Event(Box::new(e)))
            }
            Some(_) => Err(EventParseError::wrong_type("event", "an object")),
            None => match root.remove("challenge") {
                Some(Value::String(challenge)) => Ok(MondayDelivery::Challenge(challenge)),
                Some(_) => Err(EventParseError::wrong_type("challenge", "a string")),
                None => Err(EventParseError::at(
                    "event",
                    "is missing (and the body is not a challenge)",
                )),
            },
        }
    }
}

/// What happened, from the delivered legacy `event.type` (FACTS.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MondayEventKind {
    ItemCreated,
    ColumnValueChanged,
    NameChanged,
    ItemArchived,
    ItemDeleted,
    ItemRestored,
    ItemMovedToGroup,
    SubitemMoved,
    UpdateCreated,
    UpdateEdited,
    UpdateDeleted,
    ColumnCreated,
    Other,
}

impl MondayEventKind {
    /// From the delivered legacy `event.type` (create_pulse, update_column_value, update_name,
    /// archive_pulse, delete_pulse, restore_pulse, move_pulse_into_group, move_subitem,
    /// create_update, edit_update, delete_update, create_column); anything else is Other
    /// (accepted and later recorded as ignored, never refused: Monday retries refusals for 30 min).
    pub fn from_type(event_type: &str) -> Self {
        match event_type {
            "create_pulse" => MondayEventKind::ItemCreated,
            "update_column_value" => MondayEventKind::ColumnValueChanged,
            "update_name" => MondayEventKind::NameChanged,
            "archive_pulse" => MondayEventKind::ItemArchived,
            "delete_pulse" => MondayEventKind::ItemDeleted,
            "restore_pulse" => MondayEventKind::ItemRestored,
            "move_pulse_into_group" => MondayEventKind::ItemMovedToGroup,
            "move_subitem" => MondayEventKind::SubitemMoved,
            "create_update" => MondayEventKind::UpdateCreated,
            "edit_update" => MondayEventKind::UpdateEdited,
            "delete_update" => MondayEventKind::UpdateDeleted,
            "create_column" => MondayEventKind::ColumnCreated,
            _ => MondayEventKind::Other,
        }
    }

    /// Our stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            MondayEventKind::ItemCreated => "item_created",
            MondayEventKind::ColumnValueChanged => "column_value_changed",
            MondayEventKind::NameChanged => "name_changed",
            MondayEventKind::ItemArchived => "item_archived",
            MondayEventKind::ItemDeleted => "item_deleted",
            MondayEventKind::ItemRestored => "item_restored",
            MondayEventKind::ItemMovedToGroup => "item_moved_to_group",
            MondayEventKind::SubitemMoved => "subitem_moved",
            MondayEventKind::UpdateCreated => "update_created",
            MondayEventKind::UpdateEdited => "update_edited",
            MondayEventKind::UpdateDeleted => "update_deleted",
            MondayEventKind::ColumnCreated => "column_created",
            MondayEventKind::Other => "other",
        }
    }
}

impl fmt::Display for MondayEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed Monday webhook event (the `event` member of a delivery).
#[derive(Debug, Clone, PartialEq)]
pub struct MondayEvent {
    pub kind: MondayEventKind,
    /// The raw legacy `type`.
    pub event_type: String,
    /// The dedupe key: `triggerUuid` (non-empty when given), or `sha256:<hex>` of the whole body
    /// for a legacy delivery without one.
    pub trigger_uuid: String,
    pub original_trigger_uuid: Option<String>,
    /// `boardId`; for `move_subitem`, `destBoardId`.
    pub board_id: Option<BoardId>,
    /// `pulseId`, else `itemId`, else `subitem` (`move_subitem`).
    pub item_id: Option<MondayItemId>,
    /// `parentItemId` (string or number).
    pub parent_item_id: Option<MondayItemId>,
    /// `parentItemBoardId` or `parentBoardId` (string or number).
    pub parent_board_id: Option<BoardId>,
    /// `pulseName`, else `itemName`, else `value.name` on `update_name`.
    pub item_name: Option<String>,
    /// `groupId`, else `destGroupId`.
    pub group_id: Option<String>,
    pub column_id: Option<String>,
    pub column_type: Option<String>,
    /// JSON null is None.
    pub value: Option<Value>,
    pub previous_value: Option<Value>,
    /// `create_pulse`: column id to value JSON.
    pub column_values: Option<Map<String, Value>>,
    /// Unix seconds (number, or numeric string).
    pub changed_at: Option<f64>,
    pub trigger_time: Option<OffsetDateTime>,
    pub user_id: Option<i64>,
    pub subscription_id: Option<u64>,
    /// Absent is false.
    pub is_retry: bool,
    pub update_id: Option<u64>,
}

impl MondayEvent {
    pub fn is_subitem(&self) -> bool {
        self.parent_item_id.is_some()
    }

    /// `changed_at` in milliseconds, rounded down.
    pub fn changed_at_ms(&self) -> Option<i64> {
        self.changed_at.map(|s| (s * 1000.0).floor() as i64)
    }

    fn from_object(event: Map<String, Value>, body: &[u8]) -> Result<MondayEvent, EventParseError> {
        let raw: RawMondayEvent = decode(Value::Object(event), "event")?;

        let event_type = raw
            .event_type
            .ok_or_else(|| EventParseError::missing("event.type"))?;
        let trigger_uuid = match raw.trigger_uuid {
            None => body_key(body),
            Some(s) if s.trim().is_empty() => {
                return Err(EventParseError::at(
                    "event.triggerUuid",
                    "must not be empty",
                ));
            }
            Some(s) => s,
        };
        let kind = MondayEventKind::from_type(&event_type);

        let board_id = if kind == MondayEventKind::SubitemMoved {
            raw.dest_board_id.or(raw.board_id)
        } else {
            raw.board_id
        };
        let item_name = raw.pulse_name.or(raw.item_name).or_else(|| {
            if kind != MondayEventKind::NameChanged {
                return None;
            }
            raw.value
                .as_ref()
                .and_then(|v| v.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });

        Ok(MondayEvent {
            kind,
            event_type,
            trigger_uuid,
            original_trigger_uuid: raw.original_trigger_uuid,
            board_id,
            item_id: raw.pulse_id.or(raw.item_id).or(raw.subitem),
            parent_item_id: raw.parent_item_id,
            parent_board_id: raw.parent_item_board_id.or(raw.parent_board_id),
            item_name,
            group_id: raw.group_id.or(raw.dest_group_id),
            column_id: raw.column_id,
            column_type: raw.column_type,
            value: raw.value,
            previous_value: raw.previous_value,
            column_values: raw.column_values,
            changed_at: raw.changed_at,
            trigger_time: raw.trigger_time,
            user_id: raw.user_id,
            subscription_id: raw.subscription_id,
            is_retry: raw.is_retry.unwrap_or(false),
            update_id: raw.update_id,
        })
    }
}

/// The dedupe key of a delivery without `triggerUuid`: the SHA-256 of its body.
pub fn body_key(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{:x}", Sha256::digest(body))
}

/// The wire shape of `event`: every field optional here; required ones are checked afterwards so
/// that their errors are ours. Unknown fields are ignored.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawMondayEvent {
    #[serde(rename = "type")]
    event_type: Option<String>,
    trigger_uuid: Option<String>,
    original_trigger_uuid: Option<String>,
    board_id: Option<BoardId>,
    dest_board_id: Option<BoardId>,
    pulse_id: Option<MondayItemId>,
    item_id: Option<MondayItemId>,
    subitem: Option<MondayItemId>,
    parent_item_id: Option<MondayItemId>,
    parent_item_board_id: Option<BoardId>,
    parent_board_id: Option<BoardId>,
    pulse_name: Option<String>,
    item_name: Option<String>,
    group_id: Option<String>,
    dest_group_id: Option<String>,
    column_id: Option<String>,
    column_type: Option<String>,
    value: Option<Value>,
    previous_value: Option<Value>,
    column_values: Option<Map<String, Value>>,
    #[serde(deserialize_with = "opt_seconds")]
    changed_at: Option<f64>,
    #[serde(with = "time::serde::rfc3339::option")]
    trigger_time: Option<OffsetDateTime>,
    #[serde(deserialize_with = "opt_i64")]
    user_id: Option<i64>,
    #[serde(deserialize_with = "opt_u64")]
    subscription_id: Option<u64>,
    is_retry: Option<bool>,
    #[serde(deserialize_with = "opt_u64")]
    update_id: Option<u64>,
}

/// An optional integer given as a JSON number (whole) or a string of digits; null is None.
/// Error messages are fixed texts: they never quote the value.
struct OptInteger;

impl<'de> Visitor<'de> for OptInteger {
    type Value = Option<i128>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer (number or string of digits)")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 2f64.powi(53) {
            Ok(Some(v as i128))
        } else {
            Err(E::custom("not a whole number"))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        v.trim()
            .parse::<i128>()
            .map(Some)
            .map_err(|_| E::custom("not an integer"))
    }
}

fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(OptInteger)?
        .map(|v| i64::try_from(v).map_err(|_| de::Error::custom("integer out of range")))
        .transpose()
}

fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(OptInteger)?
        .map(|v| u64::try_from(v).map_err(|_| de::Error::custom("integer out of range")))
        .transpose()
}

/// Optional unix seconds as a JSON number or a numeric string; null is None; must be finite.
struct OptSeconds;

impl<'de> Visitor<'de> for OptSeconds {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unix seconds (number or numeric string)")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.is_finite() {
            Ok(Some(v))
        } else {
            Err(E::custom("not a finite number"))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match v.trim().parse::<f64>() {
            Ok(s) if s.is_finite() => Ok(Some(s)),
            _ => Err(E::custom("not a number")),
        }
    }
}

fn opt_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_any(OptSeconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::format_description::well_known::Rfc3339 as Rfc3339Format;

    const CONTACTS_BOARD: u64 = 4_100_000_001;
    const ORGANIZATIONS_BOARD: u64 = 4_100_000_002;
    const SUBITEMS_BOARD: u64 = 4_100_000_003;
    const UNRELATED_BOARD: u64 = 4_100_000_099;
    const USER: i64 = 71_000_001;
    const ADA_ITEM: u64 = 5_200_000_101;
    const CONTACT_ID: &str = "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10";
    const ORG_ID: &str = "8c2d4e6f-1a3b-4c5d-9e7f-0a1b2c3d4e5f";

    macro_rules! monday {
        ($name:literal) => {
            (
                $name,
                include_str!(concat!("../../fixtures/monday/", $name)),
            )
        };
    }
    macro_rules! npd {
        ($name:literal) => {
            include_str!(concat!("../../fixtures/npd/", $name))
        };
    }

    fn event(json: &str) -> MondayEvent {
        match MondayDelivery::parse(json.as_bytes()).expect("fixture parses") {
            MondayDelivery::Event(event) => *event,
            MondayDelivery::Challenge(_) => panic!("expected an event, got a challenge"),
        }
    }

    fn npd_event(json: &str) -> NpdEvent {
        NpdEvent::parse(json.as_bytes()).expect("fixture parses")
    }

    fn ts(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339Format).expect("valid RFC 3339 literal")
    }

    /// What one Monday fixture must parse to.
    struct Expect {
        file: (&'static str, &'static str),
        kind: MondayEventKind,
        event_type: &'static str,
        trigger_uuid: &'static str,
        board_id: Option<u64>,
        item_id: Option<u64>,
        parent_item_id: Option<u64>,
        parent_board_id: Option<u64>,
        item_name: Option<&'static str>,
        group_id: Option<&'static str>,
        column: Option<(&'static str, &'static str)>,
        has_value: bool,
        has_previous_value: bool,
        has_column_values: bool,
        changed_at_ms: Option<i64>,
        is_retry: bool,
        user_id: Option<i64>,
        update_id: Option<u64>,
    }

    const BASE: Expect = Expect {
        file: ("", ""),
        kind: MondayEventKind::Other,
        event_type: "",
        trigger_uuid: "",
        board_id: Some(CONTACTS_BOARD),
        item_id: Some(ADA_ITEM),
        parent_item_id: None,
        parent_board_id: None,
        item_name: Some("Ada Lovelace"),
        group_id: Some("topics"),
        column: None,
        has_value: false,
        has_previous_value: false,
        has_column_values: false,
        changed_at_ms: None,
        is_retry: false,
        user_id: Some(USER),
        update_id: None,
    };

    const fn column_change(
        file: (&'static str, &'static str),
        trigger_uuid: &'static str,
        column: (&'static str, &'static str),
        has_previous_value: bool,
        changed_at_ms: i64,
    ) -> Expect {
        Expect {
            file,
            kind: MondayEventKind::ColumnValueChanged,
            event_type: "update_column_value",
            trigger_uuid,
            column: Some(column),
            has_value: true,
            has_previous_value,
            changed_at_ms: Some(changed_at_ms),
            ..BASE
        }
    }

    /// What each Monday event fixture must parse to, one row a fixture.
    const MONDAY_TABLE: &[Expect] = {
        use MondayEventKind as K;
        &[
            Expect {
                file: monday!("create_pulse.json"),
                kind: K::ItemCreated,
                event_type: "create_pulse",
                trigger_uuid: "2e64a62bd782430fd874912b738876ca",
                has_column_values: true,
                ..BASE
            },
            Expect {
                file: monday!("create_pulse_form.json"),
                kind: K::ItemCreated,
                event_type: "create_pulse",
                trigger_uuid: "4d032d85800caa7ebb462fb0b8839000",
                item_id: Some(5_200_000_102),
                item_name: Some("Grace Hopper"),
                has_column_values: true,
                is_retry: true,
                user_id: Some(-6),
                ..BASE
            },
            Expect {
                file: monday!("create_subitem.json"),
                kind: K::ItemCreated,
                event_type: "create_pulse",
                trigger_uuid: "4f7eaacf0c8b9582b62c3e49330aac9a",
                board_id: Some(SUBITEMS_BOARD),
                item_id: Some(5_200_000_301),
                parent_item_id: Some(ADA_ITEM),
                parent_board_id: Some(CONTACTS_BOARD),
                item_name: Some("Follow-up call"),
                has_column_values: true,
                ..BASE
            },
            column_change(
                monday!("update_column_value_date.json"),
                "c23a723f335aa5ae2bd72c80c573c130",
                ("date4", "date"),
                false,
                1_795_684_502_945,
            ),
            column_change(
                monday!("update_column_value_status.json"),
                "357c7bbb7decdf9c202808bc8d7a82c9",
                ("status", "color"),
                false,
                1_795_684_817_473,
            ),
            column_change(
                monday!("update_column_value_status_is_done.json"),
                "9bd1a7b388bfbe0f767383050de39206",
                ("status", "color"),
                true,
                1_795_684_899_881,
            ),
            column_change(
                monday!("update_column_value_people.json"),
                "2441c06130632cdae8dcf0ccf238b937",
                ("person", "multiple-person"),
                true,
                1_795_685_107_220,
            ),
            column_change(
                monday!("update_column_value_email.json"),
                "09cf415e43e343565a08964c84037e1a",
                ("email", "email"),
                true,
                1_795_685_411_673,
            ),
            column_change(
                monday!("update_column_value_phone.json"),
                "4ff8d8c025bbbc4664d2c69dfa2cc629",
                ("phone", "phone"),
                true,
                1_795_685_505_287,
            ),
            column_change(
                monday!("update_column_value_text.json"),
                "86b32ddfd48189868d6212f76d67ff77",
                ("role_title", "text"),
                true,
                1_795_685_599_551,
            ),
            column_change(
                monday!("update_column_value_long_text.json"),
                "e90404069d6d2c6f678c4e3b7d76dea5",
                ("notes", "long-text"),
                true,
                1_795_685_702_823,
            ),
            column_change(
                monday!("update_column_value_npd_id.json"),
                "658583581c4fe444d5bd32db3975d9cb",
                ("npd_id", "text"),
                false,
                1_795_685_790_331,
            ),
            Expect {
                board_id: Some(ORGANIZATIONS_BOARD),
                item_id: Some(5_200_000_201),
                item_name: Some("Analytical Engines Ltd"),
                ..column_change(
                    monday!("update_column_value_org_website.json"),
                    "3b1e55f91f730b0051e9456dbab12f8e",
                    ("website", "link"),
                    false,
                    1_795_686_000_447,
                )
            },
            Expect {
                board_id: Some(UNRELATED_BOARD),
                item_id: Some(5_200_009_901),
                item_name: Some("Quarterly budget"),
                ..column_change(
                    monday!("update_column_value_unrelated_board.json"),
                    "ed8efc446d04d7d1678e889fe82bd554",
                    ("text0", "text"),
                    false,
                    1_795_686_309_709,
                )
            },
            Expect {
                file: monday!("update_name.json"),
                kind: K::NameChanged,
                event_type: "update_name",
                trigger_uuid: "bfa9ad87b91c8e9eea2f0a6e23ba32a8",
                item_name: Some("Ada King"),
                has_value: true,
                has_previous_value: true,
                ..BASE
            },
            Expect {
                file: monday!("archive_pulse.json"),
                kind: K::ItemArchived,
                event_type: "archive_pulse",
                trigger_uuid: "ae3059a94ac96af76aa8de3c57893913",
                item_id: Some(5_200_000_103),
                item_name: Some("Charles Babbage"),
                group_id: None,
                ..BASE
            },
            Expect {
                file: monday!("restore_pulse.json"),
                kind: K::ItemRestored,
                event_type: "restore_pulse",
                trigger_uuid: "fd18b46715300a8079dc3f0bc88887c4",
                item_id: Some(5_200_000_103),
                item_name: Some("Charles Babbage"),
                group_id: None,
                has_value: true,
                has_previous_value: true,
                ..BASE
            },
            Expect {
                file: monday!("delete_pulse.json"),
                kind: K::ItemDeleted,
                event_type: "delete_pulse",
                trigger_uuid: "bcfb28b4565b6322aa79d5dc2dec7bbf",
                item_id: Some(5_200_000_103),
                item_name: Some("Charles Babbage"),
                group_id: None,
                ..BASE
            },
            Expect {
                file: monday!("delete_subitem.json"),
                kind: K::ItemDeleted,
                event_type: "delete_pulse",
                trigger_uuid: "ba194e3bb9f13ae6bfae4d452c0701a7",
                board_id: Some(SUBITEMS_BOARD),
                item_id: Some(5_200_000_302),
                parent_item_id: Some(ADA_ITEM),
                parent_board_id: Some(CONTACTS_BOARD),
                item_name: Some("Send brochure"),
                group_id: None,
                ..BASE
            },
            Expect {
                file: monday!("move_pulse_into_group.json"),
                kind: K::ItemMovedToGroup,
                event_type: "move_pulse_into_group",
                trigger_uuid: "0bd8ef9f06ecbe9d0ba7e35ccbb7cd63",
                item_name: None,
                group_id: Some("group_customers"),
                ..BASE
            },
            Expect {
                file: monday!("move_subitem.json"),
                kind: K::SubitemMoved,
                event_type: "move_subitem",
                trigger_uuid: "8070f42a7737211a269190ee32303d44",
                item_id: Some(5_200_000_301),
                item_name: None,
                group_id: None,
                ..BASE
            },
            Expect {
                file: monday!("create_column.json"),
                kind: K::ColumnCreated,
                event_type: "create_column",
                trigger_uuid: "46cbdd378ac477d7ab84f2b700886cd1",
                item_id: None,
                item_name: None,
                group_id: None,
                column: Some(("text_mkx1a2b3", "text")),
                ..BASE
            },
            Expect {
                file: monday!("create_update.json"),
                kind: K::UpdateCreated,
                event_type: "create_update",
                trigger_uuid: "0d4f92cd53c19fb97f4be695dcbcdf27",
                item_name: None,
                group_id: None,
                update_id: Some(91_000_001),
                ..BASE
            },
            Expect {
                file: monday!("edit_update.json"),
                kind: K::UpdateEdited,
                event_type: "edit_update",
                trigger_uuid: "45f38fe9db697914840b5ad1638a1742",
                item_name: None,
                group_id: None,
                update_id: Some(91_000_001),
                ..BASE
            },
            Expect {
                file: monday!("delete_update.json"),
                kind: K::UpdateDeleted,
                event_type: "delete_update",
                trigger_uuid: "52da82094afa4bf28948394b127d024a",
                item_name: None,
                group_id: None,
                update_id: Some(91_000_001),
                ..BASE
            },
        ]
    };

    #[test]
    fn every_monday_event_fixture_parses_to_its_table_row() {
        let table = MONDAY_TABLE;
        for row in table {
            let (name, json) = row.file;
            let e = event(json);
            assert_eq!(e.kind, row.kind, "{name}: kind");
            assert_eq!(e.event_type, row.event_type, "{name}: event_type");
            assert_eq!(e.trigger_uuid, row.trigger_uuid, "{name}: trigger_uuid");
            assert_eq!(e.board_id.map(|b| b.0), row.board_id, "{name}: board_id");
            assert_eq!(e.item_id.map(|i| i.0), row.item_id, "{name}: item_id");
            assert_eq!(
                e.parent_item_id.map(|i| i.0),
                row.parent_item_id,
                "{name}: parent_item_id"
            );
            assert_eq!(
                e.parent_board_id.map(|b| b.0),
                row.parent_board_id,
                "{name}: parent_board_id"
            );
            assert_eq!(e.is_subitem(), row.parent_item_id.is_some(), "{name}");
            assert_eq!(e.item_name.as_deref(), row.item_name, "{name}: item_name");
            assert_eq!(e.group_id.as_deref(), row.group_id, "{name}: group_id");
            assert_eq!(
                e.column_id.as_deref().zip(e.column_type.as_deref()),
                row.column,
                "{name}: column"
            );
            assert_eq!(e.value.is_some(), row.has_value, "{name}: value");
            assert_eq!(
                e.previous_value.is_some(),
                row.has_previous_value,
                "{name}: previous_value"
            );
            assert_eq!(
                e.column_values.is_some(),
                row.has_column_values,
                "{name}: column_values"
            );
            assert_eq!(e.changed_at_ms(), row.changed_at_ms, "{name}: changed_at");
            assert_eq!(e.is_retry, row.is_retry, "{name}: is_retry");
            assert_eq!(e.user_id, row.user_id, "{name}: user_id");
            assert_eq!(e.update_id, row.update_id, "{name}: update_id");
            assert_eq!(e.original_trigger_uuid, None, "{name}: originalTriggerUuid");
            assert!(e.trigger_time.is_some(), "{name}: trigger_time");
            assert!(e.subscription_id.is_some(), "{name}: subscription_id");
            assert!(
                e.trigger_uuid.len() == 32
                    && e.trigger_uuid
                        .chars()
                        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
                "{name}: triggerUuid is 32 lowercase hex chars"
            );
        }
        let mut uuids: Vec<_> = table.iter().map(|r| r.trigger_uuid).collect();
        uuids.sort_unstable();
        uuids.dedup();
        assert_eq!(uuids.len(), table.len(), "triggerUuids are distinct");
        assert_eq!(table.len(), 25, "one row per Monday event fixture");
    }

    #[test]
    fn challenge_fixture_is_a_challenge() {
        let (_, json) = monday!("challenge.json");
        assert_eq!(
            MondayDelivery::parse(json.as_bytes()).expect("parses"),
            MondayDelivery::Challenge(
                "q8Zt3vKf0WmR2xYbN7cLpD4sHj9GaE1uTiO5nVwXkB6yMzQrUeFd".into()
            )
        );
        // `event` wins over `challenge` when both are present.
        let both = br#"{"challenge": "x", "event": {"type": "create_pulse", "triggerUuid": "ab"}}"#;
        assert!(matches!(
            MondayDelivery::parse(both),
            Ok(MondayDelivery::Event(_))
        ));
    }

    #[test]
    fn monday_details_of_selected_fixtures() {
        let e = event(monday!("create_pulse.json").1);
        assert_eq!(e.column_values, Some(Map::new()));
        assert_eq!(e.subscription_id, Some(81_000_101));
        assert_eq!(e.trigger_time, Some(ts("2026-11-26T09:00:00.120Z")));

        let form = event(monday!("create_pulse_form.json").1);
        let values = form.column_values.expect("form columnValues");
        assert_eq!(values["role_title"]["value"], "Rear Admiral");
        assert!(values["notes"]["text"].is_string());
        assert_eq!(values["status"]["label"]["index"], 5);
        assert_eq!(values["dropdown"]["chosenValues"][0]["name"], "Conference");

        let date = event(monday!("update_column_value_date.json").1);
        assert_eq!(date.changed_at, Some(1_795_684_502.945_776_5));
        assert_eq!(
            date.value.as_ref().and_then(|v| v.get("date")),
            Some(&Value::from("2026-12-03"))
        );

        let email = event(monday!("update_column_value_email.json").1);
        let value = email.value.expect("email value");
        assert_eq!(value["email"], "ada.lovelace@example.com");

        let npd_id = event(monday!("update_column_value_npd_id.json").1);
        assert_eq!(npd_id.value.expect("value")["value"], CONTACT_ID);

        let people = event(monday!("update_column_value_people.json").1);
        assert_eq!(people.previous_value, Some(Value::Object(Map::new())));

        let done = event(monday!("update_column_value_status_is_done.json").1);
        assert_eq!(done.value.expect("value")["label"]["is_done"], true);

        let moved = event(monday!("move_subitem.json").1);
        assert_eq!(moved.board_id, Some(BoardId(CONTACTS_BOARD)));
        assert!(!moved.is_subitem());
    }

    #[test]
    fn monday_lenient_shapes() {
        let body = br#"{"event": {"type": "something_new", "triggerUuid": "0123456789abcdef0123456789abcdef",
            "boardId": "4100000001", "pulseId": "5200000101", "parentItemId": 5200000101,
            "parentItemBoardId": 4100000001, "changedAt": "1795684502.5", "userId": "-6",
            "subscriptionId": "81000101", "updateId": 91000001.0, "value": null, "previousValue": null,
            "originalTriggerUuid": "fedcba9876543210fedcba9876543210", "unknownField": {"nested": [1, 2]}}}"#;
        let e = event(std::str::from_utf8(body).expect("utf8"));
        assert_eq!(e.kind, MondayEventKind::Other);
        assert_eq!(e.kind.as_str(), "other");
        assert_eq!(e.board_id, Some(BoardId(CONTACTS_BOARD)));
        assert_eq!(e.item_id, Some(MondayItemId(ADA_ITEM)));
        assert_eq!(e.parent_board_id, Some(BoardId(CONTACTS_BOARD)));
        assert_eq!(e.changed_at_ms(), Some(1_795_684_502_500));
        assert_eq!(e.user_id, Some(-6));
        assert_eq!(e.subscription_id, Some(81_000_101));
        assert_eq!(e.update_id, Some(91_000_001));
        assert_eq!(e.value, None);
        assert_eq!(e.previous_value, None);
        assert!(!e.is_retry);
        assert_eq!(
            e.original_trigger_uuid.as_deref(),
            Some("fedcba9876543210fedcba9876543210")
        );
    }

    #[test]
    fn changed_at_ms_rounds_down() {
        let mut e = event(monday!("update_column_value_status.json").1);
        e.changed_at = Some(1.9999);
        assert_eq!(e.changed_at_ms(), Some(1999));
        e.changed_at = Some(-0.0005);
        assert_eq!(e.changed_at_ms(), Some(-1));
        e.changed_at = None;
        assert_eq!(e.changed_at_ms(), None);
    }

    #[test]
    fn monday_kinds_map_from_legacy_types() {
        let cases = [
            ("create_pulse", MondayEventKind::ItemCreated, "item_created"),
            (
                "update_column_value",
                MondayEventKind::ColumnValueChanged,
                "column_value_changed",
            ),
            ("update_name", MondayEventKind::NameChanged, "name_changed"),
            (
                "archive_pulse",
                MondayEventKind::ItemArchived,
                "item_archived",
            ),
            ("delete_pulse", MondayEventKind::ItemDeleted, "item_deleted"),
            (
                "restore_pulse",
                MondayEventKind::ItemRestored,
                "item_restored",
            ),
            (
                "move_pulse_into_group",
                MondayEventKind::ItemMovedToGroup,
                "item_moved_to_group",
            ),
            (
                "move_subitem",
                MondayEventKind::SubitemMoved,
                "subitem_moved",
            ),
            (
                "create_update",
                MondayEventKind::UpdateCreated,
                "update_created",
            ),
            (
                "edit_update",
                MondayEventKind::UpdateEdited,
                "update_edited",
            ),
            (
                "delete_update",
                MondayEventKind::UpdateDeleted,
                "update_deleted",
            ),
            (
                "create_column",
                MondayEventKind::ColumnCreated,
                "column_created",
            ),
            ("create_item", MondayEventKind::Other, "other"),
            ("", MondayEventKind::Other, "other"),
        ];
        for (wire, kind, name) in cases {
            assert_eq!(MondayEventKind::from_type(wire), kind, "{wire}");
            assert_eq!(kind.as_str(), name);
        }
    }

    /// Parses an NPD fixture that must be an `event_type` event of the entity and version
    /// `id_version`.
    #[track_caller]
    fn npd_fixture(json: &str, event_type: NpdEventType, id_version: (NpdId, i64)) -> NpdEvent {
        let event = npd_event(json);
        assert_eq!(event.event_type, event_type);
        assert_eq!((event.npd_id(), event.version()), id_version);
        event
    }

    /// The snapshot `event` carries; the test fails with `what` when it carries none.
    #[track_caller]
    fn snapshot<'a>(event: &'a NpdEvent, what: &str) -> &'a NpdRecord {
        let NpdData::Record(record) = &event.data else {
            panic!("{what}");
        };
        record
    }

    /// Asserts the text of each named field of `record`.
    #[track_caller]
    fn assert_texts(record: &NpdRecord, expected: &[(&str, Option<&str>)]) {
        for &(field, text) in expected {
            assert_eq!(record.text(field), text, "{field}");
        }
    }

    #[test]
    fn every_npd_contact_fixture_parses() {
        let contact_id = NpdId::parse(CONTACT_ID).expect("uuid");
        let org_id = NpdId::parse(ORG_ID).expect("uuid");

        let created = npd_fixture(
            npd!("contact.created.json"),
            NpdEventType::ContactCreated,
            (contact_id, 1),
        );
        assert_eq!(created.entity_kind(), EntityKind::Contact);
        assert_eq!(created.timestamp, Some(ts("2026-11-20T08:00:00Z")));
        let c = snapshot(&created, "contact.created carries a contact snapshot");
        assert!(c.sync_enabled);
        assert_eq!(c.monday_id, None);
        assert_texts(
            c,
            &[
                ("first_name", Some("Ada")),
                ("last_name", Some("Lovelace")),
                ("email", Some("ada@example.com")),
                ("phone", Some("+442079460990")),
                ("role_title", Some("Engineer")),
                ("notes", None),
                ("organization_id", Some(org_id.to_string().as_str())),
            ],
        );
        assert_eq!(created.updated_at(), Some(ts("2026-11-20T07:59:59Z")));

        let updated = npd_fixture(
            npd!("contact.updated.json"),
            NpdEventType::ContactUpdated,
            (contact_id, 7),
        );
        let c = snapshot(&updated, "contact.updated carries a contact snapshot");
        assert_texts(
            c,
            &[
                ("role_title", Some("CTO")),
                ("notes", Some("Met at the expo")),
            ],
        );
        assert_eq!(updated.updated_at(), Some(ts("2026-11-26T09:59:58Z")));

        let deleted = npd_fixture(
            npd!("contact.deleted.json"),
            NpdEventType::ContactDeleted,
            (contact_id, 8),
        );
        assert_eq!(deleted.entity_kind(), EntityKind::Contact);
        assert_eq!(
            deleted.data,
            NpdData::Deleted {
                id: contact_id,
                version: 8
            }
        );
        assert_eq!(deleted.updated_at(), Some(ts("2026-11-27T12:00:00Z")));
    }

    #[test]
    fn every_npd_organization_fixture_parses() {
        let org_id = NpdId::parse(ORG_ID).expect("uuid");

        let created = npd_fixture(
            npd!("organization.created.json"),
            NpdEventType::OrganizationCreated,
            (org_id, 1),
        );
        assert_eq!(created.entity_kind(), EntityKind::Organization);
        let o = snapshot(
            &created,
            "organization.created carries an organization snapshot",
        );
        assert!(o.sync_enabled);
        assert_texts(
            o,
            &[
                ("name", Some("Analytical Engines Ltd")),
                ("website", Some("https://analytical-engines.example")),
                ("industry", Some("Computing")),
                ("notes", None),
            ],
        );
        assert_eq!(o.updated_at, Some(ts("2026-11-19T15:29:58Z")));

        let updated = npd_fixture(
            npd!("organization.updated.json"),
            NpdEventType::OrganizationUpdated,
            (org_id, 4),
        );
        let o = snapshot(
            &updated,
            "organization.updated carries an organization snapshot",
        );
        assert_texts(
            o,
            &[
                ("industry", Some("Computing hardware")),
                ("notes", Some("Key account since 1843")),
            ],
        );

        let deleted = npd_fixture(
            npd!("organization.deleted.json"),
            NpdEventType::OrganizationDeleted,
            (org_id, 5),
        );
        assert_eq!(
            deleted.data,
            NpdData::Deleted {
                id: org_id,
                version: 5
            }
        );
    }

    #[test]
    fn npd_event_types_round_trip() {
        for t in NpdEventType::ALL {
            assert_eq!(NpdEventType::parse(t.as_str()), Some(t));
            let (kind, action) = t.as_str().split_once('.').expect("dotted name");
            assert_eq!(t.entity_kind().as_str(), kind);
            assert_eq!(t.is_delete(), action == "deleted");
        }
        assert_eq!(NpdEventType::parse("Contact.Created"), None);
        assert_eq!(NpdEventType::parse("contact.merged"), None);
    }

    #[test]
    fn npd_details() {
        // A deleted event may carry the full snapshot; sync_enabled defaults to true; no timestamps.
        let body = format!(
            r#"{{"type": "contact.deleted", "data": {{"id": "{CONTACT_ID}", "version": 9, "email": "x@example.com"}}}}"#
        );
        let e = NpdEvent::parse(body.as_bytes()).expect("parses");
        assert_eq!(e.version(), 9);
        assert_eq!(e.updated_at(), None);
        assert_eq!(e.timestamp, None);

        let body = format!(
            r#"{{"type": "contact.updated", "timestamp": "2026-11-26T10:00:00Z", "data": {{"id": "{CONTACT_ID}", "version": 2, "future_field": [1]}}}}"#
        );
        let e = NpdEvent::parse(body.as_bytes()).expect("parses");
        let NpdData::Record(c) = &e.data else {
            panic!("contact snapshot");
        };
        assert!(c.sync_enabled);
        assert_eq!(e.updated_at(), Some(ts("2026-11-26T10:00:00Z")));
    }

    fn npd_err(body: &str) -> EventParseError {
        NpdEvent::parse(body.as_bytes()).expect_err("must be refused")
    }

    fn monday_err(body: &str) -> EventParseError {
        MondayDelivery::parse(body.as_bytes()).expect_err("must be refused")
    }

    /// `body` with each `{id}` replaced by CONTACT_ID: the NPD bodies below are written so.
    fn with_contact_id(body: &str) -> String {
        body.replace("{id}", CONTACT_ID)
    }

    /// The fields a Monday event needs, valid.
    const VALID_EVENT_FIELDS: &str =
        r#""type": "create_pulse", "triggerUuid": "0123456789abcdef0123456789abcdef""#;

    /// A Monday delivery of a valid event with `fields` added.
    fn event_with(fields: &str) -> String {
        format!(r#"{{"event": {{{VALID_EVENT_FIELDS}, {fields}}}}}"#)
    }

    /// Asserts that `refuse` refuses `body` naming `field` (`None`: the body as a whole).
    #[track_caller]
    fn assert_refused_at(refuse: fn(&str) -> EventParseError, body: &str, field: Option<&str>) {
        let err = refuse(body);
        assert_eq!(err.field.as_deref(), field, "body {body}: {err}");
    }

    /// NPD bodies that are refused, and the field the refusal names (`None`: the body as a
    /// whole). `{id}` stands for CONTACT_ID.
    const NPD_REFUSALS: &[(&str, Option<&str>)] = &[
        (r#"{"type": "contact.created",}"#, None),
        ("", None),
        (r#"["contact.created"]"#, None),
        (r#""contact.created""#, None),
        (r#"{"data": {}}"#, Some("type")),
        (r#"{"type": 7, "data": {}}"#, Some("type")),
        (r#"{"type": "contact.merged", "data": {}}"#, Some("type")),
        (r#"{"type": "contact.created"}"#, Some("data")),
        (r#"{"type": "contact.created", "data": [1]}"#, Some("data")),
        (
            r#"{"type": "contact.created", "data": {"version": 1}}"#,
            Some("data.id"),
        ),
        (
            r#"{"type": "contact.deleted", "data": {"version": 1}}"#,
            Some("data.id"),
        ),
        (
            r#"{"type": "contact.deleted", "data": {"id": "{id}"}}"#,
            Some("data.version"),
        ),
        (
            r#"{"type": "contact.created", "data": {"id": "not-a-uuid", "version": 1}}"#,
            Some("data.id"),
        ),
        (
            r#"{"type": "organization.updated", "data": {"id": 12, "version": 1}}"#,
            Some("data.id"),
        ),
        (
            r#"{"type": "contact.updated", "data": {"id": "{id}", "version": "7"}}"#,
            Some("data.version"),
        ),
        (
            r#"{"type": "contact.updated", "data": {"id": "{id}", "version": 7, "email": 42}}"#,
            Some("data.email"),
        ),
        (
            r#"{"type": "contact.updated", "data": {"id": "{id}", "version": 7, "sync_enabled": "yes"}}"#,
            Some("data.sync_enabled"),
        ),
        (
            r#"{"type": "contact.updated", "data": {"id": "{id}", "version": 7, "monday_id": "abc"}}"#,
            Some("data.monday_id"),
        ),
        (
            r#"{"type": "contact.updated", "data": {"id": "{id}", "version": 7, "organization_id": "x"}}"#,
            Some("data.organization_id"),
        ),
        (
            r#"{"type": "contact.updated", "data": {"id": "{id}", "version": 7, "updated_at": "yesterday"}}"#,
            Some("data.updated_at"),
        ),
        (
            r#"{"type": "organization.updated", "data": {"id": "{id}", "version": 7, "website": ["a"]}}"#,
            Some("data.website"),
        ),
        (
            r#"{"type": "contact.updated", "timestamp": "today", "data": {"id": "{id}", "version": 7}}"#,
            Some("timestamp"),
        ),
        (
            r#"{"type": "contact.updated", "timestamp": 1795684502, "data": {"id": "{id}", "version": 7}}"#,
            Some("timestamp"),
        ),
    ];

    #[test]
    fn npd_refusals_name_the_field() {
        for &(body, field) in NPD_REFUSALS {
            assert_refused_at(npd_err, &with_contact_id(body), field);
        }
    }

    #[test]
    fn npd_refusal_messages() {
        let err = npd_err(r#"{"type": "contact.created",}"#);
        assert_eq!(err.message, "body is not valid JSON at line 1 column 28");
        assert_eq!(err.to_string(), err.message);

        let err = npd_err("[1]");
        assert_eq!(err.to_string(), "body must be a JSON object");

        let err = npd_err(r#"{"data": {}}"#);
        assert_eq!(err.to_string(), "field `type`: is missing");

        let err = npd_err(r#"{"type": "contact.LEAKME", "data": {}}"#);
        assert_eq!(err.message, "unknown event type");
        assert!(!err.to_string().contains("contact."));

        let body = format!(
            r#"{{"type": "contact.updated", "data": {{"id": "{CONTACT_ID}", "version": "7"}}}}"#
        );
        assert_eq!(
            npd_err(&body).to_string(),
            "field `data.version`: has the wrong type, expected an integer"
        );
        let body = format!(
            r#"{{"type": "contact.updated", "data": {{"id": "{CONTACT_ID}", "version": 7, "email": 42}}}}"#
        );
        assert_eq!(
            npd_err(&body).to_string(),
            "field `data.email`: has the wrong type, expected a string"
        );
        let body = r#"{"type": "contact.updated", "data": {"id": "nope", "version": 7}}"#;
        assert_eq!(
            npd_err(body).to_string(),
            "field `data.id`: has an invalid value, expected a UUID"
        );
        let body = r#"{"type": "contact.updated", "data": {"version": 7}}"#;
        assert_eq!(npd_err(body).to_string(), "field `data.id`: is missing");
    }

    /// Monday bodies that are refused, and the field the refusal names (`None`: the body as a
    /// whole).
    const MONDAY_REFUSALS: &[(&str, Option<&str>)] = &[
        (r#"{"event": {"type": "create_pulse""#, None),
        ("not json", None),
        ("[]", None),
        (r#"{"event": "create_pulse"}"#, Some("event")),
        (r#"{"event": null}"#, Some("event")),
        (r#"{"event": [1, 2]}"#, Some("event")),
        (
            r#"{"event": {"type": "create_pulse", "triggerUuid": ""}}"#,
            Some("event.triggerUuid"),
        ),
        (
            r#"{"event": {"type": "create_pulse", "triggerUuid": 12}}"#,
            Some("event.triggerUuid"),
        ),
        (
            r#"{"event": {"triggerUuid": "0123456789abcdef0123456789abcdef"}}"#,
            Some("event.type"),
        ),
        (
            r#"{"event": {"type": 3, "triggerUuid": "0123456789abcdef0123456789abcdef"}}"#,
            Some("event.type"),
        ),
        (r#"{"challenge": 5}"#, Some("challenge")),
        (r#"{}"#, Some("event")),
        (
            r#"{"type": "url_verification", "token": "x"}"#,
            Some("event"),
        ),
    ];

    /// A field that gets an otherwise valid Monday event refused, and the field the refusal
    /// names.
    const MONDAY_BAD_FIELDS: &[(&str, &str)] = &[
        (r#""pulseId": "abc""#, "event.pulseId"),
        (r#""boardId": -4"#, "event.boardId"),
        (r#""parentItemId": true"#, "event.parentItemId"),
        (r#""changedAt": "soon""#, "event.changedAt"),
        (r#""triggerTime": "noon""#, "event.triggerTime"),
        (r#""isRetry": "yes""#, "event.isRetry"),
        (r#""userId": 1.5"#, "event.userId"),
        (r#""subscriptionId": -1"#, "event.subscriptionId"),
        (r#""columnValues": "{}""#, "event.columnValues"),
        (r#""pulseName": 5"#, "event.pulseName"),
    ];

    #[test]
    fn monday_refusals_name_the_field() {
        for &(body, field) in MONDAY_REFUSALS {
            assert_refused_at(monday_err, body, field);
        }
        for &(fields, field) in MONDAY_BAD_FIELDS {
            assert_refused_at(monday_err, &event_with(fields), Some(field));
        }
    }

    #[test]
    fn a_legacy_delivery_without_trigger_uuid_is_keyed_by_the_sha256_of_its_body() {
        let body = monday!("update_column_value_legacy_without_trigger_uuid.json").1;
        let parsed = event(body);
        assert_eq!(parsed.kind, MondayEventKind::ColumnValueChanged);
        let key = parsed
            .trigger_uuid
            .strip_prefix("sha256:")
            .expect("body key");
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_eq!(parsed.trigger_uuid, body_key(body.as_bytes()));
        assert_eq!(event(body).trigger_uuid, parsed.trigger_uuid, "stable");
        let other = body.replace("Countess of Lovelace", "Countess");
        assert_ne!(event(&other).trigger_uuid, parsed.trigger_uuid);
    }

    #[test]
    fn monday_refusal_messages() {
        assert_eq!(
            monday_err(r#"{"event": {"type": "create_pulse", "triggerUuid": " "}}"#).to_string(),
            "field `event.triggerUuid`: must not be empty"
        );
        assert_eq!(
            monday_err(&event_with(r#""pulseId": "abc""#)).to_string(),
            "field `event.pulseId`: has an invalid value, expected a numeric id (number or string of digits)"
        );
    }

    /// NPD bodies refused for a part that carries the LEAKME marker. `{id}` stands for
    /// CONTACT_ID.
    const NPD_LEAKS: &[&str] = &[
        r#"{"type": "contact.LEAKME", "data": {}}"#,
        r#"{"type": "LEAKME", "data": {}}"#,
        r#"{"type": "contact.created", "data": "LEAKME"}"#,
        r#"{"type": ["LEAKME"], "data": {}}"#,
        r#"{"type": "contact.created", "data": {"id": "LEAKME", "version": 1}}"#,
        r#"{"type": "contact.created", "data": {"id": "3f0b6a52-4c1e-4d7a-9f7e-LEAKME", "version": 1}}"#,
        r#"{"type": "contact.deleted", "data": {"id": "LEAKME", "version": 1}}"#,
        r#"{"type": "contact.created", "data": {"id": "{id}", "version": "LEAKME"}}"#,
        r#"{"type": "contact.created", "data": {"id": "{id}", "version": 1, "sync_enabled": "LEAKME"}}"#,
        r#"{"type": "contact.created", "data": {"id": "{id}", "version": 1, "monday_id": "LEAKME"}}"#,
        r#"{"type": "contact.created", "data": {"id": "{id}", "version": 1, "organization_id": "LEAKME"}}"#,
        r#"{"type": "contact.created", "data": {"id": "{id}", "version": 1, "updated_at": "LEAKME"}}"#,
        r#"{"type": "contact.created", "data": {"id": "{id}", "version": 1, "email": {"LEAKME": 1}}}"#,
        r#"{"type": "contact.created", "timestamp": "LEAKME", "data": {"id": "{id}", "version": 1}}"#,
        r#"{"type": "contact.created", "LEAKME": }"#,
        r#"{"LEAKME"#,
        "LEAKME",
    ];

    /// Monday bodies refused for a part that carries the LEAKME marker.
    const MONDAY_LEAKS: &[&str] = &[
        r#"{"event": "LEAKME"}"#,
        r#"{"challenge": ["LEAKME"]}"#,
        r#"{"LEAKME": "LEAKME"}"#,
        r#"{"event": {"type": ["LEAKME"], "triggerUuid": "0123456789abcdef0123456789abcdef"}}"#,
        r#"{"event": {"type": "create_pulse", "triggerUuid": {"LEAKME": true}}}"#,
        r#"{"event": {"type": "create_pulse", "LEAKME"#,
    ];

    /// Fields carrying the LEAKME marker that get an otherwise valid Monday event refused.
    const MONDAY_LEAKING_FIELDS: &[&str] = &[
        r#""pulseId": "LEAKME""#,
        r#""itemId": "-LEAKME""#,
        r#""boardId": "LEAKME""#,
        r#""parentItemBoardId": "LEAKME""#,
        r#""changedAt": "LEAKME""#,
        r#""triggerTime": "LEAKME""#,
        r#""userId": "LEAKME""#,
        r#""subscriptionId": "LEAKME""#,
        r#""isRetry": "LEAKME""#,
        r#""columnValues": "LEAKME""#,
        r#""columnId": ["LEAKME"]"#,
    ];

    /// Asserts that `refuse` refuses `body` without LEAKME in the error's message or debug form.
    #[track_caller]
    fn assert_refused_without_leak(refuse: fn(&str) -> EventParseError, body: &str) {
        let err = refuse(body);
        assert!(
            !format!("{err} {err:?}").contains("LEAKME"),
            "{body} -> {err:?}"
        );
    }

    #[test]
    fn refusals_never_echo_the_offending_value() {
        for body in NPD_LEAKS {
            assert_refused_without_leak(npd_err, &with_contact_id(body));
        }
        for body in MONDAY_LEAKS {
            assert_refused_without_leak(monday_err, body);
        }
        for fields in MONDAY_LEAKING_FIELDS {
            assert_refused_without_leak(monday_err, &event_with(fields));
        }
    }

    /// Arbitrary JSON built from the field names both parsers look at, with string leaves that
    /// are either plausible values or carry the LEAKME marker.
    fn json_value() -> impl Strategy<Value = Value> {
        let string = prop_oneof![
            Just("create_pulse".to_owned()),
            Just("update_name".to_owned()),
            Just("contact.created".to_owned()),
            Just("organization.deleted".to_owned()),
            Just("4100000001".to_owned()),
            Just(CONTACT_ID.to_owned()),
            Just("2026-11-26T10:00:00Z".to_owned()),
            Just("0123456789abcdef0123456789abcdef".to_owned()),
            "[a-z0-9 .:-]{0,12}".prop_map(|s| format!("LEAKME{s}")),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            string.prop_map(Value::from),
        ];
        let key = prop_oneof![
            Just("type"),
            Just("triggerUuid"),
            Just("boardId"),
            Just("pulseId"),
            Just("itemId"),
            Just("subitem"),
            Just("parentItemId"),
            Just("changedAt"),
            Just("triggerTime"),
            Just("userId"),
            Just("value"),
            Just("columnValues"),
            Just("isRetry"),
            Just("id"),
            Just("version"),
            Just("email"),
            Just("sync_enabled"),
            Just("updated_at"),
            Just("timestamp"),
            Just("data"),
            Just("event"),
            Just("challenge"),
        ];
        leaf.prop_recursive(4, 48, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(key.clone(), inner, 0..8).prop_map(|m| {
                    Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = MondayDelivery::parse(&bytes);
            let _ = NpdEvent::parse(&bytes);
        }

        #[test]
        fn parsers_never_panic_or_leak_on_arbitrary_json(value in json_value(), event_type in 0usize..6) {
            let npd = serde_json::json!({"type": NpdEventType::ALL[event_type].as_str(), "data": value.clone()});
            let monday = serde_json::json!({"event": value.clone()});
            for body in [value, npd, monday] {
                let bytes = serde_json::to_vec(&body).expect("serialize");
                if let Err(e) = MondayDelivery::parse(&bytes) {
                    prop_assert!(!format!("{e}").contains("LEAKME"), "{}", e);
                }
                if let Err(e) = NpdEvent::parse(&bytes) {
                    prop_assert!(!format!("{e}").contains("LEAKME"), "{}", e);
                }
            }
        }
    }
}
