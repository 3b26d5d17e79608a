//! `/metrics` after real traffic: a round trip in both directions, a dead letter, a conflict
//! opened and resolved. Each value is read from the scrape and compared with what the
//! simulators saw.

use std::time::Duration;

use npd_monday_gateway::demo::World;
use npd_monday_gateway::domain::reconcile::ConflictPolicy;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestDatabase, created_contact, edit_email_on_both_sides, settle_world,
};
use crate::store_tests;

store_tests!(
    a_round_trip_shows_in_latency_requests_echoes_budget_and_queues,
    dead_letters_and_conflicts_are_counted_when_they_happen,
);

const SETTLE: Duration = Duration::from_secs(30);

async fn scrape(world: &World) -> String {
    let response = world
        .client
        .get(world.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.expect("text")
}

/// The value of one series (labels in the exposition's order: by name), if it is there.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("{series} is not in the scrape:\n{text}"))
}

async fn a_round_trip_shows_in_latency_requests_echoes_budget_and_queues(backend: Backend) {
    let db = TestDatabase::create(&backend).await;
    let world = World::start(&db.url, |_| {}).await.expect("world");
    let (_, item) = created_contact(&world).await;
    let email = json!({"email": "ada@new.example", "text": "ada@new.example"});
    world.monday.user_change_column(item, "email", email).await;
    settle_world(&world, SETTLE).await;

    let text = scrape(&world).await;
    let latency = |direction: &str, what: &str| {
        value(
            &text,
            &format!("gateway_sync_latency_seconds_{what}{{direction=\"{direction}\"}}"),
        )
    };
    // One create in Monday for the NPD event, one PATCH in NPD for the Monday edit; the link
    // written back to NPD is no event's write and is not counted.
    assert_eq!(latency("npd_to_monday", "count"), 1.0);
    assert_eq!(latency("monday_to_npd", "count"), 1.0);
    for direction in ["npd_to_monday", "monday_to_npd"] {
        let sum = latency(direction, "sum");
        assert!(
            sum > 0.0 && sum < SETTLE.as_secs_f64(),
            "{direction}: {sum}"
        );
    }
    let requests = |op: &str| {
        value(
            &text,
            &format!("gateway_monday_requests_total{{operation=\"{op}\",outcome=\"ok\"}}"),
        )
    };
    assert_eq!(requests("create_item"), 1.0);
    assert_eq!(requests("items_page_by_column_values"), 1.0);
    // The gateway's own writes came back from both sides.
    assert!(value(&text, r#"gateway_echoes_total{source="monday"}"#) >= 1.0);
    assert!(value(&text, r#"gateway_echoes_total{source="npd"}"#) >= 1.0);
    let applied = r#"gateway_events_processed_total{outcome="applied",source="npd"}"#;
    assert_eq!(value(&text, applied), 1.0);
    let events =
        r#"gateway_http_request_duration_seconds_count{route="/api/v1/npd/events",status="202"}"#;
    assert_eq!(
        value(&text, events) as usize,
        world.npd.event_deliveries().queued as usize
    );
    let webhooks =
        r#"gateway_http_request_duration_seconds_count{route="/webhooks/monday",status="200"}"#;
    assert_eq!(
        value(&text, webhooks) as usize,
        world.monday.webhooks().len()
    );

    // The budget: the configured minute less what the dispatcher spent (every call but `me`).
    let spent = world
        .monday
        .calls()
        .iter()
        .filter(|c| c.operation != "me")
        .count();
    let limit = npd_monday_gateway::config::Settings::default()
        .monday
        .requests_per_minute;
    let minute = value(&text, r#"gateway_monday_budget_remaining{kind="minute"}"#);
    assert_eq!(minute as u64, limit - spent as u64);
    let daily = value(&text, r#"gateway_monday_budget_remaining{kind="daily"}"#);
    assert!(daily.is_infinite(), "no daily cap is configured: {daily}");

    assert_queues_empty(&text);
    world.stop().await;
}

fn assert_queues_empty(text: &str) {
    for series in [
        r#"gateway_queue{reading="inbox_unprocessed"}"#,
        r#"gateway_queue{reading="inbox_oldest_unprocessed_seconds"}"#,
        r#"gateway_outbox_jobs{state="pending"}"#,
        r#"gateway_outbox_jobs{state="leased"}"#,
        r#"gateway_outbox_jobs{state="dead"}"#,
        r#"gateway_queue{reading="conflicts_open"}"#,
    ] {
        assert_eq!(value(text, series), 0.0, "{series}");
    }
}

async fn dead_letters_and_conflicts_are_counted_when_they_happen(backend: Backend) {
    let db = TestDatabase::create(&backend).await;
    let world = World::start(&db.url, |s| s.conflicts.default = ConflictPolicy::Manual)
        .await
        .expect("world");
    let contact = created_contact(&world).await;
    edit_email_on_both_sides(&world, contact, "npd@example.com", "monday@example.com").await;
    let text = scrape(&world).await;
    assert_eq!(value(&text, "gateway_conflicts_opened_total"), 1.0);
    assert_eq!(
        value(&text, r#"gateway_queue{reading="conflicts_open"}"#),
        1.0
    );
    let open: Value = world
        .admin_get("/api/v1/conflicts?status=open")
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let conflict = open["conflicts"][0]["id"].as_i64().expect("a conflict");
    let resolve = format!("/api/v1/conflicts/{conflict}/resolve");
    let resolved = world
        .client
        .post(world.url(&resolve))
        .bearer_auth(&world.admin_token)
        .json(&json!({"take": "npd"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resolved.status().as_u16(), 200);

    // A dead letter: Monday refuses the resolution's write for good.
    world.monday.faults().fail_next(1, 400);
    settle_world(&world, SETTLE).await;
    let text = scrape(&world).await;
    assert_eq!(value(&text, "gateway_conflicts_resolved_total"), 1.0);
    assert_eq!(
        value(&text, r#"gateway_queue{reading="conflicts_open"}"#),
        0.0
    );
    assert_eq!(
        value(&text, r#"gateway_dead_letters_total{target="monday"}"#),
        1.0
    );
    assert_eq!(value(&text, r#"gateway_outbox_jobs{state="dead"}"#), 1.0);
    let refused = r#"gateway_monday_requests_total{operation="change_multiple_column_values",outcome="permanent"}"#;
    assert_eq!(value(&text, refused), 1.0);
    world.stop().await;
}
