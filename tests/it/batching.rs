//! Monday's budget spent like it is scarce: bursts of creates go out as batched lookups and
//! aliased mutations, one refused alias fails only its own contact, a lost answer creates nothing
//! twice, and replicas on PostgreSQL spend one shared budget.

use std::collections::BTreeMap;
use std::time::Duration;

use npd_monday_gateway::demo::{CONTACTS_BOARD, Sims, World, sample_contact};
use npd_monday_gateway::domain::entity::{EntityKind, NpdId, Side};
use npd_monday_gateway::domain::state::{EntityStatus, JobState};
use npd_monday_gateway::sim::monday::{AnswerHold, MondayCall};
use npd_monday_gateway::startup::Application;

use crate::helpers::{
    Backend, TestDatabase, created_contact, eventually, executed_count, settle_world,
};
use crate::store_tests;

store_tests!(
    a_burst_of_new_contacts_goes_out_as_a_few_batched_requests,
    a_claim_of_several_batches_looks_its_creates_up_in_one_request,
    one_refused_alias_dead_letters_only_its_own_contact,
    a_lost_batch_answer_creates_no_item_twice,
    creates_that_arrive_while_a_partial_batch_is_in_flight_wait_and_go_as_one,
    an_admin_push_does_not_wait_for_the_batch_in_flight,
    a_partial_batch_stops_waiting_for_a_request_that_hangs,
);

const SETTLE: Duration = Duration::from_secs(60);

/// One processing task: the held events are then processed in one transaction, so their jobs
/// are all ready when the dispatcher first looks (with several tasks, some might commit later
/// and go out in a second batch).
fn one_processor(s: &mut npd_monday_gateway::config::Settings) {
    s.sync.processors = 1;
}

/// Creates `n` contacts in NPD while processing and dispatch are held, so that their events meet
/// in the inbox and their jobs in the outbox: the first claim takes them all, however the
/// processing of the events was split into transactions.
async fn create_held(world: &World, n: usize, email: impl Fn(usize) -> String) -> Vec<NpdId> {
    world.wake.pause_dispatch();
    world.wake.pause_processing().await;
    let mut ids = Vec::new();
    for i in 0..n {
        let id = NpdId(uuid::Uuid::new_v4());
        let mut contact = sample_contact(id);
        contact.email = Some(email(i));
        world.npd.create_contact(contact).await;
        ids.push(id);
    }
    eventually(SETTLE, async || {
        let waiting = world.store.unprocessed_count().await.expect("count");
        if waiting >= i64::try_from(n).unwrap_or(i64::MAX) {
            Ok(())
        } else {
            Err(format!("{waiting} of {n} events in the inbox"))
        }
    })
    .await;
    world.wake.resume_processing();
    eventually(SETTLE, async || {
        let queued = world.store.jobs_in_state(JobState::Pending, 1_000).await;
        let queued = queued.expect("jobs").len();
        if queued >= n {
            Ok(())
        } else {
            Err(format!("{queued} of {n} jobs in the outbox"))
        }
    })
    .await;
    world.wake.resume_dispatch();
    ids
}

async fn a_burst_of_new_contacts_goes_out_as_a_few_batched_requests(backend: Backend) {
    // Arrange
    let db = TestDatabase::create(&backend).await;
    let world = World::start(&db.url, one_processor).await.expect("world");

    // Act: thirty new contacts at once.
    let ids = create_held(&world, 30, |i| format!("burst{i}@example.com")).await;
    settle_world(&world, SETTLE).await;

    // Assert: one item each, sent as a handful of requests.
    let items = world.monday.items(CONTACTS_BOARD);
    assert_eq!(items.len(), 30);
    for id in &ids {
        let entity = world
            .store
            .entity_by_npd(EntityKind::Contact, *id)
            .await
            .expect("read")
            .expect("entity");
        assert_eq!(entity.status, EntityStatus::Synced, "{id}");
        assert!(entity.monday_item_id.is_some());
    }
    let calls = world.monday.calls();
    let lookups = calls
        .iter()
        .filter(|c| c.has("items_page_by_column_values"))
        .count();
    let create_requests = calls.iter().filter(|c| c.has("create_item")).count();
    let monday_requests = calls.iter().filter(|c| c.operation != "me").count();
    assert!(
        create_requests <= 4 && lookups <= 4,
        "{create_requests} create requests and {lookups} lookups for 30 contacts"
    );
    assert!(
        monday_requests * 5 <= ids.len(),
        "{monday_requests} Monday requests for {} contacts",
        ids.len()
    );
    assert_eq!(executed_count(&world, "create_item"), 30);
}

async fn a_claim_of_several_batches_looks_its_creates_up_in_one_request(backend: Backend) {
    // Arrange: batches of 5, four at a time: one claim takes 20 jobs, as 4 batches.
    let db = TestDatabase::create(&backend).await;
    let world = World::start(&db.url, |s| {
        one_processor(s);
        s.monday.batch_max = 5;
        s.sync.dispatch_concurrency = 4;
    })
    .await
    .expect("world");

    // Act: twenty new contacts at once.
    let ids = create_held(&world, 20, |i| format!("claim{i}@example.com")).await;
    settle_world(&world, SETTLE).await;

    // Assert: one lookup for all twenty npd_ids, then four batched creates.
    let calls = world.monday.calls();
    let lookups: Vec<_> = calls
        .iter()
        .filter(|c| c.has("items_page_by_column_values"))
        .collect();
    assert_eq!(lookups.len(), 1, "lookups: {lookups:#?}");
    let asked = lookups[0].variables["values"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(asked, 20, "npd_ids in the one lookup");
    let create_requests = calls.iter().filter(|c| c.has("create_item")).count();
    assert_eq!(create_requests, 4);
    assert_eq!(executed_count(&world, "create_item"), 20);
    assert_eq!(world.monday.items(CONTACTS_BOARD).len(), ids.len());
}

async fn one_refused_alias_dead_letters_only_its_own_contact(backend: Backend) {
    // Arrange
    let db = TestDatabase::create(&backend).await;
    let world = World::start(&db.url, one_processor).await.expect("world");

    // Act: three new contacts, the second with an email Monday refuses.
    let ids = create_held(&world, 3, |i| match i {
        1 => "not an email".into(),
        _ => format!("ok{i}@example.com"),
    })
    .await;
    settle_world(&world, SETTLE).await;

    // Assert: only that contact is in the dead letters; the others were created once.
    let mut statuses = BTreeMap::new();
    for id in &ids {
        let entity = world
            .store
            .entity_by_npd(EntityKind::Contact, *id)
            .await
            .expect("read")
            .expect("entity");
        statuses.insert(*id, (entity.status, entity.monday_item_id.is_some()));
    }
    assert_eq!(statuses[&ids[1]], (EntityStatus::Failed, false));
    for id in [ids[0], ids[2]] {
        assert_eq!(statuses[&id], (EntityStatus::Synced, true), "{id}");
    }
    assert_eq!(world.monday.items(CONTACTS_BOARD).len(), 2);
    let dead = world
        .store
        .jobs_in_state(JobState::Dead, 10)
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let batch = world
        .monday
        .calls()
        .into_iter()
        .find(|c| c.count("create_item") == 3);
    let batch = batch.unwrap_or_else(|| {
        let calls: Vec<_> = world
            .monday
            .calls()
            .into_iter()
            .map(|c| (c.fields, c.status))
            .collect();
        panic!("one request carried the three creates: {calls:?}")
    });
    let errors = batch.response["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["path"][0], "m1");
}

async fn a_lost_batch_answer_creates_no_item_twice(backend: Backend) {
    // Arrange: the first batch is executed but its answer never reaches the gateway in time,
    // and Monday has forgotten the key by the time it retries (as after 30 minutes).
    let db = TestDatabase::create(&backend).await;
    let world = World::start(&db.url, |s| {
        one_processor(s);
        s.sync.monday_timeout_ms = 700;
    })
    .await
    .expect("world");
    let hold = world.monday.faults().hold_next_mutation_answer();

    // Act
    let ids = create_held(&world, 3, |i| format!("lost{i}@example.com")).await;
    world
        .monday
        .wait_for_call(SETTLE, |c| c.has("create_item"))
        .await
        .expect("a batch of creates reached Monday");
    // Its answer never came: the gateway timed out and will retry.
    eventually(SETTLE, async || {
        let jobs = world.store.all_jobs().await.expect("jobs");
        if jobs.iter().any(|j| j.last_error.is_some()) {
            Ok(())
        } else {
            Err("no job has seen the timeout yet".to_owned())
        }
    })
    .await;
    world.monday.faults().drop_idempotency_cache();
    hold.release();
    settle_world(&world, SETTLE).await;

    // Assert: three items, each linked to its own contact.
    assert_eq!(world.monday.items(CONTACTS_BOARD).len(), 3);
    let mut items = Vec::new();
    for id in &ids {
        let item = world
            .store
            .entity_by_npd(EntityKind::Contact, *id)
            .await
            .expect("read")
            .and_then(|e| e.monday_item_id)
            .expect("linked");
        items.push(item);
    }
    items.sort();
    items.dedup();
    assert_eq!(items.len(), 3, "one item per contact");
    assert_eq!(
        executed_count(&world, "create_item"),
        3,
        "created once each"
    );
}

/// Whether a Monday request's document or variables carry `text`.
fn carries(call: &MondayCall, text: &str) -> bool {
    call.query.contains(text) || call.variables.to_string().contains(text)
}

/// A world with one processing task whose partial Monday batches wait up to `wait_ms` for the
/// batches in flight.
async fn start_filling_for(db: &TestDatabase, wait_ms: u64) -> World {
    World::start(&db.url, |s| {
        one_processor(s);
        s.monday.batch_fill_wait_ms = wait_ms;
    })
    .await
    .expect("world")
}

/// Creates a contact in NPD whose create reaches Monday and whose answer Monday holds until the
/// returned hold is released (or dropped).
async fn a_create_in_flight(world: &World, email: &str) -> (AnswerHold, NpdId) {
    let hold = world.monday.faults().hold_next_mutation_answer();
    let id = create_one_and_queue_it(world, email).await;
    world
        .monday
        .wait_for_call(SETTLE, |c| c.has("create_item") && carries(c, email))
        .await
        .expect("the create reached Monday");
    (hold, id)
}

/// Whether the Monday job of contact `id` is still leased (its answer not yet recorded).
async fn create_still_leased(world: &World, id: NpdId) -> bool {
    let entity = world.store.entity_by_npd(EntityKind::Contact, id).await;
    let entity = entity.expect("read").expect("entity");
    let jobs = world.store.entity_jobs(entity.id, 10).await.expect("jobs");
    jobs.iter()
        .any(|j| j.target == Side::Monday && j.state == JobState::Leased)
}

/// Creates one contact in NPD and waits until its job is in the outbox (claimed or not).
async fn create_one_and_queue_it(world: &World, email: &str) -> NpdId {
    let id = NpdId(uuid::Uuid::new_v4());
    let mut contact = sample_contact(id);
    contact.email = Some(email.to_owned());
    world.npd.create_contact(contact).await;
    eventually(SETTLE, async || {
        let entity = world.store.entity_by_npd(EntityKind::Contact, id).await;
        let Some(entity) = entity.expect("read") else {
            return Err(format!("{id} not processed yet"));
        };
        let jobs = world.store.entity_jobs(entity.id, 10).await.expect("jobs");
        if jobs.is_empty() {
            Err(format!("{id} has no job yet"))
        } else {
            Ok(())
        }
    })
    .await;
    id
}

async fn creates_that_arrive_while_a_partial_batch_is_in_flight_wait_and_go_as_one(
    backend: Backend,
) {
    // Arrange: one create is in flight, and Monday holds its answer; partial batches wait for it
    // (up to a minute, longer than the test takes).
    let db = TestDatabase::create(&backend).await;
    let world = start_filling_for(&db, 60_000).await;
    let (hold, _first) = a_create_in_flight(&world, "first@example.com").await;

    // Act: six more contacts trickle in, one job at a time, while it is in flight.
    for i in 0..6 {
        create_one_and_queue_it(&world, &format!("trickle{i}@example.com")).await;
    }
    let pending = world.store.jobs_in_state(JobState::Pending, 100).await;
    let pending: Vec<_> = pending
        .expect("jobs")
        .into_iter()
        .filter(|j| j.target == Side::Monday)
        .map(|j| j.operation)
        .collect();
    hold.release();
    settle_world(&world, SETTLE).await;

    // Assert: they waited for the batch in flight and then went as one request.
    assert_eq!(
        pending.len(),
        6,
        "waiting while a partial batch is in flight: {pending:?}"
    );
    let creates: Vec<usize> = world
        .monday
        .calls()
        .iter()
        .filter(|c| c.has("create_item"))
        .map(|c| c.count("create_item"))
        .collect();
    assert_eq!(creates, vec![1, 6], "create_item mutations per request");
    assert_eq!(world.monday.items(CONTACTS_BOARD).len(), 7);
    assert_eq!(executed_count(&world, "create_item"), 7);
}

async fn an_admin_push_does_not_wait_for_the_batch_in_flight(backend: Backend) {
    // Arrange: a synced contact, and a new one whose create is in flight (its answer held; the
    // default 30 s Monday timeout outlasts the test's wait), which partial batches wait for.
    let db = TestDatabase::create(&backend).await;
    let world = start_filling_for(&db, 60_000).await;
    let (synced, item) = created_contact(&world).await;
    world.monday.clear_calls();
    let (hold, in_flight) = a_create_in_flight(&world, "inflight@example.com").await;

    // Act: an admin pushes the synced contact.
    let response = world
        .admin_post(&format!("/api/v1/contacts/{synced}/sync-to-monday"))
        .await
        .expect("post");
    assert!(response.status().is_success(), "{}", response.status());

    // Assert: the push reaches Monday while the create's answer is still held.
    let pushed = world
        .monday
        .wait_for_call(Duration::from_secs(20), |c| {
            c.has("change_multiple_column_values") && carries(c, &item.to_string())
        })
        .await;
    let held = create_still_leased(&world, in_flight).await;
    hold.release();
    assert!(
        pushed.is_some(),
        "the admin push waited for the batch in flight"
    );
    assert!(
        held,
        "the held create is still in flight when the push lands"
    );
    settle_world(&world, SETTLE).await;
}

async fn a_partial_batch_stops_waiting_for_a_request_that_hangs(backend: Backend) {
    // Arrange: a create whose answer Monday holds (the 30 s timeout outlasts the test's wait),
    // and partial batches that wait at most 200 ms for it.
    let db = TestDatabase::create(&backend).await;
    let world = start_filling_for(&db, 200).await;
    let (hold, hung) = a_create_in_flight(&world, "hangs@example.com").await;

    // Act
    create_one_and_queue_it(&world, "next@example.com").await;

    // Assert: the next create goes while the first still hangs.
    let second = world
        .monday
        .wait_for_call(Duration::from_secs(20), |c| {
            c.has("create_item") && carries(c, "next@example.com")
        })
        .await;
    let held = create_still_leased(&world, hung).await;
    hold.release();
    assert!(
        second.is_some(),
        "the second create waited for the hung one"
    );
    assert!(held, "the first create is still in flight");
    settle_world(&world, SETTLE).await;
    assert_eq!(world.monday.items(CONTACTS_BOARD).len(), 2);
}

crate::postgres_test! {
async fn three_replicas_on_postgres_spend_one_minute_budget() {
    // Arrange: three gateways on one database, a budget of 10 requests a minute (live sync: 8),
    // one mutation per request, and twelve new contacts: 24 requests wanted.
    let db = TestDatabase::create(&Backend::postgres()).await;
    let sims = Sims::start().await.expect("sims");
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let mut s = sims.settings(&db.url);
        s.monday.requests_per_minute = 10;
        s.monday.batch_max = 1;
        let app = Application::build(s).await.expect("replica");
        let addr = app.local_addr().expect("addr");
        let stop = app.shutdown_token();
        replicas.push((addr, stop, tokio::spawn(app.run_until_stopped())));
    }
    let (first, _, _) = &replicas[0];
    sims.deliver_to(&format!("http://{first}"), &format!("http://{first}"));
    let store = npd_monday_gateway::ledger::Store::connect(&sims.settings(&db.url).database)
        .await
        .expect("store");

    // Act
    for _ in 0..12 {
        sims.npd
            .create_contact(sample_contact(NpdId(uuid::Uuid::new_v4())))
            .await;
    }
    // The replicas spend what the minute allows, then hold back: wait for the shared budget to
    // say the live share is spent.
    let spent = eventually(SETTLE, async || {
        let state = store.monday_budget_state().await.expect("budget");
        if state.minute_requests >= 8 {
            Ok(state.minute_requests)
        } else {
            Err(format!("{} of 8 requests spent", state.minute_requests))
        }
    })
    .await;

    // Assert: Monday saw no more than the shared budget, however many replicas sent.
    let sent = sims
        .monday
        .calls()
        .iter()
        .filter(|c| c.operation != "me")
        .count();
    assert_eq!(spent, 8, "the live share, not three of them");
    assert!(sent <= 8, "{sent} requests in the first minute");
    assert!(
        sims.monday.items(CONTACTS_BOARD).len() < 12,
        "the rest waits for the next minute"
    );
    for (_, stop, task) in replicas {
        stop.cancel();
        let _ = task.await;
    }
}
}
