//! Existing data for backfill and drift tests and benchmarks: an NPD and a contacts board that
//! already hold records and items, related in every way a backfill meets, put straight into the
//! simulators' state (no webhook, no event), so thousands of them cost milliseconds.
//!
//! Owns: `Relations` (how many of each relation) and `Seeded` (what was put where, by relation).
//! May import: std, serde_json, time, uuid, crate::domain, the sibling simulators.

use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::entity::{BoardId, ContactSnapshot, MondayItemId, NpdId};
use crate::sim::monday::{ItemState, MondaySim, SimItem};
use crate::sim::npd::NpdSim;

/// How many records and items of each relation to make.
#[derive(Debug, Clone, Copy, Default)]
pub struct Relations {
    /// Linked both ways by an earlier sync: the item's npd_id column holds the record's id, the
    /// record's monday_id names the item, every value equal.
    pub by_npd_id: usize,
    /// Linked by NPD's earlier sync only: the record's monday_id names the item, whose npd_id
    /// column is empty.
    pub by_monday_id: usize,
    /// Of `by_monday_id`, how many hold a different role on each side.
    pub differing: usize,
    /// Related by their email only.
    pub by_email: usize,
    /// Related by their E.164 phone only (their emails differ).
    pub by_phone: usize,
    /// Records whose email two items share (each record has two candidates).
    pub twins: usize,
    /// Items whose email two records share (two records claim one item).
    pub shared: usize,
    /// Items no record relates to.
    pub monday_only: usize,
    /// Records no item relates to, that sync.
    pub npd_only: usize,
    /// Records no item relates to, with `sync_enabled: false`.
    pub npd_only_disabled: usize,
}

impl Relations {
    /// 5,000 items and 6,000 records, related in every way.
    pub fn large() -> Self {
        Relations {
            by_npd_id: 3_000,
            by_monday_id: 500,
            differing: 50,
            by_email: 250,
            by_phone: 150,
            twins: 100,
            shared: 25,
            monday_only: 875,
            npd_only: 100,
            npd_only_disabled: 1_850,
        }
    }

    pub fn items(&self) -> usize {
        self.by_npd_id
            + self.by_monday_id
            + self.by_email
            + self.by_phone
            + 2 * self.twins
            + self.shared
            + self.monday_only
    }

    pub fn records(&self) -> usize {
        self.by_npd_id
            + self.by_monday_id
            + self.by_email
            + self.by_phone
            + self.twins
            + 2 * self.shared
            + self.npd_only
            + self.npd_only_disabled
    }
}

/// What was put where, by relation: pairs as (record, item).
#[derive(Debug, Clone, Default)]
pub struct Seeded {
    pub by_npd_id: Vec<(NpdId, MondayItemId)>,
    pub by_monday_id: Vec<(NpdId, MondayItemId)>,
    pub by_email: Vec<(NpdId, MondayItemId)>,
    pub by_phone: Vec<(NpdId, MondayItemId)>,
    /// (record, its two candidate items).
    pub twins: Vec<(NpdId, [MondayItemId; 2])>,
    /// (the two records, the item they share).
    pub shared: Vec<([NpdId; 2], MondayItemId)>,
    pub monday_only: Vec<MondayItemId>,
    pub npd_only: Vec<NpdId>,
    pub npd_only_disabled: Vec<NpdId>,
}

/// The first item id the seeded board uses (below the ids the simulator gives created items).
const FIRST_SEEDED_ITEM: u64 = 8_000_000_001;

struct Builder {
    records: Vec<ContactSnapshot>,
    items: Vec<SimItem>,
    board: BoardId,
    next_item: u64,
    n: usize,
    at: OffsetDateTime,
}

/// A contact's fields, and the matching item's column values.
#[derive(Clone)]
struct Person {
    first: String,
    email: Option<String>,
    phone: Option<String>,
    role: String,
}

impl Builder {
    fn person(&mut self, tag: &str) -> Person {
        self.n += 1;
        let n = self.n;
        Person {
            first: format!("{tag}{n}"),
            email: Some(format!("{tag}{n}@example.com")),
            phone: Some(format!("+4420{n:08}")),
            role: "Engineer".into(),
        }
    }

    fn record(&mut self, p: &Person, monday_id: Option<MondayItemId>, sync: bool) -> NpdId {
        let id = NpdId(Uuid::new_v4());
        self.records.push(ContactSnapshot {
            id,
            version: 1,
            sync_enabled: sync,
            monday_id,
            first_name: Some(p.first.clone()),
            last_name: Some("Seeded".into()),
            email: p.email.clone(),
            phone: p.phone.clone(),
            role_title: Some(p.role.clone()),
            notes: None,
            organization_id: None,
            updated_at: Some(self.at),
            custom: Default::default(),
        });
        id
    }

    fn item(&mut self, p: &Person, npd_id: Option<NpdId>) -> MondayItemId {
        let id = MondayItemId(self.next_item);
        self.next_item += 1;
        let mut columns = std::collections::BTreeMap::<String, Value>::new();
        if let Some(email) = &p.email {
            columns.insert("email".into(), json!({ "email": email, "text": email }));
        }
        if let Some(phone) = &p.phone {
            columns.insert(
                "phone".into(),
                json!({ "phone": phone, "countryShortName": "GB" }),
            );
        }
        columns.insert("role_title".into(), json!(p.role));
        if let Some(npd_id) = npd_id {
            columns.insert("npd_id".into(), json!(npd_id.to_string()));
        }
        self.items.push(SimItem {
            id,
            board_id: self.board,
            name: format!("{} Seeded", p.first),
            state: ItemState::Active,
            column_values: columns,
        });
        id
    }

    /// One related pair; `link` makes the record name the item, `column` the item the record.
    fn pair(&mut self, tag: &str, link: bool, column: bool) -> (NpdId, MondayItemId) {
        let p = self.person(tag);
        let item_id = MondayItemId(self.next_item);
        let record = self.record(&p, link.then_some(item_id), true);
        let item = self.item(&p, column.then_some(record));
        (record, item)
    }
}

/// Puts records into `npd` and items onto `board` of `monday` as `relations` says.
pub fn seed_contacts(
    npd: &NpdSim,
    monday: &MondaySim,
    board: BoardId,
    relations: &Relations,
) -> Seeded {
    let mut b = Builder {
        records: Vec::new(),
        items: Vec::new(),
        board,
        next_item: FIRST_SEEDED_ITEM,
        n: 0,
        at: OffsetDateTime::now_utc() - time::Duration::days(1),
    };
    let mut seeded = Seeded::default();
    for _ in 0..relations.by_npd_id {
        seeded.by_npd_id.push(b.pair("linked", true, true));
    }
    for i in 0..relations.by_monday_id {
        let pair = b.pair("earlier", true, false);
        if i < relations.differing
            && let Some(item) = b.items.last_mut()
        {
            item.column_values
                .insert("role_title".into(), json!("Chief Engineer"));
        }
        seeded.by_monday_id.push(pair);
    }
    for _ in 0..relations.by_email {
        let p = b.person("mail");
        let record = b.record(
            &Person {
                phone: None,
                ..p.clone()
            },
            None,
            true,
        );
        seeded
            .by_email
            .push((record, b.item(&Person { phone: None, ..p }, None)));
    }
    for _ in 0..relations.by_phone {
        let p = b.person("tel");
        let record = b.record(
            &Person {
                email: None,
                ..p.clone()
            },
            None,
            true,
        );
        seeded
            .by_phone
            .push((record, b.item(&Person { email: None, ..p }, None)));
    }
    for _ in 0..relations.twins {
        let p = b.person("twin");
        let record = b.record(&p, None, true);
        let no_phone = || Person {
            phone: None,
            ..p.clone()
        };
        let items = [b.item(&no_phone(), None), b.item(&no_phone(), None)];
        seeded.twins.push((record, items));
    }
    for _ in 0..relations.shared {
        let p = b.person("shared");
        let records = [b.record(&p, None, true), b.record(&p, None, true)];
        seeded.shared.push((records, b.item(&p, None)));
    }
    for _ in 0..relations.monday_only {
        let p = b.person("board");
        seeded.monday_only.push(b.item(&p, None));
    }
    for _ in 0..relations.npd_only {
        let p = b.person("new");
        seeded.npd_only.push(b.record(&p, None, true));
    }
    for _ in 0..relations.npd_only_disabled {
        let p = b.person("quiet");
        seeded.npd_only_disabled.push(b.record(&p, None, false));
    }
    for record in b.records {
        npd.insert_contact(record);
    }
    monday.insert_items(b.items);
    seeded
}
