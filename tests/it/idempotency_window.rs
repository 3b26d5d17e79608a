//! T14 (RELIABILITY.md (c)): the idempotency window exceeded. A create runs on Monday but its
//! answer never reaches the gateway (held past the client's timeout); Monday's key expires (the
//! simulator forgets it, as 30 minutes later); the retry arrives with the old key, which no
//! longer protects anything. The gateway's clock cannot be driven, so the retry is made to come
//! after the expiry by expiring the key before the first attempt gives up. The
//! gateway must reconcile (the `npd_id` lookup) before creating: one item, linked, no second
//! `create_item` executed.

use std::time::{Duration, Instant};

use npd_monday_gateway::demo::{CONTACTS_BOARD, World, sample_contact};
use npd_monday_gateway::domain::entity::{EntityKind, NpdId};
use npd_monday_gateway::domain::job::Operation;
use npd_monday_gateway::domain::state::EntityStatus;
use npd_monday_gateway::sim::monday::MondayCall;

use crate::helpers::{Backend, TestDatabase, eventually, executed_count, settle_world};
use crate::store_tests;

store_tests!(a_retry_after_the_idempotency_window_creates_no_second_item);

const SETTLE: Duration = Duration::from_secs(60);

async fn a_retry_after_the_idempotency_window_creates_no_second_item(backend: Backend) {
    // Arrange: one mutation per request; the create's answer is held past the client's timeout.
    let db = TestDatabase::create(&backend).await;
    let world = World::start(&db.url, |s| {
        s.sync.monday_timeout_ms = 700;
        s.monday.batch_max = 1;
    })
    .await
    .expect("world");
    let hold = world.monday.faults().hold_next_mutation_answer();
    // No create_pulse webhook either: the link must come from the gateway's own lookup.
    world.monday.faults().set_webhooks_enabled(false);

    // Act: a new NPD contact; its create executes on Monday and the answer is held.
    let id = NpdId(uuid::Uuid::new_v4());
    world.npd.create_contact(sample_contact(id)).await;
    let create = world
        .monday
        .wait_for_call(SETTLE, |c| c.has("create_item"))
        .await
        .expect("the create reached Monday");
    // The 30 minutes pass while the answer is on its way: the key expires (the held answer will
    // not be cached either). Every retry comes after this, since none starts before the first
    // attempt gave up.
    world.monday.faults().expire_idempotency_keys();
    let expired_at = Instant::now();
    eventually(SETTLE, async || {
        let jobs = world.store.all_jobs().await.expect("jobs");
        match jobs.iter().find(|j| j.last_error.is_some()) {
            Some(_) => Ok(()),
            None => Err("no job has seen the timeout yet".to_owned()),
        }
    })
    .await;
    // The answer is lost: it goes out to nobody.
    hold.release();
    settle_world(&world, SETTLE).await;

    // Assert: the retry came after the window and found the item instead of creating another.
    let calls = world.monday.calls();
    let push = world
        .store
        .all_jobs()
        .await
        .expect("jobs")
        .into_iter()
        .find(|j| j.operation == Operation::PushItem)
        .expect("the push job");
    assert!(push.attempts >= 2, "retried: {push:?}");
    let after: Vec<&MondayCall> = calls.iter().filter(|c| c.at > expired_at).collect();
    assert!(
        after.iter().any(|c| c.has("items_page_by_column_values")),
        "the retry looked the npd_id up after the key expired: {:?}",
        after.iter().map(|c| &c.fields).collect::<Vec<_>>()
    );
    assert!(
        !calls.iter().any(|c| c.replayed),
        "an answer came from the idempotency cache: the window was not exceeded"
    );
    let items = world.monday.items(CONTACTS_BOARD);
    assert_eq!(items.len(), 1, "{items:?}");
    let entity = world
        .store
        .entity_by_npd(EntityKind::Contact, id)
        .await
        .expect("read")
        .expect("entity");
    assert_eq!(
        entity.monday_item_id,
        Some(items[0].id),
        "linked to that item"
    );
    assert_eq!(entity.status, EntityStatus::Synced);
    assert_eq!(executed_count(&world, "create_item"), 1, "created once");
    assert!(create.idempotency_key.is_some(), "the create carried a key");
}
