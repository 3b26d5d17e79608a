//! Backpressure and resource limits (RELIABILITY.md T16, T23): a database slowed by 2 s gives
//! fast 503s with `Retry-After` and full recovery; requests past `max_concurrent_requests` are
//! shed with 503 at once, never queued; 1,000 slowloris sockets are all closed within the
//! header-read timeout while well-behaved clients are served.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::durability::open_store;
use crate::fault_proxy::{FaultProxy, target_of};
use crate::helpers::{
    Backend, NPD_SECRET, TestApp, TestDatabase, assert_all_stored, eventually, fixture, now,
    sign_npd, wait_until,
};
use crate::metrics::sample;
use crate::rss::{self, MIB, PeakSampler};
use crate::{postgres_test, store_tests};

store_tests!(requests_past_the_concurrency_cap_are_shed_with_503_at_once);

/// How long the senders of these tests wait for an answer (GitHub's is 10 s, Shopify's 5 s).
const SENDER_TIMEOUT: Duration = Duration::from_secs(10);

/// A new contact's `contact.created` event: its delivery id and body.
pub fn new_contact_event() -> (String, String) {
    let mut event: serde_json::Value =
        serde_json::from_str(&fixture("npd/contact.created.json")).expect("json");
    let id = uuid::Uuid::new_v4();
    event["data"]["id"] = json!(id);
    event["data"]["organization_id"] = json!(null);
    (format!("evt_{}", id.simple()), event.to_string())
}

/// One delivery's answer as its sender saw it.
#[derive(Debug)]
pub struct Answer {
    pub id: String,
    /// None: the sender gave up waiting (its timeout) or the connection failed.
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub took: Duration,
}

/// Posts one NPD event signed with the test secret, with a sender's timeout.
pub async fn deliver(client: &reqwest::Client, base: &str, id: &str, body: &str) -> Answer {
    deliver_signed(client, (base, NPD_SECRET), id, body).await
}

/// Posts one NPD event to `base` signed with `secret`.
pub async fn deliver_signed(
    client: &reqwest::Client,
    (base, secret): (&str, &str),
    id: &str,
    body: &str,
) -> Answer {
    let ts = now();
    let started = Instant::now();
    let response = client
        .post(format!("{base}/api/v1/npd/events"))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            sign_npd(secret, id, ts, body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await;
    let took = started.elapsed();
    let (status, retry_after) = match response {
        Ok(r) => (
            Some(r.status().as_u16()),
            r.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ),
        Err(_) => (None, None),
    };
    Answer {
        id: id.to_owned(),
        status,
        retry_after,
        took,
    }
}

/// A sender: a client that gives up after `SENDER_TIMEOUT`.
pub fn sender() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(SENDER_TIMEOUT)
        .build()
        .expect("client")
}

/// `n` new events posted at once; every answer.
async fn deliver_at_once(base: String, n: usize) -> Vec<Answer> {
    let client = sender();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, base) = (client.clone(), base.clone());
        tasks.spawn(async move {
            let (id, body) = new_contact_event();
            deliver(&client, &base, &id, &body).await
        });
    }
    tasks.join_all().await
}

/// Sends one event until it is acknowledged (a sender's retries), within `within`.
pub async fn deliver_until_acknowledged(base: &str, id: &str, body: &str, within: Duration) {
    let client = sender();
    eventually(within, async || {
        let answer = deliver(&client, base, id, body).await;
        match answer.status {
            Some(202) => Ok(()),
            other => Err(format!("{id} still answered {other:?}")),
        }
    })
    .await;
}

/// Every id of `acknowledged` is in the NPD inbox of the store at `url`.
pub async fn assert_all_stored_at(url: &str, acknowledged: &HashSet<String>) {
    let store = open_store(url).await;
    assert_all_stored(&store, acknowledged).await;
    store.close().await;
}

fn millis(d: Duration) -> u128 {
    d.as_millis()
}

postgres_test! {
    async fn a_database_2_s_slower_gives_fast_503_with_retry_after_then_recovers() {
        // Arrange: the gateway reaches PostgreSQL through the fault proxy.
        let db = TestDatabase::create(&Backend::postgres()).await;
        let direct = db.url.clone();
        let proxy = FaultProxy::start(target_of(&direct)).await;
        let app = TestApp::spawn_on(db, &proxy.url_for(&direct), |_| {}).await;
        let base = format!("http://{}", app.addr);
        let before = rss::own();
        let sampler = PeakSampler::start();
        let mut acknowledged = HashSet::new();
        for answer in deliver_at_once(base.clone(), 10).await {
            assert_eq!(answer.status, Some(202), "before the fault: {answer:?}");
            acknowledged.insert(answer.id);
        }

        // Act: every answer of the database now comes 2 s late; 64 senders post at once.
        proxy.set(|f| f.downstream_latency = Duration::from_secs(2));
        let during = deliver_at_once(base.clone(), 64).await;
        proxy.heal();

        // Assert: each sender had its answer before its own timeout, a 503 with Retry-After
        // when not acknowledged; the senders' retries are all acknowledged once it is healed.
        let slowest = during.iter().map(|a| a.took).max().unwrap_or_default();
        let mut refused = Vec::new();
        for answer in during {
            assert!(answer.took < SENDER_TIMEOUT, "the sender timed out: {answer:?}");
            match answer.status {
                Some(202) => {
                    acknowledged.insert(answer.id);
                }
                Some(503) => {
                    assert!(answer.retry_after.is_some(), "503 without Retry-After");
                    refused.push(answer.id);
                }
                other => panic!("unexpected answer {other:?} for {}", answer.id),
            }
        }
        assert!(!refused.is_empty(), "the saturated store answered nothing with 503");
        assert!(proxy.accepted() > 0, "the gateway reached PostgreSQL through the proxy");
        let healed = Instant::now();
        let (probe, body) = new_contact_event();
        deliver_until_acknowledged(&base, &probe, &body, Duration::from_secs(30)).await;
        let recovered = healed.elapsed();
        acknowledged.insert(probe);
        eprintln!(
            "T23: 64 deliveries with the database 2 s slower: {} refused 503, slowest answer {} ms \
             (sender timeout {} ms); first acknowledgement {} ms after healing",
            refused.len(),
            millis(slowest),
            millis(SENDER_TIMEOUT),
            millis(recovered)
        );
        assert_all_stored_at(&direct, &acknowledged).await;
        let (peak, after) = (sampler.peak(), rss::own());
        rss::report_and_bound("T23", before, peak, after, 512 * MIB, 128 * MIB);
    }
}

/// Holds the inbox's write lock from outside the gateway, so its ingress requests wait.
enum InboxLock {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>, sqlx::SqlitePool),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>, sqlx::PgPool),
}

impl InboxLock {
    async fn take(backend: &Backend, url: &str) -> InboxLock {
        match backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(url).await.expect("sqlite");
                let mut conn = pool.acquire().await.expect("connection");
                sqlx::query("begin immediate")
                    .execute(&mut *conn)
                    .await
                    .expect("take the write lock");
                InboxLock::Sqlite(conn, pool)
            }
            Backend::Postgres(_) => {
                let pool = sqlx::PgPool::connect(url).await.expect("pg");
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query("lock table inbox_events in exclusive mode")
                    .execute(&mut *tx)
                    .await
                    .expect("lock the inbox");
                InboxLock::Postgres(tx, pool)
            }
        }
    }

    async fn release(self) {
        match self {
            InboxLock::Sqlite(mut conn, pool) => {
                sqlx::query("rollback")
                    .execute(&mut *conn)
                    .await
                    .expect("release");
                drop(conn);
                pool.close().await;
            }
            InboxLock::Postgres(tx, pool) => {
                tx.rollback().await.expect("release");
                pool.close().await;
            }
        }
    }
}

async fn scrape(app: &TestApp, series: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    sample(&text, series).unwrap_or(0.0)
}

async fn requests_past_the_concurrency_cap_are_shed_with_503_at_once(backend: Backend) {
    // Arrange: a cap of 4, and 4 deliveries held inside the gateway by the inbox's lock.
    let db = TestDatabase::create(&backend).await;
    let url = db.url.clone();
    let app = TestApp::spawn_on(db, &url, |s| {
        s.http.max_concurrent_requests = 4;
        s.database.ingest_timeout_ms = 20_000;
        // Writers blocked by the lock hold their connections: leave some for `/metrics`.
        s.database.max_connections = 16;
    })
    .await;
    let base = format!("http://{}", app.addr);
    let lock = InboxLock::take(&backend, &url).await;
    let held = tokio::spawn(deliver_at_once(base.clone(), 4));
    wait_until(
        Duration::from_secs(10),
        "4 requests in flight",
        async || scrape(&app, "gateway_http_requests_in_flight").await == 4.0,
    )
    .await;

    // Act: 20 more while those 4 are held.
    let surplus = tokio::time::timeout(Duration::from_secs(5), deliver_at_once(base.clone(), 20))
        .await
        .expect("surplus requests were queued behind the held ones, not shed");
    lock.release().await;
    let held = held.await.expect("held requests");

    // Assert: every surplus request got 503 with Retry-After at once and was not stored; each
    // held one was acknowledged or refused, and every acknowledged one is stored.
    let slowest = surplus.iter().map(|a| a.took).max().unwrap_or_default();
    for answer in &surplus {
        assert_eq!(answer.status, Some(503), "{answer:?}");
        assert_eq!(answer.retry_after.as_deref(), Some("1"), "{answer:?}");
    }
    let shed = app
        .client
        .post(app.url("/webhooks/monday"))
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_ne!(shed.status().as_u16(), 503, "the cap frees its slots");
    let acknowledged: HashSet<String> = held
        .into_iter()
        .filter(|a| a.status == Some(202))
        .map(|a| a.id)
        .collect();
    assert_eq!(scrape(&app, "gateway_http_requests_shed_total").await, 20.0);
    assert_all_stored_at(&url, &acknowledged).await;
    let store = open_store(&url).await;
    for answer in &surplus {
        let row = store
            .find_inbox_event(npd_monday_gateway::domain::entity::Side::Npd, &answer.id)
            .await
            .expect("query");
        assert!(row.is_none(), "a shed request was stored: {}", answer.id);
    }
    store.close().await;
    eprintln!(
        "T16 cap: 20 requests past a cap of 4 shed with 503 + Retry-After, slowest {} ms; {} of 4 held acknowledged",
        millis(slowest),
        acknowledged.len()
    );
}

/// The process's soft limit on open files, from /proc (None where it cannot be read).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slowloris_sockets_are_closed_within_the_header_timeout() {
    const SOCKETS: usize = 1_000;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
    // Both ends of every socket live in this process.
    let needed = 2 * SOCKETS as u64 + 256;
    match open_files_limit() {
        Some(limit) if limit < needed => {
            eprintln!(
                "SKIPPED: 1,000-socket slowloris needs {needed} open files, `ulimit -n` is {limit}"
            );
            return;
        }
        _ => {}
    }
    let app = TestApp::spawn_with(&Backend::Sqlite, |s| {
        s.http.header_read_timeout_ms = HEADER_TIMEOUT.as_millis() as u64;
    })
    .await;
    let before = rss::own();
    let sampler = PeakSampler::start();

    // Act: 1,000 clients each send half a request head and then nothing.
    let mut sockets = tokio::task::JoinSet::new();
    for _ in 0..SOCKETS {
        let addr = app.addr;
        sockets.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream
                .write_all(b"POST /api/v1/npd/events HTTP/1.1\r\nHost: x\r\nwebhook-id: slow")
                .await
                .expect("write");
            let sent = Instant::now();
            let mut buf = Vec::new();
            let closed =
                tokio::time::timeout(HEADER_TIMEOUT * 10, stream.read_to_end(&mut buf)).await;
            closed.is_ok().then(|| sent.elapsed())
        });
    }
    // Meanwhile, well-behaved clients are served.
    let mut served = 0;
    for _ in 0..20 {
        let ok = app.client.get(app.url("/healthz")).send().await;
        served += usize::from(ok.is_ok_and(|r| r.status().is_success()));
    }
    let closed = sockets.join_all().await;

    // Assert
    let still_open = closed.iter().filter(|c| c.is_none()).count();
    let slowest = closed.iter().flatten().max().copied().unwrap_or_default();
    assert_eq!(
        still_open, 0,
        "sockets still open 10 s after the header timeout"
    );
    assert_eq!(served, 20, "well-behaved requests were refused");
    let ok = problem_free_post(&app).await;
    assert_eq!(ok, 202, "a delivery after the attack is accepted");
    eprintln!(
        "T16 slowloris: {SOCKETS} sockets all closed, the last {} ms after its partial head \
         (header timeout {} ms); 20/20 legit requests served meanwhile",
        millis(slowest),
        millis(HEADER_TIMEOUT)
    );
    drop(closed);
    let (peak, after) = (sampler.peak(), rss::own());
    rss::report_and_bound("T16 slowloris", before, peak, after, 512 * MIB, 128 * MIB);
}

async fn problem_free_post(app: &TestApp) -> u16 {
    let (id, body) = new_contact_event();
    let answer = app.post_npd_signed(&id, &body).await;
    answer.status().as_u16()
}
