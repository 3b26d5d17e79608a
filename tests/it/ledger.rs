//! The ledger on its own, on both stores: every statement family of `ledger/` with typed rows in
//! and out, the outbox's claim rules (per-entity order, one lease per entity, priorities, the
//! Monday floor), the fence of a job's outcome, and what a replay and a reaper do.

use std::collections::BTreeMap;

use crate::store_tests;
use npd_monday_gateway::domain::entity::{BoardId, EntityKind, MondayItemId, NpdId, Side};
use npd_monday_gateway::domain::job::{JobPayload, Operation, Priority, Sent, Work};
use npd_monday_gateway::domain::lane::EntityKey;
use npd_monday_gateway::domain::reconcile::{ConflictPolicy, FieldState};
use npd_monday_gateway::domain::state::{
    AuditOutcome, ConflictStatus, EntityStatus, HistoryDetail, HistoryKind, InboxOutcome, JobState,
    Resolution,
};
use npd_monday_gateway::ledger::admin::AuditEntry;
use npd_monday_gateway::ledger::conflicts::{self, ConflictValues};
use npd_monday_gateway::ledger::entities::{self, EntityRow, NewEntity};
use npd_monday_gateway::ledger::group_commit::InboxWriter;
use npd_monday_gateway::ledger::history::{self, Entry};
use npd_monday_gateway::ledger::inbox::{self, InsertOutcome, NewInboxEvent};
use npd_monday_gateway::ledger::jobs::{self, JobRow, NewJob};
use npd_monday_gateway::ledger::{Store, now_ms};
use npd_monday_gateway::sync::process::{OwnMondayUser, Processor};

use crate::helpers::{Backend, migrated_store};

fn npd_id(n: u128) -> NpdId {
    NpdId(uuid::Uuid::from_u128(n))
}

async fn new_entity(store: &Store, n: u128) -> EntityRow {
    let mut tx = store.begin().await.expect("tx");
    let row = entities::insert(
        &mut tx,
        &NewEntity {
            kind: EntityKind::Contact,
            npd_id: Some(npd_id(n)),
            monday_item_id: None,
            board_id: None,
            sync_enabled: true,
            status: EntityStatus::Pending,
        },
    )
    .await
    .expect("insert");
    tx.commit().await.expect("commit");
    row
}

async fn enqueue(store: &Store, entity: i64, operation: Operation, priority: Priority) -> i64 {
    let mut tx = store.begin().await.expect("tx");
    let job = NewJob {
        entity_id: entity,
        operation,
        payload: JobPayload::default(),
        priority,
        max_attempts: 3,
        request_id: Some("req-1"),
        accepted_at: None,
    };
    let id = jobs::enqueue(&mut tx, &job).await.expect("enqueue");
    tx.commit().await.expect("commit");
    id
}

async fn claim(store: &Store, floor: Option<Priority>) -> Vec<JobRow> {
    store
        .claim_jobs("w1", 60_000, 10, floor)
        .await
        .expect("claim")
}

fn inbox_row(delivery: &str) -> NewInboxEvent {
    NewInboxEvent {
        source: Side::Npd,
        delivery_id: delivery.to_owned(),
        event_type: "contact.created".into(),
        entity_kind: Some(EntityKind::Contact),
        npd_id: Some(npd_id(7)),
        board_id: None,
        monday_item_id: None,
        entity_version: Some(1),
        occurred_at_ms: Some(1_000),
        payload: format!("{{\"delivery\": \"{delivery}\"}}"),
        request_id: None,
        ignored_reason: None,
    }
}

async fn inbox_rows_round_trip_typed_and_are_deduplicated(backend: Backend) {
    let (store, _db) = migrated_store(&backend).await;
    let writer = InboxWriter::spawn(store.clone(), 8, 2, std::time::Duration::from_secs(30));

    let first = writer.insert(inbox_row("msg_1")).await.expect("insert");
    let again = writer.insert(inbox_row("msg_1")).await.expect("insert");
    let mut ignored = inbox_row("msg_2");
    ignored.ignored_reason = Some("not a synced board".into());
    writer.insert(ignored).await.expect("insert");

    assert!(matches!(first, InsertOutcome::Accepted(_)));
    assert_eq!(again, InsertOutcome::Duplicate);
    let row = store
        .find_inbox_event(Side::Npd, "msg_1")
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(row.source, Side::Npd);
    assert_eq!(row.entity_kind, Some(EntityKind::Contact));
    assert_eq!(row.npd_id, Some(npd_id(7)));
    assert_eq!(row.outcome, None);
    let skipped = store
        .find_inbox_event(Side::Npd, "msg_2")
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(skipped.outcome, Some(InboxOutcome::Ignored));
    assert_eq!(store.unprocessed_count().await.expect("count"), 1);

    let mut tx = store.begin().await.expect("tx");
    let next = inbox::next_unprocessed(&mut tx, 10).await.expect("next");
    assert_eq!(next.iter().map(|r| r.id).collect::<Vec<_>>(), vec![row.id]);
    inbox::mark_processed(&mut tx, row.id, InboxOutcome::Echo, Some("own write"))
        .await
        .expect("mark");
    tx.commit().await.expect("commit");
    let done = store
        .find_inbox_event(Side::Npd, "msg_1")
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(done.outcome, Some(InboxOutcome::Echo));
    assert!(done.processed_at.is_some());
    assert_eq!(store.inbox_count().await.expect("count"), 2);
}

async fn entities_and_their_field_states_round_trip(backend: Backend) {
    let (store, _db) = migrated_store(&backend).await;
    let entity = new_entity(&store, 1).await;

    let mut tx = store.begin().await.expect("tx");
    let item = MondayItemId(5_200_000_101);
    entities::set_link(&mut tx, entity.id, Some(item), Some(BoardId(41)))
        .await
        .expect("link");
    entities::set_status(&mut tx, entity.id, EntityStatus::Failed, Some("boom"))
        .await
        .expect("status");
    entities::record_npd_write(&mut tx, entity.id, 4)
        .await
        .expect("write");
    entities::record_npd_write(&mut tx, entity.id, 2)
        .await
        .expect("an older write");
    let state = FieldState::agreed(Some("Ada".into()));
    entities::save_field(&mut tx, entity.id, "first_name", &state)
        .await
        .expect("save");
    let locked = entities::lock(&mut tx, entity.id).await.expect("lock");
    tx.commit().await.expect("commit");

    let locked = locked.expect("the row");
    assert_eq!(locked.monday_item_id, Some(item));
    assert_eq!(locked.board_id, Some(BoardId(41)));
    assert_eq!(locked.status, EntityStatus::Failed);
    assert_eq!(locked.last_error.as_deref(), Some("boom"));
    assert_eq!(locked.npd_version, Some(4), "the version never goes back");
    assert_eq!(locked.npd_echo_version, Some(2));
    let by_npd = store
        .entity_by_npd(EntityKind::Contact, npd_id(1))
        .await
        .expect("read")
        .expect("found");
    assert_eq!(by_npd.id, entity.id);
    let fields = store.entity_fields(entity.id).await.expect("fields");
    assert_eq!(
        fields,
        BTreeMap::from([("first_name".to_owned(), state.clone())])
    );
    let mut tx = store.begin().await.expect("tx");
    let by_item = entities::find_by_item(&mut tx, item).await.expect("find");
    entities::mark_deleted(&mut tx, entity.id, 9)
        .await
        .expect("delete");
    let deleted = entities::find_by_id(&mut tx, entity.id)
        .await
        .expect("find")
        .expect("row");
    tx.commit().await.expect("commit");
    assert_eq!(by_item.map(|e| e.id), Some(entity.id));
    assert_eq!(
        (deleted.status, deleted.npd_version),
        (EntityStatus::Deleted, Some(9))
    );
    assert!(deleted.deleted_at.is_some());
}

async fn claims_keep_per_entity_order_and_one_lease_per_entity(backend: Backend) {
    let (store, _db) = migrated_store(&backend).await;
    let a = new_entity(&store, 1).await;
    let b = new_entity(&store, 2).await;
    let a1 = enqueue(&store, a.id, Operation::PushItem, Priority::Live).await;
    let a2 = enqueue(&store, a.id, Operation::WriteLink, Priority::Live).await;
    let b1 = enqueue(&store, b.id, Operation::PatchNpd, Priority::Admin).await;

    let first = claim(&store, Some(Priority::Backfill)).await;

    assert_eq!(
        first.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![b1, a1],
        "the oldest open job of each entity, the admin's first"
    );
    assert!(
        first
            .iter()
            .all(|j| j.state == JobState::Leased && j.attempts == 1)
    );
    assert_eq!(first[1].target, Side::Monday);
    assert_eq!(first[1].request_id.as_deref(), Some("req-1"));
    assert!(
        claim(&store, Some(Priority::Backfill)).await.is_empty(),
        "a2 waits behind a1, which is leased"
    );
    let mut tx = store.begin().await.expect("tx");
    let token = first[1].lease_token.expect("token");
    let sent = Sent::Nothing;
    assert!(
        jobs::complete(&mut tx, a1, token, &sent)
            .await
            .expect("complete")
    );
    tx.commit().await.expect("commit");
    let next = claim(&store, Some(Priority::Backfill)).await;
    assert_eq!(next.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a2]);
}

/// A job waiting for its retry holds back its entity's later jobs to its own side only: an NPD
/// write failing for hours does not stop the entity's Monday updates (and the other way round),
/// and still only one job of an entity is leased at a time, the older of its two sides first.
async fn a_job_waiting_for_its_retry_holds_back_only_its_own_side(backend: Backend) {
    let (store, _db) = migrated_store(&backend).await;
    let a = new_entity(&store, 1).await;
    let patch = enqueue(&store, a.id, Operation::PatchNpd, Priority::Live).await;
    let push = enqueue(&store, a.id, Operation::PushItem, Priority::Live).await;
    let write_link = enqueue(&store, a.id, Operation::WriteLink, Priority::Live).await;

    let first = claim(&store, Some(Priority::Backfill)).await;
    assert_eq!(
        first.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![patch],
        "one job per entity, the older side first"
    );
    let token = first[0].lease_token.expect("token");
    let mut tx = store.begin().await.expect("tx");
    let later = now_ms() + 3_600_000;
    assert!(
        jobs::retry_later(&mut tx, patch, token, "npd timed out", later)
            .await
            .expect("retry")
    );
    tx.commit().await.expect("commit");
    let second = claim(&store, Some(Priority::Backfill)).await;
    let while_leased = claim(&store, Some(Priority::Backfill)).await;
    let mut tx = store.begin().await.expect("tx");
    let token = second[0].lease_token.expect("token");
    assert!(
        jobs::complete(&mut tx, push, token, &Sent::Nothing)
            .await
            .expect("complete")
    );
    tx.commit().await.expect("commit");
    let after = claim(&store, Some(Priority::Backfill)).await;

    assert_eq!(
        second.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![push],
        "the Monday update goes while the NPD write waits"
    );
    assert!(while_leased.is_empty(), "nothing joins the entity's lease");
    assert!(
        after.is_empty(),
        "the later NPD write ({write_link}) still waits behind the first"
    );
}

async fn ready_jobs_are_what_a_claim_would_take_and_counting_them_leases_nothing(backend: Backend) {
    let (store, _db) = migrated_store(&backend).await;
    let a = new_entity(&store, 1).await;
    let b = new_entity(&store, 2).await;
    let c = new_entity(&store, 3).await;
    let live = enqueue(&store, a.id, Operation::PushItem, Priority::Live).await;
    let _behind = enqueue(&store, a.id, Operation::ArchiveItem, Priority::Admin).await;
    let admin = enqueue(&store, b.id, Operation::ArchiveItem, Priority::Admin).await;
    let npd = enqueue(&store, c.id, Operation::PatchNpd, Priority::Live).await;
    let ready = async |side, limit, floor| {
        store
            .ready_jobs_to(side, limit, floor)
            .await
            .expect("ready")
    };

    let monday = ready(Side::Monday, 10, Some(Priority::Backfill)).await;
    let one = ready(Side::Monday, 1, Some(Priority::Backfill)).await;
    let above_live = ready(Side::Monday, 10, Some(Priority::Admin)).await;
    let spent = ready(Side::Monday, 10, None).await;
    let to_npd = ready(Side::Npd, 10, None).await;
    let claimed = claim(&store, Some(Priority::Backfill)).await;

    assert_eq!(
        monday,
        (2, Some(Priority::Admin)),
        "the entity's later job waits"
    );
    assert_eq!(
        one,
        (1, Some(Priority::Admin)),
        "the highest priority first"
    );
    assert_eq!(above_live, (1, Some(Priority::Admin)));
    assert_eq!(spent, (0, None), "no Monday job while the budget is spent");
    assert_eq!(to_npd, (1, Some(Priority::Live)));
    let mut ids: Vec<i64> = claimed.iter().map(|j| j.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![live, admin, npd], "counting leased nothing");
}

async fn the_monday_floor_holds_back_monday_jobs_below_it(backend: Backend) {
    let (store, _db) = migrated_store(&backend).await;
    let a = new_entity(&store, 1).await;
    let b = new_entity(&store, 2).await;
    let c = new_entity(&store, 3).await;
    let live = enqueue(&store, a.id, Operation::PushItem, Priority::Live).await;
    let admin = enqueue(&store, b.id, Operation::ArchiveItem, Priority::Admin).await;
    let npd = enqueue(&store, c.id, Operation::PatchNpd, Priority::Backfill).await;

    let none = claim(&store, None).await;
    let admin_only = claim(&store, Some(Priority::Admin)).await;
    let rest = claim(&store, Some(Priority::Backfill)).await;

    assert_eq!(none.iter().map(|j| j.id).collect::<Vec<_>>(), vec![npd]);
    assert_eq!(
        admin_only.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![admin]
    );
    assert_eq!(rest.iter().map(|j| j.id).collect::<Vec<_>>(), vec![live]);
}

async fn an_outcome_lands_only_under_the_current_lease(backend: Backend) {
    let (store, _db) = migrated_store(&backend).await;
    let a = new_entity(&store, 1).await;
    let id = enqueue(&store, a.id, Operation::PushItem, Priority::Live).await;
    let stale = claim(&store, Some(Priority::Backfill)).await.remove(0);
    let stale_token = stale.lease_token.expect("token");

    let mut tx = store.begin().await.expect("tx");
    assert!(
        jobs::retry_later(&mut tx, id, stale_token, "503", 0)
            .await
            .expect("retry")
    );
    tx.commit().await.expect("commit");
    let current = claim(&store, Some(Priority::Backfill)).await.remove(0);
    let mut tx = store.begin().await.expect("tx");
    let refused = jobs::bury(&mut tx, id, stale_token, "late")
        .await
        .expect("bury");
    let fenced = jobs::fenced(&mut tx, id, stale_token).await.expect("fence");
    tx.commit().await.expect("commit");

    assert!(!refused, "the stale worker's outcome is refused");
    assert!(fenced.is_none());
    assert_eq!(current.lease_token, Some(stale_token + 1));
    assert_eq!(current.attempts, 2);
    let job = store.job(id).await.expect("read").expect("job");
    assert_eq!(job.state, JobState::Leased);
    assert_eq!(job.last_error.as_deref(), Some("503"));
}

async fn frozen_payloads_dead_letters_replays_and_reaped_leases(backend: Backend) {
    let (store, _db) = migrated_store(&backend).await;
    let a = new_entity(&store, 1).await;
    let id = enqueue(&store, a.id, Operation::WriteLink, Priority::Live).await;
    let before = store.job(id).await.expect("read").expect("job");
    let job = claim(&store, Some(Priority::Backfill)).await.remove(0);
    let token = job.lease_token.expect("token");
    let frozen = JobPayload {
        force: true,
        frozen: Some(Work::WriteLink {
            monday_id: MondayItemId(9),
        }),
        write_npd_id: false,
    };

    let mut tx = store.begin().await.expect("tx");
    jobs::set_payload(&mut tx, id, &frozen)
        .await
        .expect("freeze");
    jobs::raise_priority(&mut tx, id, Priority::Admin)
        .await
        .expect("raise");
    jobs::raise_priority(&mut tx, id, Priority::Backfill)
        .await
        .expect("never lowered");
    assert!(jobs::bury(&mut tx, id, token, "gone").await.expect("bury"));
    tx.commit().await.expect("commit");
    let dead = store
        .jobs_in_state(JobState::Dead, 10)
        .await
        .expect("dead letters");
    let mut tx = store.begin().await.expect("tx");
    let replayed = jobs::replay(&mut tx, id, 3).await.expect("replay");
    let again = jobs::replay(&mut tx, id, 3).await.expect("replay twice");
    tx.commit().await.expect("commit");
    let after = store.job(id).await.expect("read").expect("job");

    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, frozen);
    assert_eq!(dead[0].priority, Priority::Admin);
    assert!(replayed && !again, "only a dead job is replayed");
    assert_eq!(after.state, JobState::Pending);
    assert_eq!(after.max_attempts, before.max_attempts + 1);
    assert_ne!(
        after.idempotency_key, before.idempotency_key,
        "a replay gets a new key"
    );
    let leased = claim(&store, Some(Priority::Backfill)).await;
    assert_eq!(leased.len(), 1);
    let expired = store
        .claim_jobs("w2", -1, 10, Some(Priority::Backfill))
        .await
        .expect("claim");
    assert!(expired.is_empty(), "the job is leased to w1");
    let released = store
        .release_lease(id, leased[0].lease_token.expect("token"))
        .await
        .expect("release");
    assert!(released);
    let short = store
        .claim_jobs("w2", -1, 10, Some(Priority::Backfill))
        .await
        .expect("claim");
    assert_eq!(short.len(), 1);
    assert_eq!(store.reap_expired_leases().await.expect("reap"), 1);
    assert_eq!(store.open_job_count().await.expect("count"), 1);
}

async fn conflicts_open_once_per_field_and_close_once(backend: Backend) {
    let (store, _db) = migrated_store(&backend).await;
    let a = new_entity(&store, 1).await;
    let values = |npd: &'static str| ConflictValues {
        base: Some("base"),
        npd: Some(npd),
        monday: Some("monday"),
    };

    let mut tx = store.begin().await.expect("tx");
    let opened = conflicts::open(&mut tx, a.id, "email", &values("a"), ConflictPolicy::Manual)
        .await
        .expect("open");
    let first = opened.id;
    let refreshed = conflicts::open(&mut tx, a.id, "email", &values("b"), ConflictPolicy::Manual)
        .await
        .expect("refresh");
    let open_count = conflicts::open_count(&mut tx, a.id).await.expect("count");
    let closed = conflicts::close(&mut tx, first, Resolution::Value, Some("x"), "admin")
        .await
        .expect("close");
    let twice = conflicts::close(&mut tx, first, Resolution::Npd, None, "admin")
        .await
        .expect("close twice");
    let row = conflicts::find(&mut tx, first)
        .await
        .expect("find")
        .expect("row");
    tx.commit().await.expect("commit");

    assert!(opened.new && !refreshed.new);
    assert_eq!(first, refreshed.id, "one open conflict per field");
    assert_eq!(open_count, 1);
    assert!(closed && !twice);
    assert_eq!(row.npd_value.as_deref(), Some("b"));
    assert_eq!(row.policy, ConflictPolicy::Manual);
    assert_eq!(row.status, ConflictStatus::Resolved);
    assert_eq!(row.resolution, Some(Resolution::Value));
    assert!(
        store
            .conflicts(ConflictStatus::Open, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store
            .conflicts(ConflictStatus::Resolved, 10)
            .await
            .expect("list")
            .len(),
        1
    );
}

async fn history_audit_and_tokens_are_kept_as_written(backend: Backend) {
    let (store, _db) = migrated_store(&backend).await;
    let a = new_entity(&store, 1).await;
    let decisions = BTreeMap::from([("email".to_owned(), "push to monday".to_owned())]);

    let mut tx = store.begin().await.expect("tx");
    for (kind, detail) in [
        (HistoryKind::Received, None),
        (
            HistoryKind::Decided,
            Some(HistoryDetail::Decisions(decisions)),
        ),
    ] {
        let entry = Entry {
            entity_id: a.id,
            inbox_event_id: Some(3),
            job_id: None,
            kind,
            reason: format!("{kind} it"),
            detail,
        };
        history::append(&mut tx, &entry).await.expect("append");
    }
    tx.commit().await.expect("commit");
    assert!(
        store
            .insert_admin_token("ops", "abc123")
            .await
            .expect("token")
    );
    let taken = store
        .insert_admin_token("ops", "def456")
        .await
        .expect("token");
    let name = store.admin_token_name("abc123").await.expect("lookup");
    let unknown = store.admin_token_name("nope").await.expect("lookup");
    store
        .audit(&AuditEntry {
            actor: "ops",
            action: "conflicts.list",
            target: None,
            request_id: Some("r-9"),
            outcome: AuditOutcome::Ok,
            detail: None,
        })
        .await
        .expect("audit");

    let rows = store.history(a.id, 10).await.expect("history");
    assert_eq!(
        rows.iter().map(|h| h.kind).collect::<Vec<_>>(),
        vec![HistoryKind::Decided, HistoryKind::Received],
        "newest first"
    );
    assert_eq!(
        rows[0].detail.as_deref(),
        Some(r#"{"email":"push to monday"}"#)
    );
    assert!(!taken, "a token name is unique");
    assert_eq!(name.as_deref(), Some("ops"));
    assert_eq!(unknown, None);
    let audit = store.audit_log(10).await.expect("audit log");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, AuditOutcome::Ok);
    assert_eq!(audit[0].request_id.as_deref(), Some("r-9"));
}

store_tests!(
    inbox_rows_round_trip_typed_and_are_deduplicated,
    entities_and_their_field_states_round_trip,
    claims_keep_per_entity_order_and_one_lease_per_entity,
    a_job_waiting_for_its_retry_holds_back_only_its_own_side,
    the_monday_floor_holds_back_monday_jobs_below_it,
    ready_jobs_are_what_a_claim_would_take_and_counting_them_leases_nothing,
    an_outcome_lands_only_under_the_current_lease,
    frozen_payloads_dead_letters_replays_and_reaped_leases,
    conflicts_open_once_per_field_and_close_once,
    history_audit_and_tokens_are_kept_as_written,
);

crate::postgres_test! {
    async fn transactions_claim_different_lanes_and_a_held_entity_key_stops_a_batch() {
        lanes_are_claimed_apart_and_entity_keys_stop_batches(Backend::postgres()).await;
    }
}

/// An NPD event for contact `n` at `version`, as ingress stores it.
fn contact_event(n: u128, version: i64) -> NewInboxEvent {
    let mut data =
        serde_json::to_value(npd_monday_gateway::demo::sample_contact(npd_id(n))).expect("json");
    data["version"] = serde_json::json!(version);
    NewInboxEvent {
        delivery_id: format!("evt_{n}_{version}"),
        entity_version: Some(version),
        payload: serde_json::json!({"type": "contact.updated", "data": data}).to_string(),
        npd_id: Some(npd_id(n)),
        ..inbox_row("unused")
    }
}

/// The first contact numbers from `from` on whose events fall in `lane` (or, with `None`, in a
/// lane other than `not`).
fn contacts_in(lane: Option<i32>, not: i32, from: u128, count: usize) -> Vec<u128> {
    (from..)
        .filter(|n| {
            let l = EntityKey::Npd(EntityKind::Contact, npd_id(*n)).lane();
            lane.map_or(l != not, |lane| l == lane)
        })
        .take(count)
        .collect()
}

async fn lanes_are_claimed_apart_and_entity_keys_stop_batches(backend: Backend) {
    // Arrange: contact a's lane holds a, b and a again; contact c is in another lane.
    let (store, db) = migrated_store(&backend).await;
    let writer = InboxWriter::spawn(store.clone(), 8, 1, std::time::Duration::from_secs(30));
    let lane = EntityKey::Npd(EntityKind::Contact, npd_id(100)).lane();
    let (a, b) = (100, contacts_in(Some(lane), -1, 101, 1)[0]);
    let c = contacts_in(None, lane, 101, 1)[0];
    for event in [
        contact_event(a, 2),
        contact_event(b, 2),
        contact_event(a, 3),
        contact_event(c, 2),
    ] {
        writer.insert(event).await.expect("insert");
    }

    // Act / assert 1: two open transactions claim different lanes, never the same rows.
    let mut first = store.begin().await.expect("tx");
    let mut second = store.begin().await.expect("tx");
    let one = inbox::claim_lanes(&mut first, 10, 1).await.expect("claim");
    let two = inbox::claim_lanes(&mut second, 10, 1).await.expect("claim");
    let lanes = |rows: &[inbox::InboxRow]| rows.iter().map(|r| r.lane).collect::<Vec<_>>();
    assert_eq!(lanes(&one), vec![lane; 3], "the oldest lane, in order");
    assert_eq!(
        lanes(&two),
        vec![EntityKey::Npd(EntityKind::Contact, npd_id(c)).lane()]
    );
    first.rollback().await.expect("rollback");
    second.rollback().await.expect("rollback");

    // Act / assert 2: with b's key held elsewhere, a batch of a's lane stops before b's event.
    let mut holder = store.begin().await.expect("tx");
    let key = [EntityKey::Npd(EntityKind::Contact, npd_id(b))];
    assert!(inbox::try_lock_keys(&mut holder, &key).await.expect("lock"));
    let settings = std::sync::Arc::new(crate::helpers::test_settings(&db.url));
    let processor = Processor::new(settings, store.clone(), OwnMondayUser::default());
    let mut processed = 0;
    while let n @ 1.. = processor.process_batch(50).await.expect("batch") {
        processed += n;
    }
    assert_eq!(
        processed, 2,
        "a's first event and c's; b's and all after it in the lane wait"
    );
    let waiting: Vec<_> = store
        .inbox_events(Side::Npd, 10)
        .await
        .expect("rows")
        .into_iter()
        .filter(|r| r.processed_at.is_none())
        .map(|r| r.delivery_id)
        .collect();
    assert_eq!(waiting, vec![format!("evt_{b}_2"), format!("evt_{a}_3")]);
    holder.rollback().await.expect("rollback");
    assert_eq!(
        processor.process_batch(50).await.expect("batch"),
        2,
        "the rest, once b is free"
    );
    assert_eq!(store.unprocessed_count().await.expect("count"), 0);
}
