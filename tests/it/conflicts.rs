//! The three-way merge end to end: concurrent edits under each policy, merges of different
//! fields, manual conflicts settled through the API, ordering of shuffled and duplicated
//! deliveries, and coalescing of bursts.

use std::collections::BTreeMap;
use std::time::Duration;

use npd_monday_gateway::demo::{CONTACTS_BOARD, World, sample_contact};
use npd_monday_gateway::domain::entity::Side;
use npd_monday_gateway::domain::entity::{EntityKind, MondayItemId, NpdId};
use npd_monday_gateway::domain::reconcile::ConflictPolicy;
use npd_monday_gateway::domain::state::{ConflictStatus, InboxOutcome};
use npd_monday_gateway::sim::npd::EmittedEvent;
use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{
    self, Backend, TestDatabase, created_contact, get_json, post_json, settle_world, wait_until,
};
use crate::store_tests;

store_tests!(
    concurrent_edits_of_one_field_follow_each_policy,
    edits_of_different_fields_on_both_sides_merge_without_conflict,
    a_manual_conflict_waits_for_an_admin_and_the_resolution_reaches_the_other_side,
    an_older_npd_version_is_stale_and_changes_nothing,
    shuffled_and_duplicated_versions_end_at_the_newest_and_never_go_back,
    a_burst_of_updates_while_monday_is_slow_coalesces,
);

const SETTLE: Duration = Duration::from_secs(60);

async fn world_with(backend: &Backend, policy: ConflictPolicy) -> (World, TestDatabase) {
    helpers::world_with(backend, |s| s.conflicts.default = policy).await
}

fn monday_email(world: &World, item: MondayItemId) -> Option<String> {
    world.monday.item(item).and_then(|i| {
        i.column_values
            .get("email")
            .and_then(|v| v["email"].as_str().map(str::to_owned))
    })
}

fn email(address: &str) -> Value {
    json!({"email": address, "text": address})
}

/// When NPD says an edit was made (its event's `updated_at`).
fn npd_edit_time(event: &EmittedEvent) -> OffsetDateTime {
    let at = event.body["data"]["updated_at"]
        .as_str()
        .expect("updated_at");
    OffsetDateTime::parse(at, &Rfc3339).expect("RFC 3339")
}

/// When Monday says its last edit was made (the `changedAt` of its last webhook).
fn monday_edit_time(world: &World) -> OffsetDateTime {
    let webhooks = world.monday.webhooks();
    let last = webhooks.last().expect("a webhook was sent");
    let seconds = last.body["event"]["changedAt"].as_f64().expect("changedAt");
    OffsetDateTime::from_unix_timestamp_nanos((seconds * 1e9) as i128).expect("a time")
}

/// Waits until the clock is a millisecond (the precision the policy compares at) past `at`.
async fn clock_past(at: OffsetDateTime) {
    let later = at + time::Duration::milliseconds(1);
    wait_until(
        Duration::from_secs(5),
        "the clock passes the first edit",
        async || OffsetDateTime::now_utc() >= later,
    )
    .await;
}

async fn concurrent_edits_of_one_field_follow_each_policy(backend: Backend) {
    // (policy, who edits last, the value both sides must end with)
    let cases = [
        (ConflictPolicy::NpdWins, "monday", "npd@example.com"),
        (ConflictPolicy::MondayWins, "npd", "monday@example.com"),
        (ConflictPolicy::LatestWins, "monday", "monday@example.com"),
        (ConflictPolicy::LatestWins, "npd", "npd@example.com"),
    ];
    for (policy, last, expected) in cases {
        let (world, _db) = world_with(&backend, policy).await;
        let (id, item) = created_contact(&world).await;
        world.wake.pause_processing();

        // Both sides change the same field before the gateway looks at either; the second edit
        // waits until the clock has passed the first one's timestamp, so it is the later one.
        if last == "monday" {
            let first = world
                .npd
                .update_contact(id, |c| c.email = Some("npd@example.com".into()))
                .await;
            clock_past(npd_edit_time(&first)).await;
            world
                .monday
                .user_change_column(item, "email", email("monday@example.com"))
                .await;
        } else {
            world
                .monday
                .user_change_column(item, "email", email("monday@example.com"))
                .await;
            clock_past(monday_edit_time(&world)).await;
            world
                .npd
                .update_contact(id, |c| c.email = Some("npd@example.com".into()))
                .await;
        }
        world.wake.resume_processing();
        settle_world(&world, SETTLE).await;

        let npd = world.npd.contact(id).and_then(|c| c.email);
        assert_eq!(
            npd.as_deref(),
            Some(expected),
            "{policy} ({last} last): NPD"
        );
        assert_eq!(
            monday_email(&world, item).as_deref(),
            Some(expected),
            "{policy} ({last} last): Monday"
        );
        let open: Value = world
            .admin_get("/api/v1/conflicts?status=open")
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(
            open["conflicts"],
            json!([]),
            "{policy}: no conflict is left open"
        );
        world.stop().await;
    }
}

async fn edits_of_different_fields_on_both_sides_merge_without_conflict(backend: Backend) {
    let (world, _db) = world_with(&backend, ConflictPolicy::Manual).await;
    let (id, item) = created_contact(&world).await;
    world.wake.pause_processing();

    world
        .npd
        .update_contact(id, |c| c.role_title = Some("Countess".into()))
        .await;
    world
        .monday
        .user_change_column(item, "email", email("ada@analytical.example"))
        .await;
    world.wake.resume_processing();
    settle_world(&world, SETTLE).await;

    let contact = world.npd.contact(id).expect("contact");
    assert_eq!(contact.email.as_deref(), Some("ada@analytical.example"));
    assert_eq!(contact.role_title.as_deref(), Some("Countess"));
    let monday = world.monday.item(item).expect("item");
    assert_eq!(monday.column_values["role_title"], json!("Countess"));
    assert_eq!(
        monday_email(&world, item).as_deref(),
        Some("ada@analytical.example")
    );
    assert!(
        world
            .store
            .conflicts(ConflictStatus::Open, 10)
            .await
            .expect("conflicts")
            .is_empty()
    );
}

async fn a_manual_conflict_waits_for_an_admin_and_the_resolution_reaches_the_other_side(
    backend: Backend,
) {
    let (world, _db) = world_with(&backend, ConflictPolicy::Manual).await;
    let (id, item) = created_contact(&world).await;
    world.wake.pause_processing();
    world
        .npd
        .update_contact(id, |c| {
            c.email = Some("npd@example.com".into());
            c.phone = Some("+12025550169".into());
        })
        .await;
    world
        .monday
        .user_change_column(item, "email", email("monday@example.com"))
        .await;
    world.wake.resume_processing();
    settle_world(&world, SETTLE).await;

    // Neither side was written for the field; the other field still synced.
    assert_eq!(
        world.npd.contact(id).and_then(|c| c.email).as_deref(),
        Some("npd@example.com")
    );
    assert_eq!(
        monday_email(&world, item).as_deref(),
        Some("monday@example.com")
    );
    let phone = world.monday.item(item).expect("item").column_values["phone"]["phone"].clone();
    assert_eq!(phone, json!("+12025550169"), "the other field still syncs");
    let open = get_json(&world, "/api/v1/conflicts?status=open").await;
    let conflicts = open["conflicts"].as_array().cloned().unwrap_or_default();
    assert_eq!(conflicts.len(), 1, "{open}");
    assert_eq!(conflicts[0]["field"], json!("email"));
    assert_eq!(conflicts[0]["npd"], json!("npd@example.com"));
    assert_eq!(conflicts[0]["monday"], json!("monday@example.com"));
    let status = get_json(&world, &format!("/api/v1/contacts/{id}/sync")).await;
    assert_eq!(status["status"], json!("conflict"));
    assert_eq!(status["open_conflicts"].as_array().map(Vec::len), Some(1));

    // The admin takes Monday's value: it reaches NPD, and the conflict closes.
    let resolve = format!("/api/v1/conflicts/{}/resolve", conflicts[0]["id"]);
    assert_eq!(
        post_json(&world, &resolve, &json!({"take": "everyone"})).await,
        400
    );
    assert_eq!(
        post_json(&world, &resolve, &json!({"take": "monday"})).await,
        200
    );
    settle_world(&world, SETTLE).await;
    assert_eq!(
        world.npd.contact(id).and_then(|c| c.email).as_deref(),
        Some("monday@example.com")
    );
    assert_eq!(
        monday_email(&world, item).as_deref(),
        Some("monday@example.com")
    );
    let open = get_json(&world, "/api/v1/conflicts?status=open").await;
    assert_eq!(open["conflicts"], json!([]));
    assert_eq!(
        post_json(&world, &resolve, &json!({"take": "npd"})).await,
        409,
        "a resolved conflict cannot be resolved again"
    );
    an_admins_own_value_settles_a_second_conflict(&world, id, item).await;
}

/// A second conflict settled with an admin's own value goes to both sides, trimmed, and the
/// history says who resolved it.
async fn an_admins_own_value_settles_a_second_conflict(
    world: &World,
    id: NpdId,
    item: MondayItemId,
) {
    world.wake.pause_processing();
    world
        .npd
        .update_contact(id, |c| c.role_title = Some("Analyst".into()))
        .await;
    world
        .monday
        .user_change_column(item, "role_title", json!("Programmer"))
        .await;
    world.wake.resume_processing();
    settle_world(world, SETTLE).await;
    let open = world
        .store
        .conflicts(ConflictStatus::Open, 10)
        .await
        .expect("conflicts");
    assert_eq!(open.len(), 1);
    let resolve = format!("/api/v1/conflicts/{}/resolve", open[0].id);
    let value = json!({"value": "  First Programmer "});
    assert_eq!(post_json(world, &resolve, &value).await, 200);
    settle_world(world, SETTLE).await;
    assert_eq!(
        world.npd.contact(id).and_then(|c| c.role_title).as_deref(),
        Some("First Programmer")
    );
    assert_eq!(
        world.monday.item(item).expect("item").column_values["role_title"],
        json!("First Programmer")
    );
    let status = get_json(world, &format!("/api/v1/contacts/{id}/sync")).await;
    let reasons: Vec<&str> = status["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("resolved by bootstrap")),
        "{reasons:?}"
    );
}

async fn an_older_npd_version_is_stale_and_changes_nothing(backend: Backend) {
    let (world, _db) = world_with(&backend, ConflictPolicy::LatestWins).await;
    let (id, _item) = created_contact(&world).await;
    world
        .npd
        .update_contact(id, |c| c.role_title = Some("Countess".into()))
        .await;
    settle_world(&world, SETTLE).await;
    world.monday.clear_calls();

    // A late delivery of version 1 with another value.
    let mut old = serde_json::to_value(sample_contact(id)).expect("json");
    old["role_title"] = json!("Apprentice");
    let status = world
        .npd
        .send_event(
            "msg_late_v1",
            &json!({"type": "contact.updated", "timestamp": "2026-11-26T10:00:00Z", "data": old}),
        )
        .await;
    settle_world(&world, SETTLE).await;

    assert_eq!(status, Some(202));
    let row = world
        .store
        .find_inbox_event(Side::Npd, "msg_late_v1")
        .await
        .expect("q")
        .expect("stored");
    assert_eq!(row.outcome, Some(InboxOutcome::Stale));
    assert!(
        world.monday.calls().is_empty(),
        "a stale version wrote to Monday"
    );
}

async fn shuffled_and_duplicated_versions_end_at_the_newest_and_never_go_back(backend: Backend) {
    const CONTACTS: usize = 50;
    const UPDATES: i64 = 40;
    let (world, _db) = world_with(&backend, ConflictPolicy::LatestWins).await;
    let mut contacts = Vec::new();
    for _ in 0..CONTACTS {
        let id = NpdId(uuid::Uuid::new_v4());
        world.npd.create_contact(sample_contact(id)).await;
        contacts.push(id);
    }
    settle_world(&world, SETTLE).await;
    world.monday.clear_calls();

    // Versions 2..=41 of each contact, each with its own role_title, shuffled, 10% sent twice.
    send_all(&world, shuffled_versions(&contacts, UPDATES)).await;
    settle_world(&world, SETTLE).await;

    // Monday ends at the newest value of every contact, and never wrote an older one after a newer.
    let newest = format!("v{:02}", UPDATES + 1);
    let written = helpers::column_writes(&world.monday, "role_title");
    for id in &contacts {
        let entity = world
            .store
            .entity_by_npd(EntityKind::Contact, *id)
            .await
            .expect("q")
            .expect("entity");
        let item: MondayItemId = entity.monday_item_id.expect("linked");
        if world.monday.item(item).expect("item").column_values["role_title"] != json!(newest) {
            print_entity(&world, *id, item).await;
        }
        assert_eq!(
            world.monday.item(item).expect("item").column_values["role_title"],
            json!(newest),
            "contact {id}"
        );
        let sequence = written.get(&item.to_string()).cloned().unwrap_or_default();
        let mut sorted = sequence.clone();
        sorted.sort();
        assert_eq!(
            sequence, sorted,
            "contact {id}: an older value was written after a newer one"
        );
        assert_eq!(entity.npd_version, Some(UPDATES + 1));
    }
    let total: usize = written.values().map(Vec::len).sum();
    assert!(
        total < CONTACTS * UPDATES as usize,
        "{total} writes for {} updates: no coalescing",
        CONTACTS * UPDATES as usize
    );
    assert_eq!(
        world.monday.items(CONTACTS_BOARD).len(),
        CONTACTS,
        "no duplicate items"
    );
    print_outcomes(&world, total).await;
}

/// Versions 2..=updates+1 of each contact (NPD's `updated_at` moving forward with each, after
/// the create's), each with its own role_title, shuffled, 10% of them twice.
pub(crate) fn shuffled_versions(contacts: &[NpdId], updates: i64) -> Vec<(String, Value)> {
    let start = time::OffsetDateTime::now_utc();
    let mut deliveries = Vec::new();
    for id in contacts {
        for version in 2..=updates + 1 {
            let mut data = serde_json::to_value(sample_contact(*id)).expect("json");
            data["version"] = json!(version);
            data["role_title"] = json!(format!("v{version:02}"));
            // NPD's updated_at moves forward with every version (after the create's).
            let at = start + time::Duration::seconds(version);
            data["updated_at"] = json!(
                at.format(&time::format_description::well_known::Rfc3339)
                    .expect("format")
            );
            let body = json!({"type": "contact.updated", "timestamp": "2026-11-26T10:00:00Z", "data": data});
            deliveries.push((format!("evt_{id}_{version}"), body));
        }
    }
    let mut rng = rand::rng();
    let duplicates: Vec<_> = deliveries
        .choose_multiple(&mut rng, deliveries.len() / 10)
        .cloned()
        .collect();
    deliveries.extend(duplicates);
    deliveries.shuffle(&mut rng);
    deliveries
}

/// Sends the signed deliveries from 8 senders at once; NPD's simulator signs each.
async fn send_all(world: &World, deliveries: Vec<(String, Value)>) {
    let mut sends = tokio::task::JoinSet::new();
    for chunk in deliveries.chunks(deliveries.len().div_ceil(8)) {
        let npd = world.npd.clone();
        let chunk = chunk.to_vec();
        sends.spawn(async move {
            for (id, body) in chunk {
                assert_eq!(npd.send_event(&id, &body).await, Some(202));
            }
        });
    }
    while let Some(done) = sends.join_next().await {
        done.expect("sender");
    }
}

/// Prints an entity's sync status, Monday calls and webhooks, for a failing assertion.
async fn print_entity(world: &World, id: NpdId, item: MondayItemId) {
    let status = get_json(world, &format!("/api/v1/contacts/{id}/sync")).await;
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&status).unwrap_or_default()
    );
    let calls: Vec<_> = world
        .monday
        .calls()
        .into_iter()
        .filter(|c| c.variables.to_string().contains(&item.to_string()))
        .map(|c| (c.operation, c.variables, c.status, c.replayed))
        .collect();
    eprintln!("{calls:#?}");
    let hooks: Vec<_> = world
        .monday
        .webhooks()
        .into_iter()
        .filter(|w| w.body.to_string().contains(&item.to_string()))
        .map(|w| w.body)
        .collect();
    eprintln!("{hooks:#?}");
}

/// Every NPD event is processed; prints how many ended in each outcome.
async fn print_outcomes(world: &World, writes: usize) {
    let outcomes = world
        .store
        .inbox_events(Side::Npd, 100_000)
        .await
        .expect("inbox");
    assert!(outcomes.iter().all(|r| r.processed_at.is_some()));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &outcomes {
        *counts
            .entry(r.outcome.map(|o| o.to_string()).unwrap_or_default())
            .or_default() += 1;
    }
    eprintln!("outcomes: {counts:?}; Monday writes of role_title: {writes}");
}

async fn a_burst_of_updates_while_monday_is_slow_coalesces(backend: Backend) {
    let (world, _db) = world_with(&backend, ConflictPolicy::LatestWins).await;
    let (id, item) = created_contact(&world).await;
    world.monday.clear_calls();
    world
        .monday
        .faults()
        .set_latency(Duration::from_millis(400));

    for n in 1..=20 {
        world
            .npd
            .update_contact(id, |c| c.notes = Some(format!("note {n:02}")))
            .await;
    }
    settle_world(&world, SETTLE).await;

    let changes = world
        .monday
        .calls()
        .iter()
        .filter(|c| c.operation == "change_multiple_column_values")
        .count();
    assert!(changes <= 5, "{changes} mutations for 20 updates");
    assert_eq!(
        world.monday.item(item).expect("item").column_values["notes"],
        json!({"text": "note 20"})
    );
}
