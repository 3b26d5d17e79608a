//! Sync load benchmark: events per second accepted and synced end to end (NPD event -> inbox ->
//! merge -> Monday item -> monday_id back to NPD), against a baseline measured in the same run,
//! and how far the gateway stayed under the Monday simulator's per-minute budget.
//!
//! Baseline: a bare, non-durable sync of the same contacts done directly with the gateway's
//! dispatch concurrency (4): per contact the same three remote calls the gateway makes (look the
//! `npd_id` up on Monday, `create_item`, `PATCH` the `monday_id` back to NPD), with no ledger, no
//! merge, no retries. The ratio is the price of durability, ordering and echo handling.
//!
//! Run: `cargo bench --bench sync` (`-- --contacts N --updates U`). PostgreSQL too when
//! `GATEWAY_BENCH_POSTGRES_URL` or `GATEWAY_TEST_POSTGRES_URL` is set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use npd_monday_gateway::auth::standard_webhooks::WebhookSecret;
use npd_monday_gateway::connectors::monday::MondayClient;
use npd_monday_gateway::connectors::npd::NpdClient;
use npd_monday_gateway::demo::{CONTACTS_BOARD, Sims, World, sample_contact};
use npd_monday_gateway::domain::entity::{EntityKind, NpdId};
use serde_json::json;

mod common;
use common::post_all;
use tokio::sync::Semaphore;

/// The Monday budget of the run, for the simulator and the gateway alike.
const REQUESTS_PER_MINUTE: u64 = 1_500;

struct Options {
    contacts: usize,
    updates: usize,
}

fn options() -> Options {
    let mut o = Options {
        contacts: 200,
        updates: 4,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match (pair[0].as_str(), pair[1].parse().ok()) {
            ("--contacts", Some(v)) => o.contacts = v,
            ("--updates", Some(v)) => o.updates = v,
            _ => {}
        }
    }
    o
}

struct Report {
    label: String,
    events: usize,
    accepted_per_sec: f64,
    synced_per_sec: f64,
    contacts_per_sec: f64,
    baseline_per_sec: f64,
    monday_requests: usize,
    rate_limited: usize,
    peak_minute: usize,
}

async fn run(label: &str, database_url: &str, o: &Options) -> anyhow::Result<Report> {
    let sims = Sims::start_with(|c| c.requests_per_minute = REQUESTS_PER_MINUTE).await?;
    let secret = WebhookSecret::parse(sims.npd_secret())?;
    let world = World::with_sims(sims, database_url, |s| {
        s.monday.requests_per_minute = REQUESTS_PER_MINUTE;
        s.sync.monday_timeout_ms = 10_000;
        s.sync.lease_ms = 30_000;
    })
    .await?;
    let ids: Vec<NpdId> = (0..o.contacts)
        .map(|_| NpdId(uuid::Uuid::new_v4()))
        .collect();
    for id in &ids {
        world.npd.insert_contact(sample_contact(*id));
    }
    // The benchmark is NPD's only voice: no simulated echo of the monday_id write-back.
    world.npd.faults().set_emit_on_patch(false);
    let bodies = event_bodies(&ids, o.updates)?;
    let events = bodies.len();
    let started = Instant::now();
    post_all(&world, &secret, bodies).await?;
    let accepted = started.elapsed();
    world.settle(Duration::from_secs(600)).await?;
    let synced = started.elapsed();
    let items = world.monday.items(CONTACTS_BOARD).len();
    anyhow::ensure!(
        items == o.contacts,
        "{items} items for {} contacts",
        o.contacts
    );

    let calls = world.monday.calls();
    let rate_limited = calls.iter().filter(|c| c.status == 429).count();
    let peak_minute = peak_minute(&calls);
    let monday_requests = calls.len();
    world.stop().await;

    let baseline = baseline(&ids).await?;

    Ok(Report {
        label: label.to_owned(),
        events,
        accepted_per_sec: events as f64 / accepted.as_secs_f64(),
        synced_per_sec: events as f64 / synced.as_secs_f64(),
        contacts_per_sec: o.contacts as f64 / synced.as_secs_f64(),
        baseline_per_sec: o.contacts as f64 / baseline.as_secs_f64(),
        monday_requests,
        rate_limited,
        peak_minute,
    })
}

/// Baseline: the same contacts synced directly, 4 at a time, against fresh simulators; answers
/// how long it took.
async fn baseline(ids: &[NpdId]) -> anyhow::Result<Duration> {
    // Baseline: the same contacts synced directly, 4 at a time, against fresh simulators.
    let sims = Sims::start_with(|c| c.requests_per_minute = u64::MAX / 2).await?;
    let settings = sims.settings("sqlite://unused.db");
    let monday = MondayClient::new(&settings.monday, Duration::from_secs(10))
        .ok_or_else(|| anyhow::anyhow!("no token"))?;
    let npd = NpdClient::new(&settings.npd, Duration::from_secs(10))
        .ok_or_else(|| anyhow::anyhow!("no NPD url"))?;
    for id in ids {
        sims.npd.insert_contact(sample_contact(*id));
    }
    sims.npd.faults().set_emit_on_patch(false);
    let gate = Arc::new(Semaphore::new(4));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let (monday, npd, id) = (monday.clone(), npd.clone(), *id);
        tasks.push(tokio::spawn(async move {
            let synced = async {
                monday
                    .find_items_by_column(CONTACTS_BOARD, "npd_id", &id.to_string())
                    .await?;
                let columns = serde_json::Map::from_iter([
                    (
                        "email".to_owned(),
                        json!({"email": "ada@example.com", "text": "ada@example.com"}),
                    ),
                    ("role_title".to_owned(), json!("r1")),
                    ("npd_id".to_owned(), json!(id.to_string())),
                ]);
                let item = monday
                    .create_item(
                        CONTACTS_BOARD,
                        "Ada Lovelace",
                        &columns,
                        &format!("base-{n}"),
                    )
                    .await?;
                let link =
                    serde_json::Map::from_iter([("monday_id".to_owned(), json!(item.to_string()))]);
                npd.patch(EntityKind::Contact, id, &link, &format!("base-link-{n}"))
                    .await?;
                Ok::<(), npd_monday_gateway::connectors::ConnectorError>(())
            }
            .await;
            drop(permit);
            synced.is_ok()
        }));
    }
    for t in tasks {
        anyhow::ensure!(t.await?, "a baseline sync failed");
    }
    Ok(started.elapsed())
}

/// The most Monday calls within any 60 s from one call on.
fn peak_minute(calls: &[npd_monday_gateway::sim::monday::MondayCall]) -> usize {
    let times: Vec<Instant> = calls.iter().map(|c| c.at).collect();
    times
        .iter()
        .map(|t0| {
            times
                .iter()
                .filter(|t| **t >= *t0 && t.duration_since(*t0) < Duration::from_secs(60))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Every contact's events: created, then `updates` versions, each with its own role_title and an
/// `updated_at` moving forward; (webhook id, body).
fn event_bodies(ids: &[NpdId], updates: usize) -> anyhow::Result<Vec<(String, String)>> {
    let mut bodies = Vec::new();
    let start = time::OffsetDateTime::now_utc();
    for version in 1..=(1 + updates as i64) {
        for id in ids {
            let mut data = serde_json::to_value(sample_contact(*id))?;
            data["version"] = json!(version);
            data["role_title"] = json!(format!("r{version}"));
            let at = start + time::Duration::milliseconds(version);
            data["updated_at"] = json!(at.format(&time::format_description::well_known::Rfc3339)?);
            let kind = if version == 1 {
                "contact.created"
            } else {
                "contact.updated"
            };
            bodies.push((
                format!("bench_{}_{version}", id.0.simple()),
                json!({"type": kind, "data": data}).to_string(),
            ));
        }
    }
    Ok(bodies)
}

fn main() -> anyhow::Result<()> {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!(
            "sync benchmark: {} contacts x {} events each, Monday budget {REQUESTS_PER_MINUTE} requests/minute",
            o.contacts,
            o.updates + 1
        );
        let dir = std::env::temp_dir().join(format!("npd-monday-gateway-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut reports = vec![run("sqlite", &format!("sqlite://{}", dir.join("sync.db").display()), &o).await?];
        let pg = std::env::var("GATEWAY_BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("GATEWAY_TEST_POSTGRES_URL"))
            .ok()
            .filter(|u| !u.is_empty());
        if let Some(base) = pg {
            let pool = sqlx::PgPool::connect(&base).await?;
            sqlx::query("drop schema if exists gw_bench_sync cascade").execute(&pool).await?;
            sqlx::query("create schema gw_bench_sync").execute(&pool).await?;
            pool.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            reports.push(run("postgres", &format!("{base}{sep}options=-c%20search_path%3Dgw_bench_sync"), &o).await?);
        }
        let _ = std::fs::remove_dir_all(&dir);
        println!();
        println!(
            "| store | events | accepted/s | events synced/s | contacts synced/s | bare contacts/s | gateway/bare | Monday requests | 429s | peak requests in a minute |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &reports {
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}x | {} | {} | {} of {REQUESTS_PER_MINUTE} ({:.0}%) |",
                r.label,
                r.events,
                r.accepted_per_sec,
                r.synced_per_sec,
                r.contacts_per_sec,
                r.baseline_per_sec,
                r.contacts_per_sec / r.baseline_per_sec,
                r.monday_requests,
                r.rate_limited,
                r.peak_minute,
                100.0 * r.peak_minute as f64 / REQUESTS_PER_MINUTE as f64
            );
        }
        Ok(())
    })
}
