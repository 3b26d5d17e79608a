//! Typed settings, loaded as defaults < optional TOML file < environment, then validated.
//!
//! Owns: `Settings` and its sections. Each section derives `Deserialize` with its defaults
//! (`Default`) and its TOML key names, so a key is written once: its field. The TOML layout
//! (`file`: `[gateway]` holds four sections; `fixtures/gateway.example.toml` documents every key),
//! the environment names of CONTRACT.md (`env`, the one place the environment is read) and
//! validation (`validate`, `Settings::problems`) are submodules.
//! Secrets are `SecretString`: `Debug` prints `[REDACTED]` and `expose_secret()` is called only where
//! a header, a verifier or a connection is built.
//! May import: std, serde, serde_path_to_error, toml, humantime, secrecy, url, crate::domain,
//! crate::auth.

mod env;
mod file;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::auth::monday_jwt::{self, MondayJwtVerifier};
use crate::auth::standard_webhooks::{self, Verifier, WebhookSecret};
use crate::domain::entity::{BoardId, EntityKind};
use crate::domain::mapping::{EntityMapping, PhoneCountry};
use crate::domain::reconcile::ConflictPolicy;
use crate::domain::scan::InitialWinner;

/// The largest request body the gateway reads (CONTRACT.md: 256 KiB, then 413).
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 256 * 1024;

/// Everything the gateway is configured with. In the TOML file, `http`, `database`, `admin` and
/// `log` share the `[gateway]` table; every other section has a table of its own name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "file::SettingsFile")]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    pub npd: NpdSettings,
    pub monday: MondaySettings,
    pub mapping: MappingSettings,
    pub conflicts: ConflictSettings,
    pub sync: SyncSettings,
    pub retention: RetentionSettings,
    pub backfill: BackfillSettings,
    pub drift: DriftSettings,
    pub console: ConsoleSettings,
}

// The four `[gateway]` sections cannot refuse unknown keys themselves (each sees the others'
// keys); `file::GatewayTable` refuses what none of them takes.

/// `[gateway]`: the HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// `GATEWAY_LISTEN`: the listen address.
    pub listen: SocketAddr,
    /// `GATEWAY_PUBLIC_URL`: the external base URL, without a trailing slash. When set, a Monday JWT's
    /// `aud` must be `{public_url}/webhooks/monday`.
    pub public_url: Option<String>,
    /// Largest accepted request body; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// How long a client may take to send the request head before the connection is closed.
    pub header_read_timeout_ms: u64,
    /// How long one request may take in all before it is answered 408.
    pub request_timeout_ms: u64,
    /// How long a SIGTERM waits for in-flight requests and workers before exiting.
    pub shutdown_grace_ms: u64,
    /// Requests served at once; one more is answered 503 with `Retry-After` at once (load
    /// shedding), never queued. `/healthz`, `/readyz` and `/metrics` are not counted.
    pub max_concurrent_requests: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            shutdown_grace_ms: 10_000,
            max_concurrent_requests: 512,
        }
    }
}

/// `[gateway]`: the store (keys prefixed `database_` where the field name alone would be vague).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// `GATEWAY_DATABASE_URL`: `sqlite://…` or `postgres://…` (may hold a password, hence secret).
    #[serde(rename = "database_url")]
    pub url: SecretString,
    /// Connections in the pool.
    #[serde(rename = "database_max_connections")]
    pub max_connections: u32,
    /// Most inbox rows one group commit writes.
    pub ingest_batch_max: usize,
    /// Concurrent group-commit writers (SQLite always uses one: it has a single writer).
    pub ingest_writers: usize,
    /// How long an ingress request waits for the commit of its delivery before it is answered
    /// 503 with `Retry-After` (nothing acknowledged; the sender's retry is deduplicated). Also
    /// when the group-commit queue is full, the answer is 503 at once.
    pub ingest_timeout_ms: u64,
    /// How long a request waits for a pool connection before the store counts as unavailable (503).
    #[serde(rename = "database_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
    /// PostgreSQL only: a session left idle inside a transaction this long is ended by the
    /// server, releasing its locks (a replica frozen mid-transaction cannot stall the others).
    #[serde(rename = "database_idle_in_transaction_timeout_ms")]
    pub idle_in_transaction_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: SecretString::from("sqlite://data/gateway.db"),
            max_connections: 8,
            ingest_batch_max: 256,
            ingest_writers: 4,
            ingest_timeout_ms: 5_000,
            acquire_timeout_ms: 2_000,
            idle_in_transaction_timeout_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBackend {
    Sqlite,
    Postgres,
}

/// `[gateway]`: admin access.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AdminSettings {
    /// `GATEWAY_ADMIN_TOKEN`: a bootstrap admin token, besides tokens made with `admin-token create`.
    #[serde(rename = "admin_token")]
    pub token: Option<SecretString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "text" | "pretty" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("`{other}` must be `text` or `json`")),
        }
    }
}

impl TryFrom<String> for LogFormat {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// `[gateway]`: logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// `GATEWAY_LOG`: a tracing filter such as `info` or `npd_monday_gateway=debug,info`.
    #[serde(rename = "log")]
    pub filter: String,
    /// `GATEWAY_LOG_FORMAT`: `text` or `json`.
    #[serde(rename = "log_format")]
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// `[npd]`: NPD's events and REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NpdSettings {
    /// `NPD_WEBHOOK_SECRET`: one or more `whsec_…` secrets, space-separated during rotation.
    pub webhook_secret: Option<SecretString>,
    /// `NPD_API_URL`: NPD's REST API base for write-backs and look-ups.
    pub api_url: Option<String>,
    /// `NPD_API_TOKEN`: bearer token for NPD's REST API.
    pub api_token: Option<SecretString>,
    /// Allowed distance between `webhook-timestamp` and now, in seconds.
    pub timestamp_tolerance_secs: i64,
}

impl Default for NpdSettings {
    fn default() -> Self {
        NpdSettings {
            webhook_secret: None,
            api_url: None,
            api_token: None,
            timestamp_tolerance_secs: standard_webhooks::DEFAULT_TOLERANCE_SECS,
        }
    }
}

/// `[monday]`: Monday's API, webhooks, boards and the gateway's budget.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MondaySettings {
    /// `MONDAY_API_URL`: the GraphQL endpoint.
    pub api_url: String,
    /// `MONDAY_API_TOKEN`: without it Monday is "not configured".
    pub api_token: Option<SecretString>,
    /// `MONDAY_API_VERSION`: sent as `API-Version`.
    pub api_version: String,
    /// `MONDAY_SIGNING_SECRET`: webhooks must carry a valid HS256 JWT signed with it.
    pub signing_secret: Option<SecretString>,
    /// `MONDAY_WEBHOOK_TOKEN`: for unsigned board webhooks, delivered to `/webhooks/monday/{token}`.
    pub webhook_token: Option<SecretString>,
    /// `MONDAY_CONTACTS_BOARD_ID`.
    #[serde(deserialize_with = "file::board_id")]
    pub contacts_board_id: Option<BoardId>,
    /// `MONDAY_ORGANIZATIONS_BOARD_ID`.
    #[serde(deserialize_with = "file::board_id")]
    pub organizations_board_id: Option<BoardId>,
    /// Leeway on a JWT's `exp`, in seconds (at most 10).
    pub jwt_leeway_secs: i64,
    /// Requests per minute the gateway allows itself (Monday: 1,000 on most plans, 2,500 Pro,
    /// 5,000 Enterprise). Shares: live sync may use 80 %, drift repairs 60 %, backfill 40 %; the
    /// rest is for admin pushes.
    pub requests_per_minute: u64,
    /// Complexity points per minute the gateway allows itself (Monday: 5,000,000 for app tokens).
    pub complexity_per_minute: u64,
    /// Calls per UTC day the gateway never crosses (Monday: 1,000 on most plans, 10,000 Pro,
    /// 25,000 Enterprise); 0 means no daily cap. Shared by the priorities like the minute budget.
    pub calls_per_day: u64,
    /// Most mutations for different items sent in one GraphQL request (as aliases).
    pub batch_max: usize,
    /// How long a partial batch waits for the batches in flight to answer before it goes anyway
    /// (Nagle's rule: a trickle of work fills the next batch instead of costing a request per
    /// few jobs; an idle gateway never waits). 0 sends whatever is ready at once.
    pub batch_fill_wait_ms: u64,
    /// The Monday user id the API token acts as. Webhooks carrying it are the gateway's own
    /// writes coming back. Learned with `me { id }` at start when unset.
    pub integration_user_id: Option<i64>,
}

impl Default for MondaySettings {
    fn default() -> Self {
        MondaySettings {
            api_url: "https://api.monday.com/v2".into(),
            api_token: None,
            api_version: "2026-10".into(),
            signing_secret: None,
            webhook_token: None,
            contacts_board_id: None,
            organizations_board_id: None,
            jwt_leeway_secs: monday_jwt::DEFAULT_LEEWAY_SECS,
            requests_per_minute: 1_000,
            complexity_per_minute: 5_000_000,
            calls_per_day: 0,
            batch_max: 25,
            batch_fill_wait_ms: 1_000,
            integration_user_id: None,
        }
    }
}

/// `[mapping]`: how each entity kind maps onto its board. A kind's table, when present, replaces
/// that kind's default mapping as a whole.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MappingSettings {
    /// `default_phone_country = "US"` (ISO 3166 alpha-2): the country of NPD's national phone
    /// numbers, which are written to Monday in E.164 with it. Without it such a number is left
    /// out of the write (and shown in the entity's sync status).
    pub default_phone_country: Option<PhoneCountry>,
    /// `[mapping.contacts]`.
    pub contacts: EntityMapping,
    /// `[mapping.organizations]`.
    pub organizations: EntityMapping,
}

impl Default for MappingSettings {
    fn default() -> Self {
        MappingSettings {
            default_phone_country: None,
            contacts: EntityMapping::default_for(EntityKind::Contact),
            organizations: EntityMapping::default_for(EntityKind::Organization),
        }
    }
}

/// `[conflicts]`: the policy settling a field both sides changed.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConflictSettings {
    /// The policy of every field not named below.
    #[serde(deserialize_with = "file::policy")]
    pub default: ConflictPolicy,
    /// Per contact field.
    #[serde(deserialize_with = "file::policies")]
    pub contacts: BTreeMap<String, ConflictPolicy>,
    /// Per organization field.
    #[serde(deserialize_with = "file::policies")]
    pub organizations: BTreeMap<String, ConflictPolicy>,
}

impl Default for ConflictSettings {
    fn default() -> Self {
        ConflictSettings {
            default: ConflictPolicy::LatestWins,
            contacts: BTreeMap::new(),
            organizations: BTreeMap::new(),
        }
    }
}

/// `[sync]`: the retry schedule (`sync::retry::RetryPolicy` is built from it), workers, timeouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncSettings {
    /// Create an NPD contact for a Monday item created without an `npd_id` (else it is only reported).
    pub create_in_npd: bool,
    /// Backoff ceiling of the first retry; it doubles per attempt (full jitter below it).
    pub retry_base_ms: u64,
    /// Largest backoff ceiling.
    pub retry_cap_ms: u64,
    /// Attempts before a job goes to the dead letters.
    pub max_attempts: i64,
    /// How long a claimed job is leased to its worker before another may take it.
    pub lease_ms: u64,
    /// Jobs one process runs at once.
    pub dispatch_concurrency: usize,
    /// Processing tasks per process, each claiming its own lanes of the inbox (PostgreSQL; on
    /// SQLite, whose writes are serial, one task processes).
    pub processors: usize,
    /// How often idle workers look for new work (they are also woken by new events).
    pub poll_interval_ms: u64,
    /// Timeout of one call to Monday's API (Monday's own limit is 60 s).
    pub monday_timeout_ms: u64,
    /// Timeout of one call to NPD's API.
    pub npd_timeout_ms: u64,
    /// Admin requests allowed per token per minute (then 429).
    pub admin_requests_per_minute: u32,
    /// Failed admin authentications allowed per client address per minute; past it the address
    /// gets 429 with `Retry-After` (and no more audit rows) until the minute is over.
    pub admin_auth_failures_per_minute: u32,
    /// Whether this process runs the processor and dispatcher. `false` makes an ingress-only
    /// replica (other replicas on the same PostgreSQL database do the work).
    pub run_workers: bool,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            create_in_npd: false,
            retry_base_ms: 1_000,
            retry_cap_ms: 300_000,
            max_attempts: 10,
            lease_ms: 60_000,
            dispatch_concurrency: 4,
            processors: 4,
            poll_interval_ms: 250,
            monday_timeout_ms: 30_000,
            npd_timeout_ms: 15_000,
            admin_requests_per_minute: 120,
            admin_auth_failures_per_minute: 10,
            run_workers: true,
        }
    }
}

/// `[retention]`: how long what the ledger no longer needs is kept. Pruning runs in the
/// background in small batches and never touches entities, links, field states, open conflicts
/// or unfinished jobs. Durations are written like `"30d"`, `"1h"`, `"500ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Processed inbox events older than this are deleted (never one within `dedupe_window`).
    #[serde(deserialize_with = "file::duration")]
    pub processed_events: Duration,
    /// History entries older than this are deleted.
    #[serde(deserialize_with = "file::duration")]
    pub history: Duration,
    /// Done outbox jobs older than this are deleted (dead letters stay until replayed).
    #[serde(deserialize_with = "file::duration")]
    pub finished_jobs: Duration,
    /// Audit rows older than this are deleted.
    #[serde(deserialize_with = "file::duration")]
    pub audit: Duration,
    /// Every inbox row is kept at least this long, so a redelivery within it is a duplicate.
    #[serde(deserialize_with = "file::duration")]
    pub dedupe_window: Duration,
    /// How often pruning runs; `"0s"` turns it off.
    #[serde(deserialize_with = "file::duration")]
    pub prune_interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        const DAY: u64 = 24 * 3_600;
        RetentionSettings {
            processed_events: Duration::from_secs(30 * DAY),
            history: Duration::from_secs(180 * DAY),
            finished_jobs: Duration::from_secs(30 * DAY),
            audit: Duration::from_secs(365 * DAY),
            dedupe_window: Duration::from_secs(7 * DAY),
            prune_interval: Duration::from_secs(3_600),
        }
    }
}

/// `[backfill]`: the first sync of existing data.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackfillSettings {
    /// Whose value a field of a new link starts with when both sides hold different values:
    /// `npd` (default), `monday` or `manual` (a conflict for an admin). An empty value never
    /// overwrites a non-empty one.
    #[serde(deserialize_with = "file::parsed")]
    pub initial_winner: InitialWinner,
}

impl Default for BackfillSettings {
    fn default() -> Self {
        BackfillSettings {
            initial_winner: InitialWinner::Npd,
        }
    }
}

/// `[drift]`: scheduled drift scans.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftSettings {
    /// Time between two scheduled drift scans, e.g. `"6h"` or `"30m"`; `"0s"` turns the schedule
    /// off (scans still run on demand).
    #[serde(deserialize_with = "file::duration")]
    pub interval: Duration,
}

impl Default for DriftSettings {
    fn default() -> Self {
        DriftSettings {
            interval: Duration::from_secs(6 * 3600),
        }
    }
}

/// `[console]`: the admin console's sessions at `/admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSettings {
    /// A session unused this long is over (the next page asks to sign in again), e.g. `"30m"`.
    #[serde(deserialize_with = "file::duration")]
    pub session_idle: Duration,
    /// A session is over this long after its sign-in, however busy, e.g. `"12h"`.
    #[serde(deserialize_with = "file::duration")]
    pub session_max: Duration,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
        }
    }
}

/// Why settings could not be loaded. Messages never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Settings {
    /// Loads settings from the process environment and, when given, a TOML file.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::load_with(config_file, |name| std::env::var(name).ok())
    }

    /// Loads settings with an explicit environment lookup (tests pass a map). An empty variable
    /// counts as unset.
    pub fn load_with(
        config_file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut settings = match config_file {
            Some(path) => file::load(path)?,
            None => Settings::default(),
        };
        let mut problems = env::overlay(&mut settings, &env);
        problems.extend(settings.problems());
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Every environment variable the gateway reads: `GATEWAY_CONFIG` (the file) and each one
    /// the overlay looks up, learned by running the overlay, so the list cannot drift from it.
    pub fn environment_variables() -> Vec<String> {
        let asked = std::cell::RefCell::new(vec!["GATEWAY_CONFIG".to_owned()]);
        let record = |name: &str| {
            asked.borrow_mut().push(name.to_owned());
            None
        };
        env::overlay(&mut Settings::default(), &record);
        asked.into_inner()
    }

    /// Whether the gateway can write to Monday: a token and at least one board.
    pub fn monday_configured(&self) -> bool {
        self.monday.api_token.is_some()
            && (self.monday.contacts_board_id.is_some()
                || self.monday.organizations_board_id.is_some())
    }

    /// The Monday board id of `kind`, if configured.
    pub fn board_for(&self, kind: EntityKind) -> Option<BoardId> {
        match kind {
            EntityKind::Contact => self.monday.contacts_board_id,
            EntityKind::Organization => self.monday.organizations_board_id,
        }
    }

    /// The entity kind synced on `board`, if it is one of the configured boards.
    pub fn kind_for_board(&self, board: BoardId) -> Option<EntityKind> {
        EntityKind::ALL
            .into_iter()
            .find(|k| self.board_for(*k) == Some(board))
    }
}

impl HttpSettings {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
    /// The `aud` a Monday JWT must carry, when a public URL is configured.
    pub fn monday_audience(&self) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| format!("{}/webhooks/monday", u.trim_end_matches('/')))
    }
}

impl DatabaseSettings {
    /// Which store the URL names.
    pub fn backend(&self) -> Result<DatabaseBackend, String> {
        let url = self.url.expose_secret();
        if url.starts_with("sqlite:") {
            Ok(DatabaseBackend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseBackend::Postgres)
        } else {
            Err("GATEWAY_DATABASE_URL must start with sqlite:// or postgres://".into())
        }
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }

    pub fn ingest_timeout(&self) -> Duration {
        Duration::from_millis(self.ingest_timeout_ms)
    }

    /// The URL with every password replaced, fit for logs: the one in the user info and any
    /// query parameter naming one (`?password=`, `sslpassword=`, ...).
    pub fn redacted_url(&self) -> String {
        let url = self.url.expose_secret();
        let Ok(mut parsed) = url::Url::parse(url) else {
            return "[unparseable database url]".into();
        };
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some("REDACTED"));
        }
        let secret_key = |k: &str| {
            let k = k.to_ascii_lowercase();
            k.contains("password") || k.contains("passwd") || k == "passfile"
        };
        if parsed.query_pairs().any(|(k, _)| secret_key(&k)) {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let v = if secret_key(&k) {
                        "REDACTED".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
        parsed.to_string()
    }
}

impl NpdSettings {
    /// The Standard Webhooks verifier for NPD events; `None` when no secret is configured, in which
    /// case every event is refused with 401.
    pub fn verifier(&self) -> Option<Verifier> {
        let secrets =
            WebhookSecret::parse_list(self.webhook_secret.as_ref()?.expose_secret()).ok()?;
        Some(Verifier::new(secrets, self.timestamp_tolerance_secs))
    }
}

impl MondaySettings {
    /// The JWT verifier for signed Monday deliveries, when a signing secret is configured.
    pub fn jwt_verifier(&self, audience: Option<String>) -> Option<MondayJwtVerifier> {
        let secret = self.signing_secret.as_ref()?;
        Some(MondayJwtVerifier::new(
            secret.expose_secret().as_bytes(),
            audience,
            self.jwt_leeway_secs,
        ))
    }
}

impl SyncSettings {
    pub fn retry_base(&self) -> Duration {
        Duration::from_millis(self.retry_base_ms)
    }
    pub fn retry_cap(&self) -> Duration {
        Duration::from_millis(self.retry_cap_ms)
    }
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
    pub fn monday_timeout(&self) -> Duration {
        Duration::from_millis(self.monday_timeout_ms)
    }
    pub fn npd_timeout(&self) -> Duration {
        Duration::from_millis(self.npd_timeout_ms)
    }
}

impl MappingSettings {
    /// Hands the section's `default_phone_country` to both kinds' mappings.
    pub fn with_shared_keys(mut self) -> Self {
        self.contacts.default_phone_country = self.default_phone_country;
        self.organizations.default_phone_country = self.default_phone_country;
        self
    }

    pub fn for_kind(&self, kind: EntityKind) -> &EntityMapping {
        match kind {
            EntityKind::Contact => &self.contacts,
            EntityKind::Organization => &self.organizations,
        }
    }
}

impl ConflictSettings {
    pub fn for_kind(&self, kind: EntityKind) -> &BTreeMap<String, ConflictPolicy> {
        match kind {
            EntityKind::Contact => &self.contacts,
            EntityKind::Organization => &self.organizations,
        }
    }

    /// The policy that settles `field` of `kind`.
    pub fn policy(&self, kind: EntityKind, field: &str) -> ConflictPolicy {
        self.for_kind(kind)
            .get(field)
            .copied()
            .unwrap_or(self.default)
    }
}
