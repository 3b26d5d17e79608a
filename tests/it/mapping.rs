//! Richer mapping (CONTRACT v2 "Richer mapping"): what cannot be written is left out of its write
//! and recorded for the entity, while the other fields still sync; national phone numbers are
//! completed with `[mapping] default_phone_country`.

use std::time::Duration;

use npd_monday_gateway::demo::{CONTACTS_BOARD, Sims, World, sample_contact};
use npd_monday_gateway::domain::entity::{
    EntityKind, MondayItemId, NpdId, OrganizationSnapshot, Side,
};
use npd_monday_gateway::domain::mapping::{ColumnMapping, ColumnType, Direction};
use npd_monday_gateway::sim::monday::SimColumn;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::drift::drift_scan;
use crate::helpers::{Backend, TestDatabase, check_config, settle_world, world_with};
use crate::store_tests;

store_tests!(
    a_national_phone_without_a_default_country_is_left_out_and_the_rest_syncs,
    a_national_phone_with_a_default_country_arrives_in_e164,
    typed_custom_fields_round_trip_npd_to_monday_and_back_in_monday_s_real_shapes,
    create_labels_if_missing_is_sent_only_for_a_field_with_create_labels,
    one_way_fields_ignore_the_other_side_and_are_never_written_back,
    a_contact_synced_after_its_organization_is_created_linked_to_the_organization_s_item,
    a_contact_synced_before_its_organization_gets_the_relation_once_the_organization_is_linked,
    re_linking_in_monday_patches_npd_with_the_other_organization_s_id,
    a_link_to_an_item_of_no_known_organization_is_recorded_and_the_rest_syncs,
    the_gateway_s_own_relation_write_coming_back_is_an_echo,
    a_drift_scan_reads_the_relation_and_repairs_a_silent_re_link,
);

const SETTLE: Duration = Duration::from_secs(30);

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

/// The board's typed columns: (NPD custom field, column id, type).
const TYPED: &[(&str, &str, ColumnType)] = &[
    ("stage", "stage", ColumnType::Status),
    ("tags", "tags", ColumnType::Dropdown),
    ("birthday", "birthday", ColumnType::Date),
    ("score", "score", ColumnType::Numbers),
    ("vip", "vip", ColumnType::Checkbox),
    ("country", "country", ColumnType::Country),
];

/// A world whose contacts board has a column of each type, mapped from NPD custom fields; the
/// status maps NPD's `lead`/`customer` to Monday's `New lead`/`Done`.
async fn typed_world(backend: &Backend) -> (World, TestDatabase) {
    typed_world_with(backend, |_| {}).await
}

async fn typed_world_with(
    backend: &Backend,
    tweak: impl FnOnce(&mut npd_monday_gateway::config::Settings),
) -> (World, TestDatabase) {
    let (world, db) = world_with(backend, |s| {
        for (field, column, column_type) in TYPED {
            let mut mapping = ColumnMapping::new(column, *column_type);
            if *column_type == ColumnType::Status {
                mapping.labels = [("lead", "New lead"), ("customer", "Done")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
            }
            s.mapping
                .contacts
                .fields
                .insert((*field).to_owned(), mapping);
        }
        tweak(s);
    })
    .await;
    let columns: Vec<(&str, &str, &str)> = TYPED
        .iter()
        .map(|(_, column, t)| (*column, t.as_str(), *column))
        .collect();
    assert!(world.monday.add_columns(CONTACTS_BOARD, &columns));
    let names: Vec<&str> = TYPED.iter().map(|(f, _, _)| *f).collect();
    world.npd.define_custom_fields(&names);
    (world, db)
}

/// The value of the last webhook the simulator sent for `column`, with its `columnType`.
fn last_webhook(world: &World, column: &str) -> (Value, Value) {
    let sent = world
        .monday
        .webhooks()
        .into_iter()
        .rev()
        .find(|w| w.body["event"]["columnId"] == column)
        .expect("a webhook for the column");
    let event = &sent.body["event"];
    (event["value"].clone(), event["columnType"].clone())
}

async fn typed_custom_fields_round_trip_npd_to_monday_and_back_in_monday_s_real_shapes(
    backend: Backend,
) {
    // Arrange
    let (world, _db) = typed_world(&backend).await;
    let id = NpdId(uuid::Uuid::new_v4());
    let mut contact = sample_contact(id);
    contact.custom = [
        ("stage", json!("lead")),
        ("tags", json!(["VIP", "Customer"])),
        ("birthday", json!("1815-12-10")),
        ("score", json!(42)),
        ("vip", json!(true)),
        ("country", json!("GB")),
        ("unmapped_note", json!("kept in the inbox only")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    // Act: NPD -> Monday.
    world.npd.create_contact(contact).await;
    settle_world(&world, SETTLE).await;

    // Assert: each column holds its type's write format.
    let entity = world
        .store
        .entity_by_npd(EntityKind::Contact, id)
        .await
        .expect("query")
        .expect("known");
    let item_id = entity.monday_item_id.expect("created");
    let item = world.monday.item(item_id).expect("the item");
    let columns = &item.column_values;
    assert_eq!(
        columns.get("stage"),
        Some(&json!({"label": "New lead"})),
        "{columns:?}"
    );
    assert_eq!(
        columns.get("tags"),
        Some(&json!({"ids": [1, 5]})),
        "{columns:?}"
    );
    assert_eq!(
        columns.get("birthday"),
        Some(&json!({"date": "1815-12-10"}))
    );
    assert_eq!(columns.get("score"), Some(&json!("42")));
    assert_eq!(columns.get("vip"), Some(&json!({"checked": "true"})));
    assert_eq!(columns["country"]["countryCode"], "GB", "{columns:?}");
    assert!(!columns.contains_key("unmapped_note"));
    let status = sync_status(&world, id).await;
    assert_eq!(status["left_out"], json!([]), "{status}");
    assert_eq!(status["status"], "synced", "{status}");
    each_monday_edit_reaches_npd_typed(&world, id, item_id).await;
    an_unknown_label_is_left_out_and_the_rest_syncs(&world, id, item_id).await;
}

/// A person edits each column in Monday (the simulator sends Monday's real shapes): the
/// webhooks had those shapes, and NPD got typed values.
async fn each_monday_edit_reaches_npd_typed(world: &World, id: NpdId, item_id: MondayItemId) {
    let edits = [
        ("stage", json!({"label": "Done"})),
        ("tags", json!({"labels": ["Partner"]})),
        ("birthday", json!({"date": "1816-01-01"})),
        ("score", json!("43.5")),
        ("vip", json!({"checked": "false"})),
        (
            "country",
            json!({"countryCode": "AW", "countryName": "Aruba"}),
        ),
    ];
    for (column, value) in edits {
        world
            .monday
            .user_change_column(item_id, column, value)
            .await;
        settle_world(world, SETTLE).await;
    }

    let (stage, stage_type) = last_webhook(world, "stage");
    assert_eq!(stage["label"]["text"], "Done", "{stage}");
    assert_eq!(stage_type, "color");
    let (tags, _) = last_webhook(world, "tags");
    assert_eq!(
        tags,
        json!({"chosenValues": [{"id": 2, "name": "Partner"}]})
    );
    let (birthday, _) = last_webhook(world, "birthday");
    assert_eq!(
        birthday,
        json!({"date": "1816-01-01", "icon": null, "time": null})
    );
    let (country, _) = last_webhook(world, "country");
    assert_eq!(country["countryCode"], "AW");
    let npd = world.npd.contact(id).expect("the NPD contact");
    let custom = &npd.custom;
    assert_eq!(custom.get("stage"), Some(&json!("customer")), "{custom:?}");
    assert_eq!(custom.get("tags"), Some(&json!(["Partner"])), "{custom:?}");
    assert_eq!(custom.get("birthday"), Some(&json!("1816-01-01")));
    assert_eq!(custom.get("score"), Some(&json!(43.5)));
    assert_eq!(custom.get("vip"), Some(&json!(false)));
    assert_eq!(custom.get("country"), Some(&json!("AW")));
    assert_eq!(
        custom.get("unmapped_note"),
        Some(&json!("kept in the inbox only"))
    );
}

/// A status label NPD has no value for is left out and shown, never written to NPD; the other
/// field of the same edit still syncs.
async fn an_unknown_label_is_left_out_and_the_rest_syncs(
    world: &World,
    id: NpdId,
    item_id: MondayItemId,
) {
    world
        .monday
        .user_change_column(item_id, "stage", json!({"label": "Stuck"}))
        .await;
    world
        .monday
        .user_change_column(item_id, "score", json!("7"))
        .await;
    settle_world(world, SETTLE).await;

    let npd = world.npd.contact(id).expect("the NPD contact");
    assert_eq!(npd.custom.get("stage"), Some(&json!("customer")));
    assert_eq!(npd.custom.get("score"), Some(&json!(7)));
    let status = sync_status(world, id).await;
    let left_out = status["left_out"].as_array().expect("left_out");
    assert_eq!(left_out.len(), 1, "{status}");
    assert_eq!(left_out[0]["field"], "stage");
    assert_eq!(left_out[0]["value"], "Stuck");
    assert_eq!(left_out[0]["direction"], "to_npd");
    assert_eq!(left_out[0]["reason_code"], "no_npd_value");
    assert_eq!(status["dead_jobs"], json!([]), "{status}");
}

/// Creates a contact with `stage = "customer"` (Monday's `Done`) and waits; the Monday calls
/// that wrote an item.
async fn writes_of_a_staged_contact(world: &World) -> Vec<String> {
    let id = NpdId(uuid::Uuid::new_v4());
    let mut contact = sample_contact(id);
    contact.custom = [("stage".to_owned(), json!("customer"))]
        .into_iter()
        .collect();
    world.npd.create_contact(contact).await;
    settle_world(world, SETTLE).await;
    world
        .monday
        .calls()
        .into_iter()
        .filter(|c| c.status == 200 && c.query.contains("column_values: $"))
        .map(|c| c.query)
        .collect()
}

async fn create_labels_if_missing_is_sent_only_for_a_field_with_create_labels(backend: Backend) {
    // Without create_labels: never.
    let (world, _db) = typed_world(&backend).await;
    let writes = writes_of_a_staged_contact(&world).await;
    assert!(!writes.is_empty());
    assert!(
        writes
            .iter()
            .all(|q| !q.contains("create_labels_if_missing")),
        "{writes:?}"
    );

    // With create_labels on the status field: on the write that carries it.
    let (world, _db) = typed_world_with(&backend, |s| {
        if let Some(stage) = s.mapping.contacts.fields.get_mut("stage") {
            stage.create_labels = true;
        }
    })
    .await;
    let writes = writes_of_a_staged_contact(&world).await;
    assert!(
        writes
            .iter()
            .any(|q| q.contains("create_labels_if_missing: true")),
        "{writes:?}"
    );
}

/// The history reasons of the contact, newest first.
fn reasons(status: &Value) -> Vec<String> {
    status["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|e| e["reason"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn one_way_fields_ignore_the_other_side_and_are_never_written_back(backend: Backend) {
    // Arrange: NPD owns role_title, Monday owns notes.
    let (world, _db) = world_with(&backend, |s| {
        let fields = &mut s.mapping.contacts.fields;
        if let Some(m) = fields.get_mut("role_title") {
            m.direction = Direction::ToMonday;
        }
        if let Some(m) = fields.get_mut("notes") {
            m.direction = Direction::ToNpd;
        }
    })
    .await;
    let id = NpdId(uuid::Uuid::new_v4());
    world.npd.create_contact(sample_contact(id)).await;
    settle_world(&world, SETTLE).await;
    let item_id = world
        .store
        .entity_by_npd(EntityKind::Contact, id)
        .await
        .expect("query")
        .and_then(|e| e.monday_item_id)
        .expect("created");
    let item = world.monday.item(item_id).expect("item");
    assert_eq!(item.column_values.get("role_title"), Some(&json!("CTO")));
    assert_eq!(
        item.column_values.get("notes"),
        None,
        "NPD's notes never go to Monday"
    );

    // Act: Monday edits both fields.
    world
        .monday
        .user_change_column(item_id, "role_title", json!("CEO"))
        .await;
    world
        .monday
        .user_change_column(item_id, "notes", json!({"text": "From Monday"}))
        .await;
    settle_world(&world, SETTLE).await;

    // Assert: Monday's notes reach NPD; its role_title is ignored, recorded, not written back.
    let npd = world.npd.contact(id).expect("contact");
    assert_eq!(npd.notes.as_deref(), Some("From Monday"));
    assert_eq!(npd.role_title.as_deref(), Some("CTO"));
    let status = sync_status(&world, id).await;
    let history = reasons(&status);
    assert!(
        history.iter().any(|r| r.contains(
            "monday's change of one-way field(s) role_title (direction to_monday) ignored"
        )),
        "{history:?}"
    );

    // Act: NPD edits both fields.
    world
        .npd
        .update_contact(id, |c| {
            c.notes = Some("NPD edit".into());
            c.role_title = Some("CFO".into());
        })
        .await;
    settle_world(&world, SETTLE).await;
    npd_s_role_title_won_and_its_notes_were_ignored(&world, id, item_id).await;
}

/// After NPD edited both one-way fields: its role_title wins over Monday's edit without a
/// conflict; its notes are ignored (recorded) and NPD keeps its own edit.
async fn npd_s_role_title_won_and_its_notes_were_ignored(
    world: &World,
    id: NpdId,
    item_id: MondayItemId,
) {
    let item = world.monday.item(item_id).expect("item");
    assert_eq!(item.column_values.get("role_title"), Some(&json!("CFO")));
    assert_eq!(
        item.column_values.get("notes"),
        Some(&json!({"text": "From Monday"}))
    );
    let status = sync_status(world, id).await;
    assert_eq!(status["open_conflicts"], json!([]), "{status}");
    let history = reasons(&status);
    assert!(
        history.iter().any(
            |r| r.contains("npd's change of one-way field(s) notes (direction to_npd) ignored")
        ),
        "{history:?}"
    );
    let npd = world.npd.contact(id).expect("contact");
    assert_eq!(
        npd.notes.as_deref(),
        Some("NPD edit"),
        "NPD keeps its own edit"
    );
}

const CHECKED_MAPPING: &str = r#"
[mapping.contacts]
item_name = ["first_name", "last_name"]
npd_id_column = "npd_id"

[mapping.contacts.fields]
email = { column = "email", type = "email" }
stage = { column = "stage", type = "status", labels = { lead = "New lead", won = "Closed won" } }
tags = { column = "tags", type = "dropdown", labels = { vip = "VIP", gold = "Gold" } }
segment = { column = "segment", type = "dropdown", create_labels = true, labels = { x = "Brand new" } }
birthday = { column = "birthday", type = "date" }
score = { column = "score", type = "numbers" }
organization_id = { column = "organization", type = "board_relation" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_names_missing_and_mistyped_columns_and_labels_the_board_lacks() {
    // Arrange: a board with a status and a dropdown column, `birthday` and `organization` as text;
    // no `score`.
    let sims = Sims::start_with(|c| {
        if let Some(board) = c.boards.iter_mut().find(|b| b.id == CONTACTS_BOARD) {
            board.columns.extend([
                SimColumn::new("stage", "status", "Stage"),
                SimColumn::new("tags", "dropdown", "Tags"),
                SimColumn::new("segment", "dropdown", "Segment"),
                SimColumn::new("birthday", "text", "Birthday"),
                SimColumn::new("organization", "text", "Organization"),
            ]);
        }
    })
    .await
    .expect("sims");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, CHECKED_MAPPING).expect("write the config");
    let db = format!("sqlite://{}", dir.path().join("g.db").display());
    let settings = sims.settings(&db);
    let token = settings
        .monday
        .api_token
        .as_ref()
        .map(|t| t.expose_secret().to_owned())
        .unwrap_or_default();
    let url = sims.monday.api_url();
    let board = CONTACTS_BOARD.to_string();
    let config = file.display().to_string();

    // Act
    let (code, text) = check_config(&[
        ("GATEWAY_CONFIG", config.as_str()),
        ("GATEWAY_DATABASE_URL", db.as_str()),
        ("MONDAY_API_TOKEN", token.as_str()),
        ("MONDAY_API_URL", url.as_str()),
        ("MONDAY_CONTACTS_BOARD_ID", board.as_str()),
    ])
    .await;

    // Assert: a configuration problem (2), naming each one; labels the board has are fine, and
    // a field with create_labels may name new ones.
    assert_eq!(code, Some(2), "{text}");
    for expected in [
        "label `Closed won` is not a label of column `stage`",
        "label `Gold` is not a label of column `tags`",
        "column `birthday` on contacts board 4100000001 is of type text, the mapping says date",
        "column `score` is missing on contacts board",
        "column `organization` on contacts board 4100000001 is of type text, the mapping says board_relation",
    ] {
        assert!(text.contains(expected), "expected `{expected}` in:\n{text}");
    }
    for fine in ["`New lead`", "`VIP`", "`Brand new`"] {
        assert!(!text.contains(fine), "{fine} is no problem:\n{text}");
    }
}

/// A world whose contacts board links each contact's organization: `organization_id` as the
/// board_relation column `organization` (besides the typed columns).
async fn related_world(backend: &Backend) -> (World, TestDatabase) {
    let (world, db) = typed_world_with(backend, |s| {
        let relation = ColumnMapping::new("organization", ColumnType::BoardRelation);
        s.mapping
            .contacts
            .fields
            .insert("organization_id".into(), relation);
    })
    .await;
    let column = [("organization", "board_relation", "Organization")];
    assert!(world.monday.add_columns(CONTACTS_BOARD, &column));
    (world, db)
}

async fn item_of(world: &World, kind: EntityKind, id: NpdId) -> Option<MondayItemId> {
    world
        .store
        .entity_by_npd(kind, id)
        .await
        .expect("query")
        .and_then(|e| e.monday_item_id)
}

/// Creates an organization in NPD and waits until everything settled; its Monday item.
async fn synced_organization(world: &World, id: NpdId, name: &str) -> MondayItemId {
    let organization = OrganizationSnapshot {
        id,
        version: 1,
        sync_enabled: true,
        monday_id: None,
        name: Some(name.into()),
        website: None,
        industry: None,
        notes: None,
        updated_at: None,
    };
    world.npd.create_organization(organization).await;
    settle_world(world, SETTLE).await;
    item_of(world, EntityKind::Organization, id)
        .await
        .expect("the organization's item was created")
}

/// Creates in NPD the sample contact of `organization` and waits; its id and item.
async fn synced_contact_of(world: &World, organization: NpdId) -> (NpdId, MondayItemId) {
    let id = NpdId(uuid::Uuid::new_v4());
    let mut contact = sample_contact(id);
    contact.organization_id = Some(organization);
    world.npd.create_contact(contact).await;
    settle_world(world, SETTLE).await;
    let item = item_of(world, EntityKind::Contact, id).await;
    (id, item.expect("the contact's item was created"))
}

/// What the gateway wrote to the `organization` column, in order (creates and updates).
fn relation_writes(world: &World) -> Vec<Value> {
    world
        .monday
        .calls()
        .into_iter()
        .filter(|c| c.status == 200)
        .flat_map(|c| match c.variables {
            Value::Object(vars) => vars.into_values().collect(),
            _ => Vec::new(),
        })
        .filter_map(|v| serde_json::from_str::<Value>(v.as_str()?).ok())
        .filter_map(|columns| columns.get("organization").cloned())
        .collect()
}

/// The bodies of NPD's PATCHes of `id` that name `organization_id`.
fn organization_patches(world: &World, id: NpdId) -> Vec<Value> {
    world
        .npd
        .calls()
        .into_iter()
        .filter(|c| c.method == "PATCH" && c.path.contains(&id.to_string()))
        .filter_map(|c| c.body)
        .filter(|b| b.get("organization_id").is_some())
        .collect()
}

/// The contact's item links the organization's item, written once in Monday's write format;
/// nothing is left out, and NPD was never patched for it.
async fn assert_related_once(world: &World, id: NpdId, item: MondayItemId, org_item: MondayItemId) {
    assert_eq!(
        relation_writes(world),
        [json!({"item_ids": [org_item.to_string()]})]
    );
    let stored = world.monday.item(item).expect("the item");
    assert_eq!(
        stored.column_values.get("organization"),
        Some(&json!({"item_ids": [org_item.0]})),
        "stored as written"
    );
    let status = sync_status(world, id).await;
    assert_eq!(status["left_out"], json!([]), "{status}");
    assert_eq!(status["status"], "synced", "{status}");
    assert_eq!(organization_patches(world, id), Vec::<Value>::new());
}

/// The one value left out for the entity: (field, value, direction, reason code).
fn assert_one_left_out(status: &Value, expected: (&str, &str, &str, &str)) {
    let left_out = status["left_out"].as_array().expect("left_out");
    assert_eq!(left_out.len(), 1, "{status}");
    let l = &left_out[0];
    let found = (&l["field"], &l["value"], &l["direction"], &l["reason_code"]);
    let (field, value, direction, code) = expected;
    assert_eq!(
        found,
        (
            &json!(field),
            &json!(value),
            &json!(direction),
            &json!(code)
        ),
        "{status}"
    );
}

async fn a_contact_synced_after_its_organization_is_created_linked_to_the_organization_s_item(
    backend: Backend,
) {
    // Arrange
    let (world, _db) = related_world(&backend).await;
    let org = NpdId(uuid::Uuid::new_v4());
    let org_item = synced_organization(&world, org, "Analytical Engines Ltd").await;

    // Act
    let (id, item) = synced_contact_of(&world, org).await;

    // Assert: the create carried the relation in Monday's write format; nothing is left out.
    let creates: Vec<_> = world
        .monday
        .calls()
        .into_iter()
        .filter(|c| c.status == 200 && c.operation == "create_item")
        .collect();
    assert_eq!(creates.len(), 2, "the organization's and the contact's");
    assert_related_once(&world, id, item, org_item).await;
}

async fn a_contact_synced_before_its_organization_gets_the_relation_once_the_organization_is_linked(
    backend: Backend,
) {
    // Arrange + Act: the contact names an organization the gateway has not synced yet.
    let (world, _db) = related_world(&backend).await;
    let org = NpdId(uuid::Uuid::new_v4());
    let (id, item) = synced_contact_of(&world, org).await;

    // Assert: the contact synced without the relation, which waits, shown with the org's id.
    let stored = world.monday.item(item).expect("the item");
    assert_eq!(stored.column_values.get("organization"), None);
    assert_eq!(stored.column_values.get("role_title"), Some(&json!("CTO")));
    let status = sync_status(&world, id).await;
    let org_id = org.to_string();
    let waiting = (
        "organization_id",
        org_id.as_str(),
        "to_monday",
        "organization_not_synced",
    );
    assert_one_left_out(&status, waiting);
    assert!(relation_writes(&world).is_empty());

    // Act: the organization is created in NPD, and so gets its item.
    let org_item = synced_organization(&world, org, "Analytical Engines Ltd").await;

    // Assert: the relation was written, once, and nothing waits any more.
    assert_related_once(&world, id, item, org_item).await;
}

async fn re_linking_in_monday_patches_npd_with_the_other_organization_s_id(backend: Backend) {
    // Arrange: two organizations; the contact belongs to the first.
    let (world, _db) = related_world(&backend).await;
    let (first, second) = (NpdId(uuid::Uuid::new_v4()), NpdId(uuid::Uuid::new_v4()));
    synced_organization(&world, first, "Analytical Engines Ltd").await;
    let second_item = synced_organization(&world, second, "Difference Engines plc").await;
    let (id, item) = synced_contact_of(&world, first).await;

    // Act: a person links the contact's item to the second organization's item.
    let relink = json!({"item_ids": [second_item.0]});
    world
        .monday
        .user_change_column(item, "organization", relink)
        .await;
    settle_world(&world, SETTLE).await;

    // Assert: the webhook had Monday's real shape; NPD got the second organization's id.
    let (value, column_type) = last_webhook(&world, "organization");
    assert_eq!(column_type, "board-relation");
    assert_eq!(
        value["linkedPulseIds"],
        json!([{"linkedPulseId": second_item.0}])
    );
    let patches = organization_patches(&world, id);
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(
        patches[0]["organization_id"],
        second.to_string(),
        "{patches:?}"
    );
    let npd = world.npd.contact(id).expect("the NPD contact");
    assert_eq!(npd.organization_id, Some(second));
    let status = sync_status(&world, id).await;
    assert_eq!(status["left_out"], json!([]), "{status}");
}

async fn a_link_to_an_item_of_no_known_organization_is_recorded_and_the_rest_syncs(
    backend: Backend,
) {
    // Arrange
    let (world, _db) = related_world(&backend).await;
    let org = NpdId(uuid::Uuid::new_v4());
    synced_organization(&world, org, "Analytical Engines Ltd").await;
    let (id, item) = synced_contact_of(&world, org).await;

    // Act: a person links an item the gateway knows no organization of, and edits a text field.
    let unknown = json!({"item_ids": [987_654_321]});
    world
        .monday
        .user_change_column(item, "organization", unknown)
        .await;
    world
        .monday
        .user_change_column(item, "role_title", json!("CEO"))
        .await;
    settle_world(&world, SETTLE).await;

    // Assert: NPD keeps its organization (never guessed, never cleared); the other edit synced;
    // the unknown item is shown with its id, and in the history.
    let npd = world.npd.contact(id).expect("the NPD contact");
    assert_eq!(npd.organization_id, Some(org));
    assert_eq!(npd.role_title.as_deref(), Some("CEO"));
    assert_eq!(organization_patches(&world, id), Vec::<Value>::new());
    let status = sync_status(&world, id).await;
    let unknown = ("organization_id", "987654321", "to_npd", "unknown_item");
    assert_one_left_out(&status, unknown);
    let history = reasons(&status);
    assert!(
        history
            .iter()
            .any(|r| r.contains("organization_id left out (987654321)")),
        "{history:?}"
    );
    assert_eq!(status["dead_jobs"], json!([]), "{status}");
}

async fn the_gateway_s_own_relation_write_coming_back_is_an_echo(backend: Backend) {
    // Arrange + Act: the relation is written late, by an update (and by a create for another
    // contact): both come back as webhooks of the gateway's own user.
    let (world, _db) = related_world(&backend).await;
    let org = NpdId(uuid::Uuid::new_v4());
    let (late, _) = synced_contact_of(&world, org).await;
    synced_organization(&world, org, "Analytical Engines Ltd").await;
    let (early, _) = synced_contact_of(&world, org).await;

    // Assert: Monday sent the relation's webhooks; each was an echo; NPD was never patched.
    let echoes: Vec<Option<String>> = world
        .store
        .inbox_events(Side::Monday, 10_000)
        .await
        .expect("inbox")
        .into_iter()
        .filter(|r| r.payload.contains("\"organization\"") || r.payload.contains("board-relation"))
        .map(|r| r.outcome.map(|o| o.to_string()))
        .collect();
    assert!(!echoes.is_empty(), "the relation's webhooks arrived");
    assert!(
        echoes.iter().all(|o| o.as_deref() == Some("echo")),
        "{echoes:?}"
    );
    for id in [late, early] {
        assert_eq!(organization_patches(&world, id), Vec::<Value>::new());
        let npd = world.npd.contact(id).expect("the NPD contact");
        assert_eq!(npd.organization_id, Some(org));
    }
}

async fn a_drift_scan_reads_the_relation_and_repairs_a_silent_re_link(backend: Backend) {
    // Arrange: a related contact, in sync.
    let (world, _db) = related_world(&backend).await;
    let (first, second) = (NpdId(uuid::Uuid::new_v4()), NpdId(uuid::Uuid::new_v4()));
    synced_organization(&world, first, "Analytical Engines Ltd").await;
    let second_item = synced_organization(&world, second, "Difference Engines plc").await;
    let (id, item) = synced_contact_of(&world, first).await;

    // Act + Assert: a scan reads the relation as the same organization: nothing to repair.
    let scan = drift_scan(&world).await;
    assert_eq!(
        scan["repaired"],
        json!({"to_monday": 0, "to_npd": 0}),
        "{scan}"
    );

    // Act: the item is re-linked in Monday without a webhook; a scan runs.
    let relinked = json!({"item_ids": [second_item.0]});
    assert!(world.monday.edit_item_silently(item, |i| {
        i.column_values.insert("organization".into(), relinked);
    }));
    let scan = drift_scan(&world).await;

    // Assert: NPD got the second organization's id.
    assert_eq!(scan["repaired"]["to_npd"], json!(1), "{scan}");
    settle_world(&world, SETTLE).await;
    let npd = world.npd.contact(id).expect("the NPD contact");
    assert_eq!(npd.organization_id, Some(second));
}
