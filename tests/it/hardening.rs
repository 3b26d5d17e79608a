//! Defects found by using the gateway as a user or an attacker would, each pinned by a test that
//! failed before its fix: slow Monday under `?wait=true`, skewed NPD clocks, legacy Monday
//! deliveries, dead letters that name their entity and page, Monday ingest waking processing,
//! `create_in_npd` and the item's npd_id column, `check-config`'s exit codes.

use std::time::{Duration, Instant};

use npd_monday_gateway::demo::{CONTACTS_BOARD, World};
use npd_monday_gateway::domain::entity::{EntityKind, NpdId, Side};
use npd_monday_gateway::domain::state::InboxOutcome;
use serde_json::{Map, Value, json};

use crate::helpers::{
    Backend, TestApp, check_config, contact_monday_refuses, created_contact, eventually, fixture,
    settle_world, world_with,
};
use crate::store_tests;

store_tests!(
    a_waiting_push_answers_pending_before_the_request_timeout_when_monday_is_slow,
    an_npd_event_with_a_higher_version_but_an_older_clock_is_applied,
    a_legacy_monday_delivery_without_trigger_uuid_is_accepted_once,
    dead_letters_name_their_entity_and_page_with_a_cursor,
    a_monday_edit_is_processed_without_waiting_for_the_poll,
    a_contact_created_in_npd_from_monday_gets_its_npd_id_column_written,
    an_item_naming_an_npd_id_the_ledger_does_not_know_is_linked_not_created_again,
);

const SETTLE: Duration = Duration::from_secs(30);

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("json")
}

async fn a_waiting_push_answers_pending_before_the_request_timeout_when_monday_is_slow(
    backend: Backend,
) {
    // Arrange: a 3 s request timeout, and a Monday that takes 10 s to answer.
    let (world, _db) = world_with(&backend, |s| s.http.request_timeout_ms = 3_000).await;
    let (id, _item) = created_contact(&world).await;
    world.monday.faults().set_latency(Duration::from_secs(10));

    // Act
    let started = Instant::now();
    let response = world
        .admin_post(&format!("/api/v1/contacts/{id}/sync-to-monday?wait=true"))
        .await
        .expect("post");

    // Assert: 200 with outcome pending, before the timeout would have answered 408.
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let body = json_of(response).await;
    assert_eq!(body["outcome"], json!("pending"), "{body}");
    assert_eq!(body["contact_id"], json!(id.to_string()));
    world.monday.faults().set_latency(Duration::ZERO);
}

async fn an_npd_event_with_a_higher_version_but_an_older_clock_is_applied(backend: Backend) {
    // Arrange: a synced contact; NPD's next app server runs an hour behind.
    let (world, _db) = world_with(&backend, |_| {}).await;
    let (id, item) = created_contact(&world).await;
    let current = world.npd.contact(id).expect("in NPD");
    let mut data = serde_json::to_value(&current).expect("snapshot json");
    data["version"] = json!(current.version + 1);
    data["role_title"] = json!("Countess of Lovelace");
    data["updated_at"] = json!("2020-01-01T00:00:00Z");
    let event =
        json!({"type": "contact.updated", "timestamp": "2020-01-01T00:00:00Z", "data": data});

    // Act
    let status = world.npd.send_event("msg_skewed_clock", &event).await;
    settle_world(&world, SETTLE).await;

    // Assert: the higher version wins despite its older timestamp.
    assert_eq!(status, Some(202));
    let row = world
        .store
        .find_inbox_event(Side::Npd, "msg_skewed_clock")
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(
        row.outcome,
        Some(InboxOutcome::Applied),
        "{:?}",
        row.outcome_detail
    );
    let on_monday = world.monday.item(item).expect("item");
    assert_eq!(
        on_monday.column_values.get("role_title"),
        Some(&json!("Countess of Lovelace"))
    );
}

async fn a_legacy_monday_delivery_without_trigger_uuid_is_accepted_once(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(&backend).await;
    let body = fixture("monday/update_column_value_legacy_without_trigger_uuid.json");

    // Act: delivered, then redelivered with the same bytes.
    let first = app.post_monday_signed(&body).await;
    let again = app.post_monday_signed(&body).await;

    // Assert: 200 both times (Monday would retry a 400 for 30 minutes), stored once.
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(again.status().as_u16(), 200);
    let rows = app
        .store
        .inbox_events(Side::Monday, 10)
        .await
        .expect("inbox");
    assert_eq!(rows.len(), 1, "deduplicated on the body's hash");
    assert!(
        rows[0].delivery_id.starts_with("sha256:"),
        "{}",
        rows[0].delivery_id
    );
}

async fn dead_letters_name_their_entity_and_page_with_a_cursor(backend: Backend) {
    // Arrange: two contacts whose creates Monday refuses, one linked contact whose update it refuses.
    let (world, _db) = world_with(&backend, |_| {}).await;
    let (linked, item) = created_contact(&world).await;
    let mut unlinked = Vec::new();
    for _ in 0..2 {
        unlinked.push(contact_monday_refuses(&world).await);
    }
    world
        .npd
        .update_contact(linked, |c| c.email = Some("still-not-an-email".into()))
        .await;
    settle_world(&world, SETTLE).await;

    // Act: pages of two.
    let first = json_of(
        world
            .admin_get("/api/v1/dead-letters?limit=2")
            .await
            .expect("get"),
    )
    .await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = json_of(
        world
            .admin_get(&format!("/api/v1/dead-letters?limit=2&cursor={cursor}"))
            .await
            .expect("get"),
    )
    .await;

    // Assert
    let letters: Vec<Value> = [&first, &second]
        .iter()
        .flat_map(|p| p["dead_letters"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        first["dead_letters"].as_array().map(Vec::len),
        Some(2),
        "{first}"
    );
    assert_eq!(second["next_cursor"], Value::Null, "{second}");
    assert_eq!(letters.len(), 3, "{letters:?}");
    for letter in &letters {
        assert_eq!(letter["kind"], json!("contact"), "{letter}");
    }
    let of = |id: NpdId| {
        letters
            .iter()
            .find(|l| l["npd_id"] == json!(id.to_string()))
    };
    assert_eq!(
        of(linked).expect("linked")["monday_id"],
        json!(item.to_string())
    );
    for id in unlinked {
        assert_eq!(of(id).expect("unlinked")["monday_id"], Value::Null);
    }
    let bad = world
        .admin_get("/api/v1/dead-letters?limit=501")
        .await
        .expect("get");
    assert_eq!(bad.status().as_u16(), 400);
}

async fn a_monday_edit_is_processed_without_waiting_for_the_poll(backend: Backend) {
    // Arrange: workers that poll only every 30 s; only being woken makes them quick.
    let (world, _db) = world_with(&backend, |s| s.sync.poll_interval_ms = 30_000).await;
    let (_id, item) = created_contact(&world).await;
    let before = world
        .store
        .inbox_events(Side::Monday, 10_000)
        .await
        .expect("inbox")
        .len();

    // Act
    world
        .monday
        .user_change_column(item, "role_title", json!("Analyst"))
        .await;

    // Assert: the delivery is processed within seconds, not at the next poll.
    eventually(Duration::from_secs(10), async || {
        let rows = world
            .store
            .inbox_events(Side::Monday, 10_000)
            .await
            .map_err(|e| e.to_string())?;
        match rows.get(before) {
            Some(row) if row.processed_at.is_some() => Ok(()),
            Some(_) => Err("the Monday edit waits for the poll".to_owned()),
            None => Err("the Monday edit is not stored yet".to_owned()),
        }
    })
    .await;
}

/// The id the item's npd_id column holds.
fn npd_id_column(
    world: &World,
    item: npd_monday_gateway::domain::entity::MondayItemId,
) -> Option<String> {
    world
        .monday
        .item(item)
        .and_then(|i| i.column_values.get("npd_id").cloned())
        .and_then(|v| v.as_str().map(str::to_owned))
}

async fn a_contact_created_in_npd_from_monday_gets_its_npd_id_column_written(backend: Backend) {
    // Arrange
    let (world, _db) = world_with(&backend, |s| s.sync.create_in_npd = true).await;
    let mut columns = Map::new();
    columns.insert("role_title".into(), json!("Engineer"));

    // Act: a person creates an item without an npd_id.
    let item = world
        .monday
        .user_create_item(CONTACTS_BOARD, "Grace Hopper", columns)
        .await;
    settle_world(&world, SETTLE).await;

    // Assert: one NPD contact, and the item's npd_id column names it.
    let posts: Vec<_> = world
        .npd
        .calls()
        .into_iter()
        .filter(|c| c.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let entity = world
        .store
        .entity_by_item(item)
        .await
        .expect("query")
        .expect("entity");
    let npd_id = entity.npd_id.expect("created in NPD").to_string();
    assert_eq!(
        npd_id_column(&world, item).as_deref(),
        Some(npd_id.as_str())
    );
}

async fn an_item_naming_an_npd_id_the_ledger_does_not_know_is_linked_not_created_again(
    backend: Backend,
) {
    // Arrange: NPD's earlier sync made an item naming an NPD record the gateway never saw.
    let (world, _db) = world_with(&backend, |s| s.sync.create_in_npd = true).await;
    let known_to_npd = NpdId(uuid::Uuid::new_v4());
    let mut columns = Map::new();
    columns.insert("npd_id".into(), json!(known_to_npd.to_string()));

    // Act
    let item = world
        .monday
        .user_create_item(CONTACTS_BOARD, "Ada Lovelace", columns)
        .await;
    settle_world(&world, SETTLE).await;

    // Assert: no second NPD contact; the item is linked to that record.
    assert!(
        !world.npd.calls().iter().any(|c| c.method == "POST"),
        "{:?}",
        world.npd.calls()
    );
    let entity = world
        .store
        .entity_by_npd(EntityKind::Contact, known_to_npd)
        .await
        .expect("query")
        .expect("linked entity");
    assert_eq!(entity.monday_item_id, Some(item));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_exits_1_when_monday_is_unreachable_and_2_on_a_bad_log_filter() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("g.db").display());
    let unreachable = [
        ("GATEWAY_DATABASE_URL", db.as_str()),
        ("MONDAY_API_TOKEN", "token"),
        ("MONDAY_API_URL", "http://127.0.0.1:9/v2"),
        ("MONDAY_CONTACTS_BOARD_ID", "4100000001"),
    ];
    let (code, text) = check_config(&unreachable).await;
    assert_eq!(code, Some(1), "an unreachable Monday is a failure: {text}");
    assert!(text.contains("cannot read contacts board"), "{text}");

    let (code, text) = check_config(&[("GATEWAY_LOG", "npd_monday_gateway=loud")]).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("GATEWAY_LOG"),
        "the reason names the variable: {text}"
    );
}
