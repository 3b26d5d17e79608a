//! Monday budget benchmark: how many Monday requests the gateway spends per synced change, how
//! fast it syncs when Monday is slow, and how long a change takes to reach Monday, each against a
//! baseline measured in the same run.
//!
//! - **Requests per change**: 1,000 new contacts, then 1,000 updates (one each), against the same
//!   gateway with `[monday] batch_max = 1` (one mutation per request). Goal: at most 0.05.
//! - **Throughput with 200 ms Monday latency**: contacts synced per second against a bare direct
//!   loop (look up, create, write the link back) with the gateway's dispatch concurrency (4) and
//!   the same latency. Goal: more than 5x.
//! - **Latency at a steady 50 events/s** with 200 ms Monday latency: from NPD's 202 to the create
//!   arriving at Monday, p50 and p99. Goal: p99 under 1 s.
//!
//! - **Processing with 3 replicas** (PostgreSQL): inbox events processed per second by three
//!   gateways sharing one database against one gateway, the same events accepted beforehand with
//!   processing paused. Goal: at least 2x.
//! - **Requests per minute of 3 replicas** (PostgreSQL): three gateways with a backlog of creates
//!   and `[monday] requests_per_minute = 60`; the requests Monday receives in the first minute
//!   window against that limit. Goal: never above it.
//!
//! Run: `cargo bench --bench batching` (`-- --contacts N`). PostgreSQL too when
//! `GATEWAY_BENCH_POSTGRES_URL` or `GATEWAY_TEST_POSTGRES_URL` is set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use npd_monday_gateway::auth::standard_webhooks::WebhookSecret;
use npd_monday_gateway::connectors::monday::MondayClient;
use npd_monday_gateway::connectors::npd::NpdClient;
use npd_monday_gateway::demo::{CONTACTS_BOARD, Sims, World, sample_contact};
use npd_monday_gateway::domain::entity::{EntityKind, NpdId};
use npd_monday_gateway::sim::monday::MondayCall;
use npd_monday_gateway::startup::Application;
use npd_monday_gateway::worker::Wake;
use serde_json::json;

mod common;
use common::{post_all, post_all_to};
use tokio::sync::Semaphore;

const LATENCY: Duration = Duration::from_millis(200);

/// One signed NPD event for `id` at `version`.
fn event(id: NpdId, version: i64) -> (String, String) {
    let mut data = serde_json::to_value(sample_contact(id)).unwrap_or_default();
    data["version"] = json!(version);
    data["role_title"] = json!(format!("r{version}"));
    let now = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(version);
    let at = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    data["updated_at"] = json!(at);
    let kind = if version == 1 {
        "contact.created"
    } else {
        "contact.updated"
    };
    (
        format!("bench_{}_{version}", id.0.simple()),
        json!({"type": kind, "data": data}).to_string(),
    )
}

async fn world(
    database_url: &str,
    batch_max: usize,
    latency: Duration,
) -> anyhow::Result<(World, WebhookSecret)> {
    let sims = Sims::start_with(|c| c.requests_per_minute = 100_000).await?;
    let secret = WebhookSecret::parse(sims.npd_secret())?;
    let world = World::with_sims(sims, database_url, |s| {
        s.monday.requests_per_minute = 100_000;
        s.monday.batch_max = batch_max;
        s.sync.monday_timeout_ms = 20_000;
        s.sync.lease_ms = 60_000;
    })
    .await?;
    world.npd.faults().set_emit_on_patch(false);
    world.monday.faults().set_latency(latency);
    Ok((world, secret))
}

fn monday_requests(world: &World) -> usize {
    world
        .monday
        .calls()
        .iter()
        .filter(|c| c.operation != "me")
        .count()
}

/// Monday requests per synced change: `contacts` creates, then one update each.
async fn requests_per_change(
    database_url: &str,
    contacts: usize,
    batch_max: usize,
) -> anyhow::Result<f64> {
    let (world, secret) = world(database_url, batch_max, Duration::ZERO).await?;
    let ids: Vec<NpdId> = (0..contacts).map(|_| NpdId(uuid::Uuid::new_v4())).collect();
    for id in &ids {
        world.npd.insert_contact(sample_contact(*id));
    }
    post_all(
        &world,
        &secret,
        ids.iter().map(|id| event(*id, 1)).collect(),
    )
    .await?;
    world.settle(Duration::from_secs(900)).await?;
    post_all(
        &world,
        &secret,
        ids.iter().map(|id| event(*id, 2)).collect(),
    )
    .await?;
    world.settle(Duration::from_secs(900)).await?;
    anyhow::ensure!(
        world.monday.items(CONTACTS_BOARD).len() == contacts,
        "not every contact synced"
    );
    let per_change = monday_requests(&world) as f64 / (2 * contacts) as f64;
    world.stop().await;
    Ok(per_change)
}

/// Contacts synced per second with Monday answering in 200 ms, and the bare loop's.
async fn throughput(database_url: &str, contacts: usize) -> anyhow::Result<(f64, f64)> {
    let (world, secret) = world(database_url, 25, LATENCY).await?;
    let ids: Vec<NpdId> = (0..contacts).map(|_| NpdId(uuid::Uuid::new_v4())).collect();
    for id in &ids {
        world.npd.insert_contact(sample_contact(*id));
    }
    let started = Instant::now();
    post_all(
        &world,
        &secret,
        ids.iter().map(|id| event(*id, 1)).collect(),
    )
    .await?;
    world.settle(Duration::from_secs(900)).await?;
    let gateway = contacts as f64 / started.elapsed().as_secs_f64();
    world.stop().await;
    Ok((gateway, bare(&ids).await?))
}

/// The bare loop: per contact a lookup, a create and the link PATCH, 4 contacts at a time.
async fn bare(ids: &[NpdId]) -> anyhow::Result<f64> {
    let sims = Sims::start_with(|c| c.requests_per_minute = 100_000).await?;
    sims.monday.faults().set_latency(LATENCY);
    let settings = sims.settings("sqlite://unused.db");
    let monday = MondayClient::new(&settings.monday, Duration::from_secs(20))
        .ok_or_else(|| anyhow::anyhow!("no token"))?;
    let npd = NpdClient::new(&settings.npd, Duration::from_secs(20))
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
                let columns =
                    serde_json::Map::from_iter([("npd_id".to_owned(), json!(id.to_string()))]);
                let item = monday
                    .create_item(
                        CONTACTS_BOARD,
                        "Ada Lovelace",
                        &columns,
                        &format!("bare-{n}"),
                    )
                    .await?;
                let link =
                    serde_json::Map::from_iter([("monday_id".to_owned(), json!(item.to_string()))]);
                npd.patch(EntityKind::Contact, id, &link, &format!("bare-link-{n}"))
                    .await?;
                Ok::<(), npd_monday_gateway::connectors::ConnectorError>(())
            }
            .await;
            drop(permit);
            synced.is_ok()
        }));
    }
    for t in tasks {
        anyhow::ensure!(t.await?, "a bare sync failed");
    }
    Ok(ids.len() as f64 / started.elapsed().as_secs_f64())
}

/// p50 and p99 from NPD's 202 to the create reaching Monday, at 50 new contacts a second.
async fn latency(database_url: &str, contacts: usize) -> anyhow::Result<(Duration, Duration)> {
    let (world, secret) = world(database_url, 25, LATENCY).await?;
    let ids: Vec<NpdId> = (0..contacts).map(|_| NpdId(uuid::Uuid::new_v4())).collect();
    let mut accepted = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for id in &ids {
        tick.tick().await;
        world.npd.insert_contact(sample_contact(*id));
        accepted.extend(post_all(&world, &secret, vec![event(*id, 1)]).await?);
    }
    world.settle(Duration::from_secs(900)).await?;
    let calls: Vec<MondayCall> = world
        .monday
        .calls()
        .into_iter()
        .filter(|c| c.has("create_item"))
        .collect();
    let mut delays = Vec::new();
    for (id, at) in ids.iter().zip(accepted) {
        let needle = id.to_string();
        let arrived = calls
            .iter()
            .filter(|c| c.variables.to_string().contains(&needle))
            .map(|c| c.at)
            .min()
            .ok_or_else(|| anyhow::anyhow!("no create for {id}"))?;
        delays.push(arrived.saturating_duration_since(at));
    }
    world.stop().await;
    delays.sort();
    let pick = |q: f64| delays[((delays.len() as f64 * q) as usize).min(delays.len() - 1)];
    Ok((pick(0.50), pick(0.99)))
}

async fn report(
    label: &str,
    database_url: impl Fn(&str) -> String,
    contacts: usize,
) -> anyhow::Result<()> {
    let batched = requests_per_change(&database_url("a"), contacts, 25).await?;
    let single = requests_per_change(&database_url("b"), contacts, 1).await?;
    println!(
        "| {label} | requests per change | {batched:.3} | {single:.3} (batch_max = 1) | {:.2}x |",
        batched / single
    );
    let (gateway, bare) = throughput(&database_url("c"), contacts / 2).await?;
    println!(
        "| {label} | contacts synced/s, Monday at 200 ms | {gateway:.1} | {bare:.1} (bare loop, 4 at a time) | {:.1}x |",
        gateway / bare
    );
    let (p50, p99) = latency(&database_url("d"), contacts / 4).await?;
    println!(
        "| {label} | 202 to Monday at 50 events/s, p50 / p99 | {} / {} ms | 200 ms (Monday's latency alone) | {:.1}x p99 |",
        p50.as_millis(),
        p99.as_millis(),
        p99.as_secs_f64() / LATENCY.as_secs_f64()
    );
    Ok(())
}

/// Gateways in this process on one database, wired to `sims` (events and webhooks go to the first),
/// with processing paused until the caller resumes it.
struct Replicas {
    addrs: Vec<String>,
    wakes: Vec<Wake>,
    stops: Vec<tokio_util::sync::CancellationToken>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Replicas {
    async fn start(
        sims: &Sims,
        url: &str,
        n: usize,
        tweak: impl Fn(&mut npd_monday_gateway::config::Settings),
    ) -> anyhow::Result<Replicas> {
        let mut r = Replicas {
            addrs: Vec::new(),
            wakes: Vec::new(),
            stops: Vec::new(),
            tasks: Vec::new(),
        };
        for _ in 0..n {
            let mut s = sims.settings(url);
            tweak(&mut s);
            let app = Application::build(s).await?;
            app.wake().pause_processing();
            r.addrs.push(format!("http://{}", app.local_addr()?));
            r.wakes.push(app.wake());
            r.stops.push(app.shutdown_token());
            r.tasks.push(tokio::spawn(app.run_until_stopped()));
        }
        sims.deliver_to(&r.addrs[0], &r.addrs[0]);
        Ok(r)
    }

    async fn stop(self) {
        for stop in &self.stops {
            stop.cancel();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Inbox events processed per second by `replicas` gateways sharing one PostgreSQL schema: each
/// contact created and updated twice, accepted with processing paused everywhere; then processing
/// resumes in every replica and the inbox is drained.
async fn processing_rate(url: &str, replicas: usize, contacts: usize) -> anyhow::Result<f64> {
    let sims = Sims::start_with(|c| c.requests_per_minute = 100_000).await?;
    sims.npd.faults().set_emit_on_patch(false);
    let secret = WebhookSecret::parse(sims.npd_secret())?;
    let gateways = Replicas::start(&sims, url, replicas, |s| {
        s.monday.requests_per_minute = 100_000;
        s.sync.lease_ms = 60_000;
    })
    .await?;
    let ids: Vec<NpdId> = (0..contacts).map(|_| NpdId(uuid::Uuid::new_v4())).collect();
    for id in &ids {
        sims.npd.insert_contact(sample_contact(*id));
    }
    let events: Vec<(String, String)> = (1..=3)
        .flat_map(|v| ids.iter().map(move |id| event(*id, v)))
        .collect();
    let total = events.len();
    post_all_to(
        format!("{}/api/v1/npd/events", gateways.addrs[0]),
        &secret,
        events,
    )
    .await?;
    let store = npd_monday_gateway::ledger::Store::connect(&sims.settings(url).database).await?;
    let started = Instant::now();
    for wake in &gateways.wakes {
        wake.resume_processing();
    }
    while store.unprocessed_count().await? > 0 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "processing stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    gateways.stop().await;
    store.close().await;
    Ok(rate)
}

/// Monday requests in the first minute window of three replicas sharing a limit of 60 a minute
/// (Monday's simulator enforcing the same limit), and the 429s Monday answered.
async fn replicas_minute(url: &str, contacts: usize) -> anyhow::Result<(usize, usize)> {
    const LIMIT: u64 = 60;
    let sims = Sims::start_with(|c| c.requests_per_minute = LIMIT).await?;
    sims.npd.faults().set_emit_on_patch(false);
    let secret = WebhookSecret::parse(sims.npd_secret())?;
    let gateways = Replicas::start(&sims, url, 3, |s| {
        s.monday.requests_per_minute = LIMIT;
        s.monday.batch_max = 1;
    })
    .await?;
    let ids: Vec<NpdId> = (0..contacts).map(|_| NpdId(uuid::Uuid::new_v4())).collect();
    for id in &ids {
        sims.npd.insert_contact(sample_contact(*id));
    }
    let events = ids.iter().map(|id| event(*id, 1)).collect();
    post_all_to(
        format!("{}/api/v1/npd/events", gateways.addrs[0]),
        &secret,
        events,
    )
    .await?;
    for wake in &gateways.wakes {
        wake.resume_processing();
    }
    let first = sims
        .monday
        .wait_for_call(Duration::from_secs(30), |c| c.operation != "me")
        .await
        .ok_or_else(|| anyhow::anyhow!("no request reached Monday"))?
        .at;
    tokio::time::sleep_until((first + Duration::from_secs(61)).into()).await;
    let calls: Vec<MondayCall> = sims
        .monday
        .calls()
        .into_iter()
        .filter(|c| c.operation != "me" && c.at >= first && c.at < first + Duration::from_secs(60))
        .collect();
    let refused = calls.iter().filter(|c| c.status == 429).count();
    gateways.stop().await;
    Ok((calls.len(), refused))
}

/// The PostgreSQL-only rows: processing with 3 replicas against 1, and 3 replicas' spending.
async fn replicas_report(
    database_url: impl Fn(&str) -> String,
    contacts: usize,
) -> anyhow::Result<()> {
    let one = processing_rate(&database_url("e"), 1, contacts).await?;
    let three = processing_rate(&database_url("f"), 3, contacts).await?;
    println!(
        "| PostgreSQL | inbox events processed/s, 3 replicas | {three:.0} | {one:.0} (1 replica) | {:.2}x |",
        three / one
    );
    let (spent, refused) = replicas_minute(&database_url("g"), 200).await?;
    println!(
        "| PostgreSQL | Monday requests in the first minute, 3 replicas | {spent} ({refused} refused with 429) | 60 (requests_per_minute) | {:.2}x |",
        spent as f64 / 60.0
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut contacts = 1_000;
    let args: Vec<String> = std::env::args().collect();
    // `--replicas`: only the PostgreSQL replica rows.
    let only_replicas = args.iter().any(|a| a == "--replicas");
    for pair in args.windows(2) {
        if let ("--contacts", Ok(n)) = (pair[0].as_str(), pair[1].parse()) {
            contacts = n;
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!("Monday budget benchmark: {contacts} contacts");
        println!();
        println!("| store | measure | gateway | baseline | gateway/baseline |");
        println!("|---|---|---:|---:|---:|");
        let dir = std::env::temp_dir().join(format!(
            "npd-monday-gateway-bench-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        if !only_replicas {
            report(
                "SQLite",
                |name| format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
                contacts,
            )
            .await?;
        }
        let pg = std::env::var("GATEWAY_BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("GATEWAY_TEST_POSTGRES_URL"))
            .ok()
            .filter(|u| !u.is_empty());
        if let Some(base) = pg {
            let pool = sqlx::PgPool::connect(&base).await?;
            for name in ["a", "b", "c", "d", "e", "f", "g"] {
                sqlx::query(&format!(
                    "drop schema if exists gw_bench_batch_{name} cascade"
                ))
                .execute(&pool)
                .await?;
                sqlx::query(&format!("create schema gw_bench_batch_{name}"))
                    .execute(&pool)
                    .await?;
            }
            pool.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            let url =
                |name: &str| format!("{base}{sep}options=-c%20search_path%3Dgw_bench_batch_{name}");
            if !only_replicas {
                report("PostgreSQL", url, contacts).await?;
            }
            replicas_report(url, contacts).await?;
        } else {
            println!(
                "(PostgreSQL skipped: set GATEWAY_BENCH_POSTGRES_URL or GATEWAY_TEST_POSTGRES_URL)"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
}
