//! Typed settings, loaded as defaults < optional TOML file < environment, then validated.
//!
//! Owns: `Settings` and its sections, the environment names of CONTRACT.md, the TOML file layout
//! (`fixtures/gateway.example.toml` documents every key) and validation (`Settings::problems`).
//! Secrets are `SecretString`: `Debug` prints `[REDACTED]` and `expose_secret()` is called only where
//! a header, a verifier or a connection is built.
//! May import: std, serde, toml, secrecy, url, crate::domain, crate::auth.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::auth::monday_jwt::{self, MondayJwtVerifier};
use crate::auth::standard_webhooks::{self, Verifier, WebhookSecret};
use crate::domain::entity::{BoardId, EntityKind};
use crate::domain::mapping::EntityMapping;
use crate::domain::reconcile::ConflictPolicy;

/// The largest request body the gateway reads (CONTRACT.md: 256 KiB, then 413).
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 256 * 1024;

/// Everything the gateway is configured with.
#[derive(Debug, Clone)]
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
}

#[derive(Debug, Clone)]
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
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `GATEWAY_DATABASE_URL`: `sqlite://…` or `postgres://…` (may hold a password, hence secret).
    pub url: SecretString,
    /// Connections in the pool.
    pub max_connections: u32,
    /// Most inbox rows one group commit writes.
    pub ingest_batch_max: usize,
    /// Concurrent group-commit writers (SQLite always uses one: it has a single writer).
    pub ingest_writers: usize,
    /// How long a request waits for a pool connection before the store counts as unavailable (503).
    pub acquire_timeout_ms: u64,
    /// PostgreSQL only: a session left idle inside a transaction this long is ended by the
    /// server, releasing its locks (a replica frozen mid-transaction cannot stall the others).
    pub idle_in_transaction_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBackend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Default)]
pub struct AdminSettings {
    /// `GATEWAY_ADMIN_TOKEN`: a bootstrap admin token, besides tokens made with `admin-token create`.
    pub token: Option<SecretString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `GATEWAY_LOG`: a tracing filter such as `info` or `npd_monday_gateway=debug,info`.
    pub filter: String,
    /// `GATEWAY_LOG_FORMAT`: `text` or `json`.
    pub format: LogFormat,
}

#[derive(Debug, Clone)]
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

#[derive(Debug, Clone)]
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
    pub contacts_board_id: Option<BoardId>,
    /// `MONDAY_ORGANIZATIONS_BOARD_ID`.
    pub organizations_board_id: Option<BoardId>,
    /// Leeway on a JWT's `exp`, in seconds (at most 10).
    pub jwt_leeway_secs: i64,
    /// Requests per minute the gateway allows itself (Monday: 1,000 on most plans, 2,500 Pro,
    /// 5,000 Enterprise). Routine sync keeps a fifth in reserve for admin pushes.
    pub requests_per_minute: u64,
    /// Complexity points per minute the gateway allows itself (Monday: 5,000,000 for app tokens).
    pub complexity_per_minute: u64,
    /// The Monday user id the API token acts as. Webhooks carrying it are the gateway's own
    /// writes coming back. Learned with `me { id }` at start when unset.
    pub integration_user_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct MappingSettings {
    pub contacts: EntityMapping,
    pub organizations: EntityMapping,
}

#[derive(Debug, Clone)]
pub struct ConflictSettings {
    /// The policy of every field not named below.
    pub default: ConflictPolicy,
    /// Per contact field.
    pub contacts: BTreeMap<String, ConflictPolicy>,
    /// Per organization field.
    pub organizations: BTreeMap<String, ConflictPolicy>,
}

#[derive(Debug, Clone)]
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
    /// How often idle workers look for new work (they are also woken by new events).
    pub poll_interval_ms: u64,
    /// Timeout of one call to Monday's API (Monday's own limit is 60 s).
    pub monday_timeout_ms: u64,
    /// Timeout of one call to NPD's API.
    pub npd_timeout_ms: u64,
    /// Admin requests allowed per token per minute (then 429).
    pub admin_requests_per_minute: u32,
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
            poll_interval_ms: 250,
            monday_timeout_ms: 30_000,
            npd_timeout_ms: 15_000,
            admin_requests_per_minute: 120,
            run_workers: true,
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

impl Default for Settings {
    fn default() -> Self {
        Settings {
            http: HttpSettings {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                public_url: None,
                body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
                header_read_timeout_ms: 10_000,
                request_timeout_ms: 30_000,
                shutdown_grace_ms: 10_000,
            },
            database: DatabaseSettings {
                url: SecretString::from("sqlite://data/gateway.db"),
                max_connections: 8,
                ingest_batch_max: 256,
                ingest_writers: 4,
                acquire_timeout_ms: 2_000,
                idle_in_transaction_timeout_ms: 30_000,
            },
            admin: AdminSettings::default(),
            log: LogSettings {
                filter: "info".into(),
                format: LogFormat::Text,
            },
            npd: NpdSettings {
                webhook_secret: None,
                api_url: None,
                api_token: None,
                timestamp_tolerance_secs: standard_webhooks::DEFAULT_TOLERANCE_SECS,
            },
            monday: MondaySettings {
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
                integration_user_id: None,
            },
            mapping: MappingSettings {
                contacts: EntityMapping::default_for(EntityKind::Contact),
                organizations: EntityMapping::default_for(EntityKind::Organization),
            },
            conflicts: ConflictSettings {
                default: ConflictPolicy::LatestWins,
                contacts: BTreeMap::new(),
                organizations: BTreeMap::new(),
            },
            sync: SyncSettings::default(),
        }
    }
}

// ---- the TOML file: every key optional, unknown keys refused ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    gateway: FileGateway,
    #[serde(default)]
    npd: FileNpd,
    #[serde(default)]
    monday: FileMonday,
    #[serde(default)]
    mapping: FileMapping,
    #[serde(default)]
    conflicts: FileConflicts,
    #[serde(default)]
    sync: FileSync,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGateway {
    listen: Option<String>,
    database_url: Option<SecretString>,
    public_url: Option<String>,
    admin_token: Option<SecretString>,
    log: Option<String>,
    log_format: Option<String>,
    body_limit_bytes: Option<usize>,
    header_read_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    database_max_connections: Option<u32>,
    ingest_batch_max: Option<usize>,
    ingest_writers: Option<usize>,
    database_acquire_timeout_ms: Option<u64>,
    database_idle_in_transaction_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNpd {
    webhook_secret: Option<SecretString>,
    api_url: Option<String>,
    api_token: Option<SecretString>,
    timestamp_tolerance_secs: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMonday {
    api_url: Option<String>,
    api_token: Option<SecretString>,
    api_version: Option<String>,
    signing_secret: Option<SecretString>,
    webhook_token: Option<SecretString>,
    contacts_board_id: Option<toml::Value>,
    organizations_board_id: Option<toml::Value>,
    jwt_leeway_secs: Option<i64>,
    requests_per_minute: Option<u64>,
    complexity_per_minute: Option<u64>,
    integration_user_id: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMapping {
    contacts: Option<EntityMapping>,
    organizations: Option<EntityMapping>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConflicts {
    default: Option<String>,
    #[serde(default)]
    contacts: BTreeMap<String, String>,
    #[serde(default)]
    organizations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSync {
    create_in_npd: Option<bool>,
    retry_base_ms: Option<u64>,
    retry_cap_ms: Option<u64>,
    max_attempts: Option<i64>,
    lease_ms: Option<u64>,
    dispatch_concurrency: Option<usize>,
    poll_interval_ms: Option<u64>,
    monday_timeout_ms: Option<u64>,
    npd_timeout_ms: Option<u64>,
    admin_requests_per_minute: Option<u32>,
    run_workers: Option<bool>,
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
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let mut settings = Settings::default();
        let mut problems = Vec::new();
        if let Some(path) = config_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: describe_toml_error(&text, &e),
            })?;
            settings.apply_file(file, &mut problems);
        }
        settings.apply_env(&env, &mut problems);
        problems.extend(settings.problems());
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    fn apply_file(&mut self, f: FileConfig, problems: &mut Vec<String>) {
        let g = f.gateway;
        if let Some(v) = g.listen {
            set_parsed(&mut self.http.listen, "gateway.listen", &v, problems);
        }
        set_some(&mut self.database.url, g.database_url);
        if let Some(v) = g.public_url {
            self.http.public_url = Some(v);
        }
        if g.admin_token.is_some() {
            self.admin.token = g.admin_token;
        }
        set_some(&mut self.log.filter, g.log);
        if let Some(v) = g.log_format {
            set_log_format(&mut self.log.format, "gateway.log_format", &v, problems);
        }
        set_some(&mut self.http.body_limit_bytes, g.body_limit_bytes);
        set_some(
            &mut self.http.header_read_timeout_ms,
            g.header_read_timeout_ms,
        );
        set_some(&mut self.http.request_timeout_ms, g.request_timeout_ms);
        set_some(&mut self.http.shutdown_grace_ms, g.shutdown_grace_ms);
        set_some(
            &mut self.database.max_connections,
            g.database_max_connections,
        );
        set_some(&mut self.database.ingest_batch_max, g.ingest_batch_max);
        set_some(&mut self.database.ingest_writers, g.ingest_writers);
        set_some(
            &mut self.database.acquire_timeout_ms,
            g.database_acquire_timeout_ms,
        );
        set_some(
            &mut self.database.idle_in_transaction_timeout_ms,
            g.database_idle_in_transaction_timeout_ms,
        );

        let n = f.npd;
        if n.webhook_secret.is_some() {
            self.npd.webhook_secret = n.webhook_secret;
        }
        if n.api_url.is_some() {
            self.npd.api_url = n.api_url;
        }
        if n.api_token.is_some() {
            self.npd.api_token = n.api_token;
        }
        set_some(
            &mut self.npd.timestamp_tolerance_secs,
            n.timestamp_tolerance_secs,
        );

        let m = f.monday;
        set_some(&mut self.monday.api_url, m.api_url);
        if m.api_token.is_some() {
            self.monday.api_token = m.api_token;
        }
        set_some(&mut self.monday.api_version, m.api_version);
        if m.signing_secret.is_some() {
            self.monday.signing_secret = m.signing_secret;
        }
        if m.webhook_token.is_some() {
            self.monday.webhook_token = m.webhook_token;
        }
        for (key, value, slot) in [
            (
                "monday.contacts_board_id",
                m.contacts_board_id,
                &mut self.monday.contacts_board_id,
            ),
            (
                "monday.organizations_board_id",
                m.organizations_board_id,
                &mut self.monday.organizations_board_id,
            ),
        ] {
            match value {
                None => {}
                Some(toml::Value::Integer(i)) if i > 0 => *slot = Some(BoardId(i.unsigned_abs())),
                Some(toml::Value::String(s)) => set_board(slot, key, &s, problems),
                Some(_) => problems.push(format!("{key} must be a positive board id")),
            }
        }
        set_some(&mut self.monday.jwt_leeway_secs, m.jwt_leeway_secs);
        set_some(&mut self.monday.requests_per_minute, m.requests_per_minute);
        set_some(
            &mut self.monday.complexity_per_minute,
            m.complexity_per_minute,
        );
        if m.integration_user_id.is_some() {
            self.monday.integration_user_id = m.integration_user_id;
        }

        if let Some(c) = f.mapping.contacts {
            self.mapping.contacts = c;
        }
        if let Some(o) = f.mapping.organizations {
            self.mapping.organizations = o;
        }

        if let Some(d) = f.conflicts.default {
            match d.parse() {
                Ok(p) => self.conflicts.default = p,
                Err(e) => problems.push(format!("conflicts.default: {e}")),
            }
        }
        for (kind, table, slot) in [
            (
                EntityKind::Contact,
                f.conflicts.contacts,
                &mut self.conflicts.contacts,
            ),
            (
                EntityKind::Organization,
                f.conflicts.organizations,
                &mut self.conflicts.organizations,
            ),
        ] {
            for (field, policy) in table {
                match policy.parse() {
                    Ok(p) => {
                        slot.insert(field, p);
                    }
                    Err(e) => problems.push(format!("conflicts.{}.{field}: {e}", kind.plural())),
                }
            }
        }
        let y = f.sync;
        set_some(&mut self.sync.create_in_npd, y.create_in_npd);
        set_some(&mut self.sync.retry_base_ms, y.retry_base_ms);
        set_some(&mut self.sync.retry_cap_ms, y.retry_cap_ms);
        set_some(&mut self.sync.max_attempts, y.max_attempts);
        set_some(&mut self.sync.lease_ms, y.lease_ms);
        set_some(&mut self.sync.dispatch_concurrency, y.dispatch_concurrency);
        set_some(&mut self.sync.poll_interval_ms, y.poll_interval_ms);
        set_some(&mut self.sync.monday_timeout_ms, y.monday_timeout_ms);
        set_some(&mut self.sync.npd_timeout_ms, y.npd_timeout_ms);
        set_some(
            &mut self.sync.admin_requests_per_minute,
            y.admin_requests_per_minute,
        );
        set_some(&mut self.sync.run_workers, y.run_workers);
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<String>) {
        if let Some(v) = env("GATEWAY_LISTEN") {
            set_parsed(&mut self.http.listen, "GATEWAY_LISTEN", &v, problems);
        }
        if let Some(v) = env("GATEWAY_DATABASE_URL") {
            self.database.url = SecretString::from(v);
        }
        if let Some(v) = env("GATEWAY_PUBLIC_URL") {
            self.http.public_url = Some(v);
        }
        if let Some(v) = env("GATEWAY_ADMIN_TOKEN") {
            self.admin.token = Some(SecretString::from(v));
        }
        if let Some(v) = env("GATEWAY_LOG") {
            self.log.filter = v;
        }
        if let Some(v) = env("GATEWAY_LOG_FORMAT") {
            set_log_format(&mut self.log.format, "GATEWAY_LOG_FORMAT", &v, problems);
        }
        if let Some(v) = env("NPD_WEBHOOK_SECRET") {
            self.npd.webhook_secret = Some(SecretString::from(v));
        }
        if let Some(v) = env("NPD_API_URL") {
            self.npd.api_url = Some(v);
        }
        if let Some(v) = env("NPD_API_TOKEN") {
            self.npd.api_token = Some(SecretString::from(v));
        }
        if let Some(v) = env("MONDAY_API_URL") {
            self.monday.api_url = v;
        }
        if let Some(v) = env("MONDAY_API_TOKEN") {
            self.monday.api_token = Some(SecretString::from(v));
        }
        if let Some(v) = env("MONDAY_API_VERSION") {
            self.monday.api_version = v;
        }
        if let Some(v) = env("MONDAY_SIGNING_SECRET") {
            self.monday.signing_secret = Some(SecretString::from(v));
        }
        if let Some(v) = env("MONDAY_WEBHOOK_TOKEN") {
            self.monday.webhook_token = Some(SecretString::from(v));
        }
        if let Some(v) = env("MONDAY_CONTACTS_BOARD_ID") {
            set_board(
                &mut self.monday.contacts_board_id,
                "MONDAY_CONTACTS_BOARD_ID",
                &v,
                problems,
            );
        }
        if let Some(v) = env("MONDAY_ORGANIZATIONS_BOARD_ID") {
            set_board(
                &mut self.monday.organizations_board_id,
                "MONDAY_ORGANIZATIONS_BOARD_ID",
                &v,
                problems,
            );
        }
    }

    /// Every problem with these settings, as sentences naming the key. Empty when valid.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.database.backend() {
            problems.push(e);
        }
        if let Some(url) = &self.http.public_url
            && !is_http_url(url)
        {
            problems.push(
                "GATEWAY_PUBLIC_URL must be an absolute http(s) URL such as https://gateway.example.com"
                    .into(),
            );
        }
        if self.http.body_limit_bytes == 0 {
            problems.push("gateway.body_limit_bytes must be positive".into());
        }
        if self.http.header_read_timeout_ms == 0 || self.http.request_timeout_ms == 0 {
            problems.push("gateway timeouts must be positive".into());
        }
        if self.database.max_connections == 0 {
            problems.push("gateway.database_max_connections must be positive".into());
        }
        if self.database.ingest_batch_max == 0 || self.database.ingest_writers == 0 {
            problems.push(
                "gateway.ingest_batch_max and gateway.ingest_writers must be positive".into(),
            );
        }
        if let Some(secret) = &self.npd.webhook_secret
            && let Err(e) = WebhookSecret::parse_list(secret.expose_secret())
        {
            problems.push(format!("NPD_WEBHOOK_SECRET: {e}"));
        }
        if !(1..=3600).contains(&self.npd.timestamp_tolerance_secs) {
            problems.push("npd.timestamp_tolerance_secs must be between 1 and 3600".into());
        }
        if let Some(url) = &self.npd.api_url
            && !is_http_url(url)
        {
            problems.push("NPD_API_URL must be an absolute http(s) URL".into());
        }
        if !is_http_url(&self.monday.api_url) {
            problems.push("MONDAY_API_URL must be an absolute http(s) URL".into());
        }
        if !is_api_version(&self.monday.api_version) {
            problems.push(format!(
                "MONDAY_API_VERSION `{}` is not a Monday API version (YYYY-01|04|07|10, or dev)",
                self.monday.api_version
            ));
        }
        if let Some(token) = &self.monday.webhook_token {
            let t = token.expose_secret();
            if t.len() < 16
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                problems.push(
                    "MONDAY_WEBHOOK_TOKEN must be at least 16 URL-safe characters (letters, digits, - or _)"
                        .into(),
                );
            }
        }
        if self.monday.requests_per_minute == 0 || self.monday.complexity_per_minute == 0 {
            problems.push(
                "monday.requests_per_minute and monday.complexity_per_minute must be positive"
                    .into(),
            );
        }
        if !(0..=10).contains(&self.monday.jwt_leeway_secs) {
            problems.push("monday.jwt_leeway_secs must be between 0 and 10".into());
        }
        if self.monday.contacts_board_id.is_some()
            && self.monday.contacts_board_id == self.monday.organizations_board_id
        {
            problems.push(
                "MONDAY_CONTACTS_BOARD_ID and MONDAY_ORGANIZATIONS_BOARD_ID must differ".into(),
            );
        }
        let y = &self.sync;
        if y.retry_base_ms == 0 || y.retry_cap_ms < y.retry_base_ms {
            problems
                .push("sync.retry_base_ms must be positive and at most sync.retry_cap_ms".into());
        }
        if y.max_attempts < 1 {
            problems.push("sync.max_attempts must be at least 1".into());
        }
        if y.lease_ms < 1_000 || y.lease_ms <= y.monday_timeout_ms.max(y.npd_timeout_ms) {
            problems.push(
                "sync.lease_ms must exceed the Monday and NPD call timeouts (a lease must outlive its call)".into(),
            );
        }
        if y.dispatch_concurrency == 0
            || y.poll_interval_ms == 0
            || y.admin_requests_per_minute == 0
        {
            problems.push(
                "sync.dispatch_concurrency, sync.poll_interval_ms and sync.admin_requests_per_minute must be positive"
                    .into(),
            );
        }
        if y.monday_timeout_ms == 0 || y.monday_timeout_ms > 60_000 || y.npd_timeout_ms == 0 {
            problems.push(
                "sync.monday_timeout_ms must be 1..=60000 and sync.npd_timeout_ms positive".into(),
            );
        }
        for kind in EntityKind::ALL {
            problems.extend(self.mapping.for_kind(kind).problems(kind));
            for field in self.conflicts.for_kind(kind).keys() {
                if !kind.fields().contains(&field.as_str()) {
                    problems.push(format!(
                        "conflicts.{} names unknown {kind} field `{field}` (known: {})",
                        kind.plural(),
                        kind.fields().join(", ")
                    ));
                }
            }
        }
        problems
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

    /// The URL with any password replaced, fit for logs.
    pub fn redacted_url(&self) -> String {
        let url = self.url.expose_secret();
        match url::Url::parse(url) {
            Ok(mut parsed) if parsed.password().is_some() => {
                let _ = parsed.set_password(Some("REDACTED"));
                parsed.to_string()
            }
            Ok(parsed) if url.starts_with("postgres") => parsed.to_string(),
            _ if url.starts_with("sqlite:") => url.to_owned(),
            _ => "[unparseable database url]".into(),
        }
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

fn set_some<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn set_parsed<T: std::str::FromStr>(
    slot: &mut T,
    key: &str,
    value: &str,
    problems: &mut Vec<String>,
) {
    match value.trim().parse() {
        Ok(v) => *slot = v,
        Err(_) => problems.push(format!("{key} `{value}` is not a valid value")),
    }
}

fn set_board(slot: &mut Option<BoardId>, key: &str, value: &str, problems: &mut Vec<String>) {
    match value.trim().parse::<u64>() {
        Ok(id) if id > 0 => *slot = Some(BoardId(id)),
        _ => problems.push(format!(
            "{key} `{value}` is not a board id (a positive number)"
        )),
    }
}

fn set_log_format(slot: &mut LogFormat, key: &str, value: &str, problems: &mut Vec<String>) {
    match value.trim() {
        "text" | "pretty" => *slot = LogFormat::Text,
        "json" => *slot = LogFormat::Json,
        other => problems.push(format!("{key} `{other}` must be `text` or `json`")),
    }
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .unwrap_or(false)
}

fn is_api_version(v: &str) -> bool {
    if v == "dev" {
        return true;
    }
    let b = v.as_bytes();
    b.len() == 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && matches!(&v[5..], "01" | "04" | "07" | "10")
}

/// A TOML error as "line N: message", without quoting the offending line (it may hold a secret).
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", e.message())
        }
        None => e.message().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write;

    use super::*;

    fn load(env: &[(&str, &str)], file: Option<&str>) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let tmp = file.map(|text| {
            let mut f = tempfile::NamedTempFile::new().expect("temp file");
            f.write_all(text.as_bytes()).expect("write config");
            f
        });
        Settings::load_with(tmp.as_ref().map(|f| f.path()), |k| env.get(k).cloned())
    }

    fn problems(env: &[(&str, &str)], file: Option<&str>) -> String {
        match load(env, file) {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = load(&[], None).expect("defaults are valid");
        assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database.url.expose_secret(), "sqlite://data/gateway.db");
        assert_eq!(s.database.backend(), Ok(DatabaseBackend::Sqlite));
        assert_eq!(s.monday.api_url, "https://api.monday.com/v2");
        assert_eq!(s.monday.api_version, "2026-10");
        assert_eq!(s.log.filter, "info");
        assert_eq!(s.http.body_limit_bytes, 256 * 1024);
        assert_eq!(
            s.conflicts.policy(EntityKind::Contact, "email"),
            ConflictPolicy::LatestWins
        );
        assert!(!s.monday_configured());
        assert!(s.npd.verifier().is_none());
    }

    #[test]
    fn environment_overrides_the_file() {
        let s = load(
            &[
                ("GATEWAY_LISTEN", "0.0.0.0:9000"),
                ("MONDAY_CONTACTS_BOARD_ID", "4100000001"),
                ("MONDAY_API_TOKEN", "tok"),
            ],
            Some("[gateway]\nlisten = \"127.0.0.1:7000\"\n[monday]\norganizations_board_id = 4100000002\n"),
        )
        .expect("valid");
        assert_eq!(s.http.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(
            s.board_for(EntityKind::Contact),
            Some(BoardId(4_100_000_001))
        );
        assert_eq!(
            s.kind_for_board(BoardId(4_100_000_002)),
            Some(EntityKind::Organization)
        );
        assert!(s.monday_configured());
    }

    #[test]
    fn empty_environment_variables_count_as_unset() {
        let s = load(&[("MONDAY_API_TOKEN", ""), ("GATEWAY_LISTEN", " ")], None).expect("valid");
        assert!(s.monday.api_token.is_none());
        assert_eq!(s.http.listen.port(), 8080);
    }

    #[test]
    fn file_sets_mapping_and_conflict_policies() {
        let s = load(
            &[],
            Some(
                r#"
[conflicts]
default = "npd_wins"
[conflicts.contacts]
email = "manual"
[mapping.organizations]
item_name = ["name"]
npd_id_column = "npd_ref"
[mapping.organizations.fields]
website = { column = "site", type = "link" }
"#,
            ),
        )
        .expect("valid");
        assert_eq!(
            s.conflicts.policy(EntityKind::Contact, "email"),
            ConflictPolicy::Manual
        );
        assert_eq!(
            s.conflicts.policy(EntityKind::Contact, "phone"),
            ConflictPolicy::NpdWins
        );
        assert_eq!(s.mapping.organizations.npd_id_column, "npd_ref");
        assert_eq!(
            s.mapping.organizations.field_for_column("site"),
            Some("website")
        );
    }

    #[test]
    fn invalid_settings_are_refused_with_the_key_named() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
        let cases: &[Case<'_>] = &[
            (&[("GATEWAY_LISTEN", "nowhere")], None, "GATEWAY_LISTEN"),
            (
                &[("GATEWAY_DATABASE_URL", "mysql://x")],
                None,
                "GATEWAY_DATABASE_URL",
            ),
            (
                &[("GATEWAY_PUBLIC_URL", "gateway.example.com")],
                None,
                "GATEWAY_PUBLIC_URL",
            ),
            (&[("GATEWAY_LOG_FORMAT", "xml")], None, "GATEWAY_LOG_FORMAT"),
            (
                &[("NPD_WEBHOOK_SECRET", "whsec_!!!")],
                None,
                "NPD_WEBHOOK_SECRET",
            ),
            (
                &[("MONDAY_API_VERSION", "2023")],
                None,
                "MONDAY_API_VERSION",
            ),
            (
                &[("MONDAY_CONTACTS_BOARD_ID", "abc")],
                None,
                "MONDAY_CONTACTS_BOARD_ID",
            ),
            (
                &[("MONDAY_WEBHOOK_TOKEN", "short")],
                None,
                "MONDAY_WEBHOOK_TOKEN",
            ),
            (
                &[],
                Some("[conflicts]\ndefault = \"coin_flip\"\n"),
                "unknown conflict policy `coin_flip`",
            ),
            (
                &[],
                Some("[conflicts.contacts]\nshoe_size = \"manual\"\n"),
                "unknown contact field `shoe_size`",
            ),
            (
                &[],
                Some("[conflicts.contacts]\nemail = \"loudest\"\n"),
                "conflicts.contacts.email",
            ),
            (
                &[],
                Some("[gateway]\nlisten_port = 1\n"),
                "unknown field `listen_port`",
            ),
            (
                &[],
                Some(
                    "[mapping.contacts]\nitem_name = [\"first_name\"]\nnpd_id_column = \"npd_id\"\n[mapping.contacts.fields]\nemail = { column = \"email\", type = \"status\" }\n",
                ),
                "unknown variant `status`",
            ),
        ];
        for (env, file, expected) in cases {
            let msg = problems(env, *file);
            assert!(msg.contains(expected), "expected `{expected}` in: {msg}");
        }
    }

    #[test]
    fn secrets_never_appear_in_debug_or_errors() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let s = load(
            &[
                ("NPD_WEBHOOK_SECRET", secret),
                ("MONDAY_API_TOKEN", "monday-token-SECRET1"),
                ("MONDAY_SIGNING_SECRET", "signing-SECRET2"),
                ("GATEWAY_ADMIN_TOKEN", "admin-SECRET3"),
                (
                    "GATEWAY_DATABASE_URL",
                    "postgres://u:db-SECRET4@localhost/db",
                ),
            ],
            None,
        )
        .expect("valid");
        let debug = format!("{s:?}");
        for needle in [secret, "SECRET1", "SECRET2", "SECRET3", "SECRET4"] {
            assert!(!debug.contains(needle), "Debug leaks {needle}");
        }
        assert!(!s.database.redacted_url().contains("SECRET4"));
        // A broken secret in a file: the parse error names the line, not its content.
        let msg = problems(&[], Some("[npd]\nwebhook_secret = \"whsec_LEAK\" oops\n"));
        assert!(msg.contains("line 2"), "{msg}");
        assert!(!msg.contains("LEAK"), "{msg}");
        let msg = problems(&[("NPD_WEBHOOK_SECRET", "whsec_LEAK!!")], None);
        assert!(!msg.contains("LEAK"), "{msg}");
    }

    #[test]
    fn the_example_file_is_valid_as_shipped_and_with_every_commented_key_enabled() {
        let example = include_str!("../fixtures/gateway.example.toml");
        let shipped = load(&[], Some(example)).expect("the example file loads as shipped");
        assert_eq!(shipped.http.listen.to_string(), "127.0.0.1:8080");
        // Uncomment every `# key = value` line: each must name a real key with a valid value.
        let enabled: String = example
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest
                        .split_once(" = ")
                        .is_some_and(|(k, _)| !k.contains(' ')) =>
                {
                    rest
                }
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let s = load(&[], Some(&enabled)).expect("every documented key is valid");
        assert!(s.npd.webhook_secret.is_some() && s.monday.webhook_token.is_some());
        assert_eq!(
            s.board_for(EntityKind::Contact),
            Some(BoardId(4_100_000_001))
        );
        assert_eq!(
            s.conflicts.policy(EntityKind::Contact, "email"),
            ConflictPolicy::Manual
        );
        assert_eq!(
            s.conflicts.policy(EntityKind::Organization, "website"),
            ConflictPolicy::NpdWins
        );
        assert_eq!(
            s.http.public_url.as_deref(),
            Some("https://gateway.example.com")
        );
    }

    #[test]
    fn monday_audience_is_built_from_the_public_url() {
        let s = load(
            &[("GATEWAY_PUBLIC_URL", "https://gateway.example.com/")],
            None,
        )
        .expect("valid");
        assert_eq!(
            s.http.monday_audience().as_deref(),
            Some("https://gateway.example.com/webhooks/monday")
        );
    }
}
