//! Synced entities and their typed identifiers.
//!
//! Owns: `EntityKind`, `Side` (which of the two systems), the id newtypes (`NpdId`, `MondayItemId`, `BoardId`) and the NPD snapshots
//! (`ContactSnapshot`, `OrganizationSnapshot`) exactly as NPD sends them in an event's `data`.
//! May import: std, serde, time, uuid. Nothing from the gateway's other layers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use uuid::Uuid;

/// Which kind of NPD record an entity is; each kind has its own Monday board and mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Contact,
    Organization,
}

impl EntityKind {
    pub const ALL: [EntityKind; 2] = [EntityKind::Contact, EntityKind::Organization];

    /// The stable name used in the ledger, in config sections and in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Contact => "contact",
            EntityKind::Organization => "organization",
        }
    }

    /// The plural used in config sections (`[mapping.contacts]`) and REST paths.
    pub fn plural(self) -> &'static str {
        match self {
            EntityKind::Contact => "contacts",
            EntityKind::Organization => "organizations",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntityKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "contact" => Ok(EntityKind::Contact),
            "organization" => Ok(EntityKind::Organization),
            other => Err(format!("unknown entity kind `{other}`")),
        }
    }
}

/// One of the two synced systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Npd,
    Monday,
}

impl Side {
    pub const ALL: [Side; 2] = [Side::Npd, Side::Monday];

    /// The stable name used in the ledger and in history: "npd" or "monday".
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Npd => "npd",
            Side::Monday => "monday",
        }
    }

    /// The side across the gateway.
    pub fn other(self) -> Side {
        match self {
            Side::Npd => Side::Monday,
            Side::Monday => Side::Npd,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = crate::domain::names::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Side::ALL
            .into_iter()
            .find(|side| side.as_str() == s)
            .ok_or_else(|| crate::domain::names::UnknownName {
                what: "side",
                name: s.to_owned(),
            })
    }
}

/// An NPD record id (a UUID). Cannot be confused with a Monday id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NpdId(pub Uuid);

impl NpdId {
    /// Parses a UUID in any of the textual forms `uuid` accepts (hyphenated is canonical).
    pub fn parse(s: &str) -> Result<Self, uuid::Error> {
        Uuid::parse_str(s).map(NpdId)
    }
}

impl FromStr for NpdId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NpdId::parse(s)
    }
}

impl fmt::Display for NpdId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

macro_rules! monday_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        ///
        /// Monday's `ID` scalar: numeric, delivered as a JSON number in webhooks and as a string in
        /// GraphQL answers; both are accepted, and it is written back as a string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim().parse().map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_numeric_id(d).map($name)
            }
        }
    };
}

monday_id!(
    /// A Monday item id: the link between an NPD record and its Monday item.
    MondayItemId
);
monday_id!(
    /// A Monday board id.
    BoardId
);

/// Accepts a positive integer given as a JSON number or as a string of digits.
fn deserialize_numeric_id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a numeric id (number or string of digits)")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("a numeric id must not be negative"))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            if v.fract() == 0.0 && v >= 0.0 && v < 2f64.powi(53) {
                Ok(v as u64)
            } else {
                Err(E::custom("a numeric id must be a whole number"))
            }
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom(format!("`{v}` is not a numeric id")))
        }
    }
    d.deserialize_any(V)
}

/// An NPD contact, as carried in `data` of a `contact.*` event and returned by NPD's REST API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactSnapshot {
    pub id: NpdId,
    pub version: i64,
    #[serde(default = "default_true")]
    pub sync_enabled: bool,
    #[serde(default)]
    pub monday_id: Option<MondayItemId>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub role_title: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub organization_id: Option<NpdId>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// NPD's custom fields (beyond the contract's list), as NPD's JSON has them.
    #[serde(flatten)]
    pub custom: std::collections::BTreeMap<String, serde_json::Value>,
}

/// An NPD organization, as carried in `data` of an `organization.*` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationSnapshot {
    pub id: NpdId,
    pub version: i64,
    #[serde(default = "default_true")]
    pub sync_enabled: bool,
    #[serde(default)]
    pub monday_id: Option<MondayItemId>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    #[serde(default)]
    pub industry: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

/// Unix epoch milliseconds of a time (saturating): the one clock unit of the ledger.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// `sync_enabled` absent means the record syncs: NPD opts records out explicitly.
fn default_true() -> bool {
    true
}

/// The NPD fields a contact mapping may name.
pub const CONTACT_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "email",
    "phone",
    "role_title",
    "notes",
    "organization_id",
];

/// The NPD fields an organization mapping may name.
pub const ORGANIZATION_FIELDS: &[&str] = &["name", "website", "industry", "notes"];

impl EntityKind {
    /// The NPD fields of this kind that can be mapped to Monday.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            EntityKind::Contact => CONTACT_FIELDS,
            EntityKind::Organization => ORGANIZATION_FIELDS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monday_ids_accept_numbers_and_digit_strings() {
        let cases = [
            ("1772099344", Some(1_772_099_344)),
            ("\"1771812716\"", Some(1_771_812_716)),
            ("-6", None),
            ("\"abc\"", None),
            ("1.5", None),
            ("null", None),
        ];
        for (json, expected) in cases {
            let parsed: Result<MondayItemId, _> = serde_json::from_str(json);
            assert_eq!(parsed.ok().map(|id| id.0), expected, "input {json}");
        }
    }

    #[test]
    fn monday_ids_serialize_as_strings() {
        let json = serde_json::to_string(&BoardId(42)).expect("serialize");
        assert_eq!(json, "\"42\"");
    }

    #[test]
    fn entity_kind_round_trips_through_its_name() {
        for kind in EntityKind::ALL {
            assert_eq!(kind.as_str().parse::<EntityKind>(), Ok(kind));
        }
        assert!("person".parse::<EntityKind>().is_err());
    }
}
