//! The sync ledger: every SQL statement of the gateway lives under this module.
//!
//! Owns: `Store` (one type over SQLite or PostgreSQL), connecting, migrations, readiness, and the
//! tables of DESIGN.md through one submodule per concern: `inbox` (and `group_commit`, its
//! writer), `entities` (with their field states), `jobs` (the outbox), `conflicts`, `history`,
//! `left_out` (values that could not be written, per entity and field), `admin` (tokens and the
//! audit log), `console` (the console's sessions and the entity search's
//! terms), `budget` (the Monday budget replicas share), `retention` (pruning by age), `scans`
//! (backfill and drift runs, their staging area and the review queue) and `stats` (the cheap
//! gauges of `/metrics`, and full counts for tests). `tx` is one transaction over either backend;
//! `codec` is where typed domain values become columns and back.
//! Statements are written once with `$n` placeholders and run on either backend through
//! `with_pool!`; where the dialects differ, both variants stand side by side in one function.
//! Times are unix epoch milliseconds (`now_ms`), computed here rather than by SQL, so both stores agree.
//! May import: std, sqlx, serde, serde_json, tokio, time, crate::domain, crate::config.

pub mod admin;
pub mod budget;
pub mod codec;
pub mod conflicts;
pub mod console;
pub mod entities;
pub mod group_commit;
pub mod history;
pub mod inbox;
pub mod jobs;
pub mod left_out;
pub mod retention;
pub mod scans;
pub mod stats;
pub mod tx;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::config::{DatabaseBackend, DatabaseSettings};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Runs `$body` with `$pool` bound to the concrete pool of `$store`; the body is type-checked once
/// per backend, so one statement text serves both.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::ledger::Store::Sqlite(sqlite) => {
                let $pool = &sqlite.pool;
                $body
            }
            $crate::ledger::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// The ledger's database: SQLite (embedded, one process) or PostgreSQL (any number of replicas).
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgPool),
}

/// SQLite and the queue its writers wait in. SQLite has one writer at a time; left to itself, a
/// writer that finds the lock taken sleeps in growing steps (its busy handler), so an ingest
/// commit could wait behind processing for far longer than the processing took. Every write
/// transaction of this process takes `writer` first instead: a fair FIFO hand-over, no sleeps.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub pool: SqlitePool,
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// Waits for this process's turn to write.
    pub async fn write_turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        Arc::clone(&self.writer).lock_owned().await
    }
}

/// A failure of the store. Ingress answers 503 for any of them: nothing was acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("the store is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("store error")]
    Database(#[source] sqlx::Error),
    #[error("cannot apply migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the database location: {0}")]
    Location(String),
    #[error("the ingest writer has stopped")]
    WriterStopped,
    /// Ingress backpressure: the group-commit queue is full, or the commit did not complete
    /// within `ingest_timeout` (the row may still be committed later: the sender's retry is
    /// then a duplicate). Nothing was acknowledged.
    #[error("not committed: {0}")]
    NotCommitted(&'static str),
    #[error("ledger data is not what this version expects: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for LedgerError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => LedgerError::Unavailable(e),
            other => LedgerError::Database(other),
        }
    }
}

impl LedgerError {
    /// A collision with a concurrent transaction on PostgreSQL (unique violation, serialisation
    /// failure, deadlock, lock not available): the work is retried, it has not failed.
    pub fn is_conflict(&self) -> bool {
        match self {
            LedgerError::Database(sqlx::Error::Database(db)) => {
                matches!(
                    db.code().as_deref(),
                    Some("23505" | "40001" | "40P01" | "55P03")
                )
            }
            _ => false,
        }
    }
}

pub type LedgerResult<T> = Result<T, LedgerError>;

/// Milliseconds since the unix epoch: the one clock of the ledger.
pub fn now_ms() -> i64 {
    crate::domain::entity::unix_ms(time::OffsetDateTime::now_utc())
}

impl Store {
    /// Opens the store named by the settings. SQLite: the file and its folder are created on first
    /// start, in WAL mode with `synchronous = FULL`, so a commit survives power loss, not only a crash.
    pub async fn connect(settings: &DatabaseSettings) -> LedgerResult<Store> {
        let backend = settings.backend().map_err(LedgerError::Location)?;
        let url = settings.url.expose_secret();
        match backend {
            DatabaseBackend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true);
                let path = options.get_filename();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| LedgerError::Location(format!("{}: {e}", dir.display())))?;
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.acquire_timeout())
                    .connect_with(options)
                    .await?;
                Ok(Store::Sqlite(SqliteStore {
                    pool,
                    writer: Arc::default(),
                }))
            }
            DatabaseBackend::Postgres => {
                let options = PgConnectOptions::from_str(url)?.options([(
                    "idle_in_transaction_session_timeout",
                    format!("{}ms", settings.idle_in_transaction_timeout_ms),
                )]);
                let pool = PgPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.acquire_timeout())
                    .connect_with(options)
                    .await?;
                Ok(Store::Postgres(pool))
            }
        }
    }

    pub fn backend(&self) -> DatabaseBackend {
        match self {
            Store::Sqlite(_) => DatabaseBackend::Sqlite,
            Store::Postgres(_) => DatabaseBackend::Postgres,
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self {
            Store::Sqlite(_) => &SQLITE_MIGRATOR,
            Store::Postgres(_) => &POSTGRES_MIGRATOR,
        }
    }

    /// Applies every pending migration (idempotent; safe to run from several replicas at once,
    /// sqlx takes a lock on Postgres).
    pub async fn migrate(&self) -> LedgerResult<()> {
        let migrator = self.migrator();
        with_pool!(self, pool => migrator.run(pool).await)?;
        Ok(())
    }

    /// Readiness: the store answers and every migration this binary knows has been applied.
    pub async fn ready(&self) -> LedgerResult<bool> {
        let applied: Vec<i64> = with_pool!(self, pool => {
            sqlx::query_scalar("select version from _sqlx_migrations where success = true")
                .fetch_all(pool)
                .await
        })?;
        Ok(self.migrator().iter().all(|m| applied.contains(&m.version)))
    }

    /// Closes every connection; pending group commits fail with `Unavailable`.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await);
    }
}
