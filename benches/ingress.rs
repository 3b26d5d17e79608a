//! Ingress benchmark: signed NPD events accepted per second and latency at 64 concurrent
//! connections, for the gateway and for a bare baseline in the same run, on SQLite and (when
//! `GATEWAY_TEST_POSTGRES_URL` or `GATEWAY_BENCH_POSTGRES_URL` is set) on PostgreSQL.
//!
//! The gateway runs twice: as an ingress-only replica (`[sync] run_workers = false`), and with its
//! processor running (it then records every accepted event as well, sharing the store's writer
//! with ingress). The baseline is the simplest durable server one could write: an axum route that inserts the
//! body into the same `inbox_events` table of the same store (same pool, same durability settings)
//! with one autocommit `insert` per request, and answers 202. It skips signature checks and
//! parsing, so it is a generous baseline. Both servers receive the same pre-signed requests.
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

fn prepare(prefix: &str, n: usize) -> Vec<Signed> {
    let secret = WebhookSecret::parse(SECRET).expect("secret");
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    (0..n)
        .map(|i| {
            let id = format!("bench_{prefix}_{i}");
            let body = serde_json::json!({
                "type": "contact.updated",
                "timestamp": "2026-11-26T10:00:00Z",
                "data": {
                    "id": format!("3f0b6a52-4c1e-4d7a-9f7e-{:012x}", i % 5_000),
                    "version": i + 1, "sync_enabled": true, "monday_id": null,
                    "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
                    "phone": "+442079460990", "role_title": "CTO", "notes": "Met at the expo",
                    "organization_id": null, "updated_at": "2026-11-26T09:59:58Z"
                }
            })
            .to_string();
            let signature = sign(&secret, &id, ts, body.as_bytes());
            Signed {
                id,
                ts: ts.to_string(),
                signature,
                body,
            }
        })
        .collect()
}

struct Report {
    name: String,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    errors: usize,
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

/// One store: the bare baseline, the gateway as an ingress-only replica, and the gateway with its
/// processor running too (here it processes every accepted event while the load goes on), each
/// on a database of its own.
async fn run_backend(label: &str, urls: [String; 3], o: &Options) -> Vec<Report> {
    let [bare_url, ingress_url, full_url] = urls;
    // Baseline: its own database of the same kind, migrated by the same code, same pool settings.
    let bare_store = Store::connect(&settings(&bare_url).database)
        .await
        .expect("bare store");
    bare_store.migrate().await.expect("migrate bare store");
    let bare_addr = bare_server(bare_store.clone()).await;
    let mut reports = Vec::new();
    reports.push(measure(label, "bare insert per request", bare_addr, o).await);
    bare_store.close().await;
    for (name, url, workers) in [
        ("gateway, ingress only", ingress_url, false),
        ("gateway, processing running", full_url, true),
    ] {
        let mut s = settings(&url);
        s.sync.run_workers = workers;
        let app = Application::build(s).await.expect("gateway");
        let addr = app.local_addr().expect("addr");
        let stop = app.shutdown_token();
        let gateway = tokio::spawn(app.run_until_stopped());
        reports.push(measure(label, name, addr, o).await);
        stop.cancel();
        let _ = gateway.await;
    }
    reports
}

async fn measure(label: &str, name: &str, addr: SocketAddr, o: &Options) -> Report {
    let tag = format!("{label}_{}", name.replace([' ', ','], "_"));
    let _ = load(
        addr,
        prepare(&format!("{tag}_warm"), o.warmup),
        o.concurrency,
    )
    .await;
    let (per_sec, latencies, errors) = load(addr, prepare(&tag, o.requests), o.concurrency).await;
    report(format!("{label:<8} {name}"), per_sec, latencies, errors)
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
        println!("| store and server | events/s | p50 ms | p99 ms | max ms | errors |");
        println!("|---|---:|---:|---:|---:|---:|");
        for r in all.iter().flatten() {
            println!(
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
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
