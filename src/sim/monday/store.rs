//! The simulator's boards and items, and monday's column value formats.
//!
//! Owns: `Store` (boards, items, id allocation, page cursors, registered webhooks), the validation of written column
//! values (`ColumnValueException` and friends, FACTS.md §2.6), their three read-back shapes (the
//! API `value` JSON and `text`, and the webhook `value`), and `Change`, what a write did, from
//! which the webhook module builds deliveries.
//! May import: std, serde_json, time, crate::domain::entity, the parent module's public types.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{ItemState, SimBoard, SimColumn, SimItem, SimWebhook};
use crate::domain::entity::{BoardId, MondayItemId};

/// The first id handed to a created item.
pub(super) const FIRST_ITEM_ID: u64 = 9_000_000_001;
/// Longest item name monday accepts.
const MAX_ITEM_NAME_CHARS: usize = 255;
const COLUMN_VALUE_DOCS: &str = "Please check our API documentation for the correct data structure for this column. https://developer.monday.com/api-reference/docs/change-column-values";

/// A field-level failure, answered inside an HTTP 200 as an `errors` entry.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FieldError {
    pub code: &'static str,
    pub message: String,
    pub error_data: Value,
}

impl FieldError {
    fn new(code: &'static str, message: impl Into<String>, error_data: Value) -> Self {
        FieldError {
            code,
            message: message.into(),
            error_data,
        }
    }

    pub(super) fn board_not_found(board: &Value) -> Self {
        Self::new(
            "InvalidArgumentException",
            "Board not found",
            json!({ "board_id": board }),
        )
    }

    pub(super) fn item_not_found(item: &Value) -> Self {
        Self::new(
            "ResourceNotFoundException",
            "Item not found",
            json!({ "item_id": item }),
        )
    }

    pub(super) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new("InvalidArgumentException", message, json!({}))
    }

    fn column_value(column: &SimColumn, detail: &str) -> Self {
        Self::new(
            "ColumnValueException",
            format!("invalid value - {detail}. {COLUMN_VALUE_DOCS}"),
            json!({ "column_type": legacy_column_type(&column.column_type) }),
        )
    }

    fn unknown_column(board: BoardId, column_id: &str) -> Self {
        Self::new(
            "InvalidColumnIdException",
            "This column ID doesn't exist for the board",
            json!({ "column_id": column_id, "board_id": board.0 }),
        )
    }

    fn name_length() -> Self {
        Self::new(
            "ItemNameTooLongException",
            "Item name must be between 1 and 255 characters long",
            json!({ "max_length": MAX_ITEM_NAME_CHARS }),
        )
    }
}

/// What one write did, in the terms a webhook needs (values already in webhook format).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Change {
    Created {
        board: BoardId,
        item: MondayItemId,
        name: String,
        column_values: Map<String, Value>,
    },
    ColumnChanged {
        board: BoardId,
        item: MondayItemId,
        item_name: String,
        column: SimColumn,
        value: Value,
        previous: Value,
        changed_at: OffsetDateTime,
    },
    Renamed {
        board: BoardId,
        item: MondayItemId,
        previous: String,
        name: String,
    },
    Archived {
        board: BoardId,
        item: MondayItemId,
        name: String,
    },
    Deleted {
        board: BoardId,
        item: MondayItemId,
        name: String,
    },
}

impl Change {
    pub(super) fn board(&self) -> BoardId {
        match self {
            Change::Created { board, .. }
            | Change::ColumnChanged { board, .. }
            | Change::Renamed { board, .. }
            | Change::Archived { board, .. }
            | Change::Deleted { board, .. } => *board,
        }
    }
}

/// An item with what the public `SimItem` does not carry: when each column was last written.
#[derive(Debug, Clone)]
pub(super) struct StoredItem {
    pub item: SimItem,
    pub changed_at: BTreeMap<String, OffsetDateTime>,
}

/// A status label of the simulated status columns (one fixed set for every status column).
struct StatusLabel {
    index: u64,
    text: &'static str,
    color: &'static str,
    border: &'static str,
    var_name: &'static str,
    is_done: bool,
}

const STATUS_LABELS: &[StatusLabel] = &[
    StatusLabel {
        index: 0,
        text: "Working on it",
        color: "#fdab3d",
        border: "#e99729",
        var_name: "orange",
        is_done: false,
    },
    StatusLabel {
        index: 1,
        text: "Done",
        color: "#00c875",
        border: "#00b461",
        var_name: "green-shadow",
        is_done: true,
    },
    StatusLabel {
        index: 2,
        text: "Stuck",
        color: "#df2f4a",
        border: "#ce3048",
        var_name: "red-shadow",
        is_done: false,
    },
    StatusLabel {
        index: 5,
        text: "New lead",
        color: "#c4c4c4",
        border: "#b0b0b0",
        var_name: "grey",
        is_done: false,
    },
];

fn status_label_by_text(text: &str) -> Option<&'static StatusLabel> {
    STATUS_LABELS.iter().find(|l| l.text == text)
}

fn status_label_by_index(index: u64) -> Option<&'static StatusLabel> {
    STATUS_LABELS.iter().find(|l| l.index == index)
}

/// The labels of the simulated dropdown columns (one fixed set for every dropdown column): (id, name).
const DROPDOWN_LABELS: &[(u64, &str)] = &[
    (1, "Customer"),
    (2, "Partner"),
    (3, "Investor"),
    (4, "Press"),
    (5, "VIP"),
];

fn dropdown_id(name: &str) -> Option<u64> {
    DROPDOWN_LABELS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(id, _)| *id)
}

fn dropdown_name(id: u64) -> Option<&'static str> {
    DROPDOWN_LABELS
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, n)| *n)
}

/// The ids of a stored dropdown value (`{"ids": [..]}`).
fn stored_dropdown_ids(stored: &Value) -> Vec<u64> {
    stored
        .get("ids")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// A dropdown write (`{"labels": [..]}` or `{"ids": [..]}`) as the stored `{"ids": [..]}`.
fn dropdown_ids(value: &Value) -> Option<Vec<u64>> {
    if let Some(labels) = value.get("labels").and_then(Value::as_array) {
        return labels
            .iter()
            .map(|l| l.as_str().and_then(dropdown_id))
            .collect();
    }
    let ids = value.get("ids").and_then(Value::as_array)?;
    ids.iter()
        .map(|i| {
            let id = i
                .as_u64()
                .or_else(|| i.as_str().and_then(|s| s.parse().ok()))?;
            dropdown_name(id).map(|_| id)
        })
        .collect()
}

/// A column's `settings_str`: status labels by index (`{"labels": {"1": "Done"}}`), dropdown
/// labels with their ids (`{"labels": [{"id": 1, "name": "Customer"}]}`), `{}` for the rest.
pub(super) fn column_settings_str(column: &SimColumn) -> String {
    match column.column_type.as_str() {
        "status" => {
            let labels: Map<String, Value> = STATUS_LABELS
                .iter()
                .map(|l| (l.index.to_string(), Value::String(l.text.to_owned())))
                .collect();
            json!({ "labels": labels }).to_string()
        }
        "dropdown" => {
            let labels: Vec<Value> = DROPDOWN_LABELS
                .iter()
                .map(|(id, name)| json!({ "id": id, "name": name }))
                .collect();
            json!({ "labels": labels }).to_string()
        }
        _ => "{}".to_owned(),
    }
}

fn is_number(s: &str) -> bool {
    s.trim().parse::<f64>().is_ok_and(f64::is_finite)
}

/// The label a stored status value (`{"label": ..}` or `{"index": ..}`) names.
fn stored_status_label(stored: &Value) -> Option<&'static StatusLabel> {
    if let Some(text) = stored.get("label").and_then(Value::as_str) {
        return status_label_by_text(text);
    }
    match stored.get("index") {
        Some(Value::Number(n)) => n.as_u64().and_then(status_label_by_index),
        Some(Value::String(s)) => s.parse().ok().and_then(status_label_by_index),
        _ => None,
    }
}

/// monday's legacy `columnType` name in webhooks (FACTS.md §1.4, §2.5).
pub(super) fn legacy_column_type(column_type: &str) -> &str {
    match column_type {
        "long_text" => "long-text",
        "status" => "color",
        "people" => "multiple-person",
        "numbers" => "numeric",
        "checkbox" => "boolean",
        "board_relation" => "board-relation",
        other => other,
    }
}

/// The GraphQL object type of a column value of this column type.
pub(super) fn column_value_typename(column_type: &str) -> &'static str {
    match column_type {
        "long_text" => "LongTextValue",
        "email" => "EmailValue",
        "phone" => "PhoneValue",
        "link" => "LinkValue",
        "status" => "StatusValue",
        "date" => "DateValue",
        "people" => "PeopleValue",
        "board_relation" => "BoardRelationValue",
        _ => "TextValue",
    }
}

/// ISO 8601 UTC with milliseconds and `Z`, as monday writes `triggerTime` and `changed_at`.
pub(super) fn iso_ms(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Unix seconds as a float, as in a webhook's `changedAt`.
pub(super) fn unix_seconds(t: OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}

fn is_clear(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn valid_email(address: &str) -> bool {
    let mut parts = address.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && !address.chars().any(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

fn valid_phone(phone: &str) -> bool {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
}

fn valid_country(code: &str) -> bool {
    code.len() == 2 && code.chars().all(|c| c.is_ascii_uppercase())
}

fn valid_date(date: &str) -> bool {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (
        date[0..4].parse::<i32>(),
        date[5..7].parse::<u8>(),
        date[8..10].parse::<u8>(),
    ) else {
        return false;
    };
    time::Month::try_from(m)
        .ok()
        .and_then(|m| time::Date::from_calendar_date(y, m, d).ok())
        .is_some()
}

fn valid_time(t: &str) -> bool {
    let parts: Vec<&str> = t.split(':').collect();
    let limits = [23u8, 59, 59];
    (parts.len() == 2 || parts.len() == 3)
        && parts.iter().zip(limits).all(|(p, max)| {
            p.len() == 2
                && p.chars().all(|c| c.is_ascii_digit())
                && p.parse::<u8>().is_ok_and(|v| v <= max)
        })
}

/// Checks a written value (API write format) against the column type. `Ok(None)` clears the
/// column; `Ok(Some(v))` is what is stored.
pub(super) fn validate_column_value(
    column: &SimColumn,
    value: &Value,
) -> Result<Option<Value>, FieldError> {
    if is_clear(value) {
        return Ok(None);
    }
    let bad = |detail: &str| Err(FieldError::column_value(column, detail));
    match column.column_type.as_str() {
        "text" => match value {
            Value::String(s) => Ok(Some(Value::String(s.clone()))),
            Value::Number(n) => Ok(Some(Value::String(n.to_string()))),
            _ => bad("text column expects a string"),
        },
        "long_text" => match str_field(value, "text") {
            Some(text) if value.is_object() => Ok(Some(json!({ "text": text }))),
            _ => bad("long text column expects {\"text\": string}"),
        },
        "email" => {
            let (Some(email), Some(text)) = (str_field(value, "email"), str_field(value, "text"))
            else {
                return bad("email column expects both \"email\" and \"text\"");
            };
            if !valid_email(email) {
                return bad("invalid email address");
            }
            Ok(Some(json!({ "email": email, "text": text })))
        }
        "phone" => {
            let (Some(phone), Some(country)) = (
                str_field(value, "phone"),
                str_field(value, "countryShortName"),
            ) else {
                return bad("phone column expects \"phone\" and \"countryShortName\"");
            };
            if !valid_phone(phone) {
                return bad("invalid phone number");
            }
            if !valid_country(country) {
                return bad("invalid countryShortName");
            }
            Ok(Some(json!({ "phone": phone, "countryShortName": country })))
        }
        "link" => {
            let Some(url) = str_field(value, "url").filter(|u| !u.is_empty()) else {
                return bad("link column expects \"url\"");
            };
            match value.get("text") {
                None | Some(Value::Null) => Ok(Some(json!({ "url": url, "text": url }))),
                Some(Value::String(text)) => Ok(Some(json!({ "url": url, "text": text }))),
                Some(_) => bad("link \"text\" must be a string"),
            }
        }
        "status" => {
            let normalized = match value {
                Value::String(label) => json!({ "label": label }),
                Value::Number(n) => json!({ "index": n }),
                other => other.clone(),
            };
            if stored_status_label(&normalized).is_some() {
                Ok(Some(normalized))
            } else {
                bad("label does not exist in column")
            }
        }
        "date" => {
            let Some(date) = str_field(value, "date").filter(|d| valid_date(d)) else {
                return bad("date column expects {\"date\": \"YYYY-MM-DD\"}");
            };
            match value.get("time") {
                None | Some(Value::Null) => Ok(Some(json!({ "date": date }))),
                Some(Value::String(t)) if valid_time(t) => {
                    Ok(Some(json!({ "date": date, "time": t })))
                }
                Some(_) => bad("invalid time"),
            }
        }
        "dropdown" => match dropdown_ids(value) {
            Some(ids) if ids.is_empty() => Ok(None),
            Some(ids) => Ok(Some(json!({ "ids": ids }))),
            None => bad("label does not exist in column"),
        },
        "numbers" => match value {
            Value::String(n) if is_number(n) => Ok(Some(Value::String(n.trim().to_owned()))),
            Value::Number(n) => Ok(Some(Value::String(n.to_string()))),
            _ => bad("numbers column expects a number"),
        },
        "checkbox" => match value.get("checked") {
            Some(Value::String(c)) if c == "true" => Ok(Some(json!({ "checked": "true" }))),
            Some(Value::Bool(true)) => Ok(Some(json!({ "checked": "true" }))),
            Some(Value::String(c)) if c == "false" => Ok(None),
            Some(Value::Bool(false) | Value::Null) => Ok(None),
            _ => bad("checkbox column expects {\"checked\": \"true\"}"),
        },
        "country" => {
            let (Some(code), Some(name)) = (
                str_field(value, "countryCode"),
                str_field(value, "countryName"),
            ) else {
                return bad("country column expects \"countryCode\" and \"countryName\"");
            };
            if !valid_country(code) {
                return bad("invalid countryCode");
            }
            Ok(Some(json!({ "countryCode": code, "countryName": name })))
        }
        "board_relation" => match relation_ids(value) {
            Some(ids) if ids.is_empty() => Ok(None),
            Some(ids) => Ok(Some(stored_relation(&ids))),
            None => bad("connect boards column expects {\"item_ids\": [ids]}"),
        },
        "people" => {
            let entries = value.get("personsAndTeams").and_then(Value::as_array);
            let ok = entries.is_some_and(|list| {
                list.iter().all(|e| {
                    e.get("id").is_some_and(|id| id.is_u64() || id.is_string())
                        && matches!(str_field(e, "kind"), Some("person" | "team"))
                })
            });
            if ok {
                Ok(Some(json!({ "personsAndTeams": value["personsAndTeams"] })))
            } else {
                bad("people column expects {\"personsAndTeams\": [{\"id\", \"kind\"}]}")
            }
        }
        _ => Ok(Some(value.clone())),
    }
}

/// The item ids of a connect-boards write (`{"item_ids": [..]}`, numbers or strings of digits),
/// or of Monday's read shape (`{"linkedPulseIds": [{"linkedPulseId": ..}]}`).
fn relation_ids(value: &Value) -> Option<Vec<u64>> {
    let id = |v: &Value| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    if let Some(Value::Array(ids)) = value.get("item_ids") {
        return ids.iter().map(id).collect();
    }
    if let Some(Value::Array(linked)) = value.get("linkedPulseIds") {
        return linked
            .iter()
            .map(|l| l.get("linkedPulseId").and_then(id))
            .collect();
    }
    None
}

/// A connect-boards value as stored: the write format, ids as numbers.
fn stored_relation(ids: &[u64]) -> Value {
    json!({ "item_ids": ids })
}

/// The item ids of a stored connect-boards value.
pub(super) fn stored_relation_ids(stored: &Value) -> Vec<u64> {
    relation_ids(stored).unwrap_or_default()
}

/// Monday's read shape of a connect-boards value (webhooks and the API's `value`).
fn linked_pulses(stored: &Value) -> Value {
    let linked: Vec<Value> = stored_relation_ids(stored)
        .into_iter()
        .map(|id| json!({ "linkedPulseId": id }))
        .collect();
    Value::from(linked)
}

/// The webhook `value` of a stored value (FACTS.md §1.5-1.6 and the fixtures); null when empty.
pub(super) fn webhook_value(
    column: &SimColumn,
    stored: Option<&Value>,
    at: OffsetDateTime,
) -> Value {
    let Some(stored) = stored else {
        return Value::Null;
    };
    let changed_at = iso_ms(at);
    let s = |key: &str| str_field(stored, key).unwrap_or_default().to_owned();
    match column.column_type.as_str() {
        "text" => json!({ "value": stored.as_str().unwrap_or_default() }),
        "long_text" => json!({ "text": s("text"), "changed_at": changed_at }),
        "email" => json!({ "email": s("email"), "text": s("text"), "changed_at": changed_at }),
        "phone" => json!({
            "phone": s("phone"),
            "countryShortName": s("countryShortName"),
            "changed_at": changed_at,
        }),
        "link" => json!({ "url": s("url"), "text": s("text"), "changed_at": changed_at }),
        "status" => match stored_status_label(stored) {
            Some(l) => json!({
                "label": {
                    "index": l.index,
                    "text": l.text,
                    "style": { "color": l.color, "border": l.border, "var_name": l.var_name },
                    "is_done": l.is_done,
                },
                "post_id": null,
            }),
            None => Value::Null,
        },
        "date" => {
            json!({ "date": s("date"), "icon": null, "time": stored.get("time").cloned().unwrap_or(Value::Null) })
        }
        "people" => json!({
            "personsAndTeams": stored.get("personsAndTeams").cloned().unwrap_or(json!([])),
            "changed_at": changed_at,
        }),
        "dropdown" => {
            let chosen: Vec<Value> = stored_dropdown_ids(stored)
                .into_iter()
                .filter_map(|id| Some(json!({ "id": id, "name": dropdown_name(id)? })))
                .collect();
            json!({ "chosenValues": chosen })
        }
        // Not documented: the number under `value`, with `unit` as the board would have it.
        "numbers" => {
            let n: f64 = stored
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_default();
            json!({ "value": n, "unit": null })
        }
        // Not documented: `checked` as a string, with `changed_at`.
        "checkbox" => json!({ "checked": "true", "changed_at": changed_at }),
        "country" => json!({
            "countryCode": s("countryCode"),
            "countryName": s("countryName"),
            "changed_at": changed_at,
        }),
        // As captured from Monday, with `columnType: "board-relation"`.
        "board_relation" => json!({
            "linkedPulseIds": linked_pulses(stored),
            "changed_at": changed_at,
        }),
        _ => stored.clone(),
    }
}

/// The API's `value` of a column (to be serialised into a JSON string); None when empty.
pub(super) fn api_value(
    column: &SimColumn,
    stored: Option<&Value>,
    at: Option<OffsetDateTime>,
) -> Option<Value> {
    let stored = stored?;
    let changed_at = at.map(iso_ms);
    let with_changed_at = |mut v: Value| {
        if let (Some(obj), Some(at)) = (v.as_object_mut(), &changed_at) {
            obj.insert("changed_at".into(), Value::String(at.clone()));
        }
        v
    };
    Some(match column.column_type.as_str() {
        "text" => stored.clone(),
        "status" => with_changed_at(json!({
            "index": stored_status_label(stored).map(|l| l.index),
            "post_id": null,
        })),
        "date" => with_changed_at(json!({
            "date": stored.get("date").cloned().unwrap_or(Value::Null),
            "icon": null,
            "time": stored.get("time").cloned().unwrap_or(Value::Null),
        })),
        "board_relation" => with_changed_at(json!({ "linkedPulseIds": linked_pulses(stored) })),
        _ => with_changed_at(stored.clone()),
    })
}

/// How an email or link column shows `target` under its label `text`: "text - target", or just
/// the target when the label is empty or repeats it.
fn labelled(text: String, target: String) -> String {
    if text.is_empty() || text == target {
        target
    } else {
        format!("{text} - {target}")
    }
}

/// The API's display `text` of a column ("" when empty).
pub(super) fn display_text(column: &SimColumn, stored: Option<&Value>) -> String {
    let Some(stored) = stored else {
        return String::new();
    };
    let s = |key: &str| str_field(stored, key).unwrap_or_default().to_owned();
    match column.column_type.as_str() {
        "text" => stored.as_str().unwrap_or_default().to_owned(),
        "long_text" => s("text"),
        "email" => labelled(s("text"), s("email")),
        "phone" => s("phone"),
        "link" => labelled(s("text"), s("url")),
        "status" => stored_status_label(stored)
            .map(|l| l.text.to_owned())
            .unwrap_or_default(),
        "date" => match str_field(stored, "time") {
            Some(t) => format!("{} {t}", s("date")),
            None => s("date"),
        },
        "dropdown" => stored_dropdown_ids(stored)
            .into_iter()
            .filter_map(dropdown_name)
            .collect::<Vec<_>>()
            .join(", "),
        "numbers" => stored.as_str().unwrap_or_default().to_owned(),
        "checkbox" => "v".to_owned(),
        "country" => s("countryName"),
        "board_relation" => stored_relation_ids(stored)
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        "people" => stored
            .get("personsAndTeams")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|e| e.get("id"))
                    .map(|id| match id {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        _ => match stored {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    }
}

/// Whether a stored value matches one searched value of `items_page_by_column_values`
/// (FACTS.md §2.4: text case-insensitive on the entire text, email on the entire address, ...).
fn column_matches(column: &SimColumn, stored: Option<&Value>, wanted: &str) -> bool {
    let Some(stored) = stored else {
        return wanted.is_empty();
    };
    match column.column_type.as_str() {
        "text" => stored
            .as_str()
            .is_some_and(|s| s.to_lowercase() == wanted.to_lowercase()),
        "email" => {
            str_field(stored, "email").is_some_and(|e| e.eq_ignore_ascii_case(wanted))
                || str_field(stored, "text").is_some_and(|t| t == wanted)
        }
        "phone" => {
            let digits: String = wanted.chars().filter(char::is_ascii_digit).collect();
            (!digits.is_empty()
                && str_field(stored, "phone").is_some_and(|p| p.contains(digits.as_str())))
                || str_field(stored, "countryShortName").is_some_and(|c| c == wanted)
        }
        "link" => {
            str_field(stored, "url") == Some(wanted) || str_field(stored, "text") == Some(wanted)
        }
        _ => display_text(column, Some(stored)) == wanted,
    }
}

/// Boards, items and id allocation.
#[derive(Debug)]
pub(super) struct Store {
    boards: Vec<SimBoard>,
    items: BTreeMap<MondayItemId, StoredItem>,
    next_id: u64,
    cursors: HashMap<String, SavedCursor>,
    next_cursor: u64,
    /// Webhooks registered with `create_webhook` (see `setup`).
    webhooks: Vec<SimWebhook>,
    /// Added to the clock cursors are aged by (`MondayFaults::advance_clock`).
    cursor_clock: time::Duration,
    /// The next cursor looked up is answered as expired (`MondayFaults::expire_next_cursor`).
    expire_next_cursor: bool,
}

/// How long a cursor stays valid after the request that started its walk (FACTS.md §2.4).
pub(super) const CURSOR_LIFETIME: time::Duration = time::Duration::minutes(60);

/// The rest of a walk behind a cursor, and when the walk's first page was asked for.
#[derive(Debug, Clone)]
struct SavedCursor {
    board: BoardId,
    rest: Vec<MondayItemId>,
    issued: OffsetDateTime,
}

/// The ids left behind a cursor, with when its walk began.
pub(super) struct CursorRest {
    pub board: BoardId,
    pub rest: Vec<MondayItemId>,
    pub issued: OffsetDateTime,
}

/// Validated writes: each column with its value to store (None clears), and a new item name.
type CheckedValues = (Vec<(SimColumn, Option<Value>)>, Option<String>);

/// An item read for an answer: the item, when its columns were written, and its board.
#[derive(Debug, Clone)]
pub(super) struct ItemView {
    pub item: SimItem,
    pub changed_at: BTreeMap<String, OffsetDateTime>,
    pub board: Option<SimBoard>,
}

impl Store {
    pub(super) fn new(boards: Vec<SimBoard>) -> Self {
        Store {
            boards,
            items: BTreeMap::new(),
            next_id: FIRST_ITEM_ID,
            cursors: HashMap::new(),
            next_cursor: 1,
            webhooks: Vec::new(),
            cursor_clock: time::Duration::ZERO,
            expire_next_cursor: false,
        }
    }

    pub(super) fn board_mut(&mut self, id: BoardId) -> Option<&mut SimBoard> {
        self.boards.iter_mut().find(|b| b.id == id)
    }

    pub(super) fn webhooks(&self) -> &[SimWebhook] {
        &self.webhooks
    }

    pub(super) fn webhooks_mut(&mut self) -> &mut Vec<SimWebhook> {
        &mut self.webhooks
    }

    pub(super) fn boards(&self) -> &[SimBoard] {
        &self.boards
    }

    pub(super) fn board(&self, id: BoardId) -> Option<&SimBoard> {
        self.boards.iter().find(|b| b.id == id)
    }

    pub(super) fn board_index(&self, id: BoardId) -> Option<usize> {
        self.boards.iter().position(|b| b.id == id)
    }

    pub(super) fn item(&self, id: MondayItemId) -> Option<&StoredItem> {
        self.items.get(&id)
    }

    pub(super) fn items(&self) -> impl Iterator<Item = &StoredItem> {
        self.items.values()
    }

    pub(super) fn view(&self, id: MondayItemId) -> Option<ItemView> {
        let stored = self.items.get(&id)?;
        Some(ItemView {
            item: stored.item.clone(),
            changed_at: stored.changed_at.clone(),
            board: self.board(stored.item.board_id).cloned(),
        })
    }

    /// Validates `column_values` (a JSON object, or a JSON string of one) for `board`; the result
    /// maps column ids to the value to store (None clears), plus the new name when "name" is given.
    fn checked_values(
        &self,
        board: &SimBoard,
        column_values: &Value,
    ) -> Result<CheckedValues, FieldError> {
        let parsed;
        let object = match column_values {
            Value::Null => return Ok((Vec::new(), None)),
            Value::String(s) if s.trim().is_empty() => return Ok((Vec::new(), None)),
            Value::String(s) => {
                parsed = serde_json::from_str::<Value>(s).map_err(|_| {
                    FieldError::new(
                        "ColumnValueException",
                        format!(
                            "invalid value - column_values is not valid JSON. {COLUMN_VALUE_DOCS}"
                        ),
                        json!({}),
                    )
                })?;
                &parsed
            }
            other => other,
        };
        let Some(object) = object.as_object() else {
            return Err(FieldError::new(
                "ColumnValueException",
                format!("invalid value - column_values must be a JSON object. {COLUMN_VALUE_DOCS}"),
                json!({}),
            ));
        };
        let mut values = Vec::new();
        let mut name = None;
        for (column_id, value) in object {
            if column_id == "name" {
                match value.as_str() {
                    Some(n) if (1..=MAX_ITEM_NAME_CHARS).contains(&n.chars().count()) => {
                        name = Some(n.to_owned());
                    }
                    _ => return Err(FieldError::name_length()),
                }
                continue;
            }
            let Some(column) = board.columns.iter().find(|c| &c.id == column_id) else {
                return Err(FieldError::unknown_column(board.id, column_id));
            };
            values.push((column.clone(), validate_column_value(column, value)?));
        }
        // Changes (and their webhooks) follow the board's column order.
        values.sort_by_key(|(column, _)| board.columns.iter().position(|c| c.id == column.id));
        Ok((values, name))
    }

    /// `create_item`.
    pub(super) fn create_item(
        &mut self,
        board_id: BoardId,
        item_name: &str,
        column_values: &Value,
        now: OffsetDateTime,
    ) -> Result<(MondayItemId, Vec<Change>), FieldError> {
        let Some(board) = self.board(board_id).cloned() else {
            return Err(FieldError::board_not_found(&json!(board_id.0)));
        };
        if !(1..=MAX_ITEM_NAME_CHARS).contains(&item_name.chars().count()) {
            return Err(FieldError::name_length());
        }
        let (values, name) = self.checked_values(&board, column_values)?;
        let id = MondayItemId(self.next_id);
        self.next_id += 1;
        let mut item = SimItem {
            id,
            board_id,
            name: name.unwrap_or_else(|| item_name.to_owned()),
            state: ItemState::Active,
            column_values: BTreeMap::new(),
        };
        let mut changed_at = BTreeMap::new();
        let mut webhook_values = Map::new();
        for (column, value) in values {
            if let Some(value) = value {
                webhook_values.insert(column.id.clone(), webhook_value(&column, Some(&value), now));
                item.column_values.insert(column.id.clone(), value);
                changed_at.insert(column.id.clone(), now);
            }
        }
        let change = Change::Created {
            board: board_id,
            item: id,
            name: item.name.clone(),
            column_values: webhook_values,
        };
        self.items.insert(id, StoredItem { item, changed_at });
        Ok((id, vec![change]))
    }

    fn live_item(&self, item_id: MondayItemId) -> Option<&StoredItem> {
        self.items
            .get(&item_id)
            .filter(|s| s.item.state != ItemState::Deleted)
    }

    /// `change_multiple_column_values` (and the simulated user's edits): only columns whose value
    /// really changes produce a `Change`.
    pub(super) fn change_columns(
        &mut self,
        board_id: Option<BoardId>,
        item_id: MondayItemId,
        column_values: &Value,
        now: OffsetDateTime,
    ) -> Result<Vec<Change>, FieldError> {
        let Some(stored) = self.live_item(item_id) else {
            return Err(FieldError::item_not_found(&json!(item_id.0)));
        };
        let item_board = stored.item.board_id;
        if board_id.is_some_and(|b| b != item_board) {
            return Err(FieldError::item_not_found(&json!(item_id.0)));
        }
        let Some(board) = self.board(item_board).cloned() else {
            return Err(FieldError::board_not_found(&json!(item_board.0)));
        };
        let (values, name) = self.checked_values(&board, column_values)?;
        let Some(stored) = self.items.get_mut(&item_id) else {
            return Err(FieldError::item_not_found(&json!(item_id.0)));
        };
        let mut changes = Vec::new();
        if let Some(name) = name
            && name != stored.item.name
        {
            let previous = std::mem::replace(&mut stored.item.name, name.clone());
            changes.push(Change::Renamed {
                board: item_board,
                item: item_id,
                previous,
                name,
            });
        }
        for (column, value) in values {
            let old = stored.item.column_values.get(&column.id).cloned();
            if old == value {
                continue;
            }
            let previous_at = stored.changed_at.get(&column.id).copied().unwrap_or(now);
            let previous = webhook_value(&column, old.as_ref(), previous_at);
            match &value {
                Some(v) => {
                    stored
                        .item
                        .column_values
                        .insert(column.id.clone(), v.clone());
                    stored.changed_at.insert(column.id.clone(), now);
                }
                None => {
                    stored.item.column_values.remove(&column.id);
                    stored.changed_at.remove(&column.id);
                }
            }
            changes.push(Change::ColumnChanged {
                board: item_board,
                item: item_id,
                item_name: stored.item.name.clone(),
                value: webhook_value(&column, value.as_ref(), now),
                previous,
                column,
                changed_at: now,
            });
        }
        Ok(changes)
    }

    /// `archive_item` (`archive == true`) or `delete_item`. Archiving an archived item changes nothing.
    pub(super) fn set_state(
        &mut self,
        item_id: MondayItemId,
        archive: bool,
    ) -> Result<Vec<Change>, FieldError> {
        let Some(stored) = self
            .items
            .get_mut(&item_id)
            .filter(|s| s.item.state != ItemState::Deleted)
        else {
            return Err(FieldError::item_not_found(&json!(item_id.0)));
        };
        let (board, item, name) = (stored.item.board_id, item_id, stored.item.name.clone());
        if archive {
            if stored.item.state == ItemState::Archived {
                return Ok(Vec::new());
            }
            stored.item.state = ItemState::Archived;
            Ok(vec![Change::Archived { board, item, name }])
        } else {
            stored.item.state = ItemState::Deleted;
            Ok(vec![Change::Deleted { board, item, name }])
        }
    }

    /// `items_page_by_column_values`: active and archived items of `board` matching every column
    /// condition (values within one condition are ORed), by id.
    pub(super) fn search(
        &self,
        board: &SimBoard,
        conditions: &[(String, Vec<String>)],
    ) -> Result<Vec<MondayItemId>, FieldError> {
        for (column_id, _) in conditions {
            if column_id != "name" && !board.columns.iter().any(|c| &c.id == column_id) {
                return Err(FieldError::unknown_column(board.id, column_id));
            }
        }
        Ok(self
            .items
            .values()
            .filter(|s| s.item.board_id == board.id && s.item.state != ItemState::Deleted)
            .filter(|s| {
                conditions.iter().all(|(column_id, wanted)| {
                    if column_id == "name" {
                        return wanted
                            .iter()
                            .any(|w| w.to_lowercase() == s.item.name.to_lowercase());
                    }
                    let Some(column) = board.columns.iter().find(|c| &c.id == column_id) else {
                        return false;
                    };
                    let stored = s.item.column_values.get(column_id);
                    wanted.iter().any(|w| column_matches(column, stored, w))
                })
            })
            .map(|s| s.item.id)
            .collect())
    }

    /// Keeps `rest` for a later page of a walk begun at `issued`, and returns its cursor.
    /// Cursors whose lifetime is over are forgotten here.
    pub(super) fn save_cursor(
        &mut self,
        board: BoardId,
        rest: Vec<MondayItemId>,
        issued: OffsetDateTime,
    ) -> String {
        let now = self.cursor_now();
        self.cursors
            .retain(|_, c| now - c.issued < CURSOR_LIFETIME + time::Duration::minutes(1));
        let cursor = format!("MSwxLHNpbS1jdXJzb3I{:08}", self.next_cursor);
        self.next_cursor += 1;
        self.cursors.insert(
            cursor.clone(),
            SavedCursor {
                board,
                rest,
                issued,
            },
        );
        cursor
    }

    /// The ids left behind `cursor`, while it is valid (60 minutes after its walk began); a
    /// cursor can be used again within that time (a retried request).
    pub(super) fn cursor_rest(&mut self, cursor: &str) -> Option<CursorRest> {
        let now = self.cursor_now();
        if std::mem::take(&mut self.expire_next_cursor) {
            self.cursors.remove(cursor);
            return None;
        }
        let saved = self.cursors.get(cursor)?;
        if now - saved.issued >= CURSOR_LIFETIME {
            return None;
        }
        Some(CursorRest {
            board: saved.board,
            rest: saved.rest.clone(),
            issued: saved.issued,
        })
    }

    /// Now on the clock cursors are aged by: when a walk begun now was begun.
    pub(super) fn cursor_now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.cursor_clock
    }

    /// Moves the clock cursors are aged by forward.
    pub(super) fn advance_cursor_clock(&mut self, by: time::Duration) {
        self.cursor_clock += by;
    }

    /// The next cursor looked up is expired.
    pub(super) fn expire_next_cursor(&mut self) {
        self.expire_next_cursor = true;
    }

    /// The active items of `board`, in id order: what `items_page` walks.
    pub(super) fn active_items(&self, board: BoardId) -> Vec<MondayItemId> {
        self.items
            .values()
            .filter(|s| s.item.board_id == board && s.item.state == ItemState::Active)
            .map(|s| s.item.id)
            .collect()
    }

    /// Stores an item as given, without a webhook (a board that already holds items).
    pub(super) fn insert_item(&mut self, item: SimItem, now: OffsetDateTime) {
        self.next_id = self.next_id.max(item.id.0 + 1);
        let changed_at = item
            .column_values
            .keys()
            .map(|k| (k.clone(), now))
            .collect();
        self.items.insert(item.id, StoredItem { item, changed_at });
    }

    /// Changes an item's state or values as given, without a webhook (a missed delivery).
    pub(super) fn edit_item(
        &mut self,
        id: MondayItemId,
        now: OffsetDateTime,
        edit: impl FnOnce(&mut SimItem),
    ) -> bool {
        let Some(stored) = self.items.get_mut(&id) else {
            return false;
        };
        let before = stored.item.column_values.clone();
        edit(&mut stored.item);
        for (column, value) in &stored.item.column_values {
            if before.get(column) != Some(value) {
                stored.changed_at.insert(column.clone(), now);
            }
        }
        true
    }
}
