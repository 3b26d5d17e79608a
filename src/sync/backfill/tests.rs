//! A backfill's link over a real ledger, with the remotes faked: the first values of a new link
//! under each `initial_winner`, the npd_id column and link write-backs it queues, and their
//! priority.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::domain::entity::{EntityKind, MondayItemId, Side};
use crate::domain::event::{NpdData, NpdEvent};
use crate::domain::job::{Operation, Priority};
use crate::domain::record::{NpdRecord, NpdValue};
use crate::domain::scan::{InitialWinner, MatchReason, StagedItem};
use crate::domain::state::HistoryKind;
use crate::sync::history::Cause;
use crate::sync::scan::Scans;
use crate::sync::testkit::{ADA, Kit, fixture};

const ITEM: MondayItemId = MondayItemId(5_200_000_101);

/// Ada as NPD's `contact.created` fixture has her, with a role the board does not share and
/// no notes.
fn ada_in_npd() -> NpdRecord {
    let event = NpdEvent::parse(fixture("npd/contact.created.json").as_bytes()).expect("fixture");
    let NpdData::Record(mut record) = event.data else {
        panic!("the fixture carries a record");
    };
    record
        .fields
        .insert("role_title".into(), NpdValue::Text("CTO".into()));
    record.fields.insert("notes".into(), NpdValue::Null);
    record.monday_id = None;
    record
}

/// Ada's item: the same name and email, another role, notes NPD lacks, an empty npd_id column.
fn ada_on_the_board() -> StagedItem {
    let text = |s: &str| Some(s.to_owned());
    let values: BTreeMap<String, Option<String>> = [
        ("first_name", text("Ada")),
        ("last_name", text("Lovelace")),
        ("email", text("ada@example.com")),
        ("phone", text("+442079460990")),
        ("role_title", text("Chief")),
        ("notes", text("From Monday")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    StagedItem {
        id: ITEM,
        name: "Ada Lovelace".into(),
        npd_id: None,
        values,
    }
}

/// Links Ada's record and item as a backfill under `winner`.
async fn linked(winner: InitialWinner) -> Kit {
    let kit = Kit::with(|s| s.backfill.initial_winner = winner).await;
    let fakes = Arc::new(kit.fakes.clone());
    let budget = Arc::clone(kit.dispatcher.budget());
    let scans = Scans::new(
        kit.processor.clone(),
        Some(fakes.clone()),
        Some(fakes),
        budget,
    );
    let mut tx = kit.store.begin().await.expect("tx");
    let cause = Cause::backfill(None);
    scans
        .link_pair(
            &mut tx,
            EntityKind::Contact,
            &ada_in_npd(),
            &ada_on_the_board(),
            Some(MatchReason::Email),
            &cause,
        )
        .await
        .expect("linked");
    tx.commit().await.expect("commit");
    kit
}

/// (field, value pending to Monday, value pending to NPD)
type Pending = (&'static str, Option<&'static str>, Option<&'static str>);

#[tokio::test]
async fn a_new_links_first_values_follow_initial_winner_and_empty_never_wins() {
    use InitialWinner::*;
    let cases: [(InitialWinner, [Pending; 2], usize); 3] = [
        (
            Npd,
            [
                ("role_title", Some("CTO"), None),
                ("notes", None, Some("From Monday")),
            ],
            0,
        ),
        (
            Monday,
            [
                ("role_title", None, Some("Chief")),
                ("notes", None, Some("From Monday")),
            ],
            0,
        ),
        (
            Manual,
            [
                ("role_title", None, None),
                ("notes", None, Some("From Monday")),
            ],
            1,
        ),
    ];
    for (winner, expected, conflicts) in cases {
        let kit = linked(winner).await;
        let entity = kit.entity(ADA).await;
        assert_eq!(entity.monday_item_id, Some(ITEM), "{winner}");
        let fields = kit.store.entity_fields(entity.id).await.expect("fields");
        for (field, to_monday, to_npd) in expected {
            let state = &fields[field];
            let pending = |side: Side| state.pending(side).and_then(|p| p.value.as_deref());
            assert_eq!(pending(Side::Monday), to_monday, "{winner} {field}");
            assert_eq!(pending(Side::Npd), to_npd, "{winner} {field}");
        }
        let open = kit
            .store
            .entity_conflicts(entity.id)
            .await
            .expect("conflicts");
        assert_eq!(open.len(), conflicts, "{winner}");
    }
}

#[tokio::test]
async fn a_link_writes_the_empty_npd_id_column_and_the_link_back_at_backfill_priority() {
    let kit = linked(InitialWinner::Npd).await;
    let entity = kit.entity(ADA).await;

    let jobs = kit.store.entity_jobs(entity.id, 10).await.expect("jobs");

    let mut operations: Vec<Operation> = jobs.iter().map(|j| j.operation).collect();
    operations.sort_by_key(|o| o.as_str());
    assert_eq!(
        operations,
        vec![
            Operation::PatchNpd,
            Operation::PushItem,
            Operation::WriteLink
        ]
    );
    assert!(jobs.iter().all(|j| j.priority == Priority::Backfill));
    let push = jobs
        .iter()
        .find(|j| j.operation == Operation::PushItem)
        .expect("push");
    assert!(
        push.payload.write_npd_id,
        "the empty npd_id column is written"
    );
    let history = kit.store.history(entity.id, 10).await.expect("history");
    let linked = history
        .iter()
        .find(|h| h.kind == HistoryKind::Linked)
        .expect("a link entry");
    assert_eq!(
        linked.reason,
        format!("backfill: linked to Monday item {ITEM} by the email")
    );
}
