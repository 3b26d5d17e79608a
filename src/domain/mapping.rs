//! How NPD fields map to Monday columns, per entity kind, and how their values convert.
//!
//! Owns: `ColumnType`, `ColumnMapping`, `EntityMapping`, the default mappings of CONTRACT.md and
//! their validation; `FieldValue`, the canonical form of a synced value (`ColumnType::canonical`),
//! its conversion to and from Monday's column JSON (`to_monday`, `from_webhook`, `from_api_value`)
//! and `MappingError`; `phone_country`, `PhoneCountry` (`[mapping] default_phone_country`, which
//! completes national numbers to E.164); `LeftOut`, a value that cannot be written and is left out
//! of its write (the other fields still go); `OrgLinks`, the translation of a contact's
//! `organization_id` (an NPD organization id) to and from its organization's Monday item in a
//! board_relation column; reading NPD snapshots and building/splitting item names.
//! The formats of status, dropdown, date, numbers, checkbox and country are in `columns`.
//! May import: std, serde, serde_json, thiserror, phonenumber, isocountry, crate::domain.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::entity::{EntityKind, MondayItemId, NpdId, Side};
use crate::domain::record::{NpdRecord, NpdValue};

mod columns;

/// The Monday column types the gateway can write (Monday's GraphQL `ColumnType` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Text,
    LongText,
    Email,
    Phone,
    Link,
    Status,
    Dropdown,
    Date,
    Numbers,
    Checkbox,
    Country,
    /// Monday's connect-boards column: a contact's `organization_id` as the link to its
    /// organization's item (the ids are translated through the ledger's links, `OrgLinks`).
    BoardRelation,
}

impl ColumnType {
    pub const ALL: [ColumnType; 12] = [
        ColumnType::Text,
        ColumnType::LongText,
        ColumnType::Email,
        ColumnType::Phone,
        ColumnType::Link,
        ColumnType::Status,
        ColumnType::Dropdown,
        ColumnType::Date,
        ColumnType::Numbers,
        ColumnType::Checkbox,
        ColumnType::Country,
        ColumnType::BoardRelation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::LongText => "long_text",
            ColumnType::Email => "email",
            ColumnType::Phone => "phone",
            ColumnType::Link => "link",
            ColumnType::Status => "status",
            ColumnType::Dropdown => "dropdown",
            ColumnType::Date => "date",
            ColumnType::Numbers => "numbers",
            ColumnType::Checkbox => "checkbox",
            ColumnType::Country => "country",
            ColumnType::BoardRelation => "board_relation",
        }
    }

    /// Whether values of this type are labels of the column (`labels` may map them).
    pub fn has_labels(self) -> bool {
        matches!(self, ColumnType::Status | ColumnType::Dropdown)
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ColumnType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ColumnType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = ColumnType::ALL.iter().map(|t| t.as_str()).collect();
                format!(
                    "unknown column type `{s}` (expected one of {})",
                    known.join(", ")
                )
            })
    }
}

/// A synced field's value in canonical form; `None` is empty or absent. Every mapped field is
/// text-like.
pub type FieldValue = Option<String>;

/// Why a Monday column value could not be read. Messages name the column type and the expected
/// shape, never the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The JSON is not the shape a column of this type has.
    #[error("a {column_type} column value has an unexpected shape, expected {expected}")]
    UnexpectedShape {
        column_type: ColumnType,
        expected: &'static str,
    },
    /// The API's `value` string does not hold JSON.
    #[error("a {column_type} column value from the API is not valid JSON")]
    NotJson { column_type: ColumnType },
}

/// Why a value cannot be written to the other side: it is left out of that write (and recorded
/// for the entity), while the other fields still sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftOutReason {
    /// A phone number without its country code, and no `[mapping] default_phone_country`.
    NationalPhone,
    /// A phone number that is no valid number of any country (Monday checks with libphonenumber).
    InvalidPhone,
    /// A date that is no `YYYY-MM-DD` calendar date.
    InvalidDate,
    /// A number that is no finite decimal number.
    InvalidNumber,
    /// A country that is no ISO 3166 alpha-2 code.
    UnknownCountry,
    /// A contact's organization that has no Monday item yet: the relation is written once the
    /// organization's item is linked.
    OrganizationNotSynced,
    /// A Monday item linked in a board_relation column that is no organization the ledger knows.
    UnknownItem,
    /// Several items linked in a board_relation column: NPD holds one organization.
    SeveralItems,
    /// An NPD value the field's `labels` give no Monday label (and `create_labels` is off).
    NoLabel,
    /// A Monday label the field's `labels` give no NPD value.
    NoNpdValue,
}

impl LeftOutReason {
    pub const ALL: [LeftOutReason; 10] = [
        LeftOutReason::NationalPhone,
        LeftOutReason::InvalidPhone,
        LeftOutReason::InvalidDate,
        LeftOutReason::InvalidNumber,
        LeftOutReason::UnknownCountry,
        LeftOutReason::OrganizationNotSynced,
        LeftOutReason::UnknownItem,
        LeftOutReason::SeveralItems,
        LeftOutReason::NoLabel,
        LeftOutReason::NoNpdValue,
    ];

    /// The stable name kept in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            LeftOutReason::NationalPhone => "national_phone",
            LeftOutReason::InvalidPhone => "invalid_phone",
            LeftOutReason::InvalidDate => "invalid_date",
            LeftOutReason::InvalidNumber => "invalid_number",
            LeftOutReason::UnknownCountry => "unknown_country",
            LeftOutReason::OrganizationNotSynced => "organization_not_synced",
            LeftOutReason::UnknownItem => "unknown_item",
            LeftOutReason::SeveralItems => "several_items",
            LeftOutReason::NoLabel => "no_label",
            LeftOutReason::NoNpdValue => "no_npd_value",
        }
    }

    /// One readable sentence: what is wrong and what to do.
    pub fn explain(self) -> &'static str {
        match self {
            LeftOutReason::NationalPhone => {
                "a national phone number without its country code: set [mapping] default_phone_country or store it in E.164 (+ and the country code)"
            }
            LeftOutReason::InvalidPhone => "not a valid phone number of any country",
            LeftOutReason::InvalidDate => "not a date written YYYY-MM-DD",
            LeftOutReason::InvalidNumber => "not a number",
            LeftOutReason::UnknownCountry => "not an ISO 3166 alpha-2 country code",
            LeftOutReason::OrganizationNotSynced => {
                "the organization has no Monday item yet: the relation is written once it is linked"
            }
            LeftOutReason::UnknownItem => {
                "the linked Monday item is no organization the gateway knows: NPD is not changed"
            }
            LeftOutReason::SeveralItems => {
                "several items are linked, and NPD holds one organization: NPD is not changed"
            }
            LeftOutReason::NoLabel => {
                "no Monday label for this value in the field's `labels` (add one, or set create_labels = true)"
            }
            LeftOutReason::NoNpdValue => {
                "no NPD value for this Monday label in the field's `labels`"
            }
        }
    }
}

impl fmt::Display for LeftOutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LeftOutReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LeftOutReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown left-out reason `{s}`"))
    }
}

/// A field's value left out of a write towards `to`, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub field: String,
    /// The canonical value that could not be written.
    pub value: String,
    pub reason: LeftOutReason,
    /// The side the write was for.
    pub to: Side,
}

/// An ISO 3166 alpha-2 country with a telephone numbering plan (`US`, `GB`):
/// `[mapping] default_phone_country`, the country of national numbers such as `(202) 555-0169`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneCountry {
    id: phonenumber::country::Id,
    /// The two capital letters, as given.
    code: [u8; 2],
}

impl PhoneCountry {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.code).unwrap_or_default()
    }
}

impl fmt::Display for PhoneCountry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PhoneCountry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code: Option<[u8; 2]> = s.as_bytes().try_into().ok();
        code.filter(|c| c.iter().all(u8::is_ascii_uppercase))
            .and_then(|code| {
                let id = s.parse::<phonenumber::country::Id>().ok()?;
                Some(PhoneCountry { id, code })
            })
            .ok_or_else(|| {
                format!(
                    "`{s}` is not an ISO 3166 alpha-2 country with phone numbers (two capital letters, such as \"US\" or \"GB\")"
                )
            })
    }
}

impl<'de> Deserialize<'de> for PhoneCountry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// A canonical phone number in E.164 (`+12025550169`): a number that already has its `+` is
/// kept; a national one (`2025550169`) is completed with `country` when it is a valid number
/// there; anything else is returned as it was (and is left out when written to Monday).
pub fn complete_phone(canonical: &str, country: Option<PhoneCountry>) -> String {
    let Some(country) = country.filter(|_| !canonical.starts_with('+')) else {
        return canonical.to_owned();
    };
    match phonenumber::parse(Some(country.id), canonical) {
        Ok(number) if phonenumber::is_valid(&number) => {
            number.format().mode(phonenumber::Mode::E164).to_string()
        }
        _ => canonical.to_owned(),
    }
}

/// What Monday's phone column takes for a canonical number: the E.164 number and its country
/// (`countryShortName`), or why it cannot be written.
fn monday_phone(canonical: &str) -> Result<(String, String), LeftOutReason> {
    let Some(digits) = canonical.strip_prefix('+') else {
        return Err(LeftOutReason::NationalPhone);
    };
    // An extension or anything else libphonenumber would drop is no number Monday stores.
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(LeftOutReason::InvalidPhone);
    }
    let number = phonenumber::parse(None, canonical).map_err(|_| LeftOutReason::InvalidPhone)?;
    if !phonenumber::is_valid(&number) {
        return Err(LeftOutReason::InvalidPhone);
    }
    let country = number
        .country()
        .id()
        .map(|id| id.as_ref().to_owned())
        .or_else(|| phone_country(canonical).map(str::to_owned))
        .ok_or(LeftOutReason::InvalidPhone)?;
    Ok((canonical.to_owned(), country))
}

/// The placeholder item name used when every item-name field is empty.
pub const UNNAMED_ITEM: &str = "Unnamed";

/// Monday's limit on an item name, in characters.
pub const ITEM_NAME_MAX_CHARS: usize = 255;

impl ColumnType {
    /// Canonical form used for every comparison, so Monday's reformatting of what the gateway
    /// wrote never reads as a change:
    /// - text and link: trimmed;
    /// - email: trimmed and lower-cased;
    /// - phone: E.164-like: whitespace, dashes, dots and parentheses removed, a leading `00`
    ///   becomes `+`; a number without `+`/`00` keeps its digits, unprefixed (any other character
    ///   is kept, so nothing the user typed is silently dropped);
    /// - long text: `\r\n` (and a lone `\r`) become `\n`, trailing whitespace is removed, leading
    ///   whitespace is kept;
    /// - status: the label, trimmed; dropdown: its labels as a sorted JSON array (`["A","B"]`);
    /// - date: `YYYY-MM-DD` (a time is dropped); numbers: the shortest decimal (`42`, `3.5`);
    /// - checkbox: `true` when checked, empty (`None`) when not; country: the upper-cased code.
    ///
    /// An empty result is `None`. Canonicalising a canonical value returns it unchanged.
    pub fn canonical(self, raw: &str) -> FieldValue {
        let value = match self {
            ColumnType::Text | ColumnType::Link => raw.trim().to_owned(),
            ColumnType::Email => raw.trim().to_lowercase(),
            ColumnType::Phone => canonical_phone(raw),
            ColumnType::LongText => raw
                .replace("\r\n", "\n")
                .replace('\r', "\n")
                .trim_end()
                .to_owned(),
            ColumnType::Status => columns::canonical_label(raw),
            ColumnType::Dropdown => columns::canonical_labels(raw),
            ColumnType::Date => columns::canonical_date(raw),
            ColumnType::Numbers => columns::canonical_number(raw),
            ColumnType::Checkbox => columns::canonical_checkbox(raw),
            ColumnType::Country => columns::canonical_country(raw),
            ColumnType::BoardRelation => columns::canonical_relation(raw),
        };
        (!value.is_empty()).then_some(value)
    }

    /// The JSON Monday expects for this column in `column_values` (FACTS §2.6): text `"v"`,
    /// long text `{"text": v}`, email `{"email": v, "text": v}`, phone
    /// `{"phone": v, "countryShortName": ISO2}`, link `{"url": v, "text": v}`, board relation
    /// `{"item_ids": ["123"]}`. `None` clears the column: JSON null (a board relation:
    /// `{"item_ids": []}`). A value Monday would refuse (a phone without its country code, or no
    /// valid number) is `Err`: it is left out of the write, so the rest of the item still goes.
    pub fn to_monday(self, value: &FieldValue) -> Result<Value, LeftOutReason> {
        let Some(v) = value else {
            // A connect-boards column is cleared with no linked item (FACTS §2.6).
            return Ok(match self {
                ColumnType::BoardRelation => serde_json::json!({ "item_ids": [] }),
                _ => Value::Null,
            });
        };
        Ok(match self {
            ColumnType::Text => Value::String(v.clone()),
            ColumnType::LongText => serde_json::json!({ "text": v }),
            ColumnType::Email => serde_json::json!({ "email": v, "text": v }),
            ColumnType::Link => serde_json::json!({ "url": v, "text": v }),
            ColumnType::Phone => {
                let (phone, country) = monday_phone(v)?;
                serde_json::json!({ "phone": phone, "countryShortName": country })
            }
            ColumnType::Status => columns::write_status(v),
            ColumnType::Dropdown => columns::write_dropdown(v),
            ColumnType::Date => columns::write_date(v)?,
            ColumnType::Numbers => columns::write_number(v)?,
            ColumnType::Checkbox => columns::write_checkbox(v),
            ColumnType::Country => columns::write_country(v)?,
            ColumnType::BoardRelation => columns::write_relation(v)?,
        })
    }

    /// A column's value as a webhook delivers it (`value` of `update_column_value`, or one entry
    /// of `create_pulse` `columnValues`), canonicalised. Absent, `null` and `{}` are `Ok(None)`.
    /// The API write formats of `to_monday` are accepted too (a bare string for text).
    /// Webhook shapes: text `{"value"}`, long text `{"text", "changed_at"}`, email
    /// `{"email", "text", "changed_at"}`, phone `{"phone", "countryShortName", "changed_at"}`,
    /// link `{"url", "text", "changed_at"}`; the value key may be null (cleared).
    /// Status, dropdown, date, numbers, checkbox and country: see `columns::read_*`.
    pub fn from_webhook(self, value: Option<&Value>) -> Result<FieldValue, MappingError> {
        let raw = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(object)) if object.is_empty() => return Ok(None),
            Some(value) if self.typed_read().is_some() => {
                let read = self.typed_read().map_or(Err(()), |read| read(value));
                let raw = read.map_err(|()| self.unexpected_shape())?;
                return Ok(raw.and_then(|raw| self.canonical(&raw)));
            }
            Some(Value::String(s)) if self == ColumnType::Text => s.as_str(),
            Some(Value::Object(object)) => match object.get(self.value_key()) {
                Some(Value::Null) => return Ok(None),
                Some(Value::String(s)) => s.as_str(),
                _ => return Err(self.unexpected_shape()),
            },
            Some(_) => return Err(self.unexpected_shape()),
        };
        Ok(self.canonical(raw))
    }

    /// A column's value as the GraphQL API returns it in `column_values { value }`: a JSON
    /// *string* holding the stored JSON (`"{\"email\":\"a@b.c\",\"text\":\"a@b.c\"}"`,
    /// `"\"plain text\""` for text), or null. Canonicalised; an empty string is `None`.
    pub fn from_api_value(self, value: Option<&str>) -> Result<FieldValue, MappingError> {
        let Some(raw) = value.filter(|raw| !raw.trim().is_empty()) else {
            return Ok(None);
        };
        let parsed: Value =
            serde_json::from_str(raw).map_err(|_| MappingError::NotJson { column_type: self })?;
        self.from_webhook(Some(&parsed))
    }

    /// A column's value as a scan reads it from the API: its `value` (see `from_api_value`), or
    /// for status and dropdown, whose `value` holds only indexes and ids, its `text` (the label,
    /// or the labels joined with `, `).
    pub fn from_api(
        self,
        text: Option<&str>,
        value: Option<&str>,
    ) -> Result<FieldValue, MappingError> {
        match self {
            ColumnType::Status => Ok(text.and_then(|t| self.canonical(t))),
            ColumnType::Dropdown => {
                let labels: Vec<&str> = text.unwrap_or_default().split(", ").collect();
                Ok(self.canonical(&Value::from(labels).to_string()))
            }
            _ => self.from_api_value(value),
        }
    }

    /// The reader of the types whose value is not one string under one key.
    fn typed_read(self) -> Option<fn(&Value) -> columns::Read> {
        Some(match self {
            ColumnType::Status => columns::read_status,
            ColumnType::Dropdown => columns::read_dropdown,
            ColumnType::Date => columns::read_date,
            ColumnType::Numbers => columns::read_number,
            ColumnType::Checkbox => columns::read_checkbox,
            ColumnType::Country => columns::read_country,
            ColumnType::BoardRelation => columns::read_relation,
            _ => return None,
        })
    }

    /// The key of a column's JSON object that carries the value.
    fn value_key(self) -> &'static str {
        match self {
            ColumnType::Text => "value",
            ColumnType::LongText => "text",
            ColumnType::Email => "email",
            ColumnType::Phone => "phone",
            ColumnType::Link => "url",
            _ => "value",
        }
    }

    fn unexpected_shape(self) -> MappingError {
        let expected = match self {
            ColumnType::Text => "a string or an object with a string `value`",
            ColumnType::LongText => "an object with a string `text`",
            ColumnType::Email => "an object with a string `email`",
            ColumnType::Phone => "an object with a string `phone`",
            ColumnType::Link => "an object with a string `url`",
            ColumnType::Status => "an object with a `label` (`{\"label\": {\"text\"}}`)",
            ColumnType::Dropdown => "an object with `chosenValues` or `labels`",
            ColumnType::Date => "an object with a string `date`",
            ColumnType::Numbers => "a number, a numeric string or an object with `value`",
            ColumnType::Checkbox => "an object with `checked`, or a boolean",
            ColumnType::Country => "an object with a string `countryCode`",
            ColumnType::BoardRelation => "an object with `linkedPulseIds` or `item_ids`",
        };
        MappingError::UnexpectedShape {
            column_type: self,
            expected,
        }
    }
}

/// Whitespace, dashes, dots and parentheses removed; a leading `00` becomes `+`.
fn canonical_phone(raw: &str) -> String {
    let kept: String = raw
        .chars()
        .filter(|&c| {
            !(c.is_whitespace()
                || matches!(
                    c,
                    '-' | '.' | '(' | ')' | '\u{2010}'..='\u{2015}' | '\u{2212}'
                ))
        })
        .collect();
    match kept.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => kept,
    }
}

/// Calling code -> ISO 3166 alpha-2 country; +1 is the whole NANP and reads as the US.
const CALLING_CODES: &[(&str, &str)] = &[
    ("1", "US"),
    ("7", "RU"),
    ("20", "EG"),
    ("27", "ZA"),
    ("30", "GR"),
    ("31", "NL"),
    ("32", "BE"),
    ("33", "FR"),
    ("34", "ES"),
    ("36", "HU"),
    ("39", "IT"),
    ("40", "RO"),
    ("41", "CH"),
    ("43", "AT"),
    ("44", "GB"),
    ("45", "DK"),
    ("46", "SE"),
    ("47", "NO"),
    ("48", "PL"),
    ("49", "DE"),
    ("51", "PE"),
    ("52", "MX"),
    ("54", "AR"),
    ("55", "BR"),
    ("56", "CL"),
    ("57", "CO"),
    ("60", "MY"),
    ("61", "AU"),
    ("62", "ID"),
    ("63", "PH"),
    ("64", "NZ"),
    ("65", "SG"),
    ("66", "TH"),
    ("81", "JP"),
    ("82", "KR"),
    ("84", "VN"),
    ("86", "CN"),
    ("90", "TR"),
    ("91", "IN"),
    ("92", "PK"),
    ("234", "NG"),
    ("254", "KE"),
    ("351", "PT"),
    ("352", "LU"),
    ("353", "IE"),
    ("354", "IS"),
    ("356", "MT"),
    ("357", "CY"),
    ("358", "FI"),
    ("359", "BG"),
    ("370", "LT"),
    ("371", "LV"),
    ("372", "EE"),
    ("380", "UA"),
    ("385", "HR"),
    ("386", "SI"),
    ("420", "CZ"),
    ("421", "SK"),
    ("852", "HK"),
    ("966", "SA"),
    ("971", "AE"),
    ("972", "IL"),
];

/// ISO 3166 alpha-2 country of an E.164 number (`+` then digits) by its longest calling-code
/// prefix: `+1` is "US" (NANP), `+44` "GB", `+353` "IE", ... `None` for a number without `+` or
/// with an unknown code.
pub fn phone_country(e164: &str) -> Option<&'static str> {
    let digits = e164.strip_prefix('+')?;
    (1..=3).rev().find_map(|len| {
        let prefix = digits.get(..len)?;
        CALLING_CODES
            .iter()
            .find(|(code, _)| *code == prefix)
            .map(|(_, country)| *country)
    })
}

/// The `column_values` argument of `create_item` and `change_multiple_column_values`: column id
/// to the JSON Monday expects for that column (`ColumnType::to_monday`), and whether the
/// mutation asks Monday to create missing status/dropdown labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnValues(pub Map<String, Value>, pub CreatesLabels);

/// `create_labels_if_missing: true` on the mutation: a written field has `create_labels`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreatesLabels(pub bool);

impl ColumnValues {
    /// Whether the mutation carries `create_labels_if_missing: true`.
    pub fn creates_labels(&self) -> bool {
        self.1.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Renames the item too (`name` is a pseudo-column of `change_multiple_column_values`).
    pub fn set_item_name(&mut self, name: &str) {
        self.0.insert("name".into(), Value::String(name.to_owned()));
    }

    /// The JSON-encoded string GraphQL's `JSON` argument takes.
    pub fn to_json_string(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }
}

/// Which way a field's values flow (`direction`): both (the default), or only from its owning
/// side to the other; the other side's changes of a one-way field are ignored (and recorded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Both,
    /// NPD owns the field: Monday's changes are ignored.
    ToMonday,
    /// Monday owns the field: NPD's changes are ignored.
    ToNpd,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Both => "both",
            Direction::ToMonday => "to_monday",
            Direction::ToNpd => "to_npd",
        }
    }

    /// Whether a change made on `side` may flow.
    pub fn accepts_from(self, side: Side) -> bool {
        match self {
            Direction::Both => true,
            Direction::ToMonday => side == Side::Npd,
            Direction::ToNpd => side == Side::Monday,
        }
    }

    fn is_both(&self) -> bool {
        *self == Direction::Both
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One NPD field written to one Monday column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapping {
    /// The Monday column id on the board.
    pub column: String,
    /// The Monday column type, which decides the value format.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Status and dropdown: NPD value -> Monday label, used both ways. Empty: the NPD value is
    /// the label. A value (or label) it does not name is left out of the write and recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Status and dropdown: an NPD value `labels` does not name is written as its own label,
    /// and Monday creates missing labels (`create_labels_if_missing: true`). Off: never.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_labels: bool,
    /// `both` (default), `to_monday` or `to_npd`.
    #[serde(default, skip_serializing_if = "Direction::is_both")]
    pub direction: Direction,
}

impl ColumnMapping {
    pub fn new(column: &str, column_type: ColumnType) -> Self {
        ColumnMapping {
            column: column.to_owned(),
            column_type,
            labels: BTreeMap::new(),
            create_labels: false,
            direction: Direction::Both,
        }
    }

    /// The Monday label of one NPD value: its `labels` entry; the value itself when `labels` is
    /// empty or `create_labels` is on; else none.
    fn label_of(&self, npd: &str) -> Option<String> {
        match self.labels.get(npd) {
            Some(label) => Some(label.clone()),
            None if self.labels.is_empty() || self.create_labels => Some(npd.to_owned()),
            None => None,
        }
    }

    /// The NPD value of one Monday label: the `labels` entry naming it; the label itself when
    /// `labels` is empty; else none.
    fn npd_of(&self, label: &str) -> Option<String> {
        if self.labels.is_empty() {
            return Some(label.to_owned());
        }
        self.labels
            .iter()
            .find(|(_, l)| l.as_str() == label)
            .map(|(npd, _)| npd.clone())
    }

    /// A canonical NPD value as the canonical Monday value of this column (status and dropdown
    /// through `labels`; other types unchanged). `Err(NoLabel)`: a value has no label.
    pub fn monday_value(&self, value: &FieldValue) -> Result<FieldValue, LeftOutReason> {
        self.translate(value, |v| self.label_of(v), LeftOutReason::NoLabel)
    }

    /// A canonical Monday value of this column as the canonical NPD value (status and dropdown
    /// through `labels`). `Err(NoNpdValue)`: a label has no NPD value.
    pub fn npd_value(&self, value: &FieldValue) -> Result<FieldValue, LeftOutReason> {
        self.translate(value, |v| self.npd_of(v), LeftOutReason::NoNpdValue)
    }

    fn translate(
        &self,
        value: &FieldValue,
        one: impl Fn(&str) -> Option<String>,
        missing: LeftOutReason,
    ) -> Result<FieldValue, LeftOutReason> {
        let Some(v) = value else {
            return Ok(None);
        };
        match self.column_type {
            ColumnType::Status => one(v).map(Some).ok_or(missing),
            ColumnType::Dropdown => {
                let labels: Option<Vec<String>> =
                    columns::labels_of(v).iter().map(|l| one(l)).collect();
                let labels = labels.ok_or(missing)?;
                Ok(self.column_type.canonical(&Value::from(labels).to_string()))
            }
            _ => Ok(value.clone()),
        }
    }

    /// A canonical value as NPD's JSON has it: numbers as numbers, a checkbox as a boolean
    /// (unchecked is `false`), dropdown labels as a list of strings, the rest as text; `None`
    /// clears (null, an empty list for a dropdown).
    pub fn npd_json(&self, value: &FieldValue) -> NpdValue {
        match (self.column_type, value) {
            (ColumnType::Checkbox, v) => NpdValue::Bool(v.as_deref() == Some("true")),
            (ColumnType::Dropdown, v) => {
                NpdValue::List(v.as_deref().map(columns::labels_of).unwrap_or_default())
            }
            (ColumnType::Numbers, Some(v)) => {
                let number = v
                    .parse::<i64>()
                    .map(serde_json::Number::from)
                    .ok()
                    .or_else(|| v.parse::<f64>().ok().and_then(serde_json::Number::from_f64));
                number.map_or_else(|| NpdValue::Text(v.clone()), NpdValue::Number)
            }
            (_, Some(v)) => NpdValue::Text(v.clone()),
            (_, None) => NpdValue::Null,
        }
    }
}

/// The raw text of an NPD field for a column type: strings for every type; numbers for numbers;
/// booleans for checkboxes; lists of strings for dropdowns (as a JSON array). Any other shape is
/// not this type's and reads as empty.
fn npd_raw(value: &NpdValue, column_type: ColumnType) -> Option<String> {
    match (value, column_type) {
        (NpdValue::Text(s), _) => Some(s.clone()),
        (NpdValue::Number(n), ColumnType::Numbers) => Some(n.to_string()),
        (NpdValue::Bool(b), ColumnType::Checkbox) => Some(b.to_string()),
        (NpdValue::List(list), ColumnType::Dropdown) => Some(Value::from(list.clone()).to_string()),
        _ => None,
    }
}

/// The ledger's links between organizations' NPD ids and their Monday items, as far as one write
/// or one delivery needs them (the sync layer reads them; the mapping translates with them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgLinks(Vec<(NpdId, MondayItemId)>);

impl OrgLinks {
    pub fn insert(&mut self, npd_id: NpdId, item: MondayItemId) {
        self.0.push((npd_id, item));
    }

    /// The Monday item of an organization.
    pub fn item_of(&self, npd_id: NpdId) -> Option<MondayItemId> {
        self.0.iter().find(|(n, _)| *n == npd_id).map(|(_, i)| *i)
    }

    /// The organization of a Monday item.
    pub fn npd_of(&self, item: MondayItemId) -> Option<NpdId> {
        self.0.iter().find(|(_, i)| *i == item).map(|(n, _)| *n)
    }
}

/// The mapping of one entity kind onto its board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityMapping {
    /// NPD fields joined with a space to form the item name.
    pub item_name: Vec<String>,
    /// The text column holding the NPD id: the key for idempotent creates and matching.
    pub npd_id_column: String,
    /// NPD field -> Monday column.
    pub fields: BTreeMap<String, ColumnMapping>,
    /// `[mapping] default_phone_country`, shared by both kinds (set by the config, not by the
    /// kind's table): NPD's national phone numbers are completed to E.164 with it.
    #[serde(skip)]
    pub default_phone_country: Option<PhoneCountry>,
}

/// What one write to Monday carries: the columns, and the values left out of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MondayWrite {
    pub columns: ColumnValues,
    pub left_out: Vec<LeftOut>,
}

impl EntityMapping {
    /// CONTRACT.md's default mapping for `kind`.
    pub fn default_for(kind: EntityKind) -> Self {
        let col = ColumnMapping::new;
        match kind {
            EntityKind::Contact => EntityMapping {
                item_name: vec!["first_name".into(), "last_name".into()],
                npd_id_column: "npd_id".into(),
                fields: BTreeMap::from([
                    ("email".into(), col("email", ColumnType::Email)),
                    ("phone".into(), col("phone", ColumnType::Phone)),
                    ("role_title".into(), col("role_title", ColumnType::Text)),
                    ("notes".into(), col("notes", ColumnType::LongText)),
                ]),
                default_phone_country: None,
            },
            EntityKind::Organization => EntityMapping {
                item_name: vec!["name".into()],
                npd_id_column: "npd_id".into(),
                fields: BTreeMap::from([
                    ("website".into(), col("website", ColumnType::Link)),
                    ("industry".into(), col("industry", ColumnType::Text)),
                    ("notes".into(), col("notes", ColumnType::LongText)),
                ]),
                default_phone_country: None,
            },
        }
    }

    /// The NPD field mapped to `column_id`, if any.
    pub fn field_for_column(&self, column_id: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(_, m)| m.column == column_id)
            .map(|(field, _)| field.as_str())
    }

    /// Whether a Monday column id is one the gateway syncs (a mapped field or the npd id column).
    pub fn is_mapped_column(&self, column_id: &str) -> bool {
        column_id == self.npd_id_column || self.field_for_column(column_id).is_some()
    }

    /// Every synced field with the column type used to canonicalise it: the item-name fields (as
    /// text) first, then `fields`. A field named in both is listed once, as an item-name field.
    pub fn synced_fields(&self) -> Vec<(String, ColumnType)> {
        let names = self
            .item_name
            .iter()
            .map(|field| (field.clone(), ColumnType::Text));
        let columns = self
            .fields
            .iter()
            .filter(|(field, _)| !self.item_name.contains(field))
            .map(|(field, mapping)| (field.clone(), mapping.column_type));
        names.chain(columns).collect()
    }

    /// A Monday value of `field` (canonical, as its column type reads it) as its NPD value:
    /// through the field's `labels`; unmapped fields (item-name fields) unchanged. A label with
    /// no NPD value is `Err`, to be left out of the write to NPD.
    pub fn npd_value_of(&self, field: &str, value: FieldValue) -> Result<FieldValue, LeftOut> {
        let Some(mapping) = self
            .fields
            .get(field)
            .filter(|_| !self.item_name.iter().any(|f| f == field))
        else {
            return Ok(value);
        };
        mapping.npd_value(&value).map_err(|reason| LeftOut {
            field: field.to_owned(),
            value: value.clone().unwrap_or_default(),
            reason,
            to: Side::Npd,
        })
    }

    /// NPD's JSON for the canonical value of `field` (`ColumnMapping::npd_json`; text for
    /// item-name and unmapped fields).
    pub fn npd_json(&self, field: &str, value: &FieldValue) -> NpdValue {
        match self
            .fields
            .get(field)
            .filter(|_| !self.item_name.iter().any(|f| f == field))
        {
            Some(mapping) => mapping.npd_json(value),
            None => value.clone().map_or(NpdValue::Null, NpdValue::Text),
        }
    }

    /// The direction of a synced field (item-name fields sync both ways).
    pub fn direction_of(&self, field: &str) -> Direction {
        if self.item_name.iter().any(|f| f == field) {
            return Direction::Both;
        }
        self.fields
            .get(field)
            .map_or(Direction::Both, |m| m.direction)
    }

    /// The column type of a synced field (item-name fields are text), `None` if not synced.
    pub fn column_type_of(&self, field: &str) -> Option<ColumnType> {
        if self.item_name.iter().any(|f| f == field) {
            return Some(ColumnType::Text);
        }
        self.fields.get(field).map(|m| m.column_type)
    }

    /// The canonical values of every synced field, read from an NPD record. Missing, null and
    /// non-string fields are `None`. National phone numbers are completed to E.164 with
    /// `default_phone_country` (so what Monday stores reads back as the same value).
    pub fn npd_values(&self, record: &NpdRecord) -> BTreeMap<String, FieldValue> {
        self.synced_fields()
            .into_iter()
            .map(|(field, column_type)| {
                let value = record
                    .fields
                    .get(&field)
                    .and_then(|v| npd_raw(v, column_type))
                    .and_then(|raw| column_type.canonical(&raw))
                    .map(|v| match column_type {
                        ColumnType::Phone => complete_phone(&v, self.default_phone_country),
                        _ => v,
                    });
                (field, value)
            })
            .collect()
    }

    /// The Monday item name: the item-name fields' values joined with one space, empty ones
    /// skipped; `UNNAMED_ITEM` when all are empty; at most `ITEM_NAME_MAX_CHARS` characters,
    /// cut on a char boundary (and trailing whitespace of the cut removed).
    pub fn item_name(&self, values: &BTreeMap<String, FieldValue>) -> String {
        let parts: Vec<&str> = self
            .item_name
            .iter()
            .filter_map(|field| values.get(field)?.as_deref())
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .collect();
        if parts.is_empty() {
            return UNNAMED_ITEM.to_owned();
        }
        let name = parts.join(" ");
        match name.char_indices().nth(ITEM_NAME_MAX_CHARS) {
            Some((cut, _)) => name[..cut].trim_end().to_owned(),
            None => name,
        }
    }

    /// The item-name fields from a Monday item name. With one field it gets the whole trimmed
    /// name; with several, the first gets the first word, the last gets the rest and the ones
    /// between get `None` ("Ada King Lovelace" -> first_name "Ada", last_name "King Lovelace";
    /// "Ada" -> first_name "Ada", last_name `None`). The placeholder `UNNAMED_ITEM` gives `None`
    /// for every field, so the gateway's own placeholder never syncs back as a name.
    pub fn split_item_name(&self, name: &str) -> BTreeMap<String, FieldValue> {
        let name = name.trim();
        let name = if name == UNNAMED_ITEM { "" } else { name };
        let mut values: BTreeMap<String, FieldValue> = self
            .item_name
            .iter()
            .map(|field| (field.clone(), None))
            .collect();
        match self.item_name.as_slice() {
            [] => {}
            [only] => {
                values.insert(only.clone(), ColumnType::Text.canonical(name));
            }
            [first, .., last] => {
                let (head, rest) = name.split_once(char::is_whitespace).unwrap_or((name, ""));
                values.insert(first.clone(), ColumnType::Text.canonical(head));
                values.insert(last.clone(), ColumnType::Text.canonical(rest));
            }
        }
        values
    }

    /// `column_values` for `create_item` / `change_multiple_column_values`: for each given field
    /// with a column mapping, column id -> `ColumnType::to_monday`; item-name fields are skipped
    /// (they are the item name, not columns); plus `npd_id_column` -> the NPD id as text when
    /// `npd_id` is given. A value `to_monday` refuses is left out (`MondayWrite::left_out`).
    pub fn monday_column_values(
        &self,
        values: &BTreeMap<String, FieldValue>,
        npd_id: Option<&str>,
    ) -> MondayWrite {
        let mut write = MondayWrite::default();
        let mapped = values
            .iter()
            .filter(|(field, _)| !self.item_name.contains(field))
            .filter_map(|(field, value)| Some((field, value, self.fields.get(field)?)));
        for (field, value, mapping) in mapped {
            let json = mapping
                .monday_value(value)
                .and_then(|v| mapping.column_type.to_monday(&v));
            match json {
                Ok(json) => {
                    if mapping.create_labels && !json.is_null() {
                        write.columns.1 = CreatesLabels(true);
                    }
                    write.columns.0.insert(mapping.column.clone(), json);
                }
                Err(reason) => write.left_out.push(LeftOut {
                    field: field.clone(),
                    value: value.clone().unwrap_or_default(),
                    reason,
                    to: Side::Monday,
                }),
            }
        }
        if let Some(id) = npd_id {
            write
                .columns
                .0
                .insert(self.npd_id_column.clone(), Value::String(id.to_owned()));
        }
        write
    }

    /// The fields mapped to a board_relation column (a contact's `organization_id`).
    pub fn relation_fields(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(|(_, m)| m.column_type == ColumnType::BoardRelation)
            .map(|(field, _)| field.as_str())
    }

    /// The NPD organizations a write to Monday names in its board_relation fields.
    pub fn related_organizations(&self, values: &BTreeMap<String, FieldValue>) -> Vec<NpdId> {
        self.relation_fields()
            .filter_map(|field| values.get(field)?.as_deref())
            .filter_map(|id| NpdId::parse(id).ok())
            .collect()
    }

    /// The Monday items a delivery's board_relation values link (one each; several are left out
    /// anyway).
    pub fn related_items(&self, values: &[(String, FieldValue)]) -> Vec<MondayItemId> {
        values
            .iter()
            .filter(|(field, _)| self.relation_fields().any(|f| f == field.as_str()))
            .filter_map(|(_, value)| value.as_deref()?.parse().ok())
            .collect()
    }

    /// The values as Monday's columns take them: in each board_relation field the organization's
    /// NPD id becomes its Monday item id (`links`); one with no item keeps its NPD id, which
    /// `to_monday` leaves out of the write (`OrganizationNotSynced`).
    pub fn with_org_items(
        &self,
        values: &BTreeMap<String, FieldValue>,
        links: &OrgLinks,
    ) -> BTreeMap<String, FieldValue> {
        let mut out = values.clone();
        for field in self.relation_fields() {
            if let Some(Some(id)) = out.get_mut(field)
                && let Some(item) = NpdId::parse(id).ok().and_then(|id| links.item_of(id))
            {
                *id = item.to_string();
            }
        }
        out
    }

    /// A Monday value of `field` as its NPD value: a board_relation's one linked item as its
    /// organization's NPD id (`links`); an item the ledger does not know, or several items, are
    /// left out (never guessed, never written as a cleared value). Other fields: `npd_value_of`.
    pub fn npd_value_linked(
        &self,
        field: &str,
        value: FieldValue,
        links: &OrgLinks,
    ) -> Result<FieldValue, LeftOut> {
        if !self.relation_fields().any(|f| f == field) {
            return self.npd_value_of(field, value);
        }
        let Some(items) = value.as_deref() else {
            return Ok(None);
        };
        let left_out = |reason| LeftOut {
            field: field.to_owned(),
            value: items.to_owned(),
            reason,
            to: Side::Npd,
        };
        if items.contains(',') {
            return Err(left_out(LeftOutReason::SeveralItems));
        }
        let npd = items.parse().ok().and_then(|item| links.npd_of(item));
        npd.map(|id| Some(id.to_string()))
            .ok_or_else(|| left_out(LeftOutReason::UnknownItem))
    }

    /// Every problem with this mapping for `kind`, as readable sentences.
    pub fn problems(&self, kind: EntityKind) -> Vec<String> {
        let section = format!("mapping.{}", kind.plural());
        let known = kind.fields();
        let mut problems = Vec::new();
        if self.item_name.is_empty() {
            problems.push(format!("{section}.item_name must name at least one field"));
        }
        for field in &self.item_name {
            if !known.contains(&field.as_str()) {
                problems.push(format!(
                    "{section}.item_name names unknown {kind} field `{field}` (known: {})",
                    known.join(", ")
                ));
            }
        }
        if !is_column_id(&self.npd_id_column) {
            problems.push(format!(
                "{section}.npd_id_column `{}` is not a valid Monday column id",
                self.npd_id_column
            ));
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        seen.insert(self.npd_id_column.as_str(), "npd_id_column");
        for (field, mapping) in &self.fields {
            // Any NPD field may be mapped: NPD's custom fields are not in the contract's list.
            if !is_column_id(field) {
                problems.push(format!(
                    "{section}.fields: `{field}` is not an NPD field name (letters, digits and underscores)"
                ));
            }
            if mapping.column_type == ColumnType::BoardRelation
                && (kind != EntityKind::Contact || field != "organization_id")
            {
                problems.push(format!(
                    "{section}.fields.{field}: board_relation links a contact's organization: only mapping.contacts.fields.organization_id may use it"
                ));
            }
            if !mapping.column_type.has_labels()
                && (!mapping.labels.is_empty() || mapping.create_labels)
            {
                problems.push(format!(
                    "{section}.fields.{field}: `labels` and `create_labels` are for status and dropdown columns, not {}",
                    mapping.column_type
                ));
            }
            if !is_column_id(&mapping.column) {
                problems.push(format!(
                    "{section}.fields.{field}.column `{}` is not a valid Monday column id",
                    mapping.column
                ));
            }
            if let Some(other) = seen.insert(mapping.column.as_str(), field.as_str()) {
                problems.push(format!(
                    "{section}: column `{}` is used by both `{other}` and `{field}`",
                    mapping.column
                ));
            }
        }
        problems
    }
}

/// Monday column ids are short identifiers: letters, digits and underscores.
fn is_column_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 100 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;
    use serde_json::json;

    use crate::domain::record::NpdValue;

    fn some(s: &str) -> FieldValue {
        Some(s.to_owned())
    }

    /// The `event` object of a Monday fixture.
    fn monday_event(body: &str) -> Value {
        let body: Value = serde_json::from_str(body).expect("fixture is JSON");
        body["event"].clone()
    }

    /// (case, column type, raw value, its canonical form)
    const CANONICAL_FORMS: &[(&str, ColumnType, &str, Option<&str>)] = {
        use ColumnType::*;
        &[
            (
                "text is trimmed",
                Text,
                "  Chief Technology Officer \n",
                Some("Chief Technology Officer"),
            ),
            (
                "text keeps inner spaces and case",
                Text,
                "CTO  and Founder",
                Some("CTO  and Founder"),
            ),
            ("empty text is none", Text, "", None),
            ("blank text is none", Text, " \t\n ", None),
            (
                "email is trimmed and lower-cased",
                Email,
                "  Ada@Example.COM ",
                Some("ada@example.com"),
            ),
            ("blank email is none", Email, "   ", None),
            (
                "phone loses its spaces",
                Phone,
                "+44 20 7946 0990",
                Some("+442079460990"),
            ),
            (
                "phone 00 prefix becomes plus",
                Phone,
                "0044 20 7946 0990",
                Some("+442079460990"),
            ),
            (
                "phone loses dashes dots and parentheses",
                Phone,
                "+1 (202) 555-0169",
                Some("+12025550169"),
            ),
            (
                "phone without prefix keeps its digits",
                Phone,
                "(202) 555-0169",
                Some("2025550169"),
            ),
            (
                "national phone keeps its trunk zero",
                Phone,
                "07975 777.666",
                Some("07975777666"),
            ),
            (
                "phone keeps what it cannot read",
                Phone,
                "+44 20 7946 0990 ext 12",
                Some("+442079460990ext12"),
            ),
            ("blank phone is none", Phone, " - ", None),
            (
                "long text normalises line ends and trailing space",
                LongText,
                "a \r\nb  \n\n",
                Some("a \nb"),
            ),
            (
                "long text keeps leading whitespace",
                LongText,
                "  indented\r\nline",
                Some("  indented\nline"),
            ),
            (
                "long text turns a lone carriage return into a newline",
                LongText,
                "a\rb",
                Some("a\nb"),
            ),
            ("blank long text is none", LongText, "\r\n \n", None),
            (
                "link is trimmed",
                Link,
                " https://analytical-engines.example ",
                Some("https://analytical-engines.example"),
            ),
            ("empty link is none", Link, "", None),
        ]
    };

    #[test]
    fn canonical_forms_per_column_type() {
        for (name, column_type, raw, expected) in CANONICAL_FORMS {
            assert_eq!(column_type.canonical(raw).as_deref(), *expected, "{name}");
        }
    }

    #[test]
    fn values_for_monday_per_column_type() {
        use ColumnType::*;
        let cases = [
            ("text is a bare string", Text, some("CTO"), json!("CTO")),
            (
                "long text is an object",
                LongText,
                some("Met at the expo"),
                json!({"text": "Met at the expo"}),
            ),
            (
                "email repeats the address as its text",
                Email,
                some("ada@example.com"),
                json!({"email": "ada@example.com", "text": "ada@example.com"}),
            ),
            (
                "phone carries its country",
                Phone,
                some("+442079460990"),
                json!({"phone": "+442079460990", "countryShortName": "GB"}),
            ),
            (
                "phone of the nanp is us",
                Phone,
                some("+12025550169"),
                json!({"phone": "+12025550169", "countryShortName": "US"}),
            ),
            (
                "link repeats the url as its text",
                Link,
                some("https://a.example"),
                json!({"url": "https://a.example", "text": "https://a.example"}),
            ),
        ];
        for (name, column_type, value, expected) in cases {
            assert_eq!(column_type.to_monday(&value), Ok(expected), "{name}");
        }
        for column_type in ColumnType::ALL {
            let cleared = match column_type {
                BoardRelation => json!({"item_ids": []}),
                _ => Value::Null,
            };
            assert_eq!(
                column_type.to_monday(&None),
                Ok(cleared),
                "{column_type}: none clears"
            );
        }
    }

    #[test]
    fn phones_monday_would_refuse_are_left_out() {
        use LeftOutReason::*;
        let cases = [
            ("national number", "2025550169", NationalPhone),
            (
                "national number with its trunk zero",
                "02079460990",
                NationalPhone,
            ),
            ("unknown calling code", "+999123", InvalidPhone),
            ("too short for its country", "+1202", InvalidPhone),
            (
                "letters kept by the canonical form",
                "+442079460990ext12",
                InvalidPhone,
            ),
        ];
        for (name, phone, reason) in cases {
            assert_eq!(
                ColumnType::Phone.to_monday(&some(phone)),
                Err(reason),
                "{name}"
            );
        }
    }

    fn country(code: &str) -> Option<PhoneCountry> {
        Some(code.parse().expect("a phone country"))
    }

    #[test]
    fn national_phones_are_completed_with_the_default_country() {
        let cases = [
            ("us national", "2025550169", country("US"), "+12025550169"),
            (
                "gb national with trunk zero",
                "02079460990",
                country("GB"),
                "+442079460990",
            ),
            ("au mobile", "0488870510", country("AU"), "+61488870510"),
            (
                "e164 is kept whatever the default",
                "+442079460990",
                country("US"),
                "+442079460990",
            ),
            ("no default country", "2025550169", None, "2025550169"),
            (
                "not a number of the default country",
                "12",
                country("US"),
                "12",
            ),
        ];
        for (name, canonical, default, expected) in cases {
            assert_eq!(complete_phone(canonical, default), expected, "{name}");
        }
    }

    #[test]
    fn phone_countries_are_iso_alpha_2_with_a_numbering_plan() {
        for ok in ["US", "GB", "AU", "DE"] {
            assert_eq!(
                ok.parse::<PhoneCountry>().map(|c| c.to_string()),
                Ok(ok.to_owned())
            );
        }
        for bad in ["us", "USA", "", "ZZ", "U", "1A"] {
            let err = bad.parse::<PhoneCountry>().expect_err(bad);
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn national_phones_of_npd_records_become_e164_with_the_default_country() {
        let mut mapping = EntityMapping::default_for(EntityKind::Contact);
        let mut record =
            record_of(&json!({"id": "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10", "version": 1}));
        record
            .fields
            .insert("phone".into(), NpdValue::Text("(202) 555-0169".into()));
        assert_eq!(mapping.npd_values(&record)["phone"], some("2025550169"));
        let write = mapping.monday_column_values(&mapping.npd_values(&record), None);
        assert_eq!(
            write.left_out,
            [LeftOut {
                field: "phone".into(),
                value: "2025550169".into(),
                reason: LeftOutReason::NationalPhone,
                to: Side::Monday,
            }]
        );
        assert!(
            !write.columns.0.contains_key("phone"),
            "the phone is left out"
        );

        mapping.default_phone_country = country("US");
        let values = mapping.npd_values(&record);
        assert_eq!(values["phone"], some("+12025550169"));
        let write = mapping.monday_column_values(&values, None);
        assert!(write.left_out.is_empty());
        assert_eq!(
            write.columns.0["phone"],
            json!({"phone": "+12025550169", "countryShortName": "US"})
        );
    }

    #[test]
    fn webhook_values_of_the_real_fixtures_are_read() {
        use ColumnType::*;
        let cases = [
            (
                "email",
                include_str!("../../fixtures/monday/update_column_value_email.json"),
                Email,
                some("ada.lovelace@example.com"),
                some("ada@example.com"),
            ),
            (
                "phone",
                include_str!("../../fixtures/monday/update_column_value_phone.json"),
                Phone,
                some("+442079460991"),
                some("+442079460990"),
            ),
            (
                "text",
                include_str!("../../fixtures/monday/update_column_value_text.json"),
                Text,
                some("Chief Technology Officer"),
                some("CTO"),
            ),
            (
                "long text",
                include_str!("../../fixtures/monday/update_column_value_long_text.json"),
                LongText,
                some("Met at the expo. Wants a demo in December."),
                some("Met at the expo"),
            ),
            (
                "npd id text with a null previous value",
                include_str!("../../fixtures/monday/update_column_value_npd_id.json"),
                Text,
                some("3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10"),
                None,
            ),
            (
                "link",
                include_str!("../../fixtures/monday/update_column_value_org_website.json"),
                Link,
                some("https://analytical-engines.example"),
                None,
            ),
        ];
        for (name, body, column_type, value, previous) in cases {
            let event = monday_event(body);
            assert_eq!(
                column_type.from_webhook(event.get("value")),
                Ok(value),
                "{name}: value"
            );
            assert_eq!(
                column_type.from_webhook(event.get("previousValue")),
                Ok(previous),
                "{name}: previousValue"
            );
        }
    }

    #[test]
    fn create_pulse_column_values_are_read() {
        let event = monday_event(include_str!("../../fixtures/monday/create_pulse_form.json"));
        let columns = &event["columnValues"];
        assert_eq!(
            ColumnType::Text.from_webhook(columns.get("role_title")),
            Ok(some("Rear Admiral"))
        );
        assert_eq!(
            ColumnType::LongText.from_webhook(columns.get("notes")),
            Ok(some("Signed up through the website form"))
        );
        assert_eq!(
            ColumnType::Email.from_webhook(columns.get("email")),
            Ok(None),
            "a column the form left empty is absent"
        );
        let empty = monday_event(include_str!("../../fixtures/monday/create_pulse.json"));
        assert_eq!(
            ColumnType::Phone.from_webhook(empty["columnValues"].get("phone")),
            Ok(None)
        );
    }

    #[test]
    fn empty_and_cleared_webhook_values_are_none() {
        let people = monday_event(include_str!(
            "../../fixtures/monday/update_column_value_people.json"
        ));
        for column_type in ColumnType::ALL {
            assert_eq!(
                column_type.from_webhook(None),
                Ok(None),
                "{column_type}: absent"
            );
            assert_eq!(
                column_type.from_webhook(Some(&Value::Null)),
                Ok(None),
                "{column_type}: null"
            );
            assert_eq!(
                column_type.from_webhook(Some(&json!({}))),
                Ok(None),
                "{column_type}: {{}}"
            );
            assert_eq!(
                column_type.from_webhook(people.get("previousValue")),
                Ok(None),
                "{column_type}: the fixture's {{}} previous value"
            );
        }
        let cleared = [
            (ColumnType::Text, json!({"value": null})),
            (
                ColumnType::LongText,
                json!({"text": "  ", "changed_at": "2026-11-26T09:35:02.781Z"}),
            ),
            (ColumnType::Email, json!({"email": null, "text": null})),
            (
                ColumnType::Phone,
                json!({"phone": "", "countryShortName": ""}),
            ),
            (ColumnType::Link, json!({"url": null, "text": null})),
        ];
        for (column_type, value) in cleared {
            assert_eq!(
                column_type.from_webhook(Some(&value)),
                Ok(None),
                "{column_type}: {value}"
            );
        }
    }

    #[test]
    fn api_write_formats_are_accepted_as_webhook_values() {
        use ColumnType::*;
        let cases = [
            ("bare text", Text, json!(" CTO "), some("CTO")),
            (
                "long text",
                LongText,
                json!({"text": "Notes"}),
                some("Notes"),
            ),
            (
                "email",
                Email,
                json!({"email": "Ada@Example.com", "text": "Ada"}),
                some("ada@example.com"),
            ),
            (
                "phone",
                Phone,
                json!({"phone": "+44 20 7946 0990", "countryShortName": "GB"}),
                some("+442079460990"),
            ),
            (
                "link",
                Link,
                json!({"url": "https://a.example", "text": "A"}),
                some("https://a.example"),
            ),
        ];
        for (name, column_type, value, expected) in cases {
            assert_eq!(
                column_type.from_webhook(Some(&value)),
                Ok(expected),
                "{name}"
            );
        }
    }

    #[test]
    fn unexpected_webhook_shapes_are_refused_without_echoing_the_value() {
        let status = monday_event(include_str!(
            "../../fixtures/monday/update_column_value_status.json"
        ));
        let date = monday_event(include_str!(
            "../../fixtures/monday/update_column_value_date.json"
        ));
        let cases = [
            (
                "a status label read as text",
                ColumnType::Text,
                status["value"].clone(),
            ),
            (
                "a date read as long text",
                ColumnType::LongText,
                date["value"].clone(),
            ),
            (
                "a bare string for an email",
                ColumnType::Email,
                json!("secret-ada@example.com"),
            ),
            (
                "a number for a phone",
                ColumnType::Phone,
                json!({"phone": 442079460990_u64}),
            ),
            (
                "text without its value key",
                ColumnType::Text,
                json!({"text": "secret"}),
            ),
            (
                "link without a url",
                ColumnType::Link,
                json!({"text": "secret"}),
            ),
            ("an array", ColumnType::Link, json!(["secret"])),
        ];
        for (name, column_type, value) in cases {
            let err = column_type.from_webhook(Some(&value)).expect_err(name);
            assert!(
                matches!(err, MappingError::UnexpectedShape { column_type: t, .. } if t == column_type),
                "{name}: {err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(column_type.as_str()), "{name}: {message}");
            for leaked in ["secret", "Working on it", "2026-12-03", "442079460990"] {
                assert!(!message.contains(leaked), "{name}: {message}");
            }
        }
    }

    /// (case, column type, the API's JSON string of the value, the value read from it)
    const API_VALUES: &[(&str, ColumnType, Option<&str>, Option<&str>)] = {
        use ColumnType::*;
        &[
            ("text", Text, Some("\"plain text\""), Some("plain text")),
            (
                "email",
                Email,
                Some(
                    r#"{"email":"A@b.c","text":"Test Contact","changed_at":"2026-03-21T08:42:31.539Z"}"#,
                ),
                Some("a@b.c"),
            ),
            (
                "phone",
                Phone,
                Some(r#"{"phone":"+12025550169","countryShortName":"US"}"#),
                Some("+12025550169"),
            ),
            (
                "long text",
                LongText,
                Some(r#"{"text":"Line one\r\nLine two ","changed_at":"2026-03-21T08:42:31.539Z"}"#),
                Some("Line one\nLine two"),
            ),
            (
                "link",
                Link,
                Some(r#"{"url":"https://a.example","text":"A"}"#),
                Some("https://a.example"),
            ),
            ("no value", Email, None, None),
            ("json null", Text, Some("null"), None),
            ("empty object", Phone, Some("{}"), None),
            ("empty string", Link, Some(""), None),
        ]
    };

    #[test]
    fn api_values_are_read_from_their_json_strings() {
        for (name, column_type, raw, expected) in API_VALUES {
            assert_eq!(
                column_type.from_api_value(*raw),
                Ok(expected.map(str::to_owned)),
                "{name}"
            );
        }
    }

    /// API values that are not JSON, each with a secret the refusal must not repeat.
    const NOT_JSON_API_VALUES: &[(ColumnType, &str)] = &[
        (ColumnType::Text, "plain secret, not JSON"),
        (ColumnType::Email, "{secret"),
    ];

    #[test]
    fn api_values_that_are_not_json_are_refused_without_echoing_them() {
        for &(column_type, raw) in NOT_JSON_API_VALUES {
            let err = column_type.from_api_value(Some(raw)).expect_err("not JSON");
            assert_eq!(err, MappingError::NotJson { column_type }, "{raw}");
            let message = err.to_string();
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn phone_countries_by_longest_calling_code() {
        let cases = [
            ("nanp", "+12025550169", Some("US")),
            ("united kingdom", "+442079460990", Some("GB")),
            ("australia", "+61488870510", Some("AU")),
            ("germany", "+4930123456", Some("DE")),
            ("france", "+33123456789", Some("FR")),
            ("spain", "+34912345678", Some("ES")),
            ("italy", "+390612345678", Some("IT")),
            ("netherlands", "+31201234567", Some("NL")),
            ("belgium", "+3221234567", Some("BE")),
            ("switzerland", "+41441234567", Some("CH")),
            ("austria", "+4311234567", Some("AT")),
            ("ireland over a shorter code", "+35312345678", Some("IE")),
            ("sweden", "+46812345678", Some("SE")),
            ("norway", "+4721234567", Some("NO")),
            ("denmark", "+4532123456", Some("DK")),
            ("finland", "+358912345678", Some("FI")),
            ("poland", "+48221234567", Some("PL")),
            ("portugal", "+351211234567", Some("PT")),
            ("india", "+911123456789", Some("IN")),
            ("japan", "+81312345678", Some("JP")),
            ("china", "+861012345678", Some("CN")),
            ("brazil", "+5511912345678", Some("BR")),
            ("mexico", "+525512345678", Some("MX")),
            ("south africa", "+27211234567", Some("ZA")),
            ("new zealand", "+6491234567", Some("NZ")),
            ("singapore", "+6561234567", Some("SG")),
            ("israel", "+97221234567", Some("IL")),
            ("united arab emirates", "+97141234567", Some("AE")),
            ("russia", "+74951234567", Some("RU")),
            ("turkey", "+902121234567", Some("TR")),
            ("greece", "+302101234567", Some("GR")),
            ("czechia", "+420212345678", Some("CZ")),
            ("hungary", "+3611234567", Some("HU")),
            ("romania", "+40211234567", Some("RO")),
            ("no plus", "442079460990", None),
            ("unknown code", "+999123", None),
            ("plus alone", "+", None),
            ("empty", "", None),
        ];
        for (name, number, expected) in cases {
            assert_eq!(phone_country(number), expected, "{name}");
        }
    }

    /// The contact record of an event's `data`.
    fn record_of(data: &Value) -> NpdRecord {
        let Value::Object(map) = data.clone() else {
            panic!("data is an object");
        };
        NpdRecord::from_object(EntityKind::Contact, map).expect("a valid contact")
    }

    /// The default contact mapping and its values of the `contact.updated` fixture.
    fn updated_contact_values() -> (EntityMapping, BTreeMap<String, FieldValue>) {
        let event: Value =
            serde_json::from_str(include_str!("../../fixtures/npd/contact.updated.json"))
                .expect("fixture is JSON");
        let mapping = EntityMapping::default_for(EntityKind::Contact);
        let values = mapping.npd_values(&record_of(&event["data"]));
        (mapping, values)
    }

    #[test]
    fn npd_values_of_the_updated_contact_fixture() {
        let (_, values) = updated_contact_values();
        let expected: BTreeMap<String, FieldValue> = [
            ("first_name", some("Ada")),
            ("last_name", some("Lovelace")),
            ("email", some("ada@example.com")),
            ("phone", some("+442079460990")),
            ("role_title", some("CTO")),
            ("notes", some("Met at the expo")),
        ]
        .into_iter()
        .map(|(field, value)| (field.to_owned(), value))
        .collect();
        assert_eq!(values, expected);
    }

    #[test]
    fn npd_values_treat_missing_null_and_non_strings_as_none() {
        let mapping = EntityMapping::default_for(EntityKind::Contact);
        let mut record =
            record_of(&json!({"id": "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10", "version": 1}));
        record.fields = [
            ("first_name", NpdValue::Text("  Ada ".into())),
            ("last_name", NpdValue::Null),
            ("email", NpdValue::Number(42.into())),
            ("phone", NpdValue::Text("0044 20 7946 0990".into())),
            ("notes", NpdValue::List(vec!["a".into()])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let values = mapping.npd_values(&record);
        assert_eq!(values["first_name"], some("Ada"));
        assert_eq!(values["last_name"], None);
        assert_eq!(values["email"], None);
        assert_eq!(values["phone"], some("+442079460990"));
        assert_eq!(values["role_title"], None, "missing");
        assert_eq!(values["notes"], None);
        assert_eq!(values.len(), 6);
    }

    #[test]
    fn synced_fields_list_item_name_fields_first_as_text() {
        let mapping = EntityMapping::default_for(EntityKind::Contact);
        let fields = mapping.synced_fields();
        let expected = [
            ("first_name", ColumnType::Text),
            ("last_name", ColumnType::Text),
            ("email", ColumnType::Email),
            ("notes", ColumnType::LongText),
            ("phone", ColumnType::Phone),
            ("role_title", ColumnType::Text),
        ];
        let fields: Vec<(&str, ColumnType)> =
            fields.iter().map(|(f, t)| (f.as_str(), *t)).collect();
        assert_eq!(fields, expected);
        assert_eq!(mapping.column_type_of("first_name"), Some(ColumnType::Text));
        assert_eq!(mapping.column_type_of("phone"), Some(ColumnType::Phone));
        assert_eq!(mapping.column_type_of("organization_id"), None);

        let mut both = EntityMapping::default_for(EntityKind::Organization);
        both.fields.insert(
            "name".into(),
            ColumnMapping::new("name_copy", ColumnType::LongText),
        );
        let names: Vec<String> = both.synced_fields().into_iter().map(|(f, _)| f).collect();
        assert_eq!(names, ["name", "industry", "notes", "website"]);
        assert_eq!(both.column_type_of("name"), Some(ColumnType::Text));
    }

    fn names(first: FieldValue, last: FieldValue) -> BTreeMap<String, FieldValue> {
        BTreeMap::from([
            ("first_name".to_owned(), first),
            ("last_name".to_owned(), last),
        ])
    }

    #[test]
    fn item_names_join_the_name_fields() {
        let mapping = EntityMapping::default_for(EntityKind::Contact);
        let cases = [
            (
                "both names",
                names(some("Ada"), some("Lovelace")),
                "Ada Lovelace",
            ),
            ("first name only", names(some("Ada"), None), "Ada"),
            ("last name only", names(None, some("Lovelace")), "Lovelace"),
            (
                "blank names are skipped",
                names(some("  "), some("Lovelace")),
                "Lovelace",
            ),
            ("no names", names(None, None), "Unnamed"),
            ("names missing from the map", BTreeMap::new(), "Unnamed"),
        ];
        for (name, values, expected) in cases {
            assert_eq!(mapping.item_name(&values), expected, "{name}");
        }
    }

    #[test]
    fn item_names_stop_at_255_characters_on_a_char_boundary() {
        let mapping = EntityMapping::default_for(EntityKind::Contact);
        let long = "é".repeat(300);
        let name = mapping.item_name(&names(Some(long), some("Lovelace")));
        assert_eq!(name.chars().count(), 255);
        assert!(name.chars().all(|c| c == 'é'));

        let exact = "a".repeat(255);
        assert_eq!(mapping.item_name(&names(Some(exact.clone()), None)), exact);

        let cut_at_space = format!("{} Lovelace", "a".repeat(254));
        assert_eq!(
            mapping.item_name(&names(Some("a".repeat(254)), some("Lovelace"))),
            cut_at_space[..254],
            "the cut does not end in the separating space"
        );
    }

    #[test]
    fn item_names_split_into_the_name_fields() {
        let contact = EntityMapping::default_for(EntityKind::Contact);
        let cases = [
            (
                "first word and the rest",
                "Ada King Lovelace",
                names(some("Ada"), some("King Lovelace")),
            ),
            (
                "two words",
                "Ada Lovelace",
                names(some("Ada"), some("Lovelace")),
            ),
            ("one word", "Ada", names(some("Ada"), None)),
            (
                "surrounding spaces",
                "  Ada   Lovelace ",
                names(some("Ada"), some("Lovelace")),
            ),
            ("empty", "   ", names(None, None)),
            ("the placeholder", "Unnamed", names(None, None)),
        ];
        for (name, item_name, expected) in cases {
            assert_eq!(contact.split_item_name(item_name), expected, "{name}");
        }

        let organization = EntityMapping::default_for(EntityKind::Organization);
        assert_eq!(
            organization.split_item_name(" Analytical Engines Ltd "),
            BTreeMap::from([("name".to_owned(), some("Analytical Engines Ltd"))])
        );

        let mut three = contact.clone();
        three.item_name = vec!["first_name".into(), "role_title".into(), "last_name".into()];
        let split = three.split_item_name("Ada King Lovelace");
        assert_eq!(split["first_name"], some("Ada"));
        assert_eq!(split["role_title"], None);
        assert_eq!(split["last_name"], some("King Lovelace"));
    }

    #[test]
    fn item_names_round_trip() {
        let contact = EntityMapping::default_for(EntityKind::Contact);
        let cases = [
            ("two names", names(some("Ada"), some("Lovelace"))),
            (
                "a two-word last name",
                names(some("Ada"), some("King Lovelace")),
            ),
            ("first name only", names(some("Ada"), None)),
            ("no names", names(None, None)),
        ];
        for (name, values) in cases {
            let item_name = contact.item_name(&values);
            assert_eq!(contact.split_item_name(&item_name), values, "{name}");
        }
        for item_name in ["Ada King Lovelace", "Ada", "Unnamed"] {
            let split = contact.split_item_name(item_name);
            assert_eq!(contact.item_name(&split), item_name);
        }
    }

    #[test]
    fn column_values_for_the_default_contact_mapping() {
        let (mapping, mut values) = updated_contact_values();
        let columns = mapping
            .monday_column_values(&values, Some("3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10"))
            .columns;
        assert_eq!(
            Value::Object(columns.0),
            json!({
                "email": {"email": "ada@example.com", "text": "ada@example.com"},
                "phone": {"phone": "+442079460990", "countryShortName": "GB"},
                "role_title": "CTO",
                "notes": {"text": "Met at the expo"},
                "npd_id": "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10",
            })
        );

        values.retain(|field, _| field == "notes" || field == "last_name");
        values.insert("notes".into(), None);
        values.insert(
            "organization_id".into(),
            some("8c2d4e6f-1a3b-4c5d-9e7f-0a1b2c3d4e5f"),
        );
        assert_eq!(
            Value::Object(mapping.monday_column_values(&values, None).columns.0),
            json!({"notes": null}),
            "a cleared field is null; name and unmapped fields are not columns"
        );
    }

    fn column_type() -> impl Strategy<Value = ColumnType> {
        prop::sample::select(ColumnType::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn canonical_is_idempotent(column_type in column_type(), raw in "\\PC{0,24}|[ +0-9()\\r\\n.-]{0,16}") {
            let once = column_type.canonical(&raw);
            if let Some(value) = &once {
                prop_assert_eq!(column_type.canonical(value), once.clone());
            }
        }

        #[test]
        fn values_written_to_monday_read_back_unchanged(column_type in column_type(), raw in "\\PC{0,24}|[ +0-9()\\r\\n.-]{0,16}") {
            let value = column_type.canonical(&raw);
            // A value Monday would refuse is left out, never written.
            let Ok(written) = column_type.to_monday(&value) else {
                return Ok(());
            };
            prop_assert_eq!(column_type.from_webhook(Some(&written)), Ok(value.clone()));
            let stored = written.to_string();
            prop_assert_eq!(column_type.from_api_value(Some(&stored)), Ok(value));
        }
    }

    #[test]
    fn default_mappings_are_valid() {
        for kind in EntityKind::ALL {
            let problems = EntityMapping::default_for(kind).problems(kind);
            assert!(problems.is_empty(), "{kind}: {problems:?}");
        }
    }

    #[test]
    fn default_contact_mapping_matches_the_contract() {
        let m = EntityMapping::default_for(EntityKind::Contact);
        assert_eq!(m.field_for_column("email"), Some("email"));
        assert_eq!(m.fields["phone"].column_type, ColumnType::Phone);
        assert_eq!(m.fields["notes"].column_type, ColumnType::LongText);
        assert!(m.is_mapped_column("npd_id"));
        assert!(!m.is_mapped_column("status"));
    }

    #[test]
    fn mapping_problems_name_the_bad_part() {
        let mut m = EntityMapping::default_for(EntityKind::Organization);
        m.item_name = vec!["nickname".into()];
        // A custom NPD field may be mapped; a name that is no field name may not.
        m.fields.insert(
            "favourite_colour".into(),
            ColumnMapping::new("notes", ColumnType::Text),
        );
        m.fields.insert(
            "bad name".into(),
            ColumnMapping::new("other", ColumnType::Text),
        );
        let mut labelled = ColumnMapping::new("site", ColumnType::Link);
        labelled.create_labels = true;
        m.fields.insert("website".into(), labelled);
        let problems = m.problems(EntityKind::Organization).join("\n");
        assert!(
            problems.contains("unknown organization field `nickname`"),
            "{problems}"
        );
        assert!(
            !problems.contains("`favourite_colour` is not"),
            "{problems}"
        );
        assert!(
            problems.contains("`bad name` is not an NPD field name"),
            "{problems}"
        );
        assert!(
            problems.contains("website: `labels` and `create_labels` are for status and dropdown"),
            "{problems}"
        );
        assert!(
            problems.contains("column `notes` is used by both"),
            "{problems}"
        );
    }

    #[test]
    fn directions_accept_changes_from_their_owner_only() {
        use Direction::*;
        let cases = [
            (Both, Side::Npd, true),
            (Both, Side::Monday, true),
            (ToMonday, Side::Npd, true),
            (ToMonday, Side::Monday, false),
            (ToNpd, Side::Npd, false),
            (ToNpd, Side::Monday, true),
        ];
        for (direction, side, accepts) in cases {
            assert_eq!(
                direction.accepts_from(side),
                accepts,
                "{direction} from {side}"
            );
        }
        let mut m = EntityMapping::default_for(EntityKind::Contact);
        if let Some(f) = m.fields.get_mut("notes") {
            f.direction = ToNpd;
        }
        assert_eq!(m.direction_of("notes"), ToNpd);
        assert_eq!(
            m.direction_of("first_name"),
            Both,
            "item-name fields sync both ways"
        );
        assert_eq!(m.direction_of("unmapped"), Both);
    }

    #[test]
    fn column_types_parse_by_name() {
        for t in ColumnType::ALL {
            assert_eq!(t.as_str().parse::<ColumnType>(), Ok(t));
        }
        assert!("board".parse::<ColumnType>().is_err());
    }
}
