//! A whole world on loopback: the gateway with the Monday and NPD simulators wired to it, and the
//! scripted round trip that `npd-monday-gateway demo` prints.
//!
//! Owns: `World` (used by `demo` and by the end-to-end tests, so both exercise the same wiring)
//! and `run_demo`.
//! May import: everything in the crate (like `startup`, it chooses implementations).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::domain::entity::{BoardId, ContactSnapshot, MondayItemId, NpdId, Side};
use crate::domain::state::InboxOutcome;
use crate::ledger::Store;
use crate::sim::monday::{MondaySim, MondaySimConfig};
use crate::sim::npd::{NpdSim, NpdSimConfig};
use crate::startup::Application;
use crate::sync::push::PushOutcome;
use crate::worker::Wake;

pub const CONTACTS_BOARD: BoardId = BoardId(4_100_000_001);
pub const ORGANIZATIONS_BOARD: BoardId = BoardId(4_100_000_002);
/// The Monday user id the simulator puts on webhooks of the gateway's own writes.
pub const INTEGRATION_USER_ID: i64 = 71_000_001;

/// The gateway, running, with both simulators pointed at it and it at them.
pub struct World {
    pub monday: MondaySim,
    pub npd: NpdSim,
    pub store: Store,
    pub addr: SocketAddr,
    pub admin_token: String,
    pub client: reqwest::Client,
    /// Wakes and pauses the gateway's workers.
    pub wake: Wake,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Both simulators, with the secrets and tokens a gateway needs to talk to them.
pub struct Sims {
    pub monday: MondaySim,
    pub npd: NpdSim,
    monday_token: String,
    signing_secret: String,
    npd_token: String,
    npd_secret: String,
    admin_token: String,
}

impl Sims {
    /// Starts both simulators with fresh random credentials.
    pub async fn start() -> anyhow::Result<Sims> {
        Sims::start_with(|_| {}).await
    }

    /// Starts both simulators; `monday` may change the Monday simulator's configuration (its
    /// per-minute budget, say).
    pub async fn start_with(monday: impl FnOnce(&mut MondaySimConfig)) -> anyhow::Result<Sims> {
        let monday_token = format!("monday-token-{}", uuid::Uuid::new_v4().simple());
        let signing_secret = format!("monday-signing-{}", uuid::Uuid::new_v4().simple());
        let npd_token = format!("npd-token-{}", uuid::Uuid::new_v4().simple());
        let npd_secret = format!("whsec_{}", base64_of(uuid::Uuid::new_v4().as_bytes()));
        let admin_token = crate::auth::admin_token::generate();
        let mut monday_config =
            MondaySimConfig::contacts_and_organizations(CONTACTS_BOARD, ORGANIZATIONS_BOARD);
        monday_config.api_token = monday_token.clone();
        monday_config.signing_secret = signing_secret.clone();
        monday_config.integration_user_id = INTEGRATION_USER_ID;
        monday(&mut monday_config);
        let monday = MondaySim::start(monday_config)
            .await
            .context("start the Monday simulator")?;
        let npd = NpdSim::start(NpdSimConfig {
            api_token: Some(npd_token.clone()),
            webhook_secret: npd_secret.clone(),
        })
        .await
        .context("start the NPD simulator")?;
        Ok(Sims {
            monday,
            npd,
            monday_token,
            signing_secret,
            npd_token,
            npd_secret,
            admin_token,
        })
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The NPD webhook secret the NPD simulator signs with (tests sign their own events with it).
    pub fn npd_secret(&self) -> &str {
        &self.npd_secret
    }

    /// Gateway settings pointing at both simulators, tuned for fast tests: short retries, polls,
    /// timeouts and leases.
    pub fn settings(&self, database_url: &str) -> Settings {
        let mut s = Settings::default();
        s.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        s.http.shutdown_grace_ms = 3_000;
        s.database.url = SecretString::from(database_url.to_owned());
        s.database.max_connections = 8;
        s.admin.token = Some(SecretString::from(self.admin_token.clone()));
        s.npd.webhook_secret = Some(SecretString::from(self.npd_secret.clone()));
        s.npd.api_url = Some(self.npd.url());
        s.npd.api_token = Some(SecretString::from(self.npd_token.clone()));
        s.monday.api_url = self.monday.api_url();
        s.monday.api_token = Some(SecretString::from(self.monday_token.clone()));
        s.monday.signing_secret = Some(SecretString::from(self.signing_secret.clone()));
        s.monday.contacts_board_id = Some(CONTACTS_BOARD);
        s.monday.organizations_board_id = Some(ORGANIZATIONS_BOARD);
        s.sync.retry_base_ms = 50;
        s.sync.retry_cap_ms = 1_000;
        s.sync.poll_interval_ms = 20;
        s.sync.monday_timeout_ms = 3_000;
        s.sync.npd_timeout_ms = 3_000;
        s.sync.lease_ms = 10_000;
        s.log.filter = std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into());
        s
    }

    /// The same settings as environment variables and a TOML file, for a gateway process.
    pub fn process_config(
        &self,
        database_url: &str,
        listen: &str,
        lease_ms: u64,
        timeout_ms: u64,
    ) -> (Vec<(String, String)>, String) {
        let env = vec![
            ("GATEWAY_LISTEN".into(), listen.to_owned()),
            ("GATEWAY_DATABASE_URL".into(), database_url.to_owned()),
            ("GATEWAY_ADMIN_TOKEN".into(), self.admin_token.clone()),
            ("NPD_WEBHOOK_SECRET".into(), self.npd_secret.clone()),
            ("NPD_API_URL".into(), self.npd.url()),
            ("NPD_API_TOKEN".into(), self.npd_token.clone()),
            ("MONDAY_API_URL".into(), self.monday.api_url()),
            ("MONDAY_API_TOKEN".into(), self.monday_token.clone()),
            ("MONDAY_SIGNING_SECRET".into(), self.signing_secret.clone()),
            (
                "MONDAY_CONTACTS_BOARD_ID".into(),
                CONTACTS_BOARD.to_string(),
            ),
            (
                "MONDAY_ORGANIZATIONS_BOARD_ID".into(),
                ORGANIZATIONS_BOARD.to_string(),
            ),
        ];
        let toml = format!(
            "[gateway]\nshutdown_grace_ms = 3000\n\n[sync]\nretry_base_ms = 50\nretry_cap_ms = 1000\n\
             poll_interval_ms = 20\nmonday_timeout_ms = {timeout_ms}\nnpd_timeout_ms = {timeout_ms}\nlease_ms = {lease_ms}\n"
        );
        (env, toml)
    }

    /// Points both simulators' deliveries at gateways.
    pub fn deliver_to(&self, monday_webhooks: &str, npd_events: &str) {
        self.monday
            .set_webhook_target(Some(format!("{monday_webhooks}/webhooks/monday")), None);
        self.npd
            .set_event_target(Some(format!("{npd_events}/api/v1/npd/events")));
    }
}

impl World {
    /// Starts both simulators and a gateway on `database_url`, with settings fit for fast tests
    /// (short retries and polls); `tweak` may change any of them.
    pub async fn start(
        database_url: &str,
        tweak: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<World> {
        World::with_sims(Sims::start().await?, database_url, tweak).await
    }

    /// Starts a gateway on `database_url` wired to `sims`.
    pub async fn with_sims(
        sims: Sims,
        database_url: &str,
        tweak: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<World> {
        let mut s = sims.settings(database_url);
        tweak(&mut s);
        let app = Application::build(s).await.context("start the gateway")?;
        let addr = app.local_addr()?;
        let store = app.store().clone();
        let shutdown = app.shutdown_token();
        let wake = app.wake();
        let task = tokio::spawn(app.run_until_stopped());
        sims.deliver_to(&format!("http://{addr}"), &format!("http://{addr}"));
        let admin_token = sims.admin_token.clone();
        Ok(World {
            monday: sims.monday,
            npd: sims.npd,
            store,
            addr,
            admin_token,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(40))
                .build()?,
            wake,
            shutdown,
            task: Some(task),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until every accepted event is processed, no job is open, and nothing new arrived for
    /// a few polls (the simulators deliver their webhooks and events asynchronously).
    pub async fn settle(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut quiet = 0;
        let mut last = (-1, -1, -1);
        while Instant::now() < deadline {
            let now = (
                self.store.inbox_count().await?,
                self.store.unprocessed_count().await?,
                self.store.open_job_count().await?,
            );
            if now.1 == 0 && now.2 == 0 && now == last {
                quiet += 1;
                if quiet >= 4 {
                    return Ok(());
                }
            } else {
                quiet = 0;
            }
            last = now;
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        bail!(
            "not settled after {timeout:?}: {} unprocessed events, {} open jobs",
            last.1,
            last.2
        )
    }

    /// `POST` an admin route with the bootstrap token.
    pub async fn admin_post(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .client
            .post(self.url(path))
            .bearer_auth(&self.admin_token)
            .send()
            .await?)
    }

    /// `GET` an admin route with the bootstrap token.
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .client
            .get(self.url(path))
            .bearer_auth(&self.admin_token)
            .send()
            .await?)
    }

    /// Stops the gateway as SIGTERM would and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A contact as NPD's users would create it.
pub fn sample_contact(id: NpdId) -> ContactSnapshot {
    ContactSnapshot {
        id,
        version: 1,
        sync_enabled: true,
        monday_id: None,
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        email: Some("ada@example.com".into()),
        phone: Some("+442079460990".into()),
        role_title: Some("CTO".into()),
        notes: Some("Met at the expo".into()),
        organization_id: None,
        updated_at: None,
        custom: Default::default(),
    }
}

/// Runs the scripted round trip on a fresh world and prints what happened. Fails (non-zero exit)
/// if any step does not happen as it should.
pub async fn run_demo() -> anyhow::Result<()> {
    let path = std::env::temp_dir().join(format!(
        "npd-monday-gateway-demo-{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let url = format!("sqlite://{}", path.display());
    let result = demo_steps(&url).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    result
}

async fn demo_steps(database_url: &str) -> anyhow::Result<()> {
    let world = World::start(database_url, |_| {}).await?;
    let settle = Duration::from_secs(20);
    println!(
        "npd-monday-gateway demo: the gateway, a Monday simulator and an NPD simulator on loopback"
    );
    println!("  gateway  http://{}", world.addr);
    println!("  Monday   {}", world.monday.api_url());
    println!("  NPD      {}", world.npd.url());
    println!();

    let id = NpdId(uuid::Uuid::new_v4());
    let item_id = npd_creates_a_contact(&world, id, settle).await?;
    monday_user_edits_a_column(&world, id, item_id, settle).await?;
    echoes_do_not_bounce(&world).await?;
    admin_forces_a_push(&world, id, settle).await?;
    print_history(&world, id).await?;
    println!();
    println!("demo finished: every step happened as expected");
    world.stop().await;
    Ok(())
}

/// 1. NPD creates a contact: an item appears on the board and NPD gets its id written back.
async fn npd_creates_a_contact(
    world: &World,
    id: NpdId,
    settle: Duration,
) -> anyhow::Result<MondayItemId> {
    let event = world.npd.create_contact(sample_contact(id)).await;
    println!(
        "1. NPD created contact Ada Lovelace ({id}); its contact.created event got HTTP {}",
        show(event.status)
    );
    world.settle(settle).await?;
    let item = world
        .store
        .entity_by_npd(crate::domain::entity::EntityKind::Contact, id)
        .await?
        .and_then(|e| e.monday_item_id)
        .context("no Monday item was linked to the new contact")?;
    let item_id = item;
    let monday_item = world
        .monday
        .item(item_id)
        .context("the Monday item does not exist")?;
    println!(
        "   -> Monday item {item} \"{}\" created on board {CONTACTS_BOARD} with {} columns",
        monday_item.name,
        monday_item.column_values.len()
    );
    let npd_contact = world.npd.contact(id).context("NPD lost the contact")?;
    println!(
        "   -> NPD now holds monday_id {} (written back with PATCH)",
        npd_contact
            .monday_id
            .map(|m| m.to_string())
            .unwrap_or_default()
    );
    if npd_contact.monday_id != Some(item_id) {
        bail!("NPD did not receive the Monday item id");
    }
    Ok(item_id)
}

/// 2. A Monday user edits a mapped column: NPD receives the change as a PATCH.
async fn monday_user_edits_a_column(
    world: &World,
    id: NpdId,
    item_id: MondayItemId,
    settle: Duration,
) -> anyhow::Result<()> {
    world.npd.clear_calls();
    world.monday.clear_calls();
    world
        .monday
        .user_change_column(item_id, "role_title", json!("Chief Technology Officer"))
        .await;
    println!("2. A Monday user changed the Role column to \"Chief Technology Officer\"");
    world.settle(settle).await?;
    let patches: Vec<_> = world
        .npd
        .calls()
        .into_iter()
        .filter(|c| c.method == "PATCH")
        .collect();
    let Some(patch) = patches.first() else {
        bail!("NPD received no PATCH for the Monday edit");
    };
    println!(
        "   -> NPD received PATCH {} {} (X-Sync-Origin: {})",
        patch.path,
        patch
            .body
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default(),
        patch
            .headers
            .get("x-sync-origin")
            .cloned()
            .unwrap_or_default()
    );
    let role = world.npd.contact(id).and_then(|c| c.role_title);
    if role.as_deref() != Some("Chief Technology Officer") {
        bail!("NPD's role_title is {role:?}");
    }
    Ok(())
}

/// 3. The echoes: NPD's event after the PATCH, and Monday's webhooks of the gateway's writes.
async fn echoes_do_not_bounce(world: &World) -> anyhow::Result<()> {
    let monday_writes = world
        .monday
        .calls()
        .iter()
        .filter(|c| c.operation != "items_page_by_column_values")
        .count();
    let echoes = world
        .store
        .inbox_events(Side::Npd, 1_000)
        .await?
        .into_iter()
        .filter(|r| r.outcome == Some(InboxOutcome::Echo))
        .count();
    println!(
        "3. NPD sent contact.updated after the PATCH: recorded as an echo ({echoes} NPD echoes so far)"
    );
    println!("   -> Monday received {monday_writes} calls since the edit: nothing bounced back");
    if monday_writes != 0 {
        bail!("the echo bounced back to Monday");
    }
    Ok(())
}

/// 4. An admin forces a push and waits for its outcome.
async fn admin_forces_a_push(world: &World, id: NpdId, settle: Duration) -> anyhow::Result<()> {
    let response = world
        .admin_post(&format!("/api/v1/contacts/{id}/sync-to-monday?wait=true"))
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    println!("4. Admin POST /api/v1/contacts/{id}/sync-to-monday?wait=true -> HTTP {status}");
    println!("   {body}");
    if body["outcome"] != json!(PushOutcome::Synced.as_str()) {
        bail!("the manual push did not sync");
    }
    world.settle(settle).await
}

/// The contact's sync history as the admin API shows it.
async fn print_history(world: &World, id: NpdId) -> anyhow::Result<()> {
    let status: Value = world
        .admin_get(&format!("/api/v1/contacts/{id}/sync"))
        .await?
        .json()
        .await?;
    println!();
    println!("History of the contact (newest first), from GET /api/v1/contacts/{id}/sync:");
    for h in status["history"].as_array().into_iter().flatten().take(12) {
        println!(
            "   {:<9} {}",
            h["kind"].as_str().unwrap_or_default(),
            h["reason"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

fn show(status: Option<u16>) -> String {
    status.map_or_else(|| "none".to_owned(), |s| s.to_string())
}
