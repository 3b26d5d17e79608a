//! Backfill benchmark: a board of 5,000 items and an NPD of 6,000 records related in every way
//! (`sim::existing::Relations::large`), backfilled end to end through the admin API, with the
//! gateway and the Monday simulator both held to an Enterprise plan's 5,000 requests a minute.
//!
//! Reported: Monday requests per item by kind (pages, lookups, creates, updates), the wall time
//! against the minutes the budget needs for those requests, and the theoretical floor of the
//! issue (pages needed + creates / batch size of 25), also with the link writes counted the same
//! way. Baseline, measured in the same run: a bare walk of the board's pages with the gateway's
//! client, no ledger (the floor of the read phase's wall time).
//!
//! Run: `cargo bench --bench backfill`. PostgreSQL too when `GATEWAY_BENCH_POSTGRES_URL` or
//! `GATEWAY_TEST_POSTGRES_URL` is set.

use std::time::{Duration, Instant};

use npd_monday_gateway::connectors::MondayApi;
use npd_monday_gateway::connectors::monday::MondayClient;
use npd_monday_gateway::demo::{CONTACTS_BOARD, Sims, World};
use npd_monday_gateway::sim::existing::{Relations, seed_contacts};
use serde_json::{Value, json};

/// The Monday budget of the run (an Enterprise plan), for the simulator and the gateway alike.
const REQUESTS_PER_MINUTE: u64 = 5_000;
/// Mutations one batched request may carry (`[monday] batch_max`).
const BATCH: u64 = 25;

struct Report {
    label: String,
    wall: Duration,
    bare_walk: Duration,
    pages: u64,
    lookups: u64,
    creates: u64,
    changes: u64,
    rate_limited: u64,
    items: u64,
    creates_expected: u64,
    link_writes: u64,
}

async fn run(label: &str, database_url: &str) -> anyhow::Result<Report> {
    let sims = Sims::start_with(|c| c.requests_per_minute = REQUESTS_PER_MINUTE).await?;
    let relations = Relations::large();
    seed_contacts(&sims.npd, &sims.monday, CONTACTS_BOARD, &relations);
    let client = MondayClient::new(&sims.settings(database_url).monday, Duration::from_secs(30))
        .ok_or_else(|| anyhow::anyhow!("the simulator has a token"))?;
    let bare_walk = bare_walk(&client).await?;
    sims.monday.clear_calls();
    let world = World::with_sims(sims, database_url, |s| {
        s.monday.requests_per_minute = REQUESTS_PER_MINUTE;
        s.sync.dispatch_concurrency = 8;
        s.sync.admin_requests_per_minute = 100_000;
        s.drift.interval = Duration::ZERO;
    })
    .await?;

    let started = Instant::now();
    let run = backfill(&world).await?;
    anyhow::ensure!(
        run["status"] == "done",
        "the backfill did not finish: {run}"
    );
    world.settle(Duration::from_secs(1_800)).await?;
    let wall = started.elapsed();

    let calls = world.monday.calls();
    let count = |op: &str| {
        calls
            .iter()
            .filter(|c| c.operation == op && c.status == 200)
            .count() as u64
    };
    Ok(Report {
        label: label.to_owned(),
        wall,
        bare_walk,
        pages: count("boards") + count("next_items_page"),
        lookups: count("items_page_by_column_values"),
        creates: count("create_item"),
        changes: count("change_multiple_column_values"),
        rate_limited: calls.iter().filter(|c| c.status == 429).count() as u64,
        items: relations.items() as u64,
        creates_expected: relations.npd_only as u64,
        link_writes: (relations.by_monday_id + relations.by_email + relations.by_phone) as u64,
    })
}

/// The board's pages read with the gateway's client and nothing else.
async fn bare_walk(client: &MondayClient) -> anyhow::Result<Duration> {
    let columns: Vec<String> = ["email", "phone", "role_title", "notes", "npd_id"]
        .map(String::from)
        .to_vec();
    let started = Instant::now();
    let mut cursor: Option<String> = None;
    loop {
        let page =
            MondayApi::items_page(client, CONTACTS_BOARD, &columns, cursor.as_deref(), 500).await?;
        cursor = page.cursor;
        if cursor.is_none() {
            return Ok(started.elapsed());
        }
    }
}

async fn backfill(world: &World) -> anyhow::Result<Value> {
    let response = world
        .client
        .post(world.url("/api/v1/backfills"))
        .bearer_auth(&world.admin_token)
        .json(&json!({"kind": "contacts"}))
        .send()
        .await?;
    let id = response.json::<Value>().await?["id"].clone();
    loop {
        let run: Value = world
            .admin_get(&format!("/api/v1/backfills/{id}"))
            .await?
            .json()
            .await?;
        if run["status"] != "running" {
            return Ok(run);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print(reports: &[Report]) {
    println!();
    println!(
        "| store | items | Monday requests (pages + lookups + creates + updates) | per item | floor: pages + creates/{BATCH} | floor with link writes | budget minutes needed at {REQUESTS_PER_MINUTE}/min (routine 4/5) | wall s | 429s | bare page walk s |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in reports {
        let total = r.pages + r.lookups + r.creates + r.changes;
        let floor = r.pages + r.creates_expected.div_ceil(BATCH);
        let floor_links = r.pages + (r.creates_expected + r.link_writes).div_ceil(BATCH);
        let minutes = total as f64 / (REQUESTS_PER_MINUTE as f64 * 0.8);
        println!(
            "| {} | {} | {total} ({} + {} + {} + {}) | {:.3} | {floor} | {floor_links} | {minutes:.2} | {:.1} | {} | {:.2} |",
            r.label,
            r.items,
            r.pages,
            r.lookups,
            r.creates,
            r.changes,
            total as f64 / r.items as f64,
            r.wall.as_secs_f64(),
            r.rate_limited,
            r.bare_walk.as_secs_f64()
        );
    }
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!("backfill benchmark: {} items, {} records, {REQUESTS_PER_MINUTE} Monday requests a minute", Relations::large().items(), Relations::large().records());
        let dir = std::env::temp_dir().join(format!("npd-monday-gateway-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut reports = vec![run("sqlite", &format!("sqlite://{}", dir.join("backfill.db").display())).await?];
        let pg = std::env::var("GATEWAY_BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("GATEWAY_TEST_POSTGRES_URL"))
            .ok()
            .filter(|u| !u.is_empty());
        if let Some(base) = pg {
            let pool = sqlx::PgPool::connect(&base).await?;
            sqlx::query("drop schema if exists gw_bench_backfill cascade").execute(&pool).await?;
            sqlx::query("create schema gw_bench_backfill").execute(&pool).await?;
            pool.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            reports.push(run("postgres", &format!("{base}{sep}options=-c%20search_path%3Dgw_bench_backfill")).await?);
        }
        let _ = std::fs::remove_dir_all(&dir);
        print(&reports);
        Ok(())
    })
}
