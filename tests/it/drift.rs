//! Drift scans end to end: differences injected straight into the simulators' state (no webhook,
//! no event) are repaired both ways through the same merge, deletions on both sides are found,
//! a second scan finds everything in sync, live edits made while a scan runs are left to the live
//! path, and `[drift] interval` runs scans by itself.

use std::time::Duration;

use npd_monday_gateway::demo::World;
use npd_monday_gateway::domain::entity::{ContactSnapshot, EntityKind, MondayItemId, NpdId};
use npd_monday_gateway::domain::state::EntityStatus;
use npd_monday_gateway::sim::monday::ItemState;
use serde_json::{Value, json};

use crate::backfill::{finished_run, roomy_world};
use crate::helpers::{Backend, eventually, get_json, settle_world};
use crate::store_tests;

store_tests!(
    drift_is_repaired_both_ways_and_deletions_are_found,
    a_drift_scan_during_live_traffic_leaves_live_edits_untouched,
    the_drift_schedule_runs_scans_by_itself,
);

const SETTLE: Duration = Duration::from_secs(60);

/// `n` contacts created in NPD and synced live; (record, item) each.
async fn linked_contacts(world: &World, n: usize) -> Vec<(NpdId, MondayItemId)> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = NpdId(uuid::Uuid::new_v4());
        let contact = ContactSnapshot {
            first_name: Some(format!("Drift{i}")),
            email: Some(format!("drift{i}@example.com")),
            ..npd_monday_gateway::demo::sample_contact(id)
        };
        world.npd.create_contact(contact).await;
        ids.push(id);
    }
    settle_world(world, SETTLE).await;
    let mut pairs = Vec::new();
    for id in ids {
        let entity = world
            .store
            .entity_by_npd(EntityKind::Contact, id)
            .await
            .expect("read")
            .expect("entity");
        pairs.push((id, entity.monday_item_id.expect("linked")));
    }
    pairs
}

/// Starts a drift scan through the admin API and waits until it is no longer running.
pub(crate) async fn drift_scan(world: &World) -> Value {
    let response = world
        .admin_post("/api/v1/drift-scans")
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 202);
    let id = response.json::<Value>().await.expect("json")["id"].clone();
    finished_run(world, &format!("/api/v1/drift-scans/{id}")).await
}

fn monday_column(world: &World, item: MondayItemId, column: &str) -> Option<Value> {
    world
        .monday
        .item(item)
        .and_then(|i| i.column_values.get(column).cloned())
}

async fn history_reasons(world: &World, id: NpdId) -> Vec<String> {
    let status = get_json(world, &format!("/api/v1/contacts/{id}/sync")).await;
    status["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["reason"].as_str().map(str::to_owned))
        .collect()
}

async fn drift_is_repaired_both_ways_and_deletions_are_found(backend: Backend) {
    // Arrange: four linked contacts; then, with no webhook and no event, a Monday edit, an NPD
    // edit, an item deleted in Monday and a record deleted in NPD.
    let (world, _db) = roomy_world(&backend).await;
    let pairs = linked_contacts(&world, 4).await;
    let [(c1, i1), (c2, i2), (c3, i3), (c4, i4)] = [pairs[0], pairs[1], pairs[2], pairs[3]];
    world.monday.edit_item_silently(i1, |item| {
        item.column_values
            .insert("role_title".into(), json!("Drifted in Monday"));
    });
    let mut edited = world.npd.contact(c2).expect("c2");
    edited.notes = Some("Drifted in NPD".into());
    edited.version += 1;
    world.npd.insert_contact(edited);
    world
        .monday
        .edit_item_silently(i3, |item| item.state = ItemState::Deleted);
    world.npd.remove_silently(EntityKind::Contact, c4);

    // Act
    let scan = drift_scan(&world).await;
    settle_world(&world, SETTLE).await;

    // Assert
    assert_eq!(scan["status"], "done", "{scan}");
    assert_eq!(
        (scan["scanned"].clone(), scan["in_sync"].clone()),
        (json!(4), json!(0)),
        "{scan}"
    );
    assert_eq!(
        scan["repaired"],
        json!({"to_monday": 1, "to_npd": 1}),
        "{scan}"
    );
    assert_eq!(
        scan["deleted"],
        json!({"in_monday": 1, "in_npd": 1}),
        "{scan}"
    );
    assert_eq!(scan["conflicts"], 0);
    assert!(scan["started_at"].is_string() && scan["finished_at"].is_string());
    assert_eq!(
        world.npd.contact(c1).and_then(|c| c.role_title).as_deref(),
        Some("Drifted in Monday")
    );
    assert_eq!(
        monday_column(&world, i2, "notes"),
        Some(json!({"text": "Drifted in NPD"}))
    );
    let e3 = world
        .store
        .entity_by_npd(EntityKind::Contact, c3)
        .await
        .expect("read")
        .expect("c3");
    assert_eq!(
        (e3.monday_item_id, e3.status),
        (None, EntityStatus::Unlinked)
    );
    assert_eq!(
        world.monday.item(i4).map(|i| i.state),
        Some(ItemState::Archived)
    );
    for id in [c1, c2, c3, c4] {
        assert!(
            history_reasons(&world, id)
                .await
                .iter()
                .any(|r| r.starts_with("drift: ")),
            "{id}"
        );
    }

    a_second_scan_finds_the_linked_ones_in_sync(&world).await;
}

/// A second scan finds the two contacts still linked in sync and writes nothing.
async fn a_second_scan_finds_the_linked_ones_in_sync(world: &World) {
    world.monday.clear_calls();
    let again = drift_scan(world).await;
    assert_eq!(
        (again["scanned"].clone(), again["in_sync"].clone()),
        (json!(2), json!(2)),
        "{again}"
    );
    assert_eq!(again["repaired"], json!({"to_monday": 0, "to_npd": 0}));
    let writes = world
        .monday
        .calls()
        .iter()
        .filter(|c| c.operation != "boards" && c.operation != "next_items_page")
        .count();
    assert_eq!(writes, 0);
}

async fn a_drift_scan_during_live_traffic_leaves_live_edits_untouched(backend: Backend) {
    // Arrange: two linked contacts; live edits on both sides wait in the inbox while the scan
    // reads pages that already show them.
    let (world, _db) = roomy_world(&backend).await;
    let pairs = linked_contacts(&world, 2).await;
    let [(c1, i1), (c2, i2)] = [pairs[0], pairs[1]];
    world.wake.pause_processing().await;
    world
        .npd
        .update_contact(c1, |c| c.role_title = Some("Live in NPD".into()))
        .await;
    world
        .monday
        .user_change_column(i2, "notes", json!({"text": "Live in Monday"}))
        .await;
    world.monday.clear_calls();
    world.npd.clear_calls();

    // Act
    let scan = drift_scan(&world).await;
    world.wake.resume_processing();
    settle_world(&world, SETTLE).await;

    // Assert: the scan left both to the live path, which wrote each once.
    assert_eq!(scan["skipped"], 2, "{scan}");
    assert_eq!(
        scan["repaired"],
        json!({"to_monday": 0, "to_npd": 0}),
        "{scan}"
    );
    assert_eq!(
        monday_column(&world, i1, "role_title"),
        Some(json!("Live in NPD"))
    );
    assert_eq!(
        world.npd.contact(c2).and_then(|c| c.notes).as_deref(),
        Some("Live in Monday")
    );
    let changes = world
        .monday
        .calls()
        .iter()
        .filter(|c| c.operation == "change_multiple_column_values")
        .count();
    let patches = world
        .npd
        .calls()
        .iter()
        .filter(|c| c.method == "PATCH")
        .count();
    assert_eq!((changes, patches), (1, 1));
    for id in [c1, c2] {
        assert!(
            !history_reasons(&world, id)
                .await
                .iter()
                .any(|r| r.starts_with("drift: ")),
            "{id}"
        );
    }
}

async fn the_drift_schedule_runs_scans_by_itself(backend: Backend) {
    // Arrange: a scan every second.
    let db = crate::helpers::TestDatabase::create(&backend).await;
    let world = World::start(&db.url, |s| s.drift.interval = Duration::from_secs(1))
        .await
        .expect("world");
    let (c1, i1) = linked_contacts(&world, 1).await[0];
    world.monday.edit_item_silently(i1, |item| {
        item.column_values
            .insert("role_title".into(), json!("Found by the schedule"));
    });

    // Assert: with nobody asking, the difference reaches NPD.
    eventually(SETTLE, async || {
        match world.npd.contact(c1).and_then(|c| c.role_title) {
            Some(role) if role == "Found by the schedule" => Ok(()),
            other => Err(format!("NPD holds {other:?}")),
        }
    })
    .await;
    let scans: Value = get_json(&world, "/api/v1/drift-scans").await;
    assert!(
        !scans["drift_scans"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .is_empty(),
        "{scans}"
    );
}
