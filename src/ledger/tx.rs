//! One transaction over either backend.
//!
//! Owns: `Tx` and `with_tx!`, so ledger functions that take part in a larger unit of work (process
//! one event, complete one job) are written once for both stores, and `statement!` with its
//! `on_tx!` / `on_pool!` forms: one statement, its arguments bound in order, on either backend.
//! May import: sqlx, crate::ledger.

use crate::ledger::{LedgerResult, Store, WriteTurn};
use sqlx::{Postgres, Sqlite, Transaction};

/// An open transaction on SQLite (a write transaction holds this process's write turn and is
/// begun `IMMEDIATE`, so it holds SQLite's write lock) or PostgreSQL.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>, Option<WriteTurn>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `$body` with `$conn` bound to the transaction's concrete connection.
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::ledger::tx::Tx::Sqlite(t, _) => {
                let $conn = &mut **t;
                $body
            }
            $crate::ledger::tx::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use with_tx;

/// One statement with its arguments bound in order, on a concrete connection or pool `$conn`:
/// `execute` (rows affected), `optional T` / `one T` / `all T` (rows as `T: FromRow`),
/// `scalar T` / `scalar_optional T` (one column).
macro_rules! statement {
    ($conn:expr, execute, $sql:expr $(, $arg:expr)* $(,)?) => {
        sqlx::query($sql)$(.bind($arg))*.execute($conn).await.map(|r| r.rows_affected())
    };
    ($conn:expr, optional $row:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        sqlx::query_as::<_, $row>($sql)$(.bind($arg))*.fetch_optional($conn).await
    };
    ($conn:expr, one $row:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        sqlx::query_as::<_, $row>($sql)$(.bind($arg))*.fetch_one($conn).await
    };
    ($conn:expr, all $row:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        sqlx::query_as::<_, $row>($sql)$(.bind($arg))*.fetch_all($conn).await
    };
    ($conn:expr, scalar $t:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        sqlx::query_scalar::<_, $t>($sql)$(.bind($arg))*.fetch_one($conn).await
    };
    ($conn:expr, scalar_optional $t:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        sqlx::query_scalar::<_, $t>($sql)$(.bind($arg))*.fetch_optional($conn).await
    };
}
pub(crate) use statement;

/// `statement!` inside a transaction: `on_tx!(tx, execute, "update …", a, b)?`.
macro_rules! on_tx {
    ($tx:expr, $($rest:tt)*) => {
        $crate::ledger::tx::with_tx!($tx, conn => $crate::ledger::tx::statement!(conn, $($rest)*))
    };
}
pub(crate) use on_tx;

/// `statement!` on the store's pool: `on_pool!(self, all JobRow, &sql, limit)?`.
macro_rules! on_pool {
    ($store:expr, $($rest:tt)*) => {
        $crate::ledger::with_pool!($store, pool => $crate::ledger::tx::statement!(pool, $($rest)*))
    };
}
pub(crate) use on_pool;

impl Store {
    /// Begins a write transaction. On SQLite the write lock is taken up front (`BEGIN IMMEDIATE`),
    /// so the transaction cannot fail later on a lock upgrade.
    pub async fn begin(&self) -> LedgerResult<Tx> {
        Ok(match self {
            Store::Sqlite(sqlite) => {
                let turn = sqlite.write_turn().await;
                Tx::Sqlite(sqlite.pool.begin_with("begin immediate").await?, Some(turn))
            }
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }
}

impl Store {
    /// Begins a transaction for consistent reads (SQLite: deferred, takes no write lock).
    pub async fn begin_read(&self) -> LedgerResult<Tx> {
        Ok(match self {
            Store::Sqlite(sqlite) => Tx::Sqlite(sqlite.pool.begin().await?, None),
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }
}

impl Tx {
    pub async fn rollback(self) -> LedgerResult<()> {
        match self {
            Tx::Sqlite(t, _turn) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    pub async fn commit(self) -> LedgerResult<()> {
        match self {
            Tx::Sqlite(t, _turn) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Whether write transactions of this store run one at a time (SQLite), so locks between
    /// them are unnecessary.
    pub fn is_serial(&self) -> bool {
        matches!(self, Tx::Sqlite(..))
    }

    /// Serialises a unit of work across every replica sharing a PostgreSQL ledger (a
    /// transaction-scoped advisory lock, released at commit). Returns false when another replica
    /// holds it. Advisory locks are database-wide, so the key is mixed with the ledger's schema:
    /// gateways on other schemas of the same database (other tenants, tests) never wait for each
    /// other. On SQLite the transaction's write lock already serialises, so it is always true.
    pub async fn try_exclusive(&mut self, key: i64) -> LedgerResult<bool> {
        match self {
            Tx::Sqlite(..) => Ok(true),
            Tx::Postgres(t) => Ok(sqlx::query_scalar::<_, bool>(
                "select pg_try_advisory_xact_lock($1 # hashtext(current_schema())::bigint)",
            )
            .bind(key)
            .fetch_one(&mut **t)
            .await?),
        }
    }
}
