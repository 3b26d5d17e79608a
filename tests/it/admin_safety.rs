//! Admin safety and bounded growth: every admin call audited and readable at `/api/v1/audit`,
//! failed authentication limited per client address without unbounded audit rows, bounded
//! request ids, `admin-token list` and `revoke`, and retention that prunes everything prunable
//! while entities keep syncing.

use std::time::Duration;

use npd_monday_gateway::config::RetentionSettings;
use npd_monday_gateway::demo::{CONTACTS_BOARD, World};
use npd_monday_gateway::domain::entity::EntityKind;
use npd_monday_gateway::domain::scan::ScanKind;
use npd_monday_gateway::domain::state::AuditOutcome;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestDatabase, contact_monday_refuses, created_contact, eventually, problem,
    settle_world, world_with,
};
use crate::store_tests;

store_tests!(
    failed_admin_authentication_is_limited_per_address_with_bounded_audit_rows,
    every_admin_call_is_audited_and_the_log_pages_newest_first,
    a_revoked_admin_token_gets_401_and_the_list_shows_it,
    an_entity_keeps_syncing_after_everything_prunable_was_pruned,
    unknown_fields_are_refused_naming_the_field_and_unknown_records_leak_nothing,
);

const SETTLE: Duration = Duration::from_secs(30);

async fn get_as(world: &World, path: &str, token: &str) -> reqwest::Response {
    world
        .client
        .get(world.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

async fn failed_admin_authentication_is_limited_per_address_with_bounded_audit_rows(
    backend: Backend,
) {
    // Arrange: three failures a minute per address.
    let db = TestDatabase::create(&backend).await;
    let world = World::start(&db.url, |s| s.sync.admin_auth_failures_per_minute = 3)
        .await
        .expect("world");

    // Act: an attacker guesses ten times.
    let mut statuses = Vec::new();
    for guess in 0..10 {
        let response = get_as(&world, "/api/v1/dead-letters", &format!("gwa_guess{guess}")).await;
        statuses.push(response.status().as_u16());
        if response.status().as_u16() == 429 {
            let wait: u64 = response.headers()["retry-after"]
                .to_str()
                .ok()
                .and_then(|v| v.parse().ok())
                .expect("Retry-After in seconds");
            assert!((1..=60).contains(&wait), "{wait}");
        }
    }
    // Even the right token is refused from that address until the minute is over.
    let right = get_as(&world, "/api/v1/dead-letters", &world.admin_token).await;

    // Assert
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    assert_eq!(right.status().as_u16(), 429);
    let audit = world.store.audit_log(100).await.expect("audit");
    let refused = audit
        .iter()
        .filter(|a| a.outcome == AuditOutcome::Denied)
        .count();
    assert_eq!(
        refused, 4,
        "three failures and the first refusal, no more: {audit:?}"
    );
}

/// A request id of 500 characters, spaces and markup among them, is replaced before it is kept:
/// the id the gateway answered with (a UUID).
async fn call_with_an_unfit_request_id(world: &World) -> String {
    let long_id = format!("{} <script>", "r".repeat(500));
    let tagged = world
        .client
        .get(world.url("/api/v1/dead-letters"))
        .bearer_auth(&world.admin_token)
        .header("x-request-id", &long_id)
        .send()
        .await
        .expect("get");
    let kept = tagged.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        uuid::Uuid::parse_str(&kept).is_ok(),
        "replaced by a UUID: {kept}"
    );
    kept
}

/// Every entry of `GET /api/v1/audit`, following `next_cursor` two entries a page.
async fn whole_audit_log(world: &World) -> Vec<Value> {
    let mut entries: Vec<Value> = Vec::new();
    let mut path = "/api/v1/audit?limit=2".to_owned();
    for _ in 0..10 {
        let page: Value = world
            .admin_get(&path)
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        entries.extend(page["entries"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/audit?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    entries
}

async fn every_admin_call_is_audited_and_the_log_pages_newest_first(backend: Backend) {
    // Arrange
    let db = TestDatabase::create(&backend).await;
    let world = World::start(&db.url, |_| {}).await.expect("world");
    let calls = [
        ("/api/v1/dead-letters", 200),
        ("/api/v1/contacts/not-a-uuid/sync", 400),
        ("/api/v1/conflicts?status=open&limit=5", 200),
        ("/api/v1/conflicts?status=maybe", 400),
    ];
    for (path, status) in calls {
        let answered = world.admin_get(path).await.expect("get").status().as_u16();
        assert_eq!(answered, status, "{path}");
    }
    let missing = world
        .admin_post("/api/v1/dead-letters/999/replay")
        .await
        .expect("post");
    assert_eq!(missing.status().as_u16(), 404);
    let kept = call_with_an_unfit_request_id(&world).await;

    // Act: the whole log, two entries a page.
    let entries = whole_audit_log(&world).await;

    // Assert: one entry per call, newest first (each read of the log is written after its page).
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for expected in [
        ("dead-letters.list", "ok"),
        ("contact.sync-status", "rejected"),
        ("conflicts.list", "ok"),
        ("conflicts.list", "rejected"),
        ("dead-letters.replay", "not_found"),
    ] {
        assert!(actions.contains(&expected), "{expected:?} in {actions:?}");
    }
    assert_eq!(entries.len(), 6, "{actions:?}");
    assert!(
        entries
            .iter()
            .all(|e| e["actor"] == json!("bootstrap") && e["request_id"].is_string())
    );
    assert_eq!(
        entries[0]["action"],
        json!("dead-letters.list"),
        "newest first"
    );
    assert_eq!(
        entries[0]["request_id"],
        json!(kept),
        "the replacement id is the one audited"
    );
}

/// Runs `admin-token …` against the database at `url`.
async fn admin_token(url: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_npd-monday-gateway"))
        .arg("admin-token")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GATEWAY_DATABASE_URL", url)
        .env("GATEWAY_LOG", "warn")
        .output()
        .await
        .expect("run admin-token")
}

async fn a_revoked_admin_token_gets_401_and_the_list_shows_it(backend: Backend) {
    // Arrange
    let db = TestDatabase::create(&backend).await;
    let created = admin_token(&db.url, &["create", "--name", "ops"]).await;
    let token = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let world = World::start(&db.url, |_| {}).await.expect("world");
    assert_eq!(
        get_as(&world, "/api/v1/audit", &token)
            .await
            .status()
            .as_u16(),
        200
    );
    let listed = admin_token(&db.url, &["list"]).await;
    let before = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.status.success() && before.contains("ops"),
        "{before}"
    );
    assert!(!before.contains(&token), "the list never shows a token");

    // Act
    let revoked = admin_token(&db.url, &["revoke", "--name", "ops"]).await;

    // Assert
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert_eq!(
        get_as(&world, "/api/v1/audit", &token)
            .await
            .status()
            .as_u16(),
        401
    );
    let after = String::from_utf8_lossy(&admin_token(&db.url, &["list"]).await.stdout).to_string();
    let line = after
        .lines()
        .find(|l| l.starts_with("ops"))
        .expect("still listed");
    assert!(
        !line.trim_end().ends_with('-'),
        "a revocation time is shown: {line}"
    );
    let again = admin_token(&db.url, &["revoke", "--name", "ops"]).await;
    assert_eq!(again.status.code(), Some(1), "nothing left to revoke");
}

async fn an_entity_keeps_syncing_after_everything_prunable_was_pruned(backend: Backend) {
    // Arrange: every window zero, pruning every 100 ms; a contact synced, a dead letter, an
    // audited admin call.
    let db = TestDatabase::create(&backend).await;
    let world = World::start(&db.url, |s| {
        let zero = Duration::ZERO;
        s.retention = RetentionSettings {
            processed_events: zero,
            history: zero,
            finished_jobs: zero,
            audit: zero,
            dedupe_window: zero,
            prune_interval: Duration::from_millis(100),
        };
    })
    .await
    .expect("world");
    let (id, item) = created_contact(&world).await;
    contact_monday_refuses(&world).await;
    settle_world(&world, SETTLE).await;
    world.admin_get("/api/v1/dead-letters").await.expect("get");

    // Act: everything prunable goes.
    everything_prunable_pruned(&world).await;

    // Assert: the link, the field states and the dead letter stayed; the contact still syncs.
    let entity = world
        .store
        .entity_by_npd(EntityKind::Contact, id)
        .await
        .expect("q")
        .expect("kept");
    assert_eq!(entity.monday_item_id, Some(item));
    assert!(
        !world
            .store
            .entity_fields(entity.id)
            .await
            .expect("fields")
            .is_empty()
    );
    let dead = world.store.dead_letters(0, 10).await.expect("dead letters");
    assert_eq!(dead.len(), 1, "a dead letter is not pruned");
    world
        .npd
        .update_contact(id, |c| c.role_title = Some("Countess".into()))
        .await;
    settle_world(&world, SETTLE).await;
    let on_monday = world.monday.item(item).expect("item");
    assert_eq!(
        on_monday.column_values.get("role_title"),
        Some(&json!("Countess"))
    );
    assert_eq!(
        world.monday.items(CONTACTS_BOARD).len(),
        1,
        "no second item"
    );
}

/// Waits until no inbox row, done job or audit row is left.
async fn everything_prunable_pruned(world: &World) {
    eventually(Duration::from_secs(20), async || {
        let stats = world.store.stats().await.map_err(|e| e.to_string())?;
        let inbox: i64 = stats.inbox.iter().map(|(_, _, n)| n).sum();
        let done: i64 = stats
            .jobs
            .iter()
            .filter(|j| j.2 == "done")
            .map(|j| j.3)
            .sum();
        let audit = world
            .store
            .audit_log(10)
            .await
            .map_err(|e| e.to_string())?
            .len();
        match (inbox, done, audit) {
            (0, 0, 0) => Ok(()),
            left => Err(format!(
                "not yet pruned (inbox, done jobs, audit): {left:?}"
            )),
        }
    })
    .await;
}

/// T17: an admin body or query with a field the route does not know is a 400 naming that field
/// (`deny_unknown_fields`), audited as rejected, and changes nothing; a record neither the
/// ledger nor NPD knows is a 404 that says nothing but that.
async fn unknown_fields_are_refused_naming_the_field_and_unknown_records_leak_nothing(
    backend: Backend,
) {
    let (world, _db) = world_with(&backend, |_| {}).await;
    let posts = [
        (
            "/api/v1/backfills",
            json!({"kind": "contacts", "dry_run": true, "sneaky": 1}),
        ),
        (
            "/api/v1/conflicts/1/resolve",
            json!({"take": "npd", "sneaky": 1}),
        ),
        (
            "/api/v1/matches/1/resolve",
            json!({"ignore": true, "sneaky": 1}),
        ),
    ];
    for (path, body) in posts {
        let response = world
            .client
            .post(world.url(path))
            .bearer_auth(&world.admin_token)
            .json(&body)
            .send()
            .await
            .expect("post");
        let detail = problem(response, 400).await["detail"].to_string();
        assert!(detail.contains("sneaky"), "{path}: {detail}");
    }
    for path in [
        "/api/v1/dead-letters?limit=5&sneaky=1",
        "/api/v1/conflicts?sneaky=1",
    ] {
        let response = world.admin_get(path).await.expect("get");
        let detail = problem(response, 400).await["detail"].to_string();
        assert!(detail.contains("sneaky"), "{path}: {detail}");
    }
    let runs = world
        .store
        .runs(ScanKind::Backfill, i64::MAX, 10)
        .await
        .expect("runs");
    assert!(
        runs.is_empty(),
        "a refused backfill started nothing: {runs:?}"
    );
    let audit = world.store.audit_log(50).await.expect("audit");
    let rejected = audit
        .iter()
        .filter(|a| a.outcome == AuditOutcome::Rejected)
        .count();
    assert_eq!(rejected, 5, "each refusal audited once: {audit:?}");

    let unknown = uuid::Uuid::new_v4();
    let path = format!("/api/v1/contacts/{unknown}/sync-to-monday");
    let response = world.admin_post(&path).await.expect("post");
    let body = problem(response, 404).await;
    let text = body.to_string();
    for leak in [
        "http://",
        "127.0.0.1",
        "npd_api",
        "Bearer",
        "sqlite",
        "postgres",
    ] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
}
