//! Entity search: the terms an entity is found by, and what a search query asks for.
//!
//! Owns: `terms` (the lower-cased words of a record's name fields, the whole name, and its e-mail
//! address), `SearchQuery` (an NPD id, a Monday item id, or the prefix of a term) and
//! `prefix_range` (the two bounds between which every term with a prefix sorts, byte-wise, so a
//! prefix is one range over an index on either store).
//! May import: std, crate::domain.

use std::collections::BTreeSet;

use crate::domain::entity::{MondayItemId, NpdId};
use crate::domain::record::NpdRecord;

/// The longest term kept (and the longest query searched); longer text is cut at a character.
pub const MAX_TERM_CHARS: usize = 120;
/// The most terms one entity is found by.
pub const MAX_TERMS: usize = 16;

/// What a search asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchQuery {
    /// A UUID: the NPD record with that id, of either kind.
    NpdId(NpdId),
    /// Digits only: the entity linked to that Monday item.
    MondayId(MondayItemId),
    /// Anything else: entities with a term starting with this (lower-cased) text.
    Prefix(String),
}

impl SearchQuery {
    /// The query typed into the search box; `None` when it is empty.
    pub fn parse(raw: &str) -> Option<SearchQuery> {
        let q = raw.trim();
        if q.is_empty() {
            return None;
        }
        if let Ok(id) = NpdId::parse(q) {
            return Some(SearchQuery::NpdId(id));
        }
        if q.len() <= 20
            && q.bytes().all(|b| b.is_ascii_digit())
            && let Ok(item) = q.parse::<MondayItemId>()
        {
            return Some(SearchQuery::MondayId(item));
        }
        Some(SearchQuery::Prefix(normalise(q)))
    }
}

/// Lower-cased, inner whitespace collapsed to one space, at most `MAX_TERM_CHARS` characters.
pub fn normalise(text: &str) -> String {
    let joined = text
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let cut: String = joined.chars().take(MAX_TERM_CHARS).collect();
    cut.trim_end().to_owned()
}

/// The fields naming a record, in the order they make its name: a contact's first and last
/// name, an organization's name.
const NAME_FIELDS: [&str; 3] = ["first_name", "last_name", "name"];

/// The terms a record is found by: every word of its name, its whole name, its e-mail address.
pub fn terms(record: &NpdRecord) -> BTreeSet<String> {
    let text = |field: &str| {
        record
            .fields
            .get(field)
            .and_then(|v| v.as_text())
            .map(str::trim)
            .filter(|t| !t.is_empty())
    };
    let name_parts: Vec<&str> = NAME_FIELDS.iter().filter_map(|f| text(f)).collect();
    let mut terms: BTreeSet<String> = name_parts
        .iter()
        .flat_map(|part| part.split_whitespace())
        .map(normalise)
        .collect();
    if !name_parts.is_empty() {
        terms.insert(normalise(&name_parts.join(" ")));
    }
    if let Some(email) = text("email") {
        terms.insert(normalise(email));
    }
    terms
        .into_iter()
        .filter(|t| !t.is_empty())
        .take(MAX_TERMS)
        .collect()
}

/// `[low, high)`: every text starting with `prefix` compares `>= low` and `< high` byte-wise
/// (no UTF-8 text goes past U+10FFFF after the prefix), so `term >= low and term < high` is an
/// index range on SQLite (binary collation) and on PostgreSQL (collation "C").
pub fn prefix_range(prefix: &str) -> (String, String) {
    (prefix.to_owned(), format!("{prefix}\u{10FFFF}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::NpdValue;
    use proptest::prelude::*;

    fn record(fields: &[(&str, &str)]) -> NpdRecord {
        NpdRecord {
            id: NpdId(uuid::Uuid::nil()),
            version: 1,
            sync_enabled: true,
            monday_id: None,
            updated_at: None,
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), NpdValue::Text((*v).to_owned())))
                .collect(),
        }
    }

    #[test]
    fn a_record_is_found_by_each_name_word_its_whole_name_and_its_email() {
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<&'a str>);
        let cases: [Case<'_>; 4] = [
            (
                "contact",
                vec![
                    ("first_name", "Ada"),
                    ("last_name", "King  Lovelace"),
                    ("email", " Ada@Example.com "),
                ],
                vec![
                    "ada",
                    "ada king lovelace",
                    "ada@example.com",
                    "king",
                    "lovelace",
                ],
            ),
            (
                "organization",
                vec![
                    ("name", "Analytical Engines"),
                    ("website", "https://ae.example"),
                ],
                vec!["analytical", "analytical engines", "engines"],
            ),
            ("nothing", vec![("notes", "x")], vec![]),
            ("blank", vec![("first_name", "  "), ("email", "")], vec![]),
        ];
        for (name, fields, expected) in cases {
            let got: Vec<String> = terms(&record(&fields)).into_iter().collect();
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn a_query_is_an_npd_id_a_monday_id_or_a_prefix() {
        let id = "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10";
        let cases = [
            ("", None),
            ("   ", None),
            (
                id,
                Some(SearchQuery::NpdId(NpdId::parse(id).expect("uuid"))),
            ),
            (
                " 4100000123 ",
                Some(SearchQuery::MondayId(MondayItemId(4_100_000_123))),
            ),
            ("Ada  LOVE", Some(SearchQuery::Prefix("ada love".into()))),
            (
                "123456789012345678901",
                Some(SearchQuery::Prefix("123456789012345678901".into())),
            ),
            ("+44 20", Some(SearchQuery::Prefix("+44 20".into()))),
        ];
        for (raw, expected) in cases {
            assert_eq!(SearchQuery::parse(raw), expected, "{raw:?}");
        }
    }

    proptest! {
        #[test]
        fn every_text_with_the_prefix_falls_in_its_range(prefix in "\\PC{0,8}", rest in "\\PC{0,8}", other in "\\PC{0,16}") {
            let (low, high) = prefix_range(&prefix);
            let with = format!("{prefix}{rest}");
            prop_assert!(with.as_bytes() >= low.as_bytes() && with.as_bytes() < high.as_bytes());
            let inside = other.as_bytes() >= low.as_bytes() && other.as_bytes() < high.as_bytes();
            prop_assert_eq!(inside, other.starts_with(&prefix));
        }

        #[test]
        fn terms_are_bounded_and_normalised(first in "\\PC{0,200}", last in "\\PC{0,200}") {
            let got = terms(&record(&[("first_name", &first), ("last_name", &last)]));
            prop_assert!(got.len() <= MAX_TERMS);
            for t in &got {
                prop_assert!(t.chars().count() <= MAX_TERM_CHARS);
                prop_assert_eq!(t, &normalise(t));
            }
        }
    }
}
