//! How NPD fields map to Monday columns, per entity kind.
//!
//! Owns: `ColumnType`, `ColumnMapping`, `EntityMapping`, the default mappings of CONTRACT.md and
//! their validation. Value conversion between NPD and Monday formats also lives here.
//! May import: std, serde, crate::domain::entity.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::entity::EntityKind;

/// The Monday column types the gateway can write (Monday's GraphQL `ColumnType` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Text,
    LongText,
    Email,
    Phone,
    Link,
}

impl ColumnType {
    pub const ALL: [ColumnType; 5] = [
        ColumnType::Text,
        ColumnType::LongText,
        ColumnType::Email,
        ColumnType::Phone,
        ColumnType::Link,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::LongText => "long_text",
            ColumnType::Email => "email",
            ColumnType::Phone => "phone",
            ColumnType::Link => "link",
        }
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
                format!(
                    "unknown column type `{s}` (expected text, long_text, email, phone or link)"
                )
            })
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
}

impl EntityMapping {
    /// CONTRACT.md's default mapping for `kind`.
    pub fn default_for(kind: EntityKind) -> Self {
        let col = |column: &str, column_type| ColumnMapping {
            column: column.to_owned(),
            column_type,
        };
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
            },
            EntityKind::Organization => EntityMapping {
                item_name: vec!["name".into()],
                npd_id_column: "npd_id".into(),
                fields: BTreeMap::from([
                    ("website".into(), col("website", ColumnType::Link)),
                    ("industry".into(), col("industry", ColumnType::Text)),
                    ("notes".into(), col("notes", ColumnType::LongText)),
                ]),
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
            if !known.contains(&field.as_str()) {
                problems.push(format!(
                    "{section}.fields names unknown {kind} field `{field}` (known: {})",
                    known.join(", ")
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
        m.fields.insert(
            "favourite_colour".into(),
            ColumnMapping {
                column: "notes".into(),
                column_type: ColumnType::Text,
            },
        );
        let problems = m.problems(EntityKind::Organization).join("\n");
        assert!(
            problems.contains("unknown organization field `nickname`"),
            "{problems}"
        );
        assert!(
            problems.contains("unknown organization field `favourite_colour`"),
            "{problems}"
        );
        assert!(
            problems.contains("column `notes` is used by both"),
            "{problems}"
        );
    }

    #[test]
    fn column_types_parse_by_name() {
        for t in ColumnType::ALL {
            assert_eq!(t.as_str().parse::<ColumnType>(), Ok(t));
        }
        assert!("status".parse::<ColumnType>().is_err());
    }
}
