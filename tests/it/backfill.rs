//! Backfill end to end: a board and an NPD that already hold data related in every way (built
//! straight into the simulators' state), a dry run, a real run and a second run through the admin
//! API; expired cursors and failures mid-scan; the review queue resolved each way; and the CLI
//! killed with SIGKILL mid-run, then run again.

use std::collections::HashMap;
use std::time::Duration;

use npd_monday_gateway::demo::{CONTACTS_BOARD, Sims, World};
use npd_monday_gateway::domain::entity::{EntityKind, MondayItemId, NpdId};
use npd_monday_gateway::sim::existing::{Relations, Seeded, seed_contacts};
use npd_monday_gateway::sim::monday::{ItemState, MondayCall};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestDatabase, eventually, get_json, settle_world};
use crate::store_tests;

store_tests!(
    a_large_backfill_dry_run_real_run_and_second_run,
    an_expired_cursor_and_failures_mid_scan_do_not_fail_the_run,
    the_review_queue_is_resolved_each_way,
    a_backfill_killed_mid_run_and_run_again_leaves_no_duplicate_and_no_lost_link,
);

const SETTLE: Duration = Duration::from_secs(240);

/// A world whose Monday and gateway budgets never hold a test back.
pub async fn roomy_world(backend: &Backend) -> (World, TestDatabase) {
    let db = TestDatabase::create(backend).await;
    let sims = Sims::start_with(|c| {
        c.requests_per_minute = 1_000_000;
        c.complexity_per_minute = u64::MAX / 4;
    })
    .await
    .expect("simulators start");
    let world = World::with_sims(sims, &db.url, |s| {
        s.monday.requests_per_minute = 1_000_000;
        s.monday.complexity_per_minute = u64::MAX / 4;
        s.sync.dispatch_concurrency = 8;
        s.drift.interval = Duration::ZERO;
        s.sync.admin_requests_per_minute = 1_000_000;
    })
    .await
    .expect("world starts");
    (world, db)
}

/// Starts a backfill through the admin API and waits until it is no longer running.
pub async fn backfill(world: &World, body: Value) -> Value {
    let response = world
        .client
        .post(world.url("/api/v1/backfills"))
        .bearer_auth(&world.admin_token)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 202);
    let started: Value = response.json().await.expect("json");
    assert_eq!(started["status"], "running");
    finished_run(world, &format!("/api/v1/backfills/{}", started["id"])).await
}

/// Polls a run (`GET path`) until it is no longer running, and returns it.
pub async fn finished_run(world: &World, path: &str) -> Value {
    eventually(SETTLE, async || {
        let response = world.admin_get(path).await.map_err(|e| e.to_string())?;
        let run: Value = response.json().await.map_err(|e| e.to_string())?;
        match run["status"].as_str() {
            Some("running") => Err(format!("still running: {run}")),
            _ => Ok(run),
        }
    })
    .await
}

fn mutations(calls: &[MondayCall]) -> usize {
    calls
        .iter()
        .filter(|c| {
            matches!(
                c.operation.as_str(),
                "create_item" | "change_multiple_column_values" | "archive_item"
            )
        })
        .count()
}

/// The npd_id column of every active item of the contacts board: item by NPD id.
fn board_links(world: &World) -> HashMap<String, Vec<MondayItemId>> {
    let mut links: HashMap<String, Vec<MondayItemId>> = HashMap::new();
    for item in world.monday.items(CONTACTS_BOARD) {
        if item.state != ItemState::Active {
            continue;
        }
        if let Some(npd_id) = item.column_values.get("npd_id").and_then(Value::as_str) {
            links.entry(npd_id.to_owned()).or_default().push(item.id);
        }
    }
    links
}

async fn resolve_match(world: &World, id: Value, body: Value) -> reqwest::Response {
    world
        .client
        .post(world.url(&format!("/api/v1/matches/{id}/resolve")))
        .bearer_auth(&world.admin_token)
        .json(&body)
        .send()
        .await
        .expect("request")
}

fn npd_monday_id(world: &World, id: NpdId) -> Option<MondayItemId> {
    world.npd.contact(id).and_then(|c| c.monday_id)
}

/// A finished run's counts; `created` items were added to the board by an earlier run.
fn assert_counts(run: &Value, relations: &Relations, linked: u64, to_create: u64, created: usize) {
    assert_eq!(run["status"], "done", "{run}");
    let r = relations;
    let scanned = json!({"npd": r.records(), "monday": r.items() + created});
    assert_eq!(run["scanned"], scanned, "{run}");
    assert_eq!(run["linked"], linked, "{run}");
    assert_eq!(run["to_create_in_monday"], to_create, "{run}");
    assert_eq!(run["to_review"], r.twins + 2 * r.shared, "{run}");
    assert_eq!(run["unmatched_in_monday"], r.monday_only, "{run}");
    assert!(run["error"].is_null(), "{run}");
}

async fn a_large_backfill_dry_run_real_run_and_second_run(backend: Backend) {
    // Arrange: 5,000 items and 6,000 records.
    let (world, _db) = roomy_world(&backend).await;
    let relations = Relations::large();
    let seeded = seed_contacts(&world.npd, &world.monday, CONTACTS_BOARD, &relations);
    let pairs =
        (relations.by_npd_id + relations.by_monday_id + relations.by_email + relations.by_phone)
            as u64;

    // Act 1: a dry run writes and sends nothing.
    let dry = backfill(&world, json!({"kind": "contacts", "dry_run": true})).await;
    assert_counts(&dry, &relations, pairs, relations.npd_only as u64, 0);
    let r = &relations;
    let matched = json!({"npd_id": r.by_npd_id, "monday_id": r.by_monday_id, "email": r.by_email, "phone": r.by_phone});
    assert_eq!(dry["matched"], matched);
    // 10 pages, one write per link whose npd_id column is empty, a lookup and a create per new item.
    let expected_calls = 10 + r.by_monday_id + r.by_email + r.by_phone + 2 * r.npd_only;
    assert_eq!(dry["estimated_monday_calls"], expected_calls, "{dry}");
    assert_eq!(
        mutations(&world.monday.calls()),
        0,
        "a dry run sends no mutation"
    );
    assert!(world.npd.calls().iter().all(|c| c.method == "GET"));
    assert_eq!(world.store.all_jobs().await.expect("jobs").len(), 0);

    // Act 2: the real run.
    let real = backfill(&world, json!({"kind": "contacts"})).await;
    settle_world(&world, SETTLE).await;
    assert_counts(&real, &relations, pairs, relations.npd_only as u64, 0);
    assert_real_run(&world, &seeded, &relations).await;

    // Act 3: a second run changes nothing and creates nothing twice.
    let before = world.monday.items(CONTACTS_BOARD).len();
    world.monday.clear_calls();
    let second = backfill(&world, json!({"kind": "contacts"})).await;
    settle_world(&world, SETTLE).await;
    assert_counts(
        &second,
        &relations,
        pairs + relations.npd_only as u64,
        0,
        relations.npd_only,
    );
    assert_eq!(
        second["matched"]["npd_id"],
        pairs + relations.npd_only as u64,
        "{second}"
    );
    assert_eq!(world.monday.items(CONTACTS_BOARD).len(), before);
    assert_eq!(mutations(&world.monday.calls()), 0, "nothing left to write");
    let reviews: Value = get_json(&world, "/api/v1/matches?status=review&limit=500").await;
    assert_eq!(
        reviews["matches"].as_array().map(Vec::len),
        Some(r.twins + 2 * r.shared),
        "reviews are not opened twice"
    );
}

/// After the real run: every pair linked both ways and once, new records created once, first
/// values by `initial_winner = npd`, ambiguous records in review, disabled records left alone.
async fn assert_real_run(world: &World, seeded: &Seeded, relations: &Relations) {
    let links = board_links(world);
    let all_pairs = seeded
        .by_npd_id
        .iter()
        .chain(&seeded.by_monday_id)
        .chain(&seeded.by_email)
        .chain(&seeded.by_phone);
    for (npd_id, item) in all_pairs {
        assert_eq!(
            links.get(&npd_id.to_string()),
            Some(&vec![*item]),
            "{npd_id}: npd_id column"
        );
        assert_eq!(
            npd_monday_id(world, *npd_id),
            Some(*item),
            "{npd_id}: monday_id in NPD"
        );
        let entity = world
            .store
            .entity_by_npd(EntityKind::Contact, *npd_id)
            .await
            .expect("read")
            .expect("entity");
        assert_eq!(entity.monday_item_id, Some(*item));
    }
    for npd_id in &seeded.npd_only {
        let items = links.get(&npd_id.to_string()).expect("created in Monday");
        assert_eq!(items.len(), 1, "created once");
        assert_eq!(npd_monday_id(world, *npd_id), Some(items[0]));
    }
    for npd_id in &seeded.npd_only_disabled {
        assert!(
            !links.contains_key(&npd_id.to_string()),
            "sync_enabled false sends nothing"
        );
    }
    for (_, item) in seeded.by_monday_id.iter().take(relations.differing) {
        let role = world
            .monday
            .item(*item)
            .and_then(|i| i.column_values.get("role_title").cloned());
        assert_eq!(
            role,
            Some(json!("Engineer")),
            "NPD's value wins a new link's first values"
        );
    }
    for (npd_id, _) in &seeded.twins {
        assert_eq!(
            npd_monday_id(world, *npd_id),
            None,
            "a record in review is not linked"
        );
    }
}

async fn an_expired_cursor_and_failures_mid_scan_do_not_fail_the_run(backend: Backend) {
    // Arrange: 1,200 items (3 pages), the first continued page's cursor expired, a 500 from
    // Monday and a 503 from NPD on the way.
    let (world, _db) = roomy_world(&backend).await;
    let relations = Relations {
        by_npd_id: 1_100,
        by_email: 100,
        npd_only_disabled: 50,
        ..Relations::default()
    };
    seed_contacts(&world.npd, &world.monday, CONTACTS_BOARD, &relations);
    world.monday.faults().expire_next_cursor();

    // Act
    world.npd.faults().fail_next(1, 503);
    let response = world
        .client
        .post(world.url("/api/v1/backfills"))
        .bearer_auth(&world.admin_token)
        .json(&json!({"kind": "contacts", "dry_run": true}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 202);
    let id = response.json::<Value>().await.expect("json")["id"].clone();
    world
        .monday
        .wait_for_call(SETTLE, |c| c.operation == "boards")
        .await
        .expect("the walk began");
    world.monday.faults().fail_next(1, 500);
    let run = finished_run(&world, &format!("/api/v1/backfills/{id}")).await;

    // Assert: done, every item staged once, the walk begun again after the expired cursor.
    assert_counts(&run, &relations, 1_200, 0, 0);
    let walks = world
        .monday
        .calls()
        .iter()
        .filter(|c| c.operation == "boards" && c.status == 200)
        .count();
    assert_eq!(
        walks, 2,
        "the board was walked again from its first page once"
    );
    assert!(world.monday.calls().iter().any(|c| c.status == 500));
    assert!(world.npd.calls().iter().any(|c| c.status == 503));
}

async fn the_review_queue_is_resolved_each_way(backend: Backend) {
    // Arrange: three records with two candidate items each.
    let (world, _db) = roomy_world(&backend).await;
    let relations = Relations {
        twins: 3,
        ..Relations::default()
    };
    let seeded = seed_contacts(&world.npd, &world.monday, CONTACTS_BOARD, &relations);
    let run = backfill(&world, json!({"kind": "contacts"})).await;
    assert_eq!(run["to_review"], 3, "{run}");
    let listed: Value = get_json(&world, "/api/v1/matches?status=review").await;
    let matches = listed["matches"].as_array().cloned().unwrap_or_default();
    assert_eq!(matches.len(), 3, "{listed}");
    assert!(listed["next_cursor"].is_null());
    let id_of = |npd_id: NpdId| {
        matches
            .iter()
            .find(|m| m["npd_id"] == npd_id.to_string())
            .map(|m| m["id"].clone())
            .expect("listed")
    };
    let [(link_me, items), (create_me, _), (ignore_me, _)] =
        [seeded.twins[0], seeded.twins[1], seeded.twins[2]];
    assert_eq!(matches[0]["candidates"][0]["why"], "email");

    // Act
    let resolve = async |id: Value, body: Value| resolve_match(&world, id, body).await;
    let not_a_candidate = resolve(id_of(link_me), json!({"link": "1"})).await;
    let linked = resolve(id_of(link_me), json!({"link": items[1].to_string()})).await;
    let created = resolve(id_of(create_me), json!({"create": true})).await;
    let ignored = resolve(id_of(ignore_me), json!({"ignore": true})).await;
    let again = resolve(id_of(ignore_me), json!({"ignore": true})).await;
    settle_world(&world, SETTLE).await;

    // Assert
    assert_eq!(not_a_candidate.status().as_u16(), 400);
    for (response, status) in [
        (linked, "linked"),
        (created, "created"),
        (ignored, "ignored"),
    ] {
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.json::<Value>().await.expect("json")["status"],
            status
        );
    }
    assert_eq!(again.status().as_u16(), 409);
    let links = board_links(&world);
    assert_eq!(links.get(&link_me.to_string()), Some(&vec![items[1]]));
    assert_eq!(npd_monday_id(&world, link_me), Some(items[1]));
    let new_item = links
        .get(&create_me.to_string())
        .expect("a new item")
        .clone();
    assert!(new_item.len() == 1 && !seeded.twins[1].1.contains(&new_item[0]));
    assert_eq!(npd_monday_id(&world, ignore_me), None);
    let open: Value = get_json(&world, "/api/v1/matches?status=review").await;
    assert_eq!(open["matches"], json!([]));
}

async fn a_backfill_killed_mid_run_and_run_again_leaves_no_duplicate_and_no_lost_link(
    backend: Backend,
) {
    // Arrange: 200 records to create, 100 to link by email; a slow Monday so the run is
    // still sending when it is killed.
    let db = TestDatabase::create(&backend).await;
    let sims = Sims::start().await.expect("simulators");
    let relations = Relations {
        by_email: 100,
        npd_only: 200,
        ..Relations::default()
    };
    let seeded = seed_contacts(&sims.npd, &sims.monday, CONTACTS_BOARD, &relations);
    sims.monday.faults().set_latency(Duration::from_millis(15));
    let (env, toml) = sims.process_config(&db.url, "127.0.0.1:0", 3_000, 1_000);
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(config.path(), toml).expect("write config");
    let store = crate::durability::open_store(&db.url).await;

    // Act: kill -9 once some items exist, then run it again to the end.
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut first = cli_backfill(&env, config.path(), Some(log.path()));
    let before = sims.monday.items(CONTACTS_BOARD).len();
    eventually(SETTLE, async || {
        let created = sims.monday.items(CONTACTS_BOARD).len() - before;
        if created >= 5 {
            Ok(())
        } else {
            let log = std::fs::read_to_string(log.path()).unwrap_or_default();
            Err(format!(
                "{created} items created so far; the command said: {log}"
            ))
        }
    })
    .await;
    first.start_kill().expect("SIGKILL");
    let _ = first.wait().await;
    let second = cli_backfill(&env, config.path(), None)
        .wait_with_output()
        .await
        .expect("second run");

    // Assert: exit 0, every record on the board exactly once and linked both ways.
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(
        out.contains("backfill") && out.contains("done"),
        "plain progress lines off a terminal: {out}"
    );
    assert_each_once_and_linked(&sims, &store, &seeded).await;
    assert_eq!(store.open_job_count().await.expect("count"), 0);
    let creates = sims.monday.calls();
    let creates = creates.iter().filter(|c| c.has("create_item")).count();
    assert!(
        creates * 5 <= seeded.npd_only.len(),
        "the command batches its creates: {creates} requests for {}",
        seeded.npd_only.len()
    );
    store.close().await;
}

/// Every seeded record on the board exactly once, linked both ways.
async fn assert_each_once_and_linked(
    sims: &Sims,
    store: &npd_monday_gateway::ledger::Store,
    seeded: &Seeded,
) {
    let mut columns: HashMap<String, usize> = HashMap::new();
    for item in sims.monday.items(CONTACTS_BOARD) {
        if let Some(npd_id) = item.column_values.get("npd_id").and_then(Value::as_str) {
            *columns.entry(npd_id.to_owned()).or_default() += 1;
        }
    }
    let records = seeded
        .npd_only
        .iter()
        .chain(seeded.by_email.iter().map(|(r, _)| r));
    for npd_id in records {
        assert_eq!(
            columns.get(&npd_id.to_string()),
            Some(&1),
            "{npd_id}: on the board once"
        );
        let entity = store
            .entity_by_npd(EntityKind::Contact, *npd_id)
            .await
            .expect("read")
            .expect("entity");
        let item = entity.monday_item_id.expect("linked");
        assert_eq!(
            sims.npd.contact(*npd_id).and_then(|c| c.monday_id),
            Some(item),
            "{npd_id}: link in NPD"
        );
    }
}

/// The `backfill` command on the contacts, its output piped (or written to `log`).
fn cli_backfill(
    env: &[(String, String)],
    config: &std::path::Path,
    log: Option<&std::path::Path>,
) -> tokio::process::Child {
    let output = || match log.and_then(|p| std::fs::OpenOptions::new().append(true).open(p).ok()) {
        Some(file) => std::process::Stdio::from(file),
        None => std::process::Stdio::piped(),
    };
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_npd-monday-gateway"));
    command
        .args(["backfill", "--kind", "contacts"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GATEWAY_CONFIG", config)
        .env("GATEWAY_LOG", "warn")
        .stdout(output())
        .stderr(output())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().expect("start the backfill command")
}
