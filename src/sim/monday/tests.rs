//! Tests of the Monday simulator over raw HTTP (the client's own tests drive it through
//! `MondayClient`).

use std::time::Duration;

use serde_json::{Value, json};

use super::schema::{shared_schema_available, validate_document};
use super::test_support::WebhookReceiver;
use super::*;

const CONTACTS: BoardId = BoardId(4_100_000_001);
const ORGANIZATIONS: BoardId = BoardId(4_100_000_002);

fn config() -> MondaySimConfig {
    MondaySimConfig::contacts_and_organizations(CONTACTS, ORGANIZATIONS)
}

async fn sim_with(config: MondaySimConfig) -> MondaySim {
    MondaySim::start(config)
        .await
        .expect("start the Monday simulator")
}

async fn sim() -> MondaySim {
    sim_with(config()).await
}

struct Answered {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn post_raw(sim: &MondaySim, token: Option<&str>, body: String) -> Answered {
    let mut request = reqwest::Client::new()
        .post(sim.api_url())
        .header("content-type", "application/json")
        .header("api-version", "2026-10")
        .body(body);
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    let response = request.send().await.expect("the simulator answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("a body");
    Answered {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn gql(sim: &MondaySim, query: &str, variables: Value) -> Answered {
    let token = config().api_token;
    post_raw(
        sim,
        Some(&token),
        json!({ "query": query, "variables": variables }).to_string(),
    )
    .await
}

async fn create(sim: &MondaySim, board: BoardId, name: &str, values: Value) -> Answered {
    gql(
        sim,
        "mutation ($b: ID!, $n: String!, $v: JSON) { create_item(board_id: $b, item_name: $n, column_values: $v) { id } }",
        json!({ "b": board.to_string(), "n": name, "v": values.to_string() }),
    )
    .await
}

/// Creates an item through the API and returns its id.
async fn create_id(sim: &MondaySim, board: BoardId, name: &str, values: Value) -> MondayItemId {
    created_id(&create(sim, board, name, values).await)
}

fn created_id(answer: &Answered) -> MondayItemId {
    answer.body["data"]["create_item"]["id"]
        .as_str()
        .expect("create_item.id")
        .parse()
        .expect("numeric id")
}

#[test]
fn the_subset_sdl_is_valid_and_used_for_validation() {
    let schema = schema::subset_schema();
    for field in ["items", "items_page_by_column_values", "boards", "me"] {
        assert!(schema.type_field("Query", field).is_ok(), "Query.{field}");
    }
    for field in [
        "create_item",
        "change_multiple_column_values",
        "archive_item",
        "delete_item",
    ] {
        assert!(
            schema.type_field("Mutation", field).is_ok(),
            "Mutation.{field}"
        );
    }
    eprintln!(
        "monday's shared schema.graphql {}",
        if shared_schema_available() {
            "was found: documents are validated against it too"
        } else {
            "is absent: documents are validated against the subset only"
        }
    );
}

#[test]
fn a_create_item_without_item_name_is_rejected_by_validation() {
    let err = validate_document("mutation { create_item(board_id: 1) { id } }")
        .expect_err("item_name is required");
    assert!(err.contains("item_name"), "{err}");
}

#[test]
fn a_document_with_an_unknown_field_is_rejected_by_validation() {
    let err = validate_document("query { items(ids: [1]) { id no_such_field } }")
        .expect_err("unknown field");
    assert!(err.contains("no_such_field"), "{err}");
    let err = validate_document("query { items(ids: [1]) { id ").expect_err("syntax");
    assert!(err.contains("Parse error"), "{err}");
}

#[test]
fn the_documented_examples_validate() {
    for doc in [
        r#"mutation { change_multiple_column_values(item_id: 9876543210, board_id: 1234567890, column_values: "{\"email\": {\"email\": \"example@example.com\", \"text\": \"x\"}}") { id } }"#,
        r#"query { items_page_by_column_values(limit: 50, board_id: 1234567890, columns: [{ column_id: "text", column_values: ["This is a text column"] } { column_id: "country", column_values: ["US", "IL"] }]) { cursor items { id name } } }"#,
        "query { items(ids: [1]) { column_values(ids: [\"email\"]) { id type text value ... on EmailValue { email label } } } }",
        "query { me { id } boards(ids: [1]) { id name columns { id type title } } }",
    ] {
        validate_document(doc).unwrap_or_else(|e| panic!("{doc}\n{e}"));
    }
}

#[tokio::test]
async fn a_wrong_or_missing_token_gets_401_and_bearer_is_accepted() {
    let sim = sim().await;
    let body = json!({ "query": "{ me { id } }" }).to_string();
    for token in [None, Some("wrong")] {
        let answer = post_raw(&sim, token, body.clone()).await;
        assert_eq!(answer.status, 401);
        assert_eq!(answer.body["errors"][0]["message"], "Not Authenticated");
        assert_eq!(
            answer.body["errors"][0]["extensions"]["code"],
            "NOT_AUTHENTICATED"
        );
    }
    let bearer = format!("Bearer {}", config().api_token);
    let answer = post_raw(&sim, Some(&bearer), body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["data"]["me"]["id"], "71000099");
    assert_eq!(sim.calls().len(), 3, "refused calls are recorded too");
    assert_eq!(sim.calls()[0].status, 401);
}

#[tokio::test]
async fn a_body_that_is_not_a_graphql_request_gets_400() {
    let sim = sim().await;
    let token = config().api_token;
    for body in [
        "not json".to_owned(),
        json!({ "variables": {} }).to_string(),
        json!({ "query": "{ me { id } }", "variables": "{}" }).to_string(),
    ] {
        let answer = post_raw(&sim, Some(&token), body.clone()).await;
        assert_eq!(answer.status, 400, "{body}");
        assert!(answer.body["errors"][0]["message"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn invalid_documents_are_answered_200_with_errors_and_nothing_runs() {
    let sim = sim().await;
    let answer = gql(
        &sim,
        "mutation { create_item(board_id: 4100000001) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    assert!(answer.body.get("data").is_none());
    let answer = gql(&sim, "query { me { id }", json!({})).await;
    assert_eq!(
        answer.body["errors"][0]["extensions"]["code"],
        "GRAPHQL_PARSE_FAILED"
    );
    assert!(
        answer.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Parse error")),
        "{}",
        answer.body
    );
    let answer = gql(
        &sim,
        "query ($id: ID!) { items(ids: [$id]) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(
        answer.body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "a missing required variable: {}",
        answer.body
    );
    assert!(sim.items(CONTACTS).is_empty());
}

#[tokio::test]
async fn answers_project_the_selection_with_aliases_fragments_and_typename() {
    let sim = sim().await;
    let id = create_id(
        &sim,
        CONTACTS,
        "Ada Lovelace",
        json!({
            "email": { "email": "ada@example.com", "text": "Ada" },
            "phone": { "phone": "+442079460990", "countryShortName": "GB" },
            "role_title": "CTO",
            "status": { "label": "Done" },
        }),
    )
    .await;
    let answer = gql(
        &sim,
        r#"query ($ids: [ID!]) {
            found: items(ids: $ids) {
                __typename
                id
                title: name
                state
                board { id }
                email: column_values(ids: ["email"]) { __typename id type text value ... on EmailValue { email label } }
                others: column_values(ids: ["phone", "role_title", "status", "notes"]) { ...Cv }
            }
        }
        fragment Cv on ColumnValue { id type text value ... on StatusValue { index label is_done } ... on PhoneValue { phone country_short_name } }"#,
        json!({ "ids": [id.to_string()] }),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let item = &answer.body["data"]["found"][0];
    assert_eq!(item["__typename"], "Item");
    assert_eq!(item["id"], id.to_string());
    assert_eq!(item["title"], "Ada Lovelace");
    assert_eq!(item["state"], "active");
    assert_eq!(item["board"], json!({ "id": "4100000001" }));
    assert!(item.get("name").is_none(), "only selected keys: {item}");
    let email = &item["email"][0];
    assert_eq!(email["__typename"], "EmailValue");
    assert_eq!(email["type"], "email");
    assert_eq!(email["email"], "ada@example.com");
    assert_eq!(email["label"], "Ada");
    assert_eq!(email["text"], "Ada - ada@example.com");
    let value: Value =
        serde_json::from_str(email["value"].as_str().expect("value is a JSON string"))
            .expect("JSON");
    assert_eq!(value["email"], "ada@example.com");
    assert!(value["changed_at"].is_string());
    let others = item["others"].as_array().expect("list");
    assert_eq!(others.len(), 4);
    assert_eq!(others[0]["phone"], "+442079460990");
    assert_eq!(others[0]["country_short_name"], "GB");
    assert_eq!(others[1]["value"], "\"CTO\"");
    assert_eq!(others[1]["text"], "CTO");
    // Board column order: phone, role_title, notes, status.
    assert_eq!(others[2]["id"], "notes");
    assert_eq!(others[2]["value"], Value::Null, "an empty column");
    assert_eq!(others[2]["text"], "");
    assert_eq!(others[3]["label"], "Done");
    assert_eq!(others[3]["index"], 1);
    assert_eq!(others[3]["is_done"], true);
    let request_id = answer.body["extensions"]["request_id"]
        .as_str()
        .expect("request_id");
    assert_eq!(
        answer
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some(request_id)
    );
}

#[tokio::test]
async fn a_failing_field_is_null_with_an_error_beside_the_others() {
    let sim = sim().await;
    let answer = gql(
        &sim,
        r#"mutation {
            ok: create_item(board_id: 4100000001, item_name: "Grace") { name }
            bad: create_item(board_id: 4100000001, item_name: "X", column_values: "{\"email\": {\"email\": \"not-an-email\", \"text\": \"x\"}}") { id }
            missing: archive_item(item_id: 1) { id }
        }"#,
        json!({}),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["data"]["ok"]["name"], "Grace");
    assert_eq!(answer.body["data"]["bad"], Value::Null);
    assert_eq!(answer.body["data"]["missing"], Value::Null);
    let errors = answer.body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["path"], json!(["bad"]));
    assert_eq!(errors[0]["extensions"]["code"], "ColumnValueException");
    assert_eq!(errors[0]["extensions"]["status_code"], 200);
    assert_eq!(
        errors[0]["extensions"]["error_data"],
        json!({ "column_type": "email" })
    );
    assert!(
        errors[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("invalid value")),
        "{}",
        errors[0]
    );
    assert!(errors[0]["locations"][0]["line"].is_u64());
    assert_eq!(errors[1]["path"], json!(["missing"]));
    assert_eq!(errors[1]["extensions"]["code"], "ResourceNotFoundException");
    assert_eq!(sim.items(CONTACTS).len(), 1);
}

#[tokio::test]
async fn column_values_are_validated_per_column_type() {
    let sim = sim().await;
    let cases = [
        (
            json!({ "email": { "email": "a@b.co" } }),
            "ColumnValueException",
        ),
        (
            json!({ "email": { "email": "a@@b.co", "text": "a" } }),
            "ColumnValueException",
        ),
        (
            json!({ "email": { "email": "a@localhost", "text": "a" } }),
            "ColumnValueException",
        ),
        (
            json!({ "phone": { "phone": "12345", "countryShortName": "US" } }),
            "ColumnValueException",
        ),
        (
            json!({ "phone": { "phone": "+1202555016x", "countryShortName": "US" } }),
            "ColumnValueException",
        ),
        (
            json!({ "phone": { "phone": "+12025550169", "countryShortName": "us" } }),
            "ColumnValueException",
        ),
        (
            json!({ "phone": { "phone": "+12025550169" } }),
            "ColumnValueException",
        ),
        (json!({ "notes": "plain string" }), "ColumnValueException"),
        (
            json!({ "role_title": { "text": "x" } }),
            "ColumnValueException",
        ),
        (
            json!({ "status": { "label": "No such label" } }),
            "ColumnValueException",
        ),
        (json!({ "no_such_column": "x" }), "InvalidColumnIdException"),
    ];
    for (values, code) in cases {
        let answer = create(&sim, CONTACTS, "Someone", values.clone()).await;
        assert_eq!(
            answer.body["errors"][0]["extensions"]["code"], code,
            "{values}: {}",
            answer.body
        );
    }
    let long_name = "x".repeat(256);
    let answer = create(&sim, CONTACTS, &long_name, json!({})).await;
    assert_eq!(
        answer.body["errors"][0]["extensions"]["code"],
        "ItemNameTooLongException"
    );
    let answer = create(&sim, BoardId(1), "Someone", json!({})).await;
    assert_eq!(
        answer.body["errors"][0]["extensions"]["code"],
        "InvalidArgumentException"
    );
    assert_eq!(answer.body["errors"][0]["message"], "Board not found");
    assert!(sim.items(CONTACTS).is_empty());

    let ok = create(
        &sim,
        CONTACTS,
        "Valid",
        json!({
            "email": { "email": "ok@example.com", "text": "ok@example.com" },
            "phone": { "phone": "12025550169", "countryShortName": "US" },
            "notes": { "text": "hello" },
            "role_title": "Engineer",
            "npd_id": null,
        }),
    )
    .await;
    let id = created_id(&ok);
    assert_eq!(id, MondayItemId(store::FIRST_ITEM_ID));
    let item = sim.item(id).expect("created");
    assert_eq!(item.column_values.len(), 4, "null clears: {item:?}");
    assert_eq!(item.column_values["notes"], json!({ "text": "hello" }));
    assert_eq!(item.state, ItemState::Active);
}

#[tokio::test]
async fn search_matches_text_case_insensitively_and_skips_deleted_items() {
    let sim = sim().await;
    let a = create_id(
        &sim,
        CONTACTS,
        "A",
        json!({ "npd_id": "Abc-1", "email": { "email": "a@x.io", "text": "a@x.io" } }),
    )
    .await;
    let b = create_id(&sim, CONTACTS, "B", json!({ "npd_id": "abc-1" })).await;
    let c = create_id(&sim, CONTACTS, "C", json!({ "npd_id": "abc-1" })).await;
    gql(
        &sim,
        "mutation ($i: ID) { archive_item(item_id: $i) { id } }",
        json!({ "i": b.to_string() }),
    )
    .await;
    gql(
        &sim,
        "mutation ($i: ID) { delete_item(item_id: $i) { id } }",
        json!({ "i": c.to_string() }),
    )
    .await;
    let search = |column: &str, value: &str, limit: u64| json!({ "b": CONTACTS.to_string(), "c": column, "v": value, "l": limit });
    let q = "query ($b: ID!, $c: String!, $v: String, $l: Int!) { items_page_by_column_values(board_id: $b, limit: $l, columns: [{column_id: $c, column_values: [$v]}]) { cursor items { id state } } }";
    let answer = gql(&sim, q, search("npd_id", "ABC-1", 25)).await;
    let page = &answer.body["data"]["items_page_by_column_values"];
    assert_eq!(page["cursor"], Value::Null);
    assert_eq!(
        page["items"],
        json!([{ "id": a.to_string(), "state": "active" }, { "id": b.to_string(), "state": "archived" }])
    );
    let answer = gql(&sim, q, search("email", "A@X.IO", 25)).await;
    assert_eq!(
        answer.body["data"]["items_page_by_column_values"]["items"][0]["id"],
        a.to_string()
    );
    let answer = gql(&sim, q, search("npd_id", "abc", 25)).await;
    assert_eq!(
        answer.body["data"]["items_page_by_column_values"]["items"],
        json!([]),
        "entire text only"
    );

    // A page of one, then the cursor.
    let answer = gql(&sim, q, search("npd_id", "abc-1", 1)).await;
    let page = &answer.body["data"]["items_page_by_column_values"];
    let cursor = page["cursor"].as_str().expect("a cursor").to_owned();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    let next = gql(
        &sim,
        "query ($b: ID!, $c: String) { items_page_by_column_values(board_id: $b, limit: 1, cursor: $c) { cursor items { id } } }",
        json!({ "b": CONTACTS.to_string(), "c": cursor }),
    )
    .await;
    assert_eq!(
        next.body["data"]["items_page_by_column_values"]["items"][0]["id"],
        b.to_string()
    );

    // items(ids) omits deleted items but keeps archived ones.
    let answer = gql(
        &sim,
        "query ($ids: [ID!]) { items(ids: $ids) { id state } }",
        json!({ "ids": [a.to_string(), b.to_string(), c.to_string()] }),
    )
    .await;
    assert_eq!(
        answer.body["data"]["items"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(sim.item(c).map(|i| i.state), Some(ItemState::Deleted));
}

#[tokio::test]
async fn the_sixth_request_of_a_minute_gets_429_when_the_limit_is_five() {
    let sim = sim_with(MondaySimConfig {
        requests_per_minute: 5,
        ..config()
    })
    .await;
    for i in 0..5 {
        let answer = gql(&sim, "{ me { id } }", json!({})).await;
        assert_eq!(answer.status, 200, "request {i}");
        let rate = answer
            .headers
            .get("ratelimit")
            .and_then(|v| v.to_str().ok())
            .expect("RateLimit header");
        assert!(
            rate.contains(&format!("\"minuteRate\";r={}", 4 - i)),
            "{rate}"
        );
        assert!(
            answer
                .headers
                .get("ratelimit-policy")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.contains("\"minuteRate\";q=5;w=60")),
        );
    }
    let answer = gql(&sim, "{ me { id } }", json!({})).await;
    assert_eq!(answer.status, 429);
    assert_eq!(
        answer.body["errors"][0]["message"],
        "Minute limit rate exceeded"
    );
    let retry_in = answer.body["errors"][0]["extensions"]["retry_in_seconds"]
        .as_u64()
        .expect("retry_in_seconds");
    assert!((1..=60).contains(&retry_in));
    assert_eq!(
        answer
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some(retry_in.to_string().as_str())
    );
}

#[tokio::test]
async fn the_complexity_budget_refuses_a_create_it_cannot_pay() {
    let sim = sim_with(MondaySimConfig {
        complexity_per_minute: 15_000,
        ..config()
    })
    .await;
    assert_eq!(create(&sim, CONTACTS, "One", json!({})).await.status, 200);
    let answer = create(&sim, CONTACTS, "Two", json!({})).await;
    assert_eq!(answer.status, 429);
    assert_eq!(
        answer.body["errors"][0]["extensions"]["code"],
        "COMPLEXITY_BUDGET_EXHAUSTED"
    );
    assert!(answer.body["errors"][0]["extensions"]["retry_in_seconds"].is_u64());
    assert_eq!(sim.items(CONTACTS).len(), 1);
    // A query still fits.
    assert_eq!(gql(&sim, "{ me { id } }", json!({})).await.status, 200);
}

#[tokio::test]
async fn a_user_edit_fires_webhooks_with_the_human_user_id() {
    let sim = sim().await;
    let receiver = WebhookReceiver::start(&config().signing_secret).await;
    sim.set_webhook_target(Some(receiver.url.clone()), None);
    let mut values = Map::new();
    values.insert("role_title".into(), json!("CTO"));
    let id = sim.user_create_item(CONTACTS, "Ada", values).await;
    sim.user_change_column(id, "role_title", json!("Chief Technology Officer"))
        .await;
    sim.user_change_column(id, "notes", json!({ "text": "Met at the expo" }))
        .await;
    sim.user_change_column(id, "status", json!({ "label": "Working on it" }))
        .await;
    sim.user_rename_item(id, "Ada King").await;
    sim.user_archive_item(id).await;
    sim.user_delete_item(id).await;
    // user_* return once delivered.
    let events = receiver.events();
    assert!(receiver.refused().is_empty(), "{:?}", receiver.refused());
    let types: Vec<&str> = events.iter().map(|e| e.event.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "create_pulse",
            "update_column_value",
            "update_column_value",
            "update_column_value",
            "update_name",
            "archive_pulse",
            "delete_pulse"
        ]
    );
    for e in &events {
        assert_eq!(e.event.user_id, Some(webhooks::HUMAN_USER_ID));
        assert_eq!(e.claims.user_id, Some(webhooks::HUMAN_USER_ID));
        assert_eq!(e.claims.account_id, Some(webhooks::ACCOUNT_ID));
        assert_eq!(e.event.board_id, Some(CONTACTS));
        assert_eq!(e.event.item_id, Some(id));
        assert!(!e.event.is_retry);
        assert_eq!(e.event.trigger_uuid.len(), 32);
        assert!(
            e.event
                .trigger_uuid
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
    assert_eq!(
        events[0]
            .event
            .column_values
            .as_ref()
            .map(|m| m["role_title"].clone()),
        Some(json!({ "value": "CTO" }))
    );
    assert_eq!(events[1].event.column_type.as_deref(), Some("text"));
    assert_eq!(
        events[1].event.value,
        Some(json!({ "value": "Chief Technology Officer" }))
    );
    assert_eq!(
        events[1].event.previous_value,
        Some(json!({ "value": "CTO" }))
    );
    assert_eq!(events[2].event.column_type.as_deref(), Some("long-text"));
    assert_eq!(events[2].event.previous_value, None, "was empty");
    assert_eq!(events[2].raw["event"]["previousValue"], Value::Null);
    assert_eq!(events[3].event.column_type.as_deref(), Some("color"));
    assert_eq!(
        events[3]
            .event
            .value
            .as_ref()
            .and_then(|v| v.pointer("/label/text").cloned()),
        Some(json!("Working on it"))
    );
    assert_eq!(events[4].event.value, Some(json!({ "name": "Ada King" })));
    assert_eq!(
        events[4].event.previous_value,
        Some(json!({ "name": "Ada" }))
    );
    assert!(events[5].raw["event"].get("pulseId").is_none());
    assert_eq!(events[5].raw["event"]["itemName"], "Ada King");
    assert_eq!(sim.webhooks().len(), 7);
}

#[tokio::test]
async fn a_refused_delivery_is_retried_with_is_retry_and_the_same_trigger_uuid() {
    let sim = sim().await;
    let receiver = WebhookReceiver::start(&config().signing_secret).await;
    sim.set_webhook_target(Some(receiver.url.clone()), None);
    receiver.answer_next(&[500, 503]);
    let id = sim.user_create_item(CONTACTS, "Retry me", Map::new()).await;
    let attempts = receiver.attempts();
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        [500, 503, 200]
    );
    assert!(!attempts[0].event.is_retry);
    assert!(attempts[1].event.is_retry && attempts[2].event.is_retry);
    assert!(
        attempts
            .iter()
            .all(|a| a.event.trigger_uuid == attempts[0].event.trigger_uuid)
    );
    assert!(attempts[1].at.duration_since(attempts[0].at) >= Duration::from_millis(190));
    assert_eq!(attempts[2].event.item_id, Some(id));
    let sent = sim.webhooks();
    assert_eq!(
        sent.iter().map(|w| w.status).collect::<Vec<_>>(),
        [Some(500), Some(503), Some(200)]
    );

    // A receiver that never accepts: 1 + 3 attempts, then given up.
    receiver.answer_next(&[500, 500, 500, 500]);
    sim.user_rename_item(id, "Still failing").await;
    assert_eq!(receiver.attempts().len(), 7);
    assert!(
        receiver.events().len() == 1,
        "the rename was never accepted"
    );
}

#[tokio::test]
async fn no_target_or_disabled_webhooks_deliver_nothing() {
    let sim = sim().await;
    let receiver = WebhookReceiver::start(&config().signing_secret).await;
    sim.user_create_item(CONTACTS, "Unseen", Map::new()).await;
    sim.set_webhook_target(Some(receiver.url.clone()), None);
    sim.faults().set_webhooks_enabled(false);
    sim.user_create_item(CONTACTS, "Unseen too", Map::new())
        .await;
    sim.faults().set_webhooks_enabled(true);
    sim.user_create_item(CONTACTS, "Seen", Map::new()).await;
    let events = receiver.wait_for(1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.item_name.as_deref(), Some("Seen"));
    assert_eq!(sim.webhooks().len(), 1);
}

#[tokio::test]
async fn the_jwt_audience_can_differ_from_the_url() {
    let sim = sim().await;
    let receiver = WebhookReceiver::start(&config().signing_secret).await;
    sim.set_webhook_target(
        Some(receiver.url.clone()),
        Some("https://gateway.example.com/webhooks/monday".into()),
    );
    sim.user_create_item(CONTACTS, "Elsewhere", Map::new())
        .await;
    assert!(receiver.events().is_empty());
    assert_eq!(receiver.refused().len(), 4, "{:?}", receiver.refused());
    assert!(
        receiver.refused()[0].contains("aud"),
        "{:?}",
        receiver.refused()
    );
}

#[test]
fn webhook_value_formats_follow_the_fixtures() {
    let at = OffsetDateTime::from_unix_timestamp(1_795_685_411).expect("time");
    let col = |t: &str| SimColumn::new("c", t, "C");
    let cases = [
        ("text", json!("x"), json!({ "value": "x" })),
        (
            "long_text",
            json!({ "text": "t" }),
            json!({ "text": "t", "changed_at": "2026-11-26T09:30:11.000Z" }),
        ),
        (
            "email",
            json!({ "email": "a@b.co", "text": "A" }),
            json!({ "email": "a@b.co", "text": "A", "changed_at": "2026-11-26T09:30:11.000Z" }),
        ),
        (
            "phone",
            json!({ "phone": "+442079460991", "countryShortName": "GB" }),
            json!({ "phone": "+442079460991", "countryShortName": "GB", "changed_at": "2026-11-26T09:30:11.000Z" }),
        ),
        (
            "link",
            json!({ "url": "https://a.example", "text": "A" }),
            json!({ "url": "https://a.example", "text": "A", "changed_at": "2026-11-26T09:30:11.000Z" }),
        ),
        (
            "date",
            json!({ "date": "2026-12-03" }),
            json!({ "date": "2026-12-03", "icon": null, "time": null }),
        ),
    ];
    for (column_type, stored, expected) in cases {
        assert_eq!(
            store::webhook_value(&col(column_type), Some(&stored), at),
            expected,
            "{column_type}"
        );
    }
    assert_eq!(store::webhook_value(&col("text"), None, at), Value::Null);
    assert_eq!(store::legacy_column_type("people"), "multiple-person");
    assert_eq!(store::legacy_column_type("status"), "color");
    assert_eq!(store::legacy_column_type("long_text"), "long-text");
}

/// Every type, field, argument (type and default) and enum value of the subset exists alike in
/// monday's own schema, when that file is beside the project.
#[test]
fn the_subset_is_a_true_subset_of_mondays_schema() {
    use apollo_compiler::ast::InputValueDefinition;
    use apollo_compiler::schema::ExtendedType;
    let Some(shared) = schema::shared_schema() else {
        eprintln!("monday's schema.graphql is absent: nothing to compare");
        return;
    };
    let subset = schema::subset_schema();
    let args = |list: &[apollo_compiler::Node<InputValueDefinition>]| -> Vec<String> {
        list.iter()
            .map(|a| {
                let default = a.default_value.as_ref().map(|d| format!(" = {d}"));
                format!("{}: {}{}", a.name, a.ty, default.unwrap_or_default())
            })
            .collect()
    };
    let mut problems = Vec::new();
    for (name, ty) in &subset.types {
        if ty.is_built_in() {
            continue;
        }
        let Some(theirs) = shared.types.get(name) else {
            problems.push(format!("type {name} is not in monday's schema"));
            continue;
        };
        let fields = |t: &ExtendedType| match t {
            ExtendedType::Object(o) => Some(o.fields.clone()),
            ExtendedType::Interface(i) => Some(i.fields.clone()),
            _ => None,
        };
        match (ty, theirs) {
            (ExtendedType::Enum(ours), ExtendedType::Enum(theirs)) => {
                for value in ours.values.keys() {
                    if !theirs.values.contains_key(value) {
                        problems.push(format!("enum {name} has no value {value}"));
                    }
                }
            }
            (ExtendedType::InputObject(ours), ExtendedType::InputObject(theirs)) => {
                for (field, def) in &ours.fields {
                    match theirs.fields.get(field) {
                        Some(t) if t.ty == def.ty => {}
                        _ => problems.push(format!("input {name}.{field} differs")),
                    }
                }
            }
            (ExtendedType::Scalar(_), ExtendedType::Scalar(_)) => {}
            (ours, theirs) if fields(ours).is_some() && fields(theirs).is_some() => {
                let theirs = fields(theirs).unwrap_or_default();
                for (field, def) in fields(ours).unwrap_or_default() {
                    let Some(t) = theirs.get(&field) else {
                        problems.push(format!("{name}.{field} is not in monday's schema"));
                        continue;
                    };
                    if t.ty != def.ty {
                        problems.push(format!("{name}.{field}: {} vs {}", def.ty, t.ty));
                    }
                    let their_args = args(&t.arguments);
                    for arg in args(&def.arguments) {
                        if !their_args.contains(&arg) {
                            problems
                                .push(format!("{name}.{field}({arg}) is not in monday's schema"));
                        }
                    }
                }
            }
            _ => problems.push(format!("{name} is another kind of type in monday's schema")),
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The deliveries the simulator sends have the fields (and field types) of the fixtures the
/// gateway is tested with; `isRetry`, which the fixtures sometimes omit, is always sent.
#[tokio::test]
async fn deliveries_have_the_shapes_of_the_fixtures() {
    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
    fn keys(v: &Value) -> Vec<String> {
        let mut keys: Vec<String> = v
            .as_object()
            .map(|m| m.keys().filter(|k| *k != "isRetry").cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }
    let fixtures = [
        (
            "create_pulse",
            None,
            include_str!("../../../fixtures/monday/create_pulse.json"),
        ),
        (
            "update_column_value",
            Some("text"),
            include_str!("../../../fixtures/monday/update_column_value_text.json"),
        ),
        (
            "update_column_value",
            Some("long-text"),
            include_str!("../../../fixtures/monday/update_column_value_long_text.json"),
        ),
        (
            "update_column_value",
            Some("email"),
            include_str!("../../../fixtures/monday/update_column_value_email.json"),
        ),
        (
            "update_column_value",
            Some("phone"),
            include_str!("../../../fixtures/monday/update_column_value_phone.json"),
        ),
        (
            "update_column_value",
            Some("color"),
            include_str!("../../../fixtures/monday/update_column_value_status_is_done.json"),
        ),
        (
            "update_column_value",
            Some("link"),
            include_str!("../../../fixtures/monday/update_column_value_org_website.json"),
        ),
        (
            "update_name",
            None,
            include_str!("../../../fixtures/monday/update_name.json"),
        ),
        (
            "archive_pulse",
            None,
            include_str!("../../../fixtures/monday/archive_pulse.json"),
        ),
        (
            "delete_pulse",
            None,
            include_str!("../../../fixtures/monday/delete_pulse.json"),
        ),
    ];

    let sim = sim().await;
    let receiver = WebhookReceiver::start(&config().signing_secret).await;
    sim.set_webhook_target(Some(receiver.url.clone()), None);
    let mut values = Map::new();
    values.insert("role_title".into(), json!("CTO"));
    values.insert("notes".into(), json!({ "text": "Met at the expo" }));
    values.insert(
        "email".into(),
        json!({ "email": "ada@example.com", "text": "ada@example.com" }),
    );
    values.insert(
        "phone".into(),
        json!({ "phone": "+442079460990", "countryShortName": "GB" }),
    );
    values.insert("status".into(), json!({ "index": 0 }));
    let id = sim.user_create_item(CONTACTS, "Ada Lovelace", values).await;
    sim.user_change_column(id, "role_title", json!("Chief Technology Officer"))
        .await;
    sim.user_change_column(id, "notes", json!({ "text": "Wants a demo" }))
        .await;
    sim.user_change_column(
        id,
        "email",
        json!({ "email": "ada.lovelace@example.com", "text": "ada.lovelace@example.com" }),
    )
    .await;
    sim.user_change_column(
        id,
        "phone",
        json!({ "phone": "+442079460991", "countryShortName": "GB" }),
    )
    .await;
    sim.user_change_column(id, "status", json!({ "label": "Done" }))
        .await;
    let org = sim
        .user_create_item(ORGANIZATIONS, "Analytical Engines", Map::new())
        .await;
    sim.user_change_column(
        org,
        "website",
        json!({ "url": "https://ae.example", "text": "AE" }),
    )
    .await;
    sim.user_rename_item(id, "Ada King").await;
    sim.user_archive_item(id).await;
    sim.user_delete_item(id).await;
    let events = receiver.events();
    assert!(receiver.refused().is_empty(), "{:?}", receiver.refused());

    for (event_type, column_type, fixture) in fixtures {
        let fixture: Value = serde_json::from_str(fixture).expect("fixture JSON");
        let expected = &fixture["event"];
        let sent = events
            .iter()
            .map(|e| &e.raw["event"])
            .find(|e| e["type"] == event_type && column_type.is_none_or(|c| e["columnType"] == c))
            .unwrap_or_else(|| panic!("no {event_type} {column_type:?} was delivered"));
        let what = format!("{event_type} {column_type:?}");
        assert_eq!(keys(sent), keys(expected), "{what}");
        assert_eq!(sent["isRetry"], false, "{what}");
        for key in keys(expected) {
            let (ours, theirs) = (&sent[&key], &expected[&key]);
            if ours.is_null() || theirs.is_null() {
                continue;
            }
            assert_eq!(kind(ours), kind(theirs), "{what}: {key}");
            if key == "value" || key == "previousValue" {
                assert_eq!(keys(ours), keys(theirs), "{what}: {key}");
                if let (Some(a), Some(b)) = (ours.get("label"), theirs.get("label")) {
                    assert_eq!(keys(a), keys(b), "{what}: {key}.label");
                }
            }
        }
    }
}
