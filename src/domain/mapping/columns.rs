//! The value formats of the column types beyond text (status, dropdown, date, numbers, checkbox,
//! country, board_relation): their canonical text, their write JSON (FACTS.md §2.6) and the shapes
//! Monday reads them back in (webhook `value`, API `value` and `text`).
//!
//! Owns: the per-type `canonical_*`, `write_*` and `read_*` functions `ColumnType` dispatches to.
//! May import: std, serde_json, crate::domain::mapping.

use serde_json::{Value, json};

use crate::domain::mapping::LeftOutReason;

/// A label or a code: trimmed.
pub(super) fn canonical_label(raw: &str) -> String {
    raw.trim().to_owned()
}

/// Dropdown labels: a JSON array of strings (or one comma-separated string) as a JSON array,
/// each label trimmed, empty ones dropped, sorted and deduplicated (Monday keeps no order that
/// means anything); empty when no label is left.
pub(super) fn canonical_labels(raw: &str) -> String {
    let mut labels: Vec<String> = match serde_json::from_str::<Vec<String>>(raw) {
        Ok(list) => list,
        Err(_) => raw.split(',').map(str::to_owned).collect(),
    };
    labels = labels
        .iter()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    labels.sort();
    labels.dedup();
    if labels.is_empty() {
        return String::new();
    }
    Value::from(labels).to_string()
}

/// The labels of a canonical dropdown value.
pub(super) fn labels_of(canonical: &str) -> Vec<String> {
    serde_json::from_str(canonical).unwrap_or_default()
}

/// A date: `YYYY-MM-DD`, from that or from a date and time (`2021-10-11 13:25:00`,
/// `2021-10-11T13:25:00Z`: Monday's time is dropped, NPD's custom dates have none). Anything else
/// is kept trimmed (and left out when written).
pub(super) fn canonical_date(raw: &str) -> String {
    let raw = raw.trim();
    match raw.get(..10) {
        Some(date) if is_date(date) && raw[10..].starts_with(['T', ' ', 't']) => date.to_owned(),
        _ => raw.to_owned(),
    }
}

/// Whether `s` is a real calendar date written `YYYY-MM-DD`.
pub(super) fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| {
        s.get(r)
            .filter(|p| p.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok())
    };
    let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// A number in its shortest decimal form: `42`, `-3.5`, `0.25` (`42.0`, `+42`, ` 42 ` are `42`;
/// no exponent). Anything that is no finite number is kept trimmed (and left out when written).
pub(super) fn canonical_number(raw: &str) -> String {
    let raw = raw.trim();
    match raw.parse::<f64>() {
        Ok(n) if n.is_finite() => {
            if n.fract() == 0.0 && n.abs() < 1e15 {
                format!("{}", n as i64)
            } else {
                format!("{n}")
            }
        }
        _ => raw.to_owned(),
    }
}

/// A checkbox: `true` when checked; unchecked is empty (a cleared checkbox is an unchecked one).
pub(super) fn canonical_checkbox(raw: &str) -> String {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "checked" | "yes" | "1" | "v" => "true".to_owned(),
        _ => String::new(),
    }
}

/// A country: its ISO 3166 alpha-2 code, upper-cased.
pub(super) fn canonical_country(raw: &str) -> String {
    raw.trim().to_ascii_uppercase()
}

pub(super) fn write_status(label: &str) -> Value {
    json!({ "label": label })
}

pub(super) fn write_dropdown(canonical: &str) -> Value {
    json!({ "labels": labels_of(canonical) })
}

pub(super) fn write_date(date: &str) -> Result<Value, LeftOutReason> {
    if is_date(date) {
        Ok(json!({ "date": date }))
    } else {
        Err(LeftOutReason::InvalidDate)
    }
}

/// Monday's numbers column takes the number as a string.
pub(super) fn write_number(number: &str) -> Result<Value, LeftOutReason> {
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(Value::String(number.to_owned())),
        _ => Err(LeftOutReason::InvalidNumber),
    }
}

pub(super) fn write_checkbox(canonical: &str) -> Value {
    if canonical == "true" {
        json!({ "checked": "true" })
    } else {
        Value::Null
    }
}

pub(super) fn write_country(code: &str) -> Result<Value, LeftOutReason> {
    let name = country_name(code).ok_or(LeftOutReason::UnknownCountry)?;
    Ok(json!({ "countryCode": code, "countryName": name }))
}

/// The English short name of an ISO 3166 alpha-2 code.
pub(super) fn country_name(code: &str) -> Option<&'static str> {
    let country = isocountry::CountryCode::for_alpha2(code).ok()?;
    Some(country.name())
}

/// Board relation: the linked ids, each trimmed and lower-cased (a Monday item id, or before its
/// translation an NPD organization's UUID), sorted, deduplicated and joined with `,`.
pub(super) fn canonical_relation(raw: &str) -> String {
    let mut ids: Vec<String> = raw
        .split(',')
        .map(|id| id.trim().to_ascii_lowercase())
        .filter(|id| !id.is_empty())
        .collect();
    ids.sort();
    ids.dedup();
    ids.join(",")
}

/// The item ids of a canonical relation value, if every one is a Monday item id (digits).
pub(super) fn relation_items(canonical: &str) -> Option<Vec<&str>> {
    let ids: Vec<&str> = canonical.split(',').filter(|id| !id.is_empty()).collect();
    ids.iter()
        .all(|id| id.bytes().all(|b| b.is_ascii_digit()))
        .then_some(ids)
}

/// Board relation (FACTS.md §2.6): `{"item_ids": ["123"]}`. A value that is no item id (an NPD
/// organization with no Monday item yet) cannot be written.
pub(super) fn write_relation(canonical: &str) -> Result<Value, LeftOutReason> {
    let ids = relation_items(canonical).ok_or(LeftOutReason::OrganizationNotSynced)?;
    Ok(json!({ "item_ids": ids }))
}

/// What a read shape yields: a raw value to canonicalise, nothing (empty), or not this type's shape.
pub(super) type Read = Result<Option<String>, ()>;

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Status: webhook `{"label": {"index", "text", "style"}, "post_id"}`, or the write format
/// `{"label": "Done"}` / a bare label. (The API's `value` has only the index: scans read `text`.)
pub(super) fn read_status(value: &Value) -> Read {
    match value {
        Value::String(label) => Ok(Some(label.clone())),
        Value::Object(o) => match o.get("label") {
            Some(Value::Object(label)) => match label.get("text") {
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(Value::Null) | None => Ok(None),
                Some(_) => Err(()),
            },
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(Value::Null) => Ok(None),
            _ => Err(()),
        },
        _ => Err(()),
    }
}

/// Dropdown: webhook `{"chosenValues": [{"id", "name"}]}`, or the write format
/// `{"labels": [..]}`. (The API's `value` has only ids: scans read `text`.)
pub(super) fn read_dropdown(value: &Value) -> Read {
    let names: Option<Vec<String>> = if let Some(Value::Array(chosen)) = value.get("chosenValues") {
        chosen
            .iter()
            .map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect()
    } else if let Some(Value::Array(labels)) = value.get("labels") {
        labels.iter().map(text_of).collect()
    } else {
        None
    };
    let names = names.ok_or(())?;
    Ok(Some(Value::from(names).to_string()))
}

/// Date: `{"date": "2021-10-11", "icon": null, "time": null}` (webhook and API alike).
pub(super) fn read_date(value: &Value) -> Read {
    match value.get("date") {
        Some(Value::String(d)) => Ok(Some(d.clone())),
        Some(Value::Null) => Ok(None),
        _ => Err(()),
    }
}

/// Numbers (shape not documented; every plausible one): a bare number or numeric string, or an
/// object with `value` or `number` holding either.
pub(super) fn read_number(value: &Value) -> Read {
    match value {
        Value::Number(_) | Value::String(_) => Ok(text_of(value)),
        Value::Object(o) => match o.get("value").or_else(|| o.get("number")) {
            Some(Value::Null) => Ok(None),
            Some(v @ (Value::Number(_) | Value::String(_))) => Ok(text_of(v)),
            _ => Err(()),
        },
        _ => Err(()),
    }
}

/// Checkbox (shape not documented; every plausible one): `{"checked": "true" | true | "false" |
/// false}` (with or without `changed_at`), a bare boolean, or `"true"` / `"false"`.
pub(super) fn read_checkbox(value: &Value) -> Read {
    match value {
        Value::Bool(_) | Value::String(_) => Ok(text_of(value)),
        Value::Object(o) => match o.get("checked") {
            Some(Value::Null) | None if o.contains_key("changed_at") => Ok(None),
            Some(Value::Null) => Ok(None),
            Some(v @ (Value::Bool(_) | Value::String(_))) => Ok(text_of(v)),
            _ => Err(()),
        },
        _ => Err(()),
    }
}

/// Country: `{"countryCode": "AW", "countryName": "Aruba", "changed_at"}`.
pub(super) fn read_country(value: &Value) -> Read {
    match value.get("countryCode") {
        Some(Value::String(code)) => Ok(Some(code.clone())),
        Some(Value::Null) => Ok(None),
        _ => Err(()),
    }
}

/// Board relation: webhook and API `{"linkedPulseIds": [{"linkedPulseId": 9607665733}],
/// "changed_at"}` (`{"linkedPulseIds": []}` when cleared), or the write format
/// `{"item_ids": ["123"]}`; ids as numbers or strings. Several ids are joined with `,`.
pub(super) fn read_relation(value: &Value) -> Read {
    let ids: Option<Vec<String>> = if let Some(Value::Array(linked)) = value.get("linkedPulseIds") {
        linked
            .iter()
            .map(|l| l.get("linkedPulseId").and_then(id_text))
            .collect()
    } else if let Some(Value::Array(ids)) = value.get("item_ids") {
        ids.iter().map(id_text).collect()
    } else {
        None
    };
    Ok(Some(ids.ok_or(())?.join(",")))
}

/// A Monday id given as a number or a string of digits.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use std::collections::BTreeMap;

    use crate::domain::entity::{EntityKind, MondayItemId, NpdId, Side};
    use crate::domain::mapping::{
        ColumnMapping, ColumnType, EntityMapping, FieldValue, LeftOut, LeftOutReason, OrgLinks,
    };
    use crate::domain::record::NpdValue;

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    /// (case, type, NPD value, Monday write JSON, the webhook shape Monday sends back, the API
    /// `text` and `value` a scan reads)
    type RoundTrip = (
        &'static str,
        ColumnType,
        NpdValue,
        Value,
        Value,
        &'static str,
        Value,
    );

    fn round_trips() -> Vec<RoundTrip> {
        use ColumnType::*;
        vec![
            (
                "status label",
                Status,
                NpdValue::Text("Done".into()),
                json!({"label": "Done"}),
                json!({"label": {"index": 1, "text": "Done", "style": {"color": "#00c875", "border": "#00b461", "var_name": "green-shadow"}, "is_done": true}, "post_id": null}),
                "Done",
                json!({"index": 1, "post_id": null, "changed_at": "2026-12-03T10:00:00.000Z"}),
            ),
            (
                "dropdown labels",
                Dropdown,
                NpdValue::List(vec!["VIP".into(), "Customer".into()]),
                json!({"labels": ["Customer", "VIP"]}),
                json!({"chosenValues": [{"id": 1, "name": "Customer"}, {"id": 5, "name": "VIP"}]}),
                "Customer, VIP",
                json!({"ids": [1, 5], "changed_at": "2026-12-03T10:00:00.000Z"}),
            ),
            (
                "date",
                Date,
                NpdValue::Text("2021-10-11".into()),
                json!({"date": "2021-10-11"}),
                json!({"date": "2021-10-11", "icon": null, "time": null}),
                "2021-10-11",
                json!({"date": "2021-10-11", "icon": null, "time": null, "changed_at": "2026-12-03T10:00:00.000Z"}),
            ),
            (
                "integer",
                Numbers,
                NpdValue::Number(42.into()),
                json!("42"),
                json!({"value": 42, "unit": null}),
                "42",
                json!("42"),
            ),
            (
                "decimal",
                Numbers,
                NpdValue::Number(serde_json::Number::from_f64(3.5).expect("finite")),
                json!("3.5"),
                json!({"value": 3.5, "unit": null}),
                "3.5",
                json!("3.5"),
            ),
            (
                "checked",
                Checkbox,
                NpdValue::Bool(true),
                json!({"checked": "true"}),
                json!({"checked": "true", "changed_at": "2026-12-03T10:00:00.000Z"}),
                "v",
                json!({"checked": "true", "changed_at": "2026-12-03T10:00:00.000Z"}),
            ),
            (
                "country",
                Country,
                NpdValue::Text("AW".into()),
                json!({"countryCode": "AW", "countryName": "Aruba"}),
                json!({"countryCode": "AW", "countryName": "Aruba", "changed_at": "2026-12-03T10:00:00.000Z"}),
                "Aruba",
                json!({"countryCode": "AW", "countryName": "Aruba", "changed_at": "2026-12-03T10:00:00.000Z"}),
            ),
        ]
    }

    #[test]
    fn each_type_round_trips_npd_to_monday_and_back() {
        for (name, column_type, npd, write, webhook, text, api) in round_trips() {
            let mapping = ColumnMapping::new("c", column_type);
            let raw = super::super::npd_raw(&npd, column_type).expect(name);
            let value = column_type.canonical(&raw);
            assert!(value.is_some(), "{name}");
            assert_eq!(column_type.to_monday(&value), Ok(write.clone()), "{name}");
            assert_eq!(
                column_type.from_webhook(Some(&webhook)),
                Ok(value.clone()),
                "{name}: webhook"
            );
            assert_eq!(
                column_type.from_webhook(Some(&write)),
                Ok(value.clone()),
                "{name}: write format"
            );
            let api = api.to_string();
            assert_eq!(
                column_type.from_api(Some(text), Some(&api)),
                Ok(value.clone()),
                "{name}: api"
            );
            assert_eq!(
                mapping.npd_json(&value),
                npd_normalised(&npd),
                "{name}: back to NPD"
            );
        }
    }

    /// NPD's value as the gateway writes it back (dropdown labels sorted).
    fn npd_normalised(npd: &NpdValue) -> NpdValue {
        match npd {
            NpdValue::List(l) => {
                let mut l = l.clone();
                l.sort();
                NpdValue::List(l)
            }
            other => other.clone(),
        }
    }

    #[test]
    fn cleared_and_unchecked_values_are_empty_on_both_sides() {
        use ColumnType::*;
        for column_type in [Status, Dropdown, Date, Numbers, Checkbox, Country] {
            assert_eq!(column_type.from_webhook(None), Ok(None), "{column_type}");
            assert_eq!(
                column_type.from_webhook(Some(&Value::Null)),
                Ok(None),
                "{column_type}"
            );
            assert_eq!(
                column_type.to_monday(&None),
                Ok(Value::Null),
                "{column_type}"
            );
        }
        let unchecked = [
            json!({"checked": "false"}),
            json!({"checked": false}),
            json!({"changed_at": "2026-12-03T10:00:00.000Z"}),
            json!(false),
        ];
        for shape in unchecked {
            assert_eq!(Checkbox.from_webhook(Some(&shape)), Ok(None), "{shape}");
        }
        assert_eq!(
            Dropdown.from_webhook(Some(&json!({"chosenValues": []}))),
            Ok(None)
        );
        assert_eq!(
            ColumnMapping::new("c", Checkbox).npd_json(&None),
            NpdValue::Bool(false)
        );
        assert_eq!(
            ColumnMapping::new("c", Dropdown).npd_json(&None),
            NpdValue::List(vec![])
        );
        assert_eq!(
            ColumnMapping::new("c", Numbers).npd_json(&None),
            NpdValue::Null
        );
    }

    #[test]
    fn monday_reformatting_is_no_change() {
        use ColumnType::*;
        let cases = [
            ("status keeps the label, trimmed", Status, " Done ", "Done"),
            (
                "dropdown order and spaces do not matter",
                Dropdown,
                "[\" VIP\",\"Customer\",\"VIP\"]",
                "[\"Customer\",\"VIP\"]",
            ),
            (
                "dropdown from a comma list",
                Dropdown,
                "VIP, Customer",
                "[\"Customer\",\"VIP\"]",
            ),
            (
                "date drops monday's time",
                Date,
                "2021-10-11 13:25:00",
                "2021-10-11",
            ),
            (
                "date drops an iso time",
                Date,
                "2021-10-11T13:25:00Z",
                "2021-10-11",
            ),
            ("number drops a trailing zero", Numbers, "42.0", "42"),
            ("number drops a plus and spaces", Numbers, " +42 ", "42"),
            ("number keeps its decimals", Numbers, "-0.25", "-0.25"),
            ("checkbox of monday's v", Checkbox, "v", "true"),
            ("checkbox of a boolean", Checkbox, "TRUE", "true"),
            ("country is upper-cased", Country, " aw ", "AW"),
        ];
        for (name, column_type, raw, expected) in cases {
            assert_eq!(
                column_type.canonical(raw).as_deref(),
                Some(expected),
                "{name}"
            );
        }
        assert_eq!(Checkbox.canonical("false"), None);
        assert_eq!(Dropdown.canonical("[]"), None);
    }

    #[test]
    fn plausible_undocumented_shapes_of_numbers_and_checkboxes_are_read() {
        use ColumnType::*;
        for shape in [
            json!(42),
            json!("42"),
            json!({"value": 42}),
            json!({"value": "42.0"}),
            json!({"number": 42, "unit": {"symbol": "$"}}),
        ] {
            assert_eq!(
                Numbers.from_webhook(Some(&shape)),
                Ok(some("42")),
                "{shape}"
            );
        }
        for shape in [
            json!({"checked": "true"}),
            json!({"checked": true, "changed_at": "2026-12-03T10:00:00.000Z"}),
            json!(true),
            json!("true"),
        ] {
            assert_eq!(
                Checkbox.from_webhook(Some(&shape)),
                Ok(some("true")),
                "{shape}"
            );
        }
    }

    #[test]
    fn values_monday_would_refuse_are_left_out() {
        use ColumnType::*;
        use LeftOutReason::*;
        let cases = [
            ("no calendar date", Date, "2021-02-30", InvalidDate),
            ("not a date", Date, "next tuesday", InvalidDate),
            ("not a number", Numbers, "forty-two", InvalidNumber),
            ("no country", Country, "XX", UnknownCountry),
            (
                "a country name is no code",
                Country,
                "ARUBA",
                UnknownCountry,
            ),
        ];
        for (name, column_type, raw, reason) in cases {
            let value = column_type.canonical(raw);
            assert_eq!(column_type.to_monday(&value), Err(reason), "{name}");
        }
    }

    #[test]
    fn shapes_of_another_type_are_refused() {
        use ColumnType::*;
        let cases = [
            (Status, json!(42)),
            (Dropdown, json!({"label": "Done"})),
            (Date, json!({"text": "2021-10-11"})),
            (Numbers, json!([1])),
            (Checkbox, json!({"checked": 1})),
            (Country, json!({"code": "AW"})),
        ];
        for (column_type, shape) in cases {
            assert!(
                column_type.from_webhook(Some(&shape)).is_err(),
                "{column_type} {shape}"
            );
        }
    }

    fn labelled(column_type: ColumnType, create_labels: bool) -> ColumnMapping {
        let mut mapping = ColumnMapping::new("stage", column_type);
        mapping.labels = [("lead", "New lead"), ("customer", "Done"), ("vip", "VIP")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        mapping.create_labels = create_labels;
        mapping
    }

    #[test]
    fn labels_map_npd_values_to_monday_labels_both_ways() {
        let status = labelled(ColumnType::Status, false);
        assert_eq!(status.monday_value(&some("lead")), Ok(some("New lead")));
        assert_eq!(status.npd_value(&some("New lead")), Ok(some("lead")));
        assert_eq!(
            status.monday_value(&some("partner")),
            Err(LeftOutReason::NoLabel)
        );
        assert_eq!(
            status.npd_value(&some("Stuck")),
            Err(LeftOutReason::NoNpdValue)
        );
        assert_eq!(status.monday_value(&None), Ok(None));

        let creating = labelled(ColumnType::Status, true);
        assert_eq!(creating.monday_value(&some("partner")), Ok(some("partner")));

        let tags = labelled(ColumnType::Dropdown, false);
        let npd = ColumnType::Dropdown.canonical("vip, customer");
        assert_eq!(
            tags.monday_value(&npd),
            Ok(ColumnType::Dropdown.canonical("Done, VIP"))
        );
        assert_eq!(
            tags.npd_value(&ColumnType::Dropdown.canonical("VIP, Done")),
            Ok(npd)
        );
        assert_eq!(
            tags.monday_value(&ColumnType::Dropdown.canonical("vip, unknown")),
            Err(LeftOutReason::NoLabel)
        );

        let plain = ColumnMapping::new("stage", ColumnType::Status);
        assert_eq!(
            plain.monday_value(&some("Done")),
            Ok(some("Done")),
            "no labels: the value is the label"
        );
        assert_eq!(plain.npd_value(&some("Done")), Ok(some("Done")));
    }

    fn typed_value() -> impl Strategy<Value = (ColumnType, String)> {
        prop_oneof![
            "[A-Za-z][A-Za-z ]{0,12}".prop_map(|s| (ColumnType::Status, s)),
            prop::collection::vec("[A-Za-z][A-Za-z ]{0,8}", 1..4)
                .prop_map(|l| (ColumnType::Dropdown, Value::from(l).to_string())),
            (1900u32..2100, 1u32..13, 1u32..29)
                .prop_map(|(y, m, d)| (ColumnType::Date, format!("{y:04}-{m:02}-{d:02}"))),
            (-1_000_000i64..1_000_000, 0u32..100)
                .prop_map(|(i, f)| (ColumnType::Numbers, format!("{i}.{f:02}"))),
            Just((ColumnType::Checkbox, "true".to_owned())),
            prop::sample::select(vec!["US", "GB", "AW", "DE", "JP", "BR"])
                .prop_map(|c| (ColumnType::Country, c.to_owned())),
        ]
    }

    proptest! {
        #[test]
        fn canonical_of_what_monday_stores_round_trips((column_type, raw) in typed_value()) {
            let value = column_type.canonical(&raw);
            prop_assert!(value.is_some());
            prop_assert_eq!(column_type.canonical(value.as_deref().unwrap_or_default()), value.clone());
            let written = column_type.to_monday(&value);
            prop_assert!(written.is_ok(), "{:?}", written);
            let written = written.unwrap_or_default();
            prop_assert_eq!(column_type.from_webhook(Some(&written)), Ok(value.clone()));
            prop_assert_eq!(column_type.from_api_value(Some(&written.to_string())), Ok(value));
        }
    }

    const ORG: &str = "8c2d4e6f-1a3b-4c5d-9e7f-0a1b2c3d4e5f";
    const ORG_ITEM: u64 = 9_607_665_733;

    /// A contacts mapping with `organization_id` as a board relation, and the ledger's link of
    /// the organization `ORG` to the item `ORG_ITEM`.
    fn related() -> (EntityMapping, OrgLinks) {
        let mut mapping = EntityMapping::default_for(EntityKind::Contact);
        mapping.fields.insert(
            "organization_id".into(),
            ColumnMapping::new("organization", ColumnType::BoardRelation),
        );
        let mut links = OrgLinks::default();
        links.insert(NpdId::parse(ORG).expect("uuid"), MondayItemId(ORG_ITEM));
        (mapping, links)
    }

    fn relation(value: FieldValue) -> BTreeMap<String, FieldValue> {
        BTreeMap::from([("organization_id".to_owned(), value)])
    }

    #[test]
    fn a_board_relation_round_trips_npd_to_monday_and_back_through_the_links() {
        let (mapping, links) = related();
        // NPD's organization id (any case) in canonical form.
        let npd = ColumnType::BoardRelation.canonical(&ORG.to_uppercase());
        assert_eq!(npd.as_deref(), Some(ORG));
        // Monday's write format: the organization's item.
        let written = mapping.monday_column_values(
            &mapping.with_org_items(&relation(npd.clone()), &links),
            None,
        );
        assert!(written.left_out.is_empty());
        assert_eq!(
            Value::Object(written.columns.0.clone()),
            json!({"organization": {"item_ids": [ORG_ITEM.to_string()]}})
        );
        // The webhook Monday sends (captured), the API's value and the write format read back.
        let webhook = json!({"linkedPulseIds": [{"linkedPulseId": ORG_ITEM}], "changed_at": "2024-01-01T00:00:00.000Z"});
        let api = json!({"linkedPulseIds": [{"linkedPulseId": ORG_ITEM}]}).to_string();
        let item = Some(ORG_ITEM.to_string());
        let relation_type = ColumnType::BoardRelation;
        assert_eq!(relation_type.from_webhook(Some(&webhook)), Ok(item.clone()));
        assert_eq!(
            relation_type.from_api(Some("Analytical Engines"), Some(&api)),
            Ok(item.clone())
        );
        assert_eq!(
            relation_type.from_webhook(written.columns.0.get("organization")),
            Ok(item.clone())
        );
        // Back to NPD: the organization's id, as NPD's JSON has it.
        let back = mapping.npd_value_linked("organization_id", item, &links);
        assert_eq!(back, Ok(npd.clone()), "round trip");
        assert_eq!(
            mapping.npd_json("organization_id", &npd),
            NpdValue::Text(ORG.to_owned())
        );
    }

    #[test]
    fn a_cleared_board_relation_clears_both_ways() {
        let (mapping, links) = related();
        let written = mapping.monday_column_values(&relation(None), None);
        assert_eq!(
            Value::Object(written.columns.0),
            json!({"organization": {"item_ids": []}})
        );
        for cleared in [
            json!({}),
            json!({"linkedPulseIds": []}),
            Value::Null,
            json!({"item_ids": []}),
        ] {
            let read = ColumnType::BoardRelation.from_webhook(Some(&cleared));
            assert_eq!(read, Ok(None), "{cleared}");
            let npd = mapping.npd_value_linked("organization_id", read.unwrap_or_default(), &links);
            assert_eq!(npd, Ok(None), "{cleared}: NPD's organization is cleared");
        }
        assert_eq!(ColumnType::BoardRelation.from_webhook(None), Ok(None));
        assert_eq!(mapping.npd_json("organization_id", &None), NpdValue::Null);
    }

    #[test]
    fn relations_that_cannot_be_translated_are_left_out() {
        let (mapping, links) = related();
        // An organization with no Monday item yet: left out of the write, with its NPD id.
        let other = "0b0b0b0b-1a3b-4c5d-9e7f-0a1b2c3d4e5f";
        let write = mapping.monday_column_values(
            &mapping.with_org_items(&relation(some(other)), &links),
            None,
        );
        assert!(write.columns.0.is_empty(), "{:?}", write.columns);
        assert_eq!(
            write.left_out,
            [LeftOut {
                field: "organization_id".into(),
                value: other.into(),
                reason: LeftOutReason::OrganizationNotSynced,
                to: Side::Monday,
            }]
        );
        // An item the ledger knows no organization of, and several items: never guessed.
        let cases = [
            (
                json!({"linkedPulseIds": [{"linkedPulseId": 123}]}),
                "123",
                LeftOutReason::UnknownItem,
            ),
            (
                json!({"linkedPulseIds": [{"linkedPulseId": ORG_ITEM}, {"linkedPulseId": 5}]}),
                "5,9607665733",
                LeftOutReason::SeveralItems,
            ),
        ];
        for (webhook, value, reason) in cases {
            let read = ColumnType::BoardRelation
                .from_webhook(Some(&webhook))
                .expect("reads");
            let left_out = mapping.npd_value_linked("organization_id", read, &links);
            assert_eq!(
                left_out,
                Err(LeftOut {
                    field: "organization_id".into(),
                    value: value.into(),
                    reason,
                    to: Side::Npd,
                }),
                "{webhook}"
            );
        }
        assert!(
            ColumnType::BoardRelation
                .from_webhook(Some(&json!({"linkedPulseIds": [{"id": 1}]})))
                .is_err()
        );
        assert!(
            ColumnType::BoardRelation
                .from_webhook(Some(&json!("123")))
                .is_err()
        );
    }

    #[test]
    fn only_a_contact_s_organization_id_may_be_a_board_relation() {
        let (mapping, _) = related();
        assert!(mapping.problems(EntityKind::Contact).is_empty());
        let mut wrong = mapping.clone();
        wrong.fields.insert(
            "employer".into(),
            ColumnMapping::new("employer", ColumnType::BoardRelation),
        );
        let problems = wrong.problems(EntityKind::Contact).join("\n");
        assert!(
            problems.contains("fields.employer: board_relation links a contact's organization"),
            "{problems}"
        );
        let mut orgs = EntityMapping::default_for(EntityKind::Organization);
        orgs.fields.insert(
            "organization_id".into(),
            ColumnMapping::new("parent", ColumnType::BoardRelation),
        );
        assert!(!orgs.problems(EntityKind::Organization).is_empty());
    }
}
