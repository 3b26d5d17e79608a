//! Richer mapping (CONTRACT v2 "Richer mapping"): what cannot be written is left out of its write
//! and recorded for the entity, while the other fields still sync; national phone numbers are
//! completed with `[mapping] default_phone_country`.

use std::time::Duration;

use npd_monday_gateway::demo::{World, sample_contact};
use npd_monday_gateway::domain::entity::{EntityKind, MondayItemId, NpdId};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestDatabase, settle_world};
use crate::store_tests;

store_tests!(
    a_national_phone_without_a_default_country_is_left_out_and_the_rest_syncs,
    a_national_phone_with_a_default_country_arrives_in_e164,
);

const SETTLE: Duration = Duration::from_secs(30);

async fn world_with(
    backend: &Backend,
    tweak: impl FnOnce(&mut npd_monday_gateway::config::Settings),
) -> (World, TestDatabase) {
    let db = TestDatabase::create(backend).await;
    let world = World::start(&db.url, tweak).await.expect("world starts");
    (world, db)
}

/// Creates in NPD the sample contact with the national phone `(202) 555-0169` and waits until
/// everything settled; returns its id and its Monday item.
async fn contact_with_national_phone(world: &World) -> (NpdId, MondayItemId) {
    let id = NpdId(uuid::Uuid::new_v4());
    let mut contact = sample_contact(id);
    contact.phone = Some("(202) 555-0169".into());
    world.npd.create_contact(contact).await;
    settle_world(world, SETTLE).await;
    let entity = world
        .store
        .entity_by_npd(EntityKind::Contact, id)
        .await
        .expect("query")
        .expect("the contact is known");
    let item = entity.monday_item_id.expect("the item was created");
    (id, item)
}

async fn sync_status(world: &World, id: NpdId) -> Value {
    world
        .admin_get(&format!("/api/v1/contacts/{id}/sync"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

async fn a_national_phone_without_a_default_country_is_left_out_and_the_rest_syncs(
    backend: Backend,
) {
    // Arrange + Act: no default_phone_country.
    let (world, _db) = world_with(&backend, |_| {}).await;
    let (id, item) = contact_with_national_phone(&world).await;

    // Assert: the item exists with the other fields, without a phone; nothing is dead.
    let item = world.monday.item(item).expect("the item is on the board");
    assert_eq!(item.name, "Ada Lovelace");
    assert_eq!(
        item.column_values.get("email"),
        Some(&json!({"email": "ada@example.com", "text": "ada@example.com"})),
        "{item:?}"
    );
    assert_eq!(item.column_values.get("phone"), None, "{item:?}");
    let status = sync_status(&world, id).await;
    assert_eq!(status["status"], "synced", "{status}");
    assert_eq!(status["dead_jobs"], json!([]), "{status}");
    let left_out = status["left_out"].as_array().expect("left_out");
    assert_eq!(left_out.len(), 1, "{status}");
    assert_eq!(left_out[0]["field"], "phone");
    assert_eq!(left_out[0]["value"], "2025550169");
    assert_eq!(left_out[0]["direction"], "to_monday");
    assert_eq!(left_out[0]["reason_code"], "national_phone");
    assert!(
        left_out[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("default_phone_country")),
        "{status}"
    );
    assert!(left_out[0]["at"].is_string(), "{status}");

    // Act: NPD fixes the number; the next write clears what was left out.
    world
        .npd
        .update_contact(id, |c| c.phone = Some("+1 202 555 0169".into()))
        .await;
    settle_world(&world, SETTLE).await;

    // Assert
    let item = world.monday.item(item.id).expect("the item");
    assert_eq!(
        item.column_values.get("phone"),
        Some(&json!({"phone": "+12025550169", "countryShortName": "US"}))
    );
    let status = sync_status(&world, id).await;
    assert_eq!(status["left_out"], json!([]), "{status}");
}

async fn a_national_phone_with_a_default_country_arrives_in_e164(backend: Backend) {
    // Arrange + Act
    let (world, _db) = world_with(&backend, |s| {
        s.mapping.default_phone_country = Some("US".parse().expect("a country"));
        s.mapping = s.mapping.clone().with_shared_keys();
    })
    .await;
    let (id, item) = contact_with_national_phone(&world).await;

    // Assert: E.164 with its country on Monday, and nothing left out; Monday's echo of the
    // number it stores is no change for NPD.
    let item = world.monday.item(item).expect("the item");
    assert_eq!(
        item.column_values.get("phone"),
        Some(&json!({"phone": "+12025550169", "countryShortName": "US"}))
    );
    let status = sync_status(&world, id).await;
    assert_eq!(status["left_out"], json!([]), "{status}");
    assert_eq!(status["status"], "synced", "{status}");
    let npd = world.npd.contact(id).expect("the NPD contact");
    assert_eq!(
        npd.phone.as_deref(),
        Some("(202) 555-0169"),
        "NPD is not rewritten"
    );
}
