//! Tests of the Monday client: its documents against the schemas, its calls against the Monday
//! simulator, and the classification of monday's answers.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Map, Value, json};

use super::*;
use crate::connectors::FailureClass;
use crate::sim::monday::schema::{shared_schema_available, validate_document};
use crate::sim::monday::test_support::{Received, WebhookReceiver};
use crate::sim::monday::{MondaySim, MondaySimConfig};

const CONTACTS: BoardId = BoardId(4_100_000_001);
const ORGANIZATIONS: BoardId = BoardId(4_100_000_002);
const NPD_ID: &str = "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10";

fn sim_config() -> MondaySimConfig {
    MondaySimConfig::contacts_and_organizations(CONTACTS, ORGANIZATIONS)
}

/// The default Monday settings, pointed at `api_url` with `api_token`.
fn settings_for(api_url: String, api_token: Option<&str>) -> MondaySettings {
    MondaySettings {
        api_url,
        api_token: api_token.map(|t| SecretString::from(t.to_owned())),
        ..crate::config::Settings::default().monday
    }
}

fn settings(sim: &MondaySim) -> MondaySettings {
    MondaySettings {
        contacts_board_id: Some(CONTACTS),
        organizations_board_id: Some(ORGANIZATIONS),
        ..settings_for(sim.api_url(), Some(&sim_config().api_token))
    }
}

pub(super) async fn start() -> (MondaySim, MondayClient) {
    start_with(sim_config(), Duration::from_secs(10)).await
}

async fn start_with(config: MondaySimConfig, timeout: Duration) -> (MondaySim, MondayClient) {
    let sim = MondaySim::start(config).await.expect("start the simulator");
    let client = MondayClient::new(&settings(&sim), timeout).expect("a token is configured");
    (sim, client)
}

/// Asserts a retryable failure with this status, `Retry-After` (seconds) and error code.
fn assert_retry_after(err: &ConnectorError, status: Option<u16>, seconds: u64, code: &str) {
    assert_eq!(
        (err.class, err.status),
        (FailureClass::Retryable, status),
        "{err:?}"
    );
    assert_eq!(
        err.retry_after,
        Some(Duration::from_secs(seconds)),
        "{err:?}"
    );
    assert_eq!(err.code.as_deref(), Some(code), "{err:?}");
}

/// Creates an item, which must succeed, and returns its id.
async fn created(
    client: &MondayClient,
    board: BoardId,
    name: &str,
    columns: Value,
    key: &str,
) -> MondayItemId {
    client
        .create_item(board, name, &values(columns), key)
        .await
        .expect("created")
}

/// Changes an item's columns (and name), which must succeed.
async fn changed(
    client: &MondayClient,
    board: BoardId,
    id: MondayItemId,
    columns: Value,
    key: &str,
) {
    client
        .change_multiple_column_values(board, id, &values(columns), key)
        .await
        .expect("changed");
}

fn values(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn ada() -> Value {
    json!({
        "email": { "email": "ada@example.com", "text": "ada@example.com" },
        "phone": { "phone": "+442079460990", "countryShortName": "GB" },
        "role_title": "CTO",
        "notes": { "text": "Met at the expo" },
        "npd_id": NPD_ID,
    })
}

#[test]
fn every_document_validates_against_the_schemas() {
    let shared = shared_schema_available();
    eprintln!(
        "validating {} documents against the subset SDL{}",
        documents::ALL.len(),
        if shared {
            " and monday's shared schema.graphql"
        } else {
            " only (monday's schema.graphql is not beside the project)"
        }
    );
    assert_eq!(documents::ALL.len(), 15);
    for (name, document) in documents::ALL {
        validate_document(document).unwrap_or_else(|e| panic!("{name} is invalid:\n{e}"));
    }
}

#[test]
fn batched_mutation_documents_validate_in_every_mix() {
    use documents::BatchKind::{Archive, Create, Update};
    let mixes: [&[documents::BatchKind]; 5] = [
        &[Create],
        &[Update],
        &[Archive],
        &[Create, Update, Archive, Create],
        &[Update; 25],
    ];
    for kinds in mixes {
        let document = documents::batch(kinds);
        validate_document(&document).unwrap_or_else(|e| panic!("{kinds:?}:\n{document}\n{e}"));
    }
}

#[test]
fn documents_creating_labels_validate_and_carry_the_argument_only_where_asked() {
    use documents::BatchKind::{Create, Update};
    for document in [
        documents::CREATE_ITEM,
        documents::CHANGE_MULTIPLE_COLUMN_VALUES,
    ] {
        assert!(!document.contains("create_labels_if_missing"));
        let creating = documents::creating_labels(document, "column_values");
        assert!(
            creating.contains("create_labels_if_missing: true"),
            "{creating}"
        );
        validate_document(&creating).unwrap_or_else(|e| panic!("{creating}\n{e}"));
    }
    let batch = documents::batch(&[Create, Update, Update]);
    let creating = documents::creating_labels(&batch, "c1");
    assert_eq!(
        creating.matches("create_labels_if_missing: true").count(),
        1,
        "{creating}"
    );
    assert!(creating.contains("column_values: $c1, create_labels_if_missing: true)"));
    validate_document(&creating).unwrap_or_else(|e| panic!("{creating}\n{e}"));
}

#[test]
fn validation_rejects_a_missing_required_argument_and_an_unknown_field() {
    let missing = documents::CREATE_ITEM.replace("item_name: $item_name, ", "");
    let err = validate_document(&missing).expect_err("create_item without item_name");
    assert!(err.contains("item_name"), "{err}");
    let unknown = documents::GET_ITEM.replace("state", "state\n    colour");
    let err = validate_document(&unknown).expect_err("unknown field");
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn new_needs_a_token_and_debug_never_shows_it() {
    let mut s = settings_for("http://127.0.0.1:9/v2".into(), None);
    assert!(MondayClient::new(&s, Duration::from_secs(1)).is_none());
    s.api_token = Some(SecretString::from("super-secret-monday-token"));
    let client = MondayClient::new(&s, Duration::from_secs(1)).expect("configured");
    for out in [format!("{client:?}"), format!("{client:#?}")] {
        assert!(!out.contains("super-secret-monday-token"), "{out}");
        assert!(out.contains("REDACTED"), "{out}");
    }
}

#[tokio::test]
async fn create_then_get_item_shows_the_columns() {
    let (sim, client) = start().await;
    let id = created(&client, CONTACTS, "Ada Lovelace", ada(), "job-1-create").await;
    let item = client.get_item(id).await.expect("read").expect("exists");
    assert_eq!(item.id, id);
    assert_eq!(item.name, "Ada Lovelace");
    assert_eq!(item.board_id, Some(CONTACTS));
    assert_eq!(item.state, "active");
    let email = &item.column_values["email"];
    assert_eq!(email.column_type, "email");
    assert_eq!(email.text.as_deref(), Some("ada@example.com"));
    let stored: Value =
        serde_json::from_str(email.value.as_deref().expect("a value")).expect("JSON string");
    assert_eq!(stored["email"], "ada@example.com");
    assert_eq!(
        item.column_values["role_title"].value.as_deref(),
        Some("\"CTO\"")
    );
    assert_eq!(item.column_values["npd_id"].text.as_deref(), Some(NPD_ID));
    assert_eq!(
        item.column_values["phone"].text.as_deref(),
        Some("+442079460990")
    );
    assert_eq!(item.column_values["notes"].column_type, "long_text");
    assert_eq!(item.column_values["status"].value, None, "empty column");
    let sim_item = sim.item(id).expect("in the simulator");
    assert_eq!(sim_item.column_values["role_title"], json!("CTO"));

    // `column_values` went over the wire as a JSON string.
    let call = &sim.calls()[0];
    assert_eq!(call.operation, "create_item");
    let sent = call.variables["column_values"].as_str().expect("a string");
    assert_eq!(serde_json::from_str::<Value>(sent).expect("JSON"), ada());
}

#[tokio::test]
async fn change_with_name_renames_and_writes_columns() {
    let (sim, client) = start().await;
    let id = created(&client, CONTACTS, "Ada Lovelace", ada(), "k1").await;
    changed(
        &client,
        CONTACTS,
        id,
        json!({ "name": "Ada King", "role_title": "CEO", "notes": null }),
        "k2",
    )
    .await;
    let item = sim.item(id).expect("exists");
    assert_eq!(item.name, "Ada King");
    assert_eq!(item.column_values["role_title"], json!("CEO"));
    assert!(!item.column_values.contains_key("notes"), "null cleared it");
}

#[tokio::test]
async fn archive_item_archives() {
    let (_sim, client) = start().await;
    let id = created(&client, CONTACTS, "Gone", json!({}), "k1").await;
    client.archive_item(id, "k2").await.expect("archived");
    let item = client
        .get_item(id)
        .await
        .expect("read")
        .expect("still readable");
    assert_eq!(item.state, "archived");
}

#[tokio::test]
async fn find_items_by_column_finds_by_npd_id_active_first() {
    let (_sim, client) = start().await;
    let old = created(&client, CONTACTS, "Old", json!({ "npd_id": NPD_ID }), "k1").await;
    client.archive_item(old, "k2").await.expect("archived");
    let current = created(
        &client,
        CONTACTS,
        "Current",
        json!({ "npd_id": NPD_ID }),
        "k3",
    )
    .await;
    created(
        &client,
        CONTACTS,
        "Other",
        json!({ "npd_id": "another" }),
        "k4",
    )
    .await;
    let found = client
        .find_items_by_column(CONTACTS, "npd_id", &NPD_ID.to_uppercase())
        .await
        .expect("searched");
    assert_eq!(found, [current, old]);
    let none = client
        .find_items_by_column(CONTACTS, "npd_id", "nobody")
        .await
        .expect("searched");
    assert!(none.is_empty());
}

/// Walks the whole board in pages of `limit` with only `columns`; the ids and how many pages.
async fn walk(client: &MondayClient, columns: &[String], limit: u32) -> (Vec<MondayItemId>, usize) {
    let (mut ids, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let page = client
            .items_page(CONTACTS, columns, cursor.as_deref(), limit)
            .await
            .expect("a page");
        pages += 1;
        ids.extend(page.items.iter().map(|i| i.id));
        cursor = page.cursor;
        if cursor.is_none() {
            return (ids, pages);
        }
    }
}

#[tokio::test]
async fn items_page_walks_the_active_items_with_only_the_columns_asked_for() {
    // Arrange: 5 items, one of them archived.
    let (sim, client) = start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            created(
                &client,
                CONTACTS,
                &format!("Item {i}"),
                ada(),
                &format!("k{i}"),
            )
            .await,
        );
    }
    client
        .archive_item(ids[2], "archive")
        .await
        .expect("archived");
    ids.remove(2);

    // Act
    let columns = vec!["email".to_owned(), "npd_id".to_owned()];
    let (seen, pages) = walk(&client, &columns, 2).await;
    let first = client
        .items_page(CONTACTS, &columns, None, 500)
        .await
        .expect("page");

    // Assert: every active item once, in pages of 2, with the two columns only.
    assert_eq!((seen, pages), (ids, 2));
    let item = &first.items[0];
    assert_eq!(
        item.column_values.keys().collect::<Vec<_>>(),
        ["email", "npd_id"]
    );
    let email = crate::domain::mapping::ColumnType::Email
        .from_api_value(item.column_values["email"].value.as_deref());
    assert_eq!(email, Ok(Some("ada@example.com".to_owned())));
    assert_eq!(first.cursor, None);
    let operations: Vec<String> = sim.calls().iter().map(|c| c.operation.clone()).collect();
    assert!(
        operations.ends_with(&["boards".into(), "next_items_page".into(), "boards".into()]),
        "{operations:?}"
    );
}

#[tokio::test]
async fn an_expired_cursor_is_not_found_and_a_fresh_walk_starts_again() {
    // Arrange: 3 items, a walk in pages of 1.
    let (sim, client) = start().await;
    for i in 0..3 {
        created(
            &client,
            CONTACTS,
            &format!("Item {i}"),
            ada(),
            &format!("k{i}"),
        )
        .await;
    }
    let columns = vec!["npd_id".to_owned()];
    let first = client
        .items_page(CONTACTS, &columns, None, 1)
        .await
        .expect("page");
    let cursor = first.cursor.expect("more pages");

    // Act: the cursor is reused while valid, then its 60 minutes pass.
    let again = client
        .items_page(CONTACTS, &columns, Some(&cursor), 1)
        .await;
    sim.faults().advance_clock(Duration::from_secs(61 * 60));
    let expired = client
        .items_page(CONTACTS, &columns, Some(&cursor), 1)
        .await;
    sim.faults().expire_next_cursor();
    let fresh = client
        .items_page(CONTACTS, &columns, None, 1)
        .await
        .expect("page");
    let switched = client
        .items_page(CONTACTS, &columns, fresh.cursor.as_deref(), 1)
        .await;

    // Assert
    assert_eq!(again.expect("valid for 60 minutes").items.len(), 1);
    for err in [
        expired.expect_err("expired"),
        switched.expect_err("expired by the switch"),
    ] {
        assert_eq!(err.class, FailureClass::NotFound, "{err:?}");
    }
    let (ids, pages) = walk(&client, &columns, 1).await;
    assert_eq!((ids.len(), pages), (3, 3), "a new walk gets new cursors");
}

#[tokio::test]
async fn board_columns_lists_the_columns_and_none_for_an_unknown_board() {
    let (_sim, client) = start().await;
    let columns = client
        .board_columns(ORGANIZATIONS)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        columns,
        [
            ("website".to_owned(), "link".to_owned()),
            ("industry".to_owned(), "text".to_owned()),
            ("notes".to_owned(), "long_text".to_owned()),
            ("npd_id".to_owned(), "text".to_owned()),
        ]
    );
    assert_eq!(client.board_columns(BoardId(42)).await.expect("read"), None);
}

#[tokio::test]
async fn an_unknown_item_is_not_found() {
    let (_sim, client) = start().await;
    assert_eq!(
        client.get_item(MondayItemId(123)).await.expect("read"),
        None
    );
    let err = client
        .change_multiple_column_values(
            CONTACTS,
            MondayItemId(123),
            &values(json!({ "role_title": "x" })),
            "k1",
        )
        .await
        .expect_err("no such item");
    assert_eq!(err.class, FailureClass::NotFound);
    assert_eq!(err.code.as_deref(), Some("ResourceNotFoundException"));
    assert_eq!(err.system, crate::domain::entity::Side::Monday);
    let err = client
        .archive_item(MondayItemId(123), "k2")
        .await
        .expect_err("no such item");
    assert_eq!(err.class, FailureClass::NotFound);
}

#[tokio::test]
async fn an_invalid_email_is_a_permanent_column_value_exception() {
    let (sim, client) = start().await;
    let err = client
        .create_item(
            CONTACTS,
            "Bad",
            &values(json!({ "email": { "email": "not-an-address", "text": "x" } })),
            "k1",
        )
        .await
        .expect_err("invalid email");
    assert_eq!(err.class, FailureClass::Permanent);
    assert_eq!(err.code.as_deref(), Some("ColumnValueException"));
    assert_eq!(err.status, Some(200));
    assert!(err.message.contains("request_id"), "{}", err.message);
    assert!(
        !err.message.contains(&sim_config().api_token),
        "{}",
        err.message
    );
    assert!(!err.message.contains("not-an-address"), "{}", err.message);
    assert!(sim.items(CONTACTS).is_empty());
    let err = client
        .create_item(CONTACTS, "Bad", &values(json!({ "nope": "x" })), "k2")
        .await
        .expect_err("unknown column");
    assert_eq!(err.class, FailureClass::Permanent);
    assert_eq!(err.code.as_deref(), Some("InvalidColumnIdException"));
}

#[tokio::test]
async fn headers_carry_the_raw_token_version_and_a_key_on_mutations_only() {
    let (sim, client) = start().await;
    let id = created(&client, CONTACTS, "Ada", json!({}), "job-7-create").await;
    client.get_item(id).await.expect("read");
    client
        .find_items_by_column(CONTACTS, "npd_id", NPD_ID)
        .await
        .expect("searched");
    client.board_columns(CONTACTS).await.expect("read");
    changed(
        &client,
        CONTACTS,
        id,
        json!({ "role_title": "x" }),
        "job-8-update",
    )
    .await;
    client
        .archive_item(id, "job-9-archive")
        .await
        .expect("archived");
    let calls = sim.calls();
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(
        ops,
        [
            "create_item",
            "items",
            "items_page_by_column_values",
            "boards",
            "change_multiple_column_values",
            "archive_item"
        ]
    );
    for call in &calls {
        assert_eq!(
            call.authorization.as_deref(),
            Some(sim_config().api_token.as_str())
        );
        assert_eq!(call.api_version.as_deref(), Some("2026-10"));
        assert_eq!(call.status, 200);
        assert!(call.variables.is_object());
    }
    let keys: Vec<Option<&str>> = calls.iter().map(|c| c.idempotency_key.as_deref()).collect();
    assert_eq!(
        keys,
        [
            Some("job-7-create"),
            None,
            None,
            None,
            Some("job-8-update"),
            Some("job-9-archive")
        ]
    );
    let rate = client
        .last_rate_limit()
        .expect("a RateLimit header was seen");
    assert!(rate.minute_remaining.is_some_and(|r| r < 5000));
    assert!(rate.complexity_remaining.is_some_and(|r| r < 5_000_000));
}

#[tokio::test]
async fn the_same_idempotency_key_twice_creates_one_item() {
    let (sim, client) = start().await;
    let first = created(&client, CONTACTS, "Ada", ada(), "job-1-create").await;
    let second = client
        .create_item(CONTACTS, "Ada", &values(ada()), "job-1-create")
        .await
        .expect("replayed");
    assert_eq!(first, second);
    assert_eq!(sim.items(CONTACTS).len(), 1);
    let calls = sim.calls();
    assert!(!calls[0].replayed);
    assert!(calls[1].replayed);
    assert_eq!(calls[0].response, calls[1].response);

    // After the cache expires, the key executes again.
    sim.faults().drop_idempotency_cache();
    let third = client
        .create_item(CONTACTS, "Ada", &values(ada()), "job-1-create")
        .await
        .expect("created again");
    assert_ne!(third, first);
}

#[tokio::test]
async fn a_concurrent_duplicate_gets_409_which_is_retryable() {
    let (sim, client) = start().await;
    // The first request executes, then its answer is held: its key stays in flight until released.
    let hold = sim.faults().hold_next_answer();
    let other = client.clone();
    let first = tokio::spawn(async move {
        other
            .create_item(CONTACTS, "Ada", &Map::new(), "same-key")
            .await
    });
    sim.wait_for_call(Duration::from_secs(5), |c| {
        c.idempotency_key.as_deref() == Some("same-key")
    })
    .await
    .expect("the first request reached the simulator");
    let err = client
        .create_item(CONTACTS, "Ada", &Map::new(), "same-key")
        .await
        .expect_err("the first is still executing");
    assert_retry_after(&err, Some(409), 1, "IDEMPOTENCY_CONFLICT");
    hold.release();
    let id = first.await.expect("joined").expect("created");
    assert_eq!(
        client
            .create_item(CONTACTS, "Ada", &Map::new(), "same-key")
            .await
            .expect("replayed"),
        id
    );
    assert_eq!(sim.items(CONTACTS).len(), 1);
}

#[tokio::test]
async fn each_fault_is_classified_right() {
    let (sim, client) = start().await;
    let faults = sim.faults();

    // An HTTP error status, met by either query.
    let statuses = [
        (500, FailureClass::Retryable),
        (503, FailureClass::Retryable),
        (423, FailureClass::Retryable),
        (401, FailureClass::Permanent),
        (403, FailureClass::Permanent),
        (400, FailureClass::Permanent),
    ];
    for (status, class) in statuses {
        faults.fail_next(2, status);
        let item = client
            .get_item(MondayItemId(1))
            .await
            .expect_err("get_item");
        let columns = client.board_columns(CONTACTS).await.expect_err("columns");
        for err in [item, columns] {
            assert_eq!((err.class, err.status), (class, Some(status)), "{err:?}");
        }
    }

    faults.rate_limit_next(1, 7);
    let err = client.board_columns(CONTACTS).await.expect_err("429");
    assert_retry_after(&err, Some(429), 7, "RATE_LIMIT_EXCEEDED");

    // A mutation's budget and idempotency faults; every attempt carries the same key.
    let create = async || {
        client
            .create_item(CONTACTS, "Ada", &Map::new(), "k-complexity")
            .await
    };
    faults.complexity_exhausted_next(1, 23);
    let err = create().await.expect_err("complexity");
    assert_retry_after(&err, Some(200), 23, "COMPLEXITY_BUDGET_EXHAUSTED");
    assert!(sim.items(CONTACTS).is_empty(), "nothing executed");

    faults.idempotency_conflict_next(1);
    let err = create().await.expect_err("409");
    assert_retry_after(&err, Some(409), 1, "IDEMPOTENCY_CONFLICT");

    // The same key executes once the faults are gone: nothing was cached.
    create().await.expect("created");
    assert_eq!(sim.items(CONTACTS).len(), 1);
}

#[tokio::test]
async fn a_timeout_is_retryable_without_a_status() {
    let (sim, client) = start_with(sim_config(), Duration::from_secs(1)).await;
    sim.faults().timeout_next(1);
    let started = std::time::Instant::now();
    let err = client
        .create_item(CONTACTS, "Slow", &Map::new(), "k1")
        .await
        .expect_err("timed out");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.class, FailureClass::Retryable);
    assert_eq!(err.status, None);
    assert!(err.message.contains("timed out"), "{}", err.message);
    assert!(sim.items(CONTACTS).is_empty(), "nothing executed");
    assert_eq!(sim.calls().len(), 1, "the held call is recorded");
}

#[tokio::test]
async fn a_connection_refused_is_retryable_without_a_status() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let s = settings_for(format!("http://{addr}/v2"), Some("t"));
    let client = MondayClient::new(&s, Duration::from_secs(2)).expect("configured");
    let err = client.board_columns(CONTACTS).await.expect_err("refused");
    assert_eq!((err.class, err.status), (FailureClass::Retryable, None));
}

#[tokio::test]
async fn the_sixth_call_of_a_five_per_minute_budget_is_retryable() {
    let (_sim, client) = start_with(
        MondaySimConfig {
            requests_per_minute: 5,
            ..sim_config()
        },
        Duration::from_secs(5),
    )
    .await;
    for _ in 0..5 {
        client.board_columns(CONTACTS).await.expect("within budget");
    }
    let err = client
        .board_columns(CONTACTS)
        .await
        .expect_err("over budget");
    assert_eq!(
        (err.class, err.status),
        (FailureClass::Retryable, Some(429))
    );
    assert!(err.retry_after.is_some_and(|d| d >= Duration::from_secs(1)));
    assert!(
        err.message.contains("Minute limit rate exceeded"),
        "{}",
        err.message
    );
    let rate = client.last_rate_limit().expect("seen");
    assert_eq!(rate.minute_remaining, Some(0));
    assert!(rate.reset_in.is_some());
}

#[tokio::test]
async fn the_gateways_writes_fire_webhooks_with_the_integration_user_id() {
    let (sim, client) = start().await;
    let receiver = WebhookReceiver::start(&sim_config().signing_secret).await;
    sim.set_webhook_target(Some(receiver.url.clone()), None);
    let id = created(&client, CONTACTS, "Ada Lovelace", ada(), "k1").await;
    changed(
        &client,
        CONTACTS,
        id,
        json!({
            "name": "Ada King",
            "email": { "email": "ada.king@example.com", "text": "ada.king@example.com" },
            "phone": { "phone": "+442079460991", "countryShortName": "GB" },
            "role_title": "CTO",
            "notes": { "text": "Wants a demo" },
        }),
        "k2",
    )
    .await;
    client.archive_item(id, "k3").await.expect("archived");
    let org = created(
        &client,
        ORGANIZATIONS,
        "Analytical Engines",
        json!({}),
        "k4",
    )
    .await;
    changed(
        &client,
        ORGANIZATIONS,
        org,
        json!({ "website": { "url": "https://ae.example", "text": "AE" } }),
        "k5",
    )
    .await;

    let events = receiver.wait_for(8).await;
    assert!(receiver.refused().is_empty(), "{:?}", receiver.refused());
    let summary: Vec<(String, Option<String>)> = events
        .iter()
        .map(|e| (e.event.event_type.clone(), e.event.column_type.clone()))
        .collect();
    let s = |t: &str, c: Option<&str>| (t.to_owned(), c.map(str::to_owned));
    // role_title did not change (CTO -> CTO): no event for it.
    assert_eq!(
        summary,
        [
            s("create_pulse", None),
            s("update_name", None),
            s("update_column_value", Some("email")),
            s("update_column_value", Some("phone")),
            s("update_column_value", Some("long-text")),
            s("archive_pulse", None),
            s("create_pulse", None),
            s("update_column_value", Some("link")),
        ]
    );
    let integration = sim_config().integration_user_id;
    for e in &events {
        assert_eq!(e.event.user_id, Some(integration));
        assert_eq!(e.claims.user_id, Some(integration));
        assert!(!e.event.is_retry);
    }
    assert_write_webhook_values(&events, id);
    // A replay does not fire again.
    client
        .create_item(CONTACTS, "Ada Lovelace", &values(ada()), "k1")
        .await
        .expect("replayed");
    assert!(sim.webhooks_delivered(Duration::from_secs(5)).await);
    assert_eq!(receiver.events().len(), 8);
}

/// What the webhooks of `the_gateways_writes_fire_webhooks_with_the_integration_user_id` carry:
/// the created item's columns, each change's value and previous value.
fn assert_write_webhook_values(events: &[Received], id: MondayItemId) {
    let created = &events[0].event;
    assert_eq!(created.item_id, Some(id));
    assert_eq!(created.board_id, Some(CONTACTS));
    assert_eq!(created.group_id.as_deref(), Some("topics"));
    let cv = created.column_values.as_ref().expect("columnValues");
    assert_eq!(cv["role_title"], json!({ "value": "CTO" }));
    assert_eq!(cv["npd_id"], json!({ "value": NPD_ID }));
    assert_eq!(cv["notes"]["text"], "Met at the expo");
    assert!(cv["email"]["changed_at"].is_string());
    assert_eq!(events[1].event.value, Some(json!({ "name": "Ada King" })));
    assert_eq!(
        events[1].event.previous_value,
        Some(json!({ "name": "Ada Lovelace" }))
    );
    let email = &events[2].event;
    assert_eq!(email.column_id.as_deref(), Some("email"));
    assert_eq!(
        email.value.as_ref().map(|v| v["email"].clone()),
        Some(json!("ada.king@example.com"))
    );
    assert_eq!(
        email.previous_value.as_ref().map(|v| v["email"].clone()),
        Some(json!("ada@example.com"))
    );
    assert!(email.changed_at.is_some());
    assert_eq!(
        events[4].event.value.as_ref().map(|v| v["text"].clone()),
        Some(json!("Wants a demo"))
    );
    let phone = events[3].event.value.as_ref().expect("phone value");
    assert_eq!(phone["phone"], "+442079460991");
    assert_eq!(phone["countryShortName"], "GB");
    assert!(events[5].raw["event"].get("pulseId").is_none());
    assert_eq!(events[5].event.item_id, Some(id));
    assert_eq!(events[5].event.item_name.as_deref(), Some("Ada King"));
    let link = &events[7].event;
    assert_eq!(link.board_id, Some(ORGANIZATIONS));
    assert_eq!(link.previous_value, None);
    assert_eq!(
        link.value.as_ref().map(|v| v["url"].clone()),
        Some(json!("https://ae.example"))
    );
}

#[tokio::test]
async fn with_webhook_before_response_the_event_arrives_before_the_answer() {
    let (sim, client) = start().await;
    let receiver = WebhookReceiver::start(&sim_config().signing_secret).await;
    sim.set_webhook_target(Some(receiver.url.clone()), None);
    sim.faults().set_webhook_before_response(true);
    let id = created(&client, CONTACTS, "Ada", json!({}), "k1").await;
    let answered = std::time::Instant::now();
    let events = receiver.events();
    assert_eq!(events.len(), 1, "delivered before create_item returned");
    assert_eq!(events[0].event.item_id, Some(id));
    assert!(events[0].at <= answered);

    // Without the switch, the answer does not wait for a slow receiver's retries.
    sim.faults().set_webhook_before_response(false);
    receiver.answer_next(&[500, 500]);
    changed(&client, CONTACTS, id, json!({ "role_title": "x" }), "k2").await;
    assert_eq!(receiver.events().len(), 1, "not delivered yet");
    let events = receiver.wait_for(2).await;
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn a_user_change_fires_with_the_human_user_id() {
    let (sim, client) = start().await;
    let receiver = WebhookReceiver::start(&sim_config().signing_secret).await;
    let id = created(&client, CONTACTS, "Ada", ada(), "k1").await;
    sim.set_webhook_target(Some(receiver.url.clone()), None);
    sim.user_change_column(
        id,
        "phone",
        json!({ "phone": "+442079460991", "countryShortName": "GB" }),
    )
    .await;
    let events = receiver.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.user_id, Some(4_012_689));
    assert_eq!(events[0].event.column_type.as_deref(), Some("phone"));
    let item = client.get_item(id).await.expect("read").expect("exists");
    assert_eq!(
        item.column_values["phone"].text.as_deref(),
        Some("+442079460991")
    );
}

// ------------------------------------------------------------------------------------------
// Classification of answers and the RateLimit header, without a server.
// ------------------------------------------------------------------------------------------

fn interpret_with(
    status: u16,
    headers: &[(&'static str, &str)],
    body: Value,
) -> Result<Map<String, Value>, ConnectorError> {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.parse().expect("header value"));
    }
    errors::interpret(status, &map, body.to_string().as_bytes())
}

/// (name, HTTP status, body, class, code, retry_after seconds)
type Case<'a> = (
    &'a str,
    u16,
    Value,
    FailureClass,
    Option<&'a str>,
    Option<u64>,
);

#[test]
fn retryable_error_shapes_are_classified() {
    use FailureClass::*;
    assert_classified(vec![
        (
            "legacy complexity exception",
            200,
            json!({"error_code": "ComplexityException", "status_code": 429,
                   "error_message": "Complexity budget exhausted, query cost 30001 budget remaining 19986 out of 1000000 reset in 3 seconds",
                   "error_data": {}, "errors": ["Complexity budget exhausted, query cost 30001 budget remaining 19986 out of 1000000 reset in 3 seconds"]}),
            Retryable,
            Some("ComplexityException"),
            None,
        ),
        (
            "2025-01 complexity shape",
            200,
            json!({"errors": [{"message": "Complexity budget exhausted", "extensions": {
                "code": "COMPLEXITY_BUDGET_EXHAUSTED", "complexity": 6182, "complexity_budget_left": 100,
                "complexity_budget_limit": 5000000, "retry_in_seconds": 60, "status_code": 429}}]}),
            Retryable,
            Some("COMPLEXITY_BUDGET_EXHAUSTED"),
            Some(60),
        ),
        (
            "legacy field concurrency limit",
            200,
            json!({"error_message": "Concurrency limit exceeded for the field", "error_code": "FIELD_LIMIT_EXCEEDED",
                   "error_data": {"retry_in_seconds": 15, "entity": "boards"}, "status_code": 429, "account_id": 123456}),
            Retryable,
            Some("FIELD_LIMIT_EXCEEDED"),
            Some(15),
        ),
        (
            "daily limit",
            200,
            json!({"errors": [{"message": "Daily limit exceeded", "extensions": {"code": "DAILY_LIMIT_EXCEEDED"}}]}),
            Retryable,
            Some("DAILY_LIMIT_EXCEEDED"),
            None,
        ),
        (
            "maxConcurrencyExceeded",
            200,
            json!({"errors": [{"message": "maxConcurrencyExceeded", "extensions": {}}]}),
            Retryable,
            None,
            None,
        ),
        (
            "api temporarily blocked",
            200,
            json!({"errors": [{"message": "API temporarily blocked", "extensions": {"code": "API_TEMPORARILY_BLOCKED"}}]}),
            Retryable,
            Some("API_TEMPORARILY_BLOCKED"),
            None,
        ),
        (
            "internal server error in a 200",
            200,
            json!({"errors": [{"message": "Internal Server Error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}),
            Retryable,
            Some("INTERNAL_SERVER_ERROR"),
            None,
        ),
    ]);
}

#[test]
fn not_found_and_permanent_error_shapes_are_classified() {
    use FailureClass::*;
    assert_classified(vec![
        (
            "item not found",
            200,
            json!({"data": {"archive_item": null}, "errors": [{"message": "Item not found", "path": ["archive_item"],
                   "extensions": {"code": "ResourceNotFoundException", "status_code": 404, "error_data": {}}}]}),
            NotFound,
            Some("ResourceNotFoundException"),
            None,
        ),
        (
            "invalid item id",
            200,
            json!({"errors": [{"message": "Invalid item id", "extensions": {"code": "InvalidItemIdException"}}]}),
            NotFound,
            Some("InvalidItemIdException"),
            None,
        ),
        (
            "user unauthorized (logical 403 inside a 200)",
            200,
            json!({"data": [], "errors": [{"message": "User unauthorized to perform action", "path": ["me"],
                   "extensions": {"code": "UserUnauthorizedException", "error_data": {}, "status_code": 403}}], "account_id": 123456}),
            Permanent,
            Some("UserUnauthorizedException"),
            None,
        ),
        (
            "board validation rules",
            200,
            json!({"errors": [{"message": "Validation failed", "extensions": {"code": "DATA_VALIDATIONS_ERROR",
                   "status_code": 422, "error_data": [{"itemId": 1, "columnIds": ["email"], "message": "required"}]}}]}),
            Permanent,
            Some("DATA_VALIDATIONS_ERROR"),
            None,
        ),
        (
            "undefined field",
            200,
            json!({"errors": [{"message": "Field 'new_field' doesn't exist on type 'Boards'", "extensions": {"code": "undefinedField"}}]}),
            Permanent,
            Some("undefinedField"),
            None,
        ),
        (
            "legacy unauthorized",
            200,
            json!({"error_message": "User unauthorized to perform action", "error_code": "UserUnauthorizedException",
                   "error_data": {}, "status_code": 403, "account_id": 123456}),
            Permanent,
            Some("UserUnauthorizedException"),
            None,
        ),
        (
            "401",
            401,
            json!({"errors": [{"message": "Not Authenticated", "extensions": {"code": "NOT_AUTHENTICATED"}}]}),
            Permanent,
            Some("NOT_AUTHENTICATED"),
            None,
        ),
        ("408", 408, json!({}), Retryable, None, None),
        ("425", 425, json!({}), Retryable, None, None),
        (
            "404 with a not-found code",
            404,
            json!({"errors": [{"message": "x", "extensions": {"code": "ResourceNotFoundException"}}]}),
            NotFound,
            Some("ResourceNotFoundException"),
            None,
        ),
        ("422", 422, json!({}), Permanent, None, None),
    ]);
}

/// Each case's answer is an error of the expected class, code, delay and status.
fn assert_classified(cases: Vec<Case<'_>>) {
    for (name, status, body, class, code, retry) in cases {
        let err = interpret_with(status, &[], body).expect_err(name);
        assert_eq!(err.class, class, "{name}: {err}");
        assert_eq!(err.code.as_deref(), code, "{name}");
        assert_eq!(err.retry_after, retry.map(Duration::from_secs), "{name}");
        assert_eq!(err.status, Some(status), "{name}");
        assert_eq!(err.system, crate::domain::entity::Side::Monday);
    }
}

#[test]
fn retry_after_is_the_larger_of_the_header_and_the_body() {
    let body = json!({"errors": [{"message": "Rate Limit Exceeded", "extensions": {"code": "RATE_LIMIT_EXCEEDED", "retry_in_seconds": 12}}]});
    let err = interpret_with(429, &[("retry-after", "30")], body.clone()).expect_err("429");
    assert_eq!(err.retry_after, Some(Duration::from_secs(30)));
    let err = interpret_with(429, &[("retry-after", "3")], body).expect_err("429");
    assert_eq!(err.retry_after, Some(Duration::from_secs(12)));
}

#[test]
fn messages_name_the_request_id_and_never_echo_unknown_bodies() {
    let err = interpret_with(
        200,
        &[("x-request-id", "hdr-id")],
        json!({"errors": [{"message": "boom", "extensions": {"code": "ColumnValueException"}}],
               "extensions": {"request_id": "body-id"}}),
    )
    .expect_err("error");
    assert_eq!(err.message, "boom (request_id: body-id)");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-request-id", "hdr-id".parse().expect("value"));
    let err =
        errors::interpret(502, &headers, b"<html>secret upstream page</html>").expect_err("502");
    assert_eq!(err.class, FailureClass::Retryable);
    assert!(
        !err.message.contains("secret upstream page"),
        "{}",
        err.message
    );
    assert!(err.message.contains("hdr-id"), "{}", err.message);
    let err = errors::interpret(200, &headers, b"not json").expect_err("garbage");
    assert_eq!(err.class, FailureClass::Retryable);
    let ok = interpret_with(200, &[], json!({"data": {"me": {"id": "1"}}})).expect("data");
    assert_eq!(ok["me"]["id"], "1");
}

#[test]
fn the_rate_limit_header_is_parsed() {
    assert_eq!(
        RateLimitState::parse(
            "\"minuteRate\";r=4999, \"concurrency\";r=249, \"complexityMinute\";r=4950000;t=45"
        ),
        Some(RateLimitState {
            minute_remaining: Some(4999),
            complexity_remaining: Some(4_950_000),
            reset_in: Some(Duration::from_secs(45)),
        })
    );
    assert_eq!(
        RateLimitState::parse(
            "\"minuteRate\";r=0;t=38, \"concurrency\";r=249, \"complexityMinute\";r=4950000;t=45"
        ),
        Some(RateLimitState {
            minute_remaining: Some(0),
            complexity_remaining: Some(4_950_000),
            reset_in: Some(Duration::from_secs(45)),
        })
    );
    assert_eq!(
        RateLimitState::parse("\"minuteRate\";r=12"),
        Some(RateLimitState {
            minute_remaining: Some(12),
            complexity_remaining: None,
            reset_in: None,
        })
    );
    assert_eq!(RateLimitState::parse("garbage"), None);
}

#[tokio::test]
async fn me_names_the_user_the_token_acts_as() {
    let (_sim, client) = start().await;
    let me = client.me().await.expect("me");
    assert_eq!(me, sim_config().integration_user_id);
}

#[tokio::test]
async fn a_64_mib_answer_is_refused_unread_not_buffered() {
    // Arrange: a server whose answer is valid JSON, 64 MiB long.
    let padding = "x".repeat(64 * 1024 * 1024);
    let body = format!(r#"{{"data": {{"me": {{"id": "71000001", "padding": "{padding}"}}}}}}"#);
    let app = axum::Router::new().route(
        "/v2",
        axum::routing::post(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let s = settings_for(format!("http://{addr}/v2"), Some("t"));
    let client = MondayClient::new(&s, Duration::from_secs(20)).expect("configured");

    // Act
    let err = client.me().await.expect_err("too large to read");

    // Assert: refused for its size, as a permanent failure (retrying cannot shrink it).
    assert_eq!(err.class, FailureClass::Permanent, "{err:?}");
    assert!(err.message.contains("larger than 8 MiB"), "{}", err.message);
}

#[test]
fn every_mapping_type_is_a_column_type_of_monday_s_schema() {
    for column_type in crate::domain::mapping::ColumnType::ALL {
        let name = graphql_column_type(column_type);
        let document = format!(
            "mutation {{ create_column(board_id: 1, title: \"t\", column_type: {name}) {{ id }} }}"
        );
        assert_eq!(validate_document(&document), Ok(()), "{name}");
    }
}
