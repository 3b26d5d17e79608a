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
/// transaction of this process takes a turn here first instead: a hand-over with no sleeps.
///
/// Two classes wait for the turn. Ingest's group commit (`ingest_turn`) holds senders waiting for
/// their 2xx, so it goes first: it waits for the transaction writing now and for at most one
/// background writer (processing, dispatch, scans) that queued before it, never behind the whole
/// queue. Background writers (`write_turn`) queue among themselves in FIFO order and alternate with
/// ingest, so neither side starves: an ingest commit takes every row waiting, and while it writes
/// the next background transaction is already next in line.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub pool: SqlitePool,
    turns: Arc<WriteTurns>,
}

/// The three locks of a two-class turn (the classic "low, next, data" scheme over tokio's FIFO
/// mutexes): background writers queue on `low`, so at most one of them stands in `next` beside
/// ingest at a time.
#[derive(Debug, Default)]
struct WriteTurns {
    low: Arc<tokio::sync::Mutex<()>>,
    next: Arc<tokio::sync::Mutex<()>>,
    data: Arc<tokio::sync::Mutex<()>>,
}

/// This process's turn to write to SQLite; the next writer goes when it is dropped.
#[derive(Debug)]
pub struct WriteTurn {
    // Dropped in declaration order: the write turn itself first, then the background queue.
    _data: tokio::sync::OwnedMutexGuard<()>,
    _low: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl SqliteStore {
    fn new(pool: SqlitePool) -> SqliteStore {
        SqliteStore {
            pool,
            turns: Arc::default(),
        }
    }

    /// Waits for a background writer's turn (everything but ingest).
    pub async fn write_turn(&self) -> WriteTurn {
        let low = Arc::clone(&self.turns.low).lock_owned().await;
        self.turn(Some(low)).await
    }

    /// Waits for ingest's turn: ahead of every background writer still queued.
    pub async fn ingest_turn(&self) -> WriteTurn {
        self.turn(None).await
    }

    async fn turn(&self, low: Option<tokio::sync::OwnedMutexGuard<()>>) -> WriteTurn {
        let next = Arc::clone(&self.turns.next).lock_owned().await;
        let data = Arc::clone(&self.turns.data).lock_owned().await;
        drop(next);
        WriteTurn {
            _data: data,
            _low: low,
        }
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
                Ok(Store::Sqlite(SqliteStore::new(pool)))
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Lets every spawned task of this current-thread runtime run until it waits.
    async fn settle() {
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
    }

    /// Spawns a writer that records `name` when its turn comes and holds it until `release`.
    fn writer(
        store: &SqliteStore,
        name: &'static str,
        ingest: bool,
        order: &Arc<Mutex<Vec<&'static str>>>,
    ) -> tokio::sync::oneshot::Sender<()> {
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (store, order) = (store.clone(), Arc::clone(order));
        tokio::spawn(async move {
            let _turn = if ingest {
                store.ingest_turn().await
            } else {
                store.write_turn().await
            };
            order.lock().expect("order").push(name);
            let _ = released.await;
        });
        release
    }

    #[tokio::test]
    async fn ingest_waits_for_at_most_one_queued_background_writer_and_they_alternate() {
        let pool = SqlitePool::connect_lazy("sqlite::memory:").expect("lazy pool");
        let store = SqliteStore::new(pool);
        let order = Arc::new(Mutex::new(Vec::new()));
        // One background writer writes; three more queue, then ingest asks.
        let mut releases = vec![writer(&store, "a", false, &order)];
        settle().await;
        for name in ["b", "c", "d"] {
            releases.push(writer(&store, name, false, &order));
            settle().await;
        }
        let mut ingest = vec![writer(&store, "ingest 1", true, &order)];
        settle().await;
        // Each holder lets go in turn; ingest asks again while "b" writes.
        let mut asked_again = false;
        for _ in 0..5 {
            let who = *order.lock().expect("order").last().expect("a holder");
            if who == "b" && !asked_again {
                asked_again = true;
                ingest.push(writer(&store, "ingest 2", true, &order));
                settle().await;
            }
            let release = if who.starts_with("ingest") {
                ingest.remove(0)
            } else {
                releases.remove(0)
            };
            let _ = release.send(());
            settle().await;
        }
        // Ingest never waited behind the whole background queue, and background writers kept
        // their FIFO order between ingest's turns.
        assert_eq!(
            *order.lock().expect("order"),
            ["a", "ingest 1", "b", "ingest 2", "c", "d"]
        );
    }
}
