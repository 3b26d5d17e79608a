//! Test harness: spawns the real gateway on a random port against a real store (a temporary SQLite
//! file, or a fresh schema in the PostgreSQL named by `GATEWAY_TEST_POSTGRES_URL`), and signs
//! requests the way NPD and Monday do.
//!
//! Tests never sleep to let something happen. They wait on the event itself where there is one (a
//! simulator's recorded call or finished deliveries, a log line, a process's exit), and poll with
//! `eventually`/`wait_until` (bounded, with the reason on timeout) only where the state can only be
//! read: the ledger, which the gateway or another process writes, and the clock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use npd_monday_gateway::auth::monday_jwt::sign_hs256;
use npd_monday_gateway::auth::standard_webhooks::{WebhookSecret, sign};
use npd_monday_gateway::config::Settings;
use npd_monday_gateway::demo::World;
use npd_monday_gateway::domain::entity::BoardId;
use npd_monday_gateway::ledger::Store;
use npd_monday_gateway::sim::monday::{MondayCall, MondaySim};
use npd_monday_gateway::sim::npd::NpdSim;
use npd_monday_gateway::startup::Application;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub const NPD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const NPD_SECRET_NEXT: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const MONDAY_SIGNING_SECRET: &str = "test-monday-signing-secret";
pub const MONDAY_PATH_TOKEN: &str = "path-token-0123456789abcdef";
pub const CONTACTS_BOARD: u64 = 4_100_000_001;
pub const ORGANIZATIONS_BOARD: u64 = 4_100_000_002;
pub const PUBLIC_URL: &str = "https://gateway.example.com";

/// Which store a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL named by `GATEWAY_TEST_POSTGRES_URL`.
    ///
    /// Without the variable the PostgreSQL tests are compiled as ignored (`postgres_test!`), so
    /// this panics only when one is run anyway (`cargo test -- --ignored`): a test that could not
    /// run fails, it never passes.
    pub fn postgres() -> Backend {
        match std::env::var("GATEWAY_TEST_POSTGRES_URL") {
            Ok(url) if !url.trim().is_empty() => Backend::Postgres(url),
            _ => panic!("GATEWAY_TEST_POSTGRES_URL is not set: this PostgreSQL test cannot run"),
        }
    }
}

/// A database the test owns: a temporary SQLite file or a PostgreSQL schema, removed on drop.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn create(backend: &Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path: PathBuf = dir.path().join("nested").join("gateway.db");
                TestDatabase {
                    url: format!("sqlite://{}", path.display()),
                    _dir: Some(dir),
                    pg: None,
                }
            }
            Backend::Postgres(base) => {
                let schema = format!("gw_test_{}", uuid::Uuid::new_v4().simple());
                let pool = sqlx::PgPool::connect(base)
                    .await
                    .expect("GATEWAY_TEST_POSTGRES_URL is set but PostgreSQL cannot be reached");
                sqlx::query(&format!("create schema {schema}"))
                    .execute(&pool)
                    .await
                    .expect("create schema");
                pool.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                TestDatabase {
                    url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                    _dir: None,
                    pg: Some((base.clone(), schema)),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((base, schema)) = self.pg.take() {
            // Drop runs inside the test's runtime: clean up on a thread with a runtime of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                            let _ = sqlx::query(&format!("drop schema if exists {schema} cascade"))
                                .execute(&pool)
                                .await;
                            pool.close().await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// Settings as the tests use them: random port, both sources' secrets, both boards.
pub fn test_settings(database_url: &str) -> Settings {
    let mut s = Settings::default();
    s.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    s.database.url = SecretString::from(database_url.to_owned());
    s.database.max_connections = 4;
    s.npd.webhook_secret = Some(SecretString::from(NPD_SECRET.to_owned()));
    s.monday.signing_secret = Some(SecretString::from(MONDAY_SIGNING_SECRET.to_owned()));
    s.monday.webhook_token = Some(SecretString::from(MONDAY_PATH_TOKEN.to_owned()));
    s.monday.contacts_board_id = Some(BoardId(CONTACTS_BOARD));
    s.monday.organizations_board_id = Some(BoardId(ORGANIZATIONS_BOARD));
    s.http.public_url = Some(PUBLIC_URL.to_owned());
    s.log.filter = std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into());
    s
}

/// A running gateway.
pub struct TestApp {
    pub addr: SocketAddr,
    pub store: Store,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    _task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _db: TestDatabase,
}

impl TestApp {
    pub async fn spawn(backend: &Backend) -> TestApp {
        TestApp::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: &Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let db = TestDatabase::create(backend).await;
        let url = db.url.clone();
        TestApp::spawn_on(db, &url, tweak).await
    }

    /// A gateway on `db` reached through `url` (the database's own URL, or a fault proxy's).
    pub async fn spawn_on(
        db: TestDatabase,
        url: &str,
        tweak: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut settings = test_settings(url);
        tweak(&mut settings);
        if std::env::var("TEST_LOG").is_ok() {
            npd_monday_gateway::startup::init_tracing(&settings.log);
        }
        let app = Application::build(settings).await.expect("gateway starts");
        let addr = app.local_addr().expect("local addr");
        let store = app.store().clone();
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        TestApp {
            addr,
            store,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            shutdown,
            _task: task,
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Posts an NPD event signed now with the test secret.
    pub async fn post_npd_signed(&self, webhook_id: &str, body: &str) -> reqwest::Response {
        let ts = now();
        let signature = sign_npd(NPD_SECRET, webhook_id, ts, body.as_bytes());
        self.post_npd(webhook_id, &ts.to_string(), &signature, body)
            .await
    }

    pub async fn post_npd(
        &self,
        webhook_id: &str,
        ts: &str,
        signature: &str,
        body: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/npd/events"))
            .header("content-type", "application/json")
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", ts)
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
            .await
            .expect("request")
    }

    /// Posts a Monday delivery to `/webhooks/monday` with a valid JWT.
    pub async fn post_monday_signed(&self, body: &str) -> reqwest::Response {
        self.post_monday(
            "/webhooks/monday",
            Some(&monday_jwt(now() + 60, &monday_audience())),
            body,
        )
        .await
    }

    pub async fn post_monday(
        &self,
        path: &str,
        authorization: Option<&str>,
        body: &str,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(auth) = authorization {
            req = req.header("authorization", auth);
        }
        req.send().await.expect("request")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// How long `eventually` waits between two looks at state it can only poll.
const POLL: Duration = Duration::from_millis(10);

/// Waits until `check` gives `Ok`, looking again every few milliseconds, and returns its value.
/// Panics after `within` with the last `Err`, which says what was still missing.
///
/// Only for state that has no event to wait on: the ledger, written by the gateway (or by another
/// process), and the clock.
pub async fn eventually<T>(
    within: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(why) if Instant::now() >= deadline => panic!("not within {within:?}: {why}"),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// `eventually` for a yes/no condition; `what` names it in the panic.
pub async fn wait_until(within: Duration, what: &str, mut condition: impl AsyncFnMut() -> bool) {
    eventually(within, async || {
        if condition().await {
            Ok(())
        } else {
            Err(what.to_owned())
        }
    })
    .await
}

/// One look at everything that can still make work, read so that each stage's count and the
/// counter of what ever entered it come from the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Activity {
    /// Ever entered, per stage: NPD events, Monday webhooks, inbox rows, jobs.
    entered: [i64; 4],
    /// Still in the stage: undelivered NPD events and Monday webhooks, unprocessed inbox rows,
    /// pending or leased jobs.
    waiting: [i64; 4],
}

async fn activity(store: &Store, monday: &MondaySim, npd: &NpdSim) -> Activity {
    let events = npd.event_deliveries();
    let webhooks = monday.webhook_deliveries();
    // One statement for the inbox and one for the jobs: each gives a stage's total and what is
    // still in it at the same instant.
    let stats = store.stats().await.expect("ledger stats");
    let inbox = stats.inbox.iter().map(|(_, _, n)| n).sum();
    let unprocessed = stats
        .inbox
        .iter()
        .filter(|(_, outcome, _)| outcome == "unprocessed")
        .map(|(_, _, n)| n)
        .sum();
    let jobs = stats.jobs.iter().map(|(_, _, _, n)| n).sum();
    let open = stats
        .jobs
        .iter()
        .filter(|(_, _, state, _)| state == "pending" || state == "leased")
        .map(|(_, _, _, n)| n)
        .sum();
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    Activity {
        entered: [count(events.queued), count(webhooks.queued), inbox, jobs],
        waiting: [
            count(events.pending),
            count(webhooks.pending),
            unprocessed,
            open,
        ],
    }
}

/// Waits until the gateway (one process or several, sharing `store`) and both simulators have
/// nothing left to do: every NPD event and Monday webhook delivered (or given up on), every
/// inbox row processed, every job done or dead.
///
/// Work moves NPD event -> inbox row -> job -> Monday webhook or NPD event -> ..., and each step
/// adds to the next stage before it leaves the last (the gateway commits an inbox row before it
/// answers, a simulator queues its delivery before it answers the call, and a job is finished
/// only after its call). So when a look finds every stage empty and a second look finds that
/// nothing entered any stage meanwhile, nothing was in flight at the end of the first look, and
/// nothing can start again: no quiet period to guess.
pub async fn settle(store: &Store, monday: &MondaySim, npd: &NpdSim, within: Duration) {
    let mut last: Option<Activity> = None;
    eventually(within, async || {
        let now = activity(store, monday, npd).await;
        let idle = last.is_some_and(|l| l.waiting == [0; 4] && l.entered == now.entered);
        last = Some(now);
        if idle {
            Ok(())
        } else {
            Err(format!(
                "not settled: waiting (NPD events, Monday webhooks, inbox rows, jobs) = {:?}",
                now.waiting
            ))
        }
    })
    .await
}

/// `settle` for a `World`: its gateway and its two simulators.
pub async fn settle_world(world: &World, within: Duration) {
    settle(&world.store, &world.monday, &world.npd, within).await
}

pub fn sign_npd(secret: &str, webhook_id: &str, ts: i64, body: &[u8]) -> String {
    let secret = WebhookSecret::parse(secret).expect("test secret");
    sign(&secret, webhook_id, ts, body)
}

/// The values of `column` Monday was written, per item id, in the order the writes executed:
/// single `change_multiple_column_values` calls and every such alias of a batch.
pub fn column_writes(monday: &MondaySim, column: &str) -> HashMap<String, Vec<String>> {
    let mut written: HashMap<String, Vec<String>> = HashMap::new();
    for call in monday.calls().iter().filter(|c| c.status == 200) {
        let batched = call.fields.len() > 1 || call.variables.get("i0").is_some();
        for (i, field) in call.fields.iter().enumerate() {
            let refused = if batched {
                call.response["data"]
                    .get(format!("m{i}"))
                    .is_none_or(Value::is_null)
            } else {
                call.response.get("errors").is_some()
            };
            if field != "change_multiple_column_values" || refused {
                continue;
            }
            let (item, columns) = if batched {
                (format!("i{i}"), format!("c{i}"))
            } else {
                ("item_id".to_owned(), "column_values".to_owned())
            };
            let item = call.variables[&item]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| call.variables[&item].to_string());
            let raw = call.variables[&columns].as_str().unwrap_or("{}");
            let columns: Value = serde_json::from_str(raw).expect("column values are JSON");
            if let Some(value) = columns[column].as_str() {
                written.entry(item).or_default().push(value.to_owned());
            }
        }
    }
    written
}

pub fn monday_audience() -> String {
    format!("{PUBLIC_URL}/webhooks/monday")
}

/// A Monday-shaped JWT signed with the test signing secret.
pub fn monday_jwt(exp: i64, aud: &str) -> String {
    sign_hs256(
        MONDAY_SIGNING_SECRET.as_bytes(),
        &json!({
            "accountId": 1825529,
            "userId": 4012689,
            "aud": aud,
            "exp": exp,
            "iat": exp - 300,
            "shortLivedToken": "SHORT_LIVED_TOKEN_SECRET_VALUE",
        }),
    )
}

/// A fixture file's text.
pub fn fixture(path: &str) -> String {
    let full = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/");
    std::fs::read_to_string(format!("{full}{path}"))
        .unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// Problem+json body of a response, asserting its content type and status field.
pub async fn problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: serde_json::Value = response.json().await.expect("problem json");
    assert_eq!(body["status"], status);
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string());
    body
}

/// Declares a test that needs PostgreSQL. Unless `GATEWAY_TEST_POSTGRES_URL` was set when the
/// tests were built (`build.rs` turns it into `cfg(gateway_test_postgres)` and cargo rebuilds when
/// it changes), the test is `#[ignore]`d with the reason, so `cargo test` without PostgreSQL
/// reports it as ignored in the summary rather than as passed.
#[macro_export]
macro_rules! postgres_test {
    ($(#[$meta:meta])* async fn $name:ident() $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(
            not(gateway_test_postgres),
            ignore = "set GATEWAY_TEST_POSTGRES_URL to run the PostgreSQL tests"
        )]
        $(#[$meta])*
        async fn $name() $body
    };
}

/// Declares each listed `async fn name(backend: Backend)` as a test on SQLite and on PostgreSQL
/// (the latter ignored unless `GATEWAY_TEST_POSTGRES_URL` is set; CI sets it).
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                $crate::postgres_test! {
                    async fn $name() {
                        super::$name($crate::helpers::Backend::postgres()).await;
                    }
                }
            )*
        }
    };
}

/// The gateway binary, started as an operator would (environment only), with its listen address
/// read from its JSON log, and every log line kept for inspection.
pub struct GatewayProcess {
    pub child: Child,
    pub addr: String,
    pub logs: Arc<Mutex<Vec<String>>>,
    /// How many log lines were read: wakes `wait_for_log`.
    lines: watch::Receiver<usize>,
    /// Reads the log until the process's stderr closes.
    reader: tokio::task::JoinHandle<()>,
}

impl GatewayProcess {
    /// Starts `serve` on a random port with the test secrets; `extra` adds or overrides variables.
    pub async fn start(database_url: &str, extra: &[(&str, &str)]) -> GatewayProcess {
        let mut env: Vec<(String, String)> = vec![
            ("GATEWAY_LISTEN".into(), "127.0.0.1:0".into()),
            ("GATEWAY_DATABASE_URL".into(), database_url.into()),
            ("GATEWAY_LOG".into(), "info".into()),
            ("NPD_WEBHOOK_SECRET".into(), NPD_SECRET.into()),
            ("MONDAY_SIGNING_SECRET".into(), MONDAY_SIGNING_SECRET.into()),
            (
                "MONDAY_CONTACTS_BOARD_ID".into(),
                CONTACTS_BOARD.to_string(),
            ),
            (
                "MONDAY_ORGANIZATIONS_BOARD_ID".into(),
                ORGANIZATIONS_BOARD.to_string(),
            ),
        ];
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        GatewayProcess::spawn(&env, None).await
    }

    /// Starts `serve` with exactly this environment (plus PATH and JSON logs) and config file.
    pub async fn spawn(
        env: &[(String, String)],
        config: Option<&std::path::Path>,
    ) -> GatewayProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_npd-monday-gateway"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GATEWAY_LOG_FORMAT", "json")
            .env("GATEWAY_LOG", "info");
        if let Some(path) = config {
            command.env("GATEWAY_CONFIG", path);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the gateway binary");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let (read, lines) = watch::channel(0);
        let sink = Arc::clone(&logs);
        // Keep draining its log so it never blocks on a full pipe.
        let reader = tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(listen) = v.get("listen").and_then(|l| l.as_str())
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(listen.to_owned());
                }
                let count = {
                    let mut logs = sink.lock().expect("log lock");
                    logs.push(line);
                    logs.len()
                };
                read.send_replace(count);
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(30), addr_rx)
            .await
            .expect("the gateway did not start listening within 30 s")
            .unwrap_or_else(|_| {
                panic!(
                    "the gateway exited before listening: {:?}",
                    logs.lock().map(|l| l.clone())
                )
            });
        GatewayProcess {
            child,
            addr,
            logs,
            lines,
            reader,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends a signal (`STOP`, `CONT`, `TERM`, ...) with kill(1).
    pub async fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .await
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("log lock").clone()
    }

    /// Waits until a log line containing `text` was read (it may already have been), and returns
    /// it; None after `within`.
    pub async fn wait_for_log(&self, within: Duration, text: &str) -> Option<String> {
        // Subscribed before looking, so a line read in between still wakes the loop.
        let mut lines = self.lines.clone();
        lines.mark_unchanged();
        let find = || self.logs().into_iter().find(|l| l.contains(text));
        let found = async {
            loop {
                if let Some(line) = find() {
                    return Some(line);
                }
                if lines.changed().await.is_err() {
                    // The log has closed: one last look covers the lines read before it did.
                    return find();
                }
            }
        };
        tokio::time::timeout(within, found).await.ok().flatten()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn kill_9(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }

    /// Sends SIGTERM and waits up to `within` for the exit status.
    pub async fn terminate(mut self, within: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().expect("running").to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM failed");
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the gateway did not exit within {within:?} of SIGTERM"))
            .expect("wait");
        // Its stderr closes with it: the reader ends once it has taken the last lines.
        tokio::time::timeout(Duration::from_secs(5), &mut self.reader)
            .await
            .expect("the log closes when the gateway exits")
            .expect("log reader");
        let logs = self.logs();
        (status, logs)
    }
}

/// Creates the sample contact in the world's NPD and waits until it is on Monday; returns its id
/// and its Monday item.
pub async fn created_contact(
    world: &npd_monday_gateway::demo::World,
) -> (
    npd_monday_gateway::domain::entity::NpdId,
    npd_monday_gateway::domain::entity::MondayItemId,
) {
    use npd_monday_gateway::domain::entity::{EntityKind, NpdId};
    let id = NpdId(uuid::Uuid::new_v4());
    world
        .npd
        .create_contact(npd_monday_gateway::demo::sample_contact(id))
        .await;
    settle_world(world, Duration::from_secs(60)).await;
    let item = world
        .store
        .entity_by_npd(EntityKind::Contact, id)
        .await
        .expect("query")
        .and_then(|e| e.monday_item_id)
        .expect("linked");
    (id, item)
}

/// Both sides change a contact's email while processing waits, so they meet in one merge:
/// NPD's record to `npd`, the Monday item's column to `monday`; returns once both were delivered
/// and processed.
pub async fn edit_email_on_both_sides(
    world: &World,
    (id, item): (
        npd_monday_gateway::domain::entity::NpdId,
        npd_monday_gateway::domain::entity::MondayItemId,
    ),
    npd: &str,
    monday: &str,
) {
    world.wake.pause_processing().await;
    let npd = npd.to_owned();
    world.npd.update_contact(id, |c| c.email = Some(npd)).await;
    let value = json!({"email": monday, "text": monday});
    world.monday.user_change_column(item, "email", value).await;
    world.wake.resume_processing();
    settle_world(world, Duration::from_secs(60)).await;
}

/// Creates in the world's NPD a contact whose email Monday refuses (`ColumnValueException`): its
/// create goes to the dead letters. Returns its id.
pub async fn contact_monday_refuses(
    world: &npd_monday_gateway::demo::World,
) -> npd_monday_gateway::domain::entity::NpdId {
    let id = npd_monday_gateway::domain::entity::NpdId(uuid::Uuid::new_v4());
    let mut contact = npd_monday_gateway::demo::sample_contact(id);
    contact.email = Some("not-an-email".into());
    world.npd.create_contact(contact).await;
    id
}

/// `GET path` with the admin token, as JSON.
pub async fn get_json(world: &World, path: &str) -> serde_json::Value {
    let response = world.admin_get(path).await.expect("get");
    response.json().await.expect("json")
}

/// `POST path` with the admin token and a JSON body; answers the status code.
pub async fn post_json(world: &World, path: &str, body: &serde_json::Value) -> u16 {
    world
        .client
        .post(world.url(path))
        .bearer_auth(&world.admin_token)
        .json(body)
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

/// Runs `check-config` with exactly this environment; its exit code and stderr + stdout.
pub async fn check_config(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_npd-monday-gateway"));
    command
        .arg("check-config")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().await.expect("run check-config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

/// A world (the gateway and both simulators) on a fresh database of `backend`, with `tweak`
/// applied to its settings.
pub async fn world_with(
    backend: &Backend,
    tweak: impl FnOnce(&mut Settings),
) -> (World, TestDatabase) {
    let db = TestDatabase::create(backend).await;
    let world = World::start(&db.url, tweak).await.expect("world starts");
    (world, db)
}

/// How many of `field` Monday executed, over every call (a refused alias is not executed).
pub fn executed_count(world: &World, field: &str) -> usize {
    world
        .monday
        .calls()
        .iter()
        .filter(|c: &&MondayCall| c.status == 200 && !c.replayed)
        .map(|c| {
            let failed: usize = c
                .response
                .get("errors")
                .and_then(|e| e.as_array())
                .map_or(0, Vec::len);
            c.count(field).saturating_sub(failed)
        })
        .sum()
}

/// A fresh, migrated store for a test of the ledger itself, and its database.
pub async fn migrated_store(backend: &Backend) -> (Store, TestDatabase) {
    let db = TestDatabase::create(backend).await;
    let settings = npd_monday_gateway::config::DatabaseSettings {
        url: SecretString::from(db.url.clone()),
        ..Default::default()
    };
    let store = Store::connect(&settings).await.expect("connect");
    store.migrate().await.expect("migrate");
    (store, db)
}

/// Every acknowledged delivery id is in the ledger's inbox.
pub async fn assert_all_stored(store: &Store, acknowledged: &std::collections::HashSet<String>) {
    let stored: std::collections::HashSet<String> = store
        .inbox_events(npd_monday_gateway::domain::entity::Side::Npd, 1_000_000)
        .await
        .expect("inbox")
        .into_iter()
        .map(|r| r.delivery_id)
        .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost: {lost:?}",
        lost.len()
    );
}
