//! Scans of existing data (backfill and drift): what a run is, what it counts, and how NPD
//! records are matched one-to-one with the items of a board.
//!
//! Owns: the run's names (`ScanKind`, `RunStatus`, `Scope`, `InitialWinner`), a staged Monday
//! item (`StagedItem`: canonical values read from a page), the run summaries (`BackfillCounts`,
//! `DriftCounts`, `Summary`, in the contract's JSON shape), the review queue's names
//! (`MatchStatus`, `MatchReason`, `Candidate`) and `plan`, the matching of CONTRACT.md v2: the
//! ledger's own links first, then (1) the item's npd_id column, (2) the record's `monday_id`, (3)
//! the normalised email, (4) the E.164 phone; one-to-one only, and a record with more than one
//! candidate (or a candidate another record also claims) goes to review.
//! May import: std, serde, utoipa (schema derives of the wire-shaped counts), crate::domain.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::domain::entity::{EntityKind, MondayItemId, NpdId};
use crate::domain::mapping::FieldValue;
use crate::domain::names::named_enum;

named_enum! {
    /// Which kind of scan a run is.
    pub enum ScanKind ("scan kind") {
        /// The first sync of existing data: match, link, create.
        Backfill = "backfill",
        /// A comparison of linked entities with the ledger, repairing what webhooks missed.
        Drift = "drift",
    }
}

named_enum! {
    /// Where a run is.
    pub enum RunStatus ("run status") {
        Running = "running",
        Done = "done",
        Failed = "failed",
    }
}

named_enum! {
    /// Which entity kinds a run covers.
    pub enum Scope ("scope") {
        Contacts = "contacts",
        Organizations = "organizations",
        All = "all",
    }
}

impl Scope {
    pub fn kinds(self) -> Vec<EntityKind> {
        match self {
            Scope::Contacts => vec![EntityKind::Contact],
            Scope::Organizations => vec![EntityKind::Organization],
            Scope::All => EntityKind::ALL.to_vec(),
        }
    }
}

named_enum! {
    /// `[backfill] initial_winner`: whose value a field of a new link starts with when both
    /// sides hold different non-empty values (an empty value never overwrites a non-empty one).
    pub enum InitialWinner ("initial winner") {
        Npd = "npd",
        Monday = "monday",
        /// Neither: a conflict opens for an admin.
        Manual = "manual",
    }
}

named_enum! {
    /// Which rule matched a record with an item.
    pub enum MatchReason ("match reason") {
        /// The item's npd_id column holds the record's id.
        NpdId = "npd_id",
        /// The record's `monday_id` names the item (a link of NPD's earlier sync).
        MondayId = "monday_id",
        Email = "email",
        Phone = "phone",
    }
}

named_enum! {
    /// Where a record of the review queue is.
    pub enum MatchStatus ("match status") {
        /// Waits for an admin.
        Review = "review",
        /// Linked to the item the admin chose.
        Linked = "linked",
        /// Created in Monday as a new item.
        Created = "created",
        /// Left alone.
        Ignored = "ignored",
    }
}

/// One item a record could be linked to, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Candidate {
    #[schema(value_type = String, pattern = "^[0-9]+$")]
    pub monday_item_id: MondayItemId,
    pub name: String,
    #[schema(value_type = String, pattern = "^(npd_id|monday_id|email|phone)$")]
    pub why: MatchReason,
}

/// The candidates of a record in review, stored as one document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Candidates(pub Vec<Candidate>);

/// An item as a scan read it: its name, the text of its npd_id column, and the canonical value of
/// every synced field (the item-name fields from its name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedItem {
    pub id: MondayItemId,
    pub name: String,
    pub npd_id: Option<String>,
    pub values: BTreeMap<String, FieldValue>,
}

/// The counts of a backfill, named as `GET /api/v1/backfills/{id}` answers them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct BackfillCounts {
    pub scanned: Scanned,
    pub matched: Matched,
    pub linked: u64,
    pub to_create_in_monday: u64,
    pub created_in_monday: u64,
    pub to_review: u64,
    /// Items that are no record's candidate.
    pub unmatched_in_monday: u64,
    pub estimated_monday_calls: u64,
}

/// Records and items read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Scanned {
    pub npd: u64,
    pub monday: u64,
}

/// Matches by rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Matched {
    pub npd_id: u64,
    pub monday_id: u64,
    pub email: u64,
    pub phone: u64,
}

impl Matched {
    pub fn add(&mut self, reason: MatchReason) {
        let slot = match reason {
            MatchReason::NpdId => &mut self.npd_id,
            MatchReason::MondayId => &mut self.monday_id,
            MatchReason::Email => &mut self.email,
            MatchReason::Phone => &mut self.phone,
        };
        *slot += 1;
    }
}

/// The counts of a drift scan, named as `GET /api/v1/drift-scans/{id}` answers them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct DriftCounts {
    /// Linked entities compared.
    pub scanned: u64,
    pub in_sync: u64,
    pub repaired: Repaired,
    pub conflicts: u64,
    pub deleted: Deleted,
    /// Entities left for the next scan: a write still on its way, or a change that arrived
    /// while the scan read.
    pub skipped: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Repaired {
    pub to_monday: u64,
    pub to_npd: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Deleted {
    pub in_monday: u64,
    pub in_npd: u64,
}

/// A run's counts, stored with the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scan", rename_all = "snake_case")]
pub enum Summary {
    Backfill(BackfillCounts),
    Drift(DriftCounts),
}

/// Which sides the first values of a new link write to: (Monday, NPD). Per field: equal values
/// write nothing; an empty value never overwrites a non-empty one; otherwise `winner` decides
/// (`manual` writes neither: a conflict opens).
pub fn first_writes(
    npd: &BTreeMap<String, FieldValue>,
    monday: &BTreeMap<String, FieldValue>,
    winner: InitialWinner,
) -> (bool, bool) {
    let (mut to_monday, mut to_npd) = (false, false);
    for (field, n) in npd {
        let m = monday.get(field).cloned().flatten();
        match (n, &m) {
            (n, m) if n == m => {}
            (Some(_), None) => to_monday = true,
            (None, Some(_)) => to_npd = true,
            _ => match winner {
                InitialWinner::Npd => to_monday = true,
                InitialWinner::Monday => to_npd = true,
                InitialWinner::Manual => {}
            },
        }
    }
    (to_monday, to_npd)
}

/// An NPD record as matching sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordKeys {
    pub id: NpdId,
    pub monday_id: Option<MondayItemId>,
    pub email: FieldValue,
    pub phone: FieldValue,
    /// The item the ledger already links the record to.
    pub linked: Option<MondayItemId>,
}

/// An item as matching sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKeys {
    pub id: MondayItemId,
    pub name: String,
    pub npd_id: Option<NpdId>,
    pub email: FieldValue,
    pub phone: FieldValue,
}

/// What matching decided for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Linked to `item`: by `reason`, or (`None`) by the ledger's own link alone.
    Link {
        item: MondayItemId,
        reason: Option<MatchReason>,
        /// The ledger already held this link.
        known: bool,
    },
    /// More than one candidate (or a candidate claimed by another record too): an admin decides.
    Review(Vec<Candidate>),
    /// No item is a candidate.
    NoCandidate,
}

/// Every record's verdict (in the order given), and the items no record has as a candidate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub verdicts: Vec<(NpdId, Verdict)>,
    pub unmatched_items: Vec<MondayItemId>,
}

/// The key a rule compares, if the record or item has one.
fn record_key(rule: MatchReason, r: &RecordKeys) -> Option<String> {
    match rule {
        MatchReason::NpdId => Some(r.id.to_string()),
        MatchReason::MondayId => r.monday_id.map(|m| m.to_string()),
        MatchReason::Email => r.email.clone(),
        MatchReason::Phone => r.phone.clone().filter(|p| p.starts_with('+')),
    }
}

fn item_key(rule: MatchReason, i: &ItemKeys) -> Option<String> {
    match rule {
        MatchReason::NpdId => i.npd_id.map(|n| n.to_string()),
        MatchReason::MondayId => Some(i.id.to_string()),
        MatchReason::Email => i.email.clone(),
        MatchReason::Phone => i.phone.clone().filter(|p| p.starts_with('+')),
    }
}

/// Matches `records` with `items` (see the module header).
pub fn plan(records: &[RecordKeys], items: &[ItemKeys]) -> Plan {
    let by_id: HashMap<MondayItemId, &ItemKeys> = items.iter().map(|i| (i.id, i)).collect();
    let mut free: BTreeSet<MondayItemId> = by_id.keys().copied().collect();
    let mut reserved: BTreeSet<MondayItemId> = BTreeSet::new();
    let mut verdicts: HashMap<NpdId, Verdict> = HashMap::new();
    for r in records {
        if let Some(item) = r.linked.filter(|i| free.contains(i)) {
            let reason = confirming_rule(r, by_id[&item]);
            free.remove(&item);
            verdicts.insert(
                r.id,
                Verdict::Link {
                    item,
                    reason,
                    known: true,
                },
            );
        }
    }
    for rule in MatchReason::ALL.iter().copied() {
        let open: Vec<&RecordKeys> = records
            .iter()
            .filter(|r| !verdicts.contains_key(&r.id))
            .collect();
        let decided = apply_rule(rule, &open, &by_id, &free);
        for (id, verdict) in decided {
            match &verdict {
                Verdict::Link { item, .. } => {
                    free.remove(item);
                }
                Verdict::Review(candidates) => {
                    for c in candidates {
                        free.remove(&c.monday_item_id);
                        reserved.insert(c.monday_item_id);
                    }
                }
                Verdict::NoCandidate => {}
            }
            verdicts.insert(id, verdict);
        }
    }
    Plan {
        verdicts: records
            .iter()
            .map(|r| (r.id, verdicts.remove(&r.id).unwrap_or(Verdict::NoCandidate)))
            .collect(),
        unmatched_items: free.into_iter().collect(),
    }
}

/// The first rule that also holds for a pair the ledger links.
fn confirming_rule(r: &RecordKeys, i: &ItemKeys) -> Option<MatchReason> {
    MatchReason::ALL.iter().copied().find(|rule| {
        let key = record_key(*rule, r);
        key.is_some() && key == item_key(*rule, i)
    })
}

/// One rule over the open records and the free items: links and reviews (records with no
/// candidate under this rule are left for the next).
fn apply_rule(
    rule: MatchReason,
    open: &[&RecordKeys],
    by_id: &HashMap<MondayItemId, &ItemKeys>,
    free: &BTreeSet<MondayItemId>,
) -> Vec<(NpdId, Verdict)> {
    let mut index: HashMap<String, Vec<MondayItemId>> = HashMap::new();
    for id in free {
        if let Some(key) = item_key(rule, by_id[id]) {
            index.entry(key).or_default().push(*id);
        }
    }
    let candidates: Vec<(NpdId, Vec<MondayItemId>)> = open
        .iter()
        .filter_map(|r| {
            let found = index.get(&record_key(rule, r)?)?;
            Some((r.id, found.clone()))
        })
        .collect();
    let mut claims: HashMap<MondayItemId, usize> = HashMap::new();
    for (_, items) in &candidates {
        for item in items {
            *claims.entry(*item).or_default() += 1;
        }
    }
    candidates
        .into_iter()
        .map(|(id, items)| match items.as_slice() {
            [only] if claims[only] == 1 => {
                let link = Verdict::Link {
                    item: *only,
                    reason: Some(rule),
                    known: false,
                };
                (id, link)
            }
            _ => {
                let list = items
                    .iter()
                    .map(|item| Candidate {
                        monday_item_id: *item,
                        name: by_id[item].name.clone(),
                        why: rule,
                    })
                    .collect();
                (id, Verdict::Review(list))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npd(n: u128) -> NpdId {
        NpdId(uuid::Uuid::from_u128(n))
    }

    fn record(n: u128) -> RecordKeys {
        RecordKeys {
            id: npd(n),
            monday_id: None,
            email: None,
            phone: None,
            linked: None,
        }
    }

    fn item(n: u64) -> ItemKeys {
        ItemKeys {
            id: MondayItemId(n),
            name: format!("Item {n}"),
            npd_id: None,
            email: None,
            phone: None,
        }
    }

    fn email(s: &str) -> FieldValue {
        Some(s.to_owned())
    }

    fn link(item: u64, reason: MatchReason) -> Verdict {
        Verdict::Link {
            item: MondayItemId(item),
            reason: Some(reason),
            known: false,
        }
    }

    fn reviewed(plan: &Plan, n: u128) -> Vec<(u64, MatchReason)> {
        match plan.verdicts.iter().find(|(id, _)| *id == npd(n)) {
            Some((_, Verdict::Review(c))) => {
                c.iter().map(|c| (c.monday_item_id.0, c.why)).collect()
            }
            other => panic!("record {n} is not in review: {other:?}"),
        }
    }

    #[test]
    fn each_rule_links_in_the_contracts_order() {
        let records = [
            record(1),
            RecordKeys {
                monday_id: Some(MondayItemId(12)),
                ..record(2)
            },
            RecordKeys {
                email: email("c@x.io"),
                ..record(3)
            },
            RecordKeys {
                phone: email("+442079460990"),
                ..record(4)
            },
            RecordKeys {
                email: email("nobody@x.io"),
                phone: email("2025550169"),
                ..record(5)
            },
        ];
        let items = [
            ItemKeys {
                npd_id: Some(npd(1)),
                email: email("c@x.io"),
                ..item(11)
            },
            item(12),
            ItemKeys {
                email: email("c@x.io"),
                ..item(13)
            },
            ItemKeys {
                phone: email("+442079460990"),
                ..item(14)
            },
            ItemKeys {
                phone: email("2025550169"),
                ..item(15)
            },
        ];

        let plan = plan(&records, &items);

        let expected = vec![
            (npd(1), link(11, MatchReason::NpdId)),
            (npd(2), link(12, MatchReason::MondayId)),
            (npd(3), link(13, MatchReason::Email)),
            (npd(4), link(14, MatchReason::Phone)),
            (npd(5), Verdict::NoCandidate),
        ];
        assert_eq!(
            plan.verdicts, expected,
            "item 11 went to npd_id before email; national phones never match"
        );
        assert_eq!(plan.unmatched_items, vec![MondayItemId(15)]);
    }

    #[test]
    fn more_than_one_candidate_or_a_shared_candidate_goes_to_review() {
        let records = [
            RecordKeys {
                email: email("twin@x.io"),
                ..record(1)
            },
            RecordKeys {
                email: email("dup@x.io"),
                ..record(2)
            },
            RecordKeys {
                email: email("dup@x.io"),
                ..record(3)
            },
            RecordKeys {
                phone: email("+15550001"),
                ..record(4)
            },
        ];
        let items = [
            ItemKeys {
                email: email("twin@x.io"),
                ..item(21)
            },
            ItemKeys {
                email: email("twin@x.io"),
                phone: email("+15550001"),
                ..item(22)
            },
            ItemKeys {
                email: email("dup@x.io"),
                ..item(23)
            },
        ];

        let plan = plan(&records, &items);

        use MatchReason::Email;
        assert_eq!(reviewed(&plan, 1), vec![(21, Email), (22, Email)]);
        assert_eq!(reviewed(&plan, 2), vec![(23, Email)]);
        assert_eq!(reviewed(&plan, 3), vec![(23, Email)]);
        assert_eq!(
            plan.verdicts[3].1,
            Verdict::NoCandidate,
            "item 22 is reserved for the review"
        );
        assert!(plan.unmatched_items.is_empty());
    }

    #[test]
    fn the_ledgers_links_come_first_and_are_kept() {
        let records = [
            RecordKeys {
                linked: Some(MondayItemId(31)),
                ..record(1)
            },
            RecordKeys {
                linked: Some(MondayItemId(99)),
                email: email("e@x.io"),
                ..record(2)
            },
        ];
        let items = [
            ItemKeys {
                npd_id: Some(npd(7)),
                ..item(31)
            },
            ItemKeys {
                email: email("e@x.io"),
                npd_id: Some(npd(1)),
                ..item(32)
            },
        ];

        let plan = plan(&records, &items);

        assert_eq!(
            plan.verdicts[0].1,
            Verdict::Link {
                item: MondayItemId(31),
                reason: None,
                known: true
            }
        );
        assert_eq!(
            plan.verdicts[1].1,
            link(32, MatchReason::Email),
            "a link to a vanished item is matched again"
        );
    }

    #[test]
    fn first_writes_never_let_an_empty_value_win() {
        let map = |pairs: &[(&str, Option<&str>)]| -> BTreeMap<String, FieldValue> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
                .collect()
        };
        use InitialWinner::*;
        let cases = [
            (
                "equal",
                map(&[("a", Some("x"))]),
                map(&[("a", Some("x"))]),
                Npd,
                (false, false),
            ),
            (
                "npd only",
                map(&[("a", Some("x"))]),
                map(&[]),
                Monday,
                (true, false),
            ),
            (
                "monday only",
                map(&[("a", None)]),
                map(&[("a", Some("y"))]),
                Npd,
                (false, true),
            ),
            (
                "npd wins",
                map(&[("a", Some("x"))]),
                map(&[("a", Some("y"))]),
                Npd,
                (true, false),
            ),
            (
                "monday wins",
                map(&[("a", Some("x"))]),
                map(&[("a", Some("y"))]),
                Monday,
                (false, true),
            ),
            (
                "manual",
                map(&[("a", Some("x"))]),
                map(&[("a", Some("y"))]),
                Manual,
                (false, false),
            ),
        ];
        for (name, npd, monday, winner, expected) in cases {
            assert_eq!(first_writes(&npd, &monday, winner), expected, "{name}");
        }
    }

    #[test]
    fn names_and_counts_round_trip() {
        assert_eq!(
            "all".parse::<Scope>().map(Scope::kinds),
            Ok(EntityKind::ALL.to_vec())
        );
        let mut matched = Matched::default();
        matched.add(MatchReason::Phone);
        let summary = Summary::Backfill(BackfillCounts {
            matched,
            ..BackfillCounts::default()
        });
        let json = serde_json::to_string(&summary).expect("serialises");
        assert!(
            json.contains(r#""scan":"backfill""#) && json.contains(r#""phone":1"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Summary>(&json).ok(), Some(summary));
    }
}
