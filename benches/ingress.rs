//! Ingress benchmark: signed NPD events accepted per second and latency at 64 concurrent
//! connections, for the gateway and for a bare baseline in the same run, on SQLite and (when
//! `GATEWAY_TEST_POSTGRES_URL` or `GATEWAY_BENCH_POSTGRES_URL` is set) on PostgreSQL. Every event
//! is a new contact (`contact.created`, its own id).
//!
//! Three servers per store, each on a database of its own:
//! - **bare**: the simplest durable server one could write: an axum route that inserts the body
//!   into the same `inbox_events` table of the same kind of store (same pool, same durability:
//!   SQLite in WAL with `synchronous = FULL`) with one autocommit `insert` per request, and
//!   answers 202. It skips signature checks and parsing, so it is a generous baseline.
//! - **gateway, ingress only** (`[sync] run_workers = false`).
//! - **gateway, processing running**: the whole gateway against the Monday and NPD simulators, so
//!   every accepted contact is also processed, created in Monday and its `monday_id` written back
//!   to NPD while the load goes on (processing shares SQLite's single writer with ingress). The
//!   backlog left when the load ends and the time it takes to drain show whether processing kept
//!   up.
//!
//! Run: `cargo bench --bench ingress` (`-- --requests N --concurrency C` to change the load).
//! Figures are printed as a table plus the gateway/baseline ratio per store; compare ratios, not
//! absolute numbers, across machines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use npd_monday_gateway::auth::standard_webhooks::{WebhookSecret, sign};
use npd_monday_gateway::config::Settings;
use npd_monday_gateway::demo::{Sims, World, sample_contact};
use npd_monday_gateway::domain::entity::NpdId;
use npd_monday_gateway::ledger::{Store, now_ms};
use npd_monday_gateway::startup::Application;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Options {
    requests: usize,
    concurrency: usize,
    warmup: usize,
}

fn options() -> Options {
    let mut o = Options {
        requests: 20_000,
        concurrency: 64,
        warmup: 1_000,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse().ok());
        match (args[i].as_str(), value) {
            ("--requests", Some(v)) => o.requests = v,
            ("--concurrency", Some(v)) => o.concurrency = v,
            ("--warmup", Some(v)) => o.warmup = v,
            _ => {}
        }
        i += 1;
    }
    o
}

/// One prepared request: id, timestamp, signature, body.
struct Signed {
    id: String,
    ts: String,
    signature: String,
    body: String,
}

/// `n` new contacts, each one signed `contact.created` event (ids prefixed so runs never meet).
fn prepare(prefix: &str, n: usize, secret: &str) -> (Vec<NpdId>, Vec<Signed>) {
    let secret = WebhookSecret::parse(secret).expect("secret");
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    (0..n)
        .map(|i| {
            let contact = NpdId(uuid::Uuid::new_v4());
            let id = format!("bench_{prefix}_{i}");
            let body = serde_json::json!({
                "type": "contact.created",
                "timestamp": "2026-11-26T10:00:00Z",
                "data": sample_contact(contact),
            })
            .to_string();
            let signature = sign(&secret, &id, ts, body.as_bytes());
            let signed = Signed {
                id,
                ts: ts.to_string(),
                signature,
                body,
            };
            (contact, signed)
        })
        .unzip()
}

struct Report {
    name: String,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    errors: usize,
    /// With processing running: what was left when the load ended.
    backlog: Option<Backlog>,
}

/// What the load left behind: events not yet processed when it ended, how long after it the
/// inbox was empty (processing caught up), and how long until every job was done too.
struct Backlog {
    unprocessed: i64,
    caught_up: Duration,
    drained: Duration,
}

async fn load(
    addr: SocketAddr,
    requests: Vec<Signed>,
    concurrency: usize,
) -> (f64, Vec<Duration>, usize) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let url = format!("http://{addr}/api/v1/npd/events");
    let semaphore = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(requests.len());
    for r in requests {
        let permit = Arc::clone(&semaphore)
            .acquire_owned()
            .await
            .expect("permit");
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .header("webhook-id", &r.id)
                .header("webhook-timestamp", &r.ts)
                .header("webhook-signature", &r.signature)
                .body(r.body)
                .send()
                .await;
            let ok = matches!(&response, Ok(resp) if resp.status() == StatusCode::ACCEPTED);
            if let Ok(resp) = response {
                let _ = resp.bytes().await;
            }
            drop(permit);
            (t.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    for t in tasks {
        let (latency, ok) = t.await.expect("task");
        latencies.push(latency);
        if !ok {
            errors += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    (latencies.len() as f64 / elapsed, latencies, errors)
}

fn report(name: String, per_sec: f64, mut latencies: Vec<Duration>, errors: usize) -> Report {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    Report {
        name,
        per_sec,
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
        errors,
        backlog: None,
    }
}

fn settings(database_url: &str) -> Settings {
    let mut s = Settings::default();
    s.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    s.database.url = SecretString::from(database_url.to_owned());
    s.npd.webhook_secret = Some(SecretString::from(SECRET.to_owned()));
    s.log.filter = "warn".into();
    s
}

/// The baseline: one autocommit insert per request into the same table of the same store.
async fn bare_server(store: Store) -> SocketAddr {
    async fn insert(State(store): State<Store>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let payload = String::from_utf8_lossy(&body).into_owned();
        let now = now_ms();
        let sql = "insert into inbox_events (source, delivery_id, event_type, payload, received_at, \
                   created_at, updated_at) values ('npd', $1, 'contact.updated', $2, $3, $3, $3) \
                   on conflict (source, delivery_id) do nothing";
        let result = match &store {
            Store::Sqlite(sqlite) => sqlx::query(sql)
                .bind(&id)
                .bind(&payload)
                .bind(now)
                .execute(&sqlite.pool)
                .await
                .map(|_| ()),
            Store::Postgres(pool) => sqlx::query(sql)
                .bind(&id)
                .bind(&payload)
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => StatusCode::ACCEPTED,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    let app = axum::Router::new()
        .route("/api/v1/npd/events", post(insert))
        .with_state(store);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn postgres_schema(base: &str, name: &str) -> String {
    let pool = sqlx::PgPool::connect(base)
        .await
        .expect("PostgreSQL for the benchmark");
    sqlx::query(&format!("drop schema if exists {name} cascade"))
        .execute(&pool)
        .await
        .expect("drop schema");
    sqlx::query(&format!("create schema {name}"))
        .execute(&pool)
        .await
        .expect("create schema");
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{name}")
}

/// One store: the bare baseline, the gateway as an ingress-only replica, and the whole gateway
/// with processing running against the simulators, each on a database of its own.
async fn run_backend(label: &str, urls: [String; 3], o: &Options) -> Vec<Report> {
    let [bare_url, ingress_url, full_url] = urls;
    // Baseline: its own database of the same kind, migrated by the same code, same pool settings.
    let bare_store = Store::connect(&settings(&bare_url).database)
        .await
        .expect("bare store");
    bare_store.migrate().await.expect("migrate bare store");
    let bare_addr = bare_server(bare_store.clone()).await;
    let mut reports = vec![measure(label, "bare insert per request", bare_addr, SECRET, o).await];
    bare_store.close().await;

    let mut s = settings(&ingress_url);
    s.sync.run_workers = false;
    let app = Application::build(s).await.expect("gateway");
    let addr = app.local_addr().expect("addr");
    let stop = app.shutdown_token();
    let gateway = tokio::spawn(app.run_until_stopped());
    reports.push(measure(label, "gateway, ingress only", addr, SECRET, o).await);
    stop.cancel();
    let _ = gateway.await;

    reports.push(processing_running(label, &full_url, o).await);
    reports
}

/// The whole gateway, wired to the Monday and NPD simulators, under the same load; then the time
/// its backlog takes to drain.
async fn processing_running(label: &str, url: &str, o: &Options) -> Report {
    // Monday's minute and complexity budgets out of the way: what is measured is the gateway's
    // ingest and processing, not how fast Monday lets creates through (500 a minute at 10,000
    // points each under a 5M-point budget).
    let sims = Sims::start_with(|c| {
        c.requests_per_minute = 1_000_000;
        c.complexity_per_minute = u64::MAX / 4;
    })
    .await
    .expect("simulators");
    let secret = sims.npd_secret().to_owned();
    let world = World::with_sims(sims, url, |s| {
        // The same pool, polls and log level as the other two servers; Monday's budget out of the way.
        let plain = settings(url);
        s.database.max_connections = plain.database.max_connections;
        s.sync.poll_interval_ms = plain.sync.poll_interval_ms;
        s.sync.lease_ms = 60_000;
        s.monday.requests_per_minute = 1_000_000;
        s.monday.complexity_per_minute = u64::MAX / 4;
        s.log.filter = plain.log.filter;
    })
    .await
    .expect("gateway with simulators");
    world.npd.faults().set_emit_on_patch(false);
    let name = "gateway, processing running";
    let tag = format!("{label}_processing");
    let (warm_ids, warm) = prepare(&format!("{tag}_warm"), o.warmup, &secret);
    let (ids, requests) = prepare(&tag, o.requests, &secret);
    for id in warm_ids.iter().chain(&ids) {
        world.npd.insert_contact(sample_contact(*id));
    }
    let _ = load(world.addr, warm, o.concurrency).await;
    world
        .settle(Duration::from_secs(600))
        .await
        .expect("the warm-up drains");
    let (per_sec, latencies, errors) = load(world.addr, requests, o.concurrency).await;
    let ended = Instant::now();
    let unprocessed = world.store.unprocessed_count().await.expect("backlog");
    // Processing caught up: the inbox is empty (the outbox drains at Monday's and NPD's pace).
    while world.store.unprocessed_count().await.expect("backlog") > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caught_up = ended.elapsed();
    world
        .settle(Duration::from_secs(1_800))
        .await
        .expect("the backlog drains");
    let drained = ended.elapsed();
    world.stop().await;
    let mut report = report(format!("{label:<8} {name}"), per_sec, latencies, errors);
    report.backlog = Some(Backlog {
        unprocessed,
        caught_up,
        drained,
    });
    println!(
        "{}: {:.0} events/s; {unprocessed} unprocessed at the end, processed {:.1} s and synced {:.1} s later",
        report.name,
        report.per_sec,
        caught_up.as_secs_f64(),
        drained.as_secs_f64()
    );
    report
}

async fn measure(label: &str, name: &str, addr: SocketAddr, secret: &str, o: &Options) -> Report {
    let tag = format!("{label}_{}", name.replace([' ', ','], "_"));
    let (_, warm) = prepare(&format!("{tag}_warm"), o.warmup, secret);
    let _ = load(addr, warm, o.concurrency).await;
    let (_, requests) = prepare(&tag, o.requests, secret);
    let (per_sec, latencies, errors) = load(addr, requests, o.concurrency).await;
    let report = report(format!("{label:<8} {name}"), per_sec, latencies, errors);
    println!("{}: {:.0} events/s", report.name, report.per_sec);
    report
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!(
            "ingress benchmark: {} signed NPD events per server, {} concurrent connections, {} warm-up",
            o.requests, o.concurrency, o.warmup
        );
        let mut all = Vec::new();
        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
        all.push(
            run_backend(
                "sqlite",
                [sqlite("bare.db"), sqlite("ingress.db"), sqlite("full.db")],
                &o,
            )
            .await,
        );
        let pg = std::env::var("GATEWAY_BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("GATEWAY_TEST_POSTGRES_URL"))
            .ok()
            .filter(|u| !u.is_empty());
        match pg {
            Some(base) => {
                let urls = [
                    postgres_schema(&base, "gw_bench_bare").await,
                    postgres_schema(&base, "gw_bench_ingress").await,
                    postgres_schema(&base, "gw_bench_full").await,
                ];
                all.push(run_backend("postgres", urls, &o).await);
            }
            None => println!("(PostgreSQL skipped: set GATEWAY_TEST_POSTGRES_URL or GATEWAY_BENCH_POSTGRES_URL)"),
        }
        println!();
        println!(
            "| store and server | events/s | p50 ms | p99 ms | max ms | errors | unprocessed at the end | processed s later | synced s later |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in all.iter().flatten() {
            let (unprocessed, caught_up, drained) = match &r.backlog {
                Some(b) => (
                    b.unprocessed.to_string(),
                    format!("{:.1}", b.caught_up.as_secs_f64()),
                    format!("{:.1}", b.drained.as_secs_f64()),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            println!(
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {unprocessed} | {caught_up} | {drained} |",
                r.name.trim(),
                r.per_sec,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.max.as_secs_f64() * 1e3,
                r.errors
            );
        }
        println!();
        for runs in &all {
            if let [bare, gateways @ ..] = runs.as_slice() {
                for gw in gateways {
                    println!(
                        "{}: throughput ratio {:.2}x, p99 ratio {:.2}x against the bare server",
                        gw.name,
                        gw.per_sec / bare.per_sec,
                        gw.p99.as_secs_f64() / bare.p99.as_secs_f64()
                    );
                }
            }
        }
    });
}
