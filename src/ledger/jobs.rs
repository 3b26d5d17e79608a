//! The outbox: jobs that write to Monday or NPD, claimed with a lease and a fencing token.
//!
//! Owns: `outbox_jobs` rows. A job is `pending` until a worker claims it (`leased`, with
//! `lease_until` and a `lease_token` that increases on every claim), then `done` or `dead`, or back
//! to `pending` for a retry. Completion and failure name the token they were claimed with and
//! change nothing if it no longer matches (a stale worker is fenced off). Per entity, only the
//! oldest open job may be claimed, and none while one is leased: one write in flight per entity,
//! in order. A dead job blocks nothing.
//! May import: std, sqlx, uuid, crate::{domain, ledger}.

use sqlx::FromRow;

use crate::domain::entity::Side;
use crate::domain::job::{JobPayload, Operation, Priority, Sent};
use crate::domain::state::JobState;
use crate::ledger::tx::{Tx, with_tx};
use crate::ledger::{LedgerResult, Store, now_ms, with_pool};

/// One `outbox_jobs` row.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct JobRow {
    pub id: i64,
    pub entity_id: i64,
    pub target: Side,
    pub operation: Operation,
    pub payload: JobPayload,
    pub idempotency_key: String,
    pub priority: Priority,
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    pub next_attempt_at: i64,
    pub lease_until: Option<i64>,
    pub lease_token: Option<i64>,
    pub last_error: Option<String>,
    pub request_id: Option<String>,
    pub done_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const JOB_COLUMNS: &str = "id, entity_id, target, operation, payload, idempotency_key, priority, state, \
     attempts, max_attempts, next_attempt_at, lease_until, lease_token, last_error, request_id, \
     done_at, created_at, updated_at";

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub entity_id: i64,
    pub operation: Operation,
    pub payload: JobPayload,
    /// Higher runs first (admin pushes go ahead of routine sync).
    pub priority: Priority,
    pub max_attempts: i64,
    pub request_id: Option<&'a str>,
}

/// A fresh idempotency key: stable for all attempts of a job, new for a replayed one.
fn new_idempotency_key() -> String {
    format!("npd-monday-gateway:{}", uuid::Uuid::new_v4())
}

/// Enqueues a job with a fresh idempotency key, stable for all its attempts.
pub async fn enqueue(tx: &mut Tx, job: &NewJob<'_>) -> LedgerResult<i64> {
    let now = now_ms();
    let key = new_idempotency_key();
    let id: i64 = with_tx!(tx, conn => {
        sqlx::query_scalar(
            "insert into outbox_jobs (entity_id, target, operation, payload, idempotency_key, priority, state, \
             attempts, max_attempts, next_attempt_at, request_id, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $10, 0, $7, $8, $9, $8, $8) returning id",
        )
        .bind(job.entity_id)
        .bind(job.operation.target())
        .bind(job.operation)
        .bind(&job.payload)
        .bind(&key)
        .bind(job.priority)
        .bind(job.max_attempts)
        .bind(now)
        .bind(job.request_id)
        .bind(JobState::Pending)
        .fetch_one(conn)
        .await
    })?;
    Ok(id)
}

/// An open job of this entity, target and operation that has not been attempted yet: new changes
/// can join it (coalescing) since nothing of it has been sent.
pub async fn find_unsent(
    tx: &mut Tx,
    entity_id: i64,
    operation: Operation,
) -> LedgerResult<Option<JobRow>> {
    let sql = format!(
        "select {JOB_COLUMNS} from outbox_jobs where entity_id = $1 and operation = $2 \
         and state = 'pending' and attempts = 0 order by id desc limit 1"
    );
    let row = with_tx!(tx, conn => {
        sqlx::query_as::<_, JobRow>(&sql)
            .bind(entity_id)
            .bind(operation)
            .fetch_optional(conn)
            .await
    })?;
    Ok(row)
}

/// Open (pending or leased) jobs of one entity, oldest first.
pub async fn open_jobs(tx: &mut Tx, entity_id: i64) -> LedgerResult<Vec<JobRow>> {
    let sql = format!(
        "select {JOB_COLUMNS} from outbox_jobs where entity_id = $1 and state in ('pending', 'leased') order by id"
    );
    let rows = with_tx!(tx, conn => {
        sqlx::query_as::<_, JobRow>(&sql).bind(entity_id).fetch_all(conn).await
    })?;
    Ok(rows)
}

/// Replaces a job's payload (coalescing into an unsent job, or freezing what is sent on the first
/// attempt so every retry sends the same thing under the same idempotency key).
pub async fn set_payload(tx: &mut Tx, id: i64, payload: &JobPayload) -> LedgerResult<()> {
    with_tx!(tx, conn => {
        sqlx::query("update outbox_jobs set payload = $2, updated_at = $3 where id = $1")
            .bind(id)
            .bind(payload)
            .bind(now_ms())
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// The job, if it is still leased under `token`: the fence every outcome goes through.
pub async fn fenced(tx: &mut Tx, id: i64, token: i64) -> LedgerResult<Option<JobRow>> {
    let sql = format!(
        "select {JOB_COLUMNS} from outbox_jobs where id = $1 and state = 'leased' and lease_token = $2"
    );
    let row = with_tx!(tx, conn => {
        sqlx::query_as::<_, JobRow>(&sql).bind(id).bind(token).fetch_optional(conn).await
    })?;
    Ok(row)
}

/// Marks a leased job done; false when the lease token no longer matches (nothing changed).
pub async fn complete(tx: &mut Tx, id: i64, token: i64, result: &Sent) -> LedgerResult<bool> {
    let now = now_ms();
    let done = with_tx!(tx, conn => {
        sqlx::query(
            "update outbox_jobs set state = 'done', result = $3, done_at = $4, lease_until = null, last_error = null, \
             updated_at = $4 where id = $1 and state = 'leased' and lease_token = $2",
        )
        .bind(id)
        .bind(token)
        .bind(result)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(done == 1)
}

/// Puts a leased job back for a later attempt; false when fenced off.
pub async fn retry_later(
    tx: &mut Tx,
    id: i64,
    token: i64,
    error: &str,
    next_attempt_at: i64,
) -> LedgerResult<bool> {
    let done = with_tx!(tx, conn => {
        sqlx::query(
            "update outbox_jobs set state = 'pending', last_error = $3, next_attempt_at = $4, lease_until = null, \
             updated_at = $5 where id = $1 and state = 'leased' and lease_token = $2",
        )
        .bind(id)
        .bind(token)
        .bind(error)
        .bind(next_attempt_at)
        .bind(now_ms())
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(done == 1)
}

/// Moves a leased job to the dead letters with its error; false when fenced off.
pub async fn bury(tx: &mut Tx, id: i64, token: i64, error: &str) -> LedgerResult<bool> {
    let now = now_ms();
    let done = with_tx!(tx, conn => {
        sqlx::query(
            "update outbox_jobs set state = 'dead', last_error = $3, done_at = $4, lease_until = null, updated_at = $4 \
             where id = $1 and state = 'leased' and lease_token = $2",
        )
        .bind(id)
        .bind(token)
        .bind(error)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(done == 1)
}

impl Store {
    /// Claims up to `limit` runnable jobs for `worker`: pending, due, the oldest open job of their
    /// entity, and no job of that entity leased. Monday jobs are claimed only when their priority
    /// is at least `monday_floor` (the Monday budget's say: `None` for none at all). Each claimed
    /// job gets `lease_until = now + lease_ms`, one more attempt and a new lease token (its
    /// previous token plus one).
    pub async fn claim_jobs(
        &self,
        worker: &str,
        lease_ms: i64,
        limit: i64,
        monday_floor: Option<Priority>,
    ) -> LedgerResult<Vec<JobRow>> {
        let now = now_ms();
        let monday_min_priority = monday_floor.map_or(i64::MAX, Priority::as_i64);
        let pick = "select j.id from outbox_jobs j where j.state = 'pending' and j.next_attempt_at <= $1 \
             and (j.target <> 'monday' or j.priority >= $5) \
             and not exists (select 1 from outbox_jobs o where o.entity_id = j.entity_id and o.id < j.id \
                             and o.state in ('pending', 'leased')) \
             and not exists (select 1 from outbox_jobs o where o.entity_id = j.entity_id and o.state = 'leased') \
             order by j.priority desc, j.id limit $2";
        let update = |pick: &str| {
            format!(
                "update outbox_jobs set state = 'leased', lease_until = $3, lease_token = coalesce(lease_token, 0) + 1, \
                 leased_by = $4, attempts = attempts + 1, updated_at = $1 where id in ({pick}) returning {JOB_COLUMNS}"
            )
        };
        let mut rows = match self {
            // SQLite: the write lock of BEGIN IMMEDIATE makes the claim exclusive.
            Store::Sqlite(sqlite) => {
                let _turn = sqlite.write_turn().await;
                let mut tx = sqlite.pool.begin_with("begin immediate").await?;
                let rows = sqlx::query_as::<_, JobRow>(&update(pick))
                    .bind(now)
                    .bind(limit)
                    .bind(now + lease_ms)
                    .bind(worker)
                    .bind(monday_min_priority)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                rows
            }
            // PostgreSQL: replicas claim different rows without waiting for each other.
            Store::Postgres(pool) => {
                let sql = update(&format!("{pick} for update of j skip locked"));
                sqlx::query_as::<_, JobRow>(&sql)
                    .bind(now)
                    .bind(limit)
                    .bind(now + lease_ms)
                    .bind(worker)
                    .bind(monday_min_priority)
                    .fetch_all(pool)
                    .await?
            }
        };
        rows.sort_by_key(|j| (std::cmp::Reverse(j.priority), j.id));
        Ok(rows)
    }

    /// Returns jobs whose lease expired (a worker died or stalled) to `pending`. Their token stays,
    /// so the stalled worker's late outcome is refused.
    pub async fn reap_expired_leases(&self) -> LedgerResult<u64> {
        let now = now_ms();
        let done = with_pool!(self, pool => {
            sqlx::query(
                "update outbox_jobs set state = 'pending', lease_until = null, \
                 last_error = coalesce(last_error, 'lease expired'), updated_at = $1 \
                 where state = 'leased' and lease_until < $1",
            )
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done)
    }

    pub async fn job(&self, id: i64) -> LedgerResult<Option<JobRow>> {
        let sql = format!("select {JOB_COLUMNS} from outbox_jobs where id = $1");
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, JobRow>(&sql).bind(id).fetch_optional(pool).await
        })?;
        Ok(row)
    }

    /// Jobs of one entity, newest first (bounded by `limit`).
    pub async fn entity_jobs(&self, entity_id: i64, limit: i64) -> LedgerResult<Vec<JobRow>> {
        let sql = format!(
            "select {JOB_COLUMNS} from outbox_jobs where entity_id = $1 order by id desc limit $2"
        );
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, JobRow>(&sql).bind(entity_id).bind(limit).fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// Jobs in one state, oldest first (bounded by `limit`): `dead` lists the dead letters.
    pub async fn jobs_in_state(&self, state: JobState, limit: i64) -> LedgerResult<Vec<JobRow>> {
        let sql =
            format!("select {JOB_COLUMNS} from outbox_jobs where state = $1 order by id limit $2");
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, JobRow>(&sql).bind(state).bind(limit).fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// All jobs, oldest first (tests and diagnostics).
    pub async fn all_jobs(&self) -> LedgerResult<Vec<JobRow>> {
        let sql = format!("select {JOB_COLUMNS} from outbox_jobs order by id");
        let rows =
            with_pool!(self, pool => sqlx::query_as::<_, JobRow>(&sql).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Puts a dead job back to `pending`, due now, with as many attempts again as it had. It gets a
    /// new idempotency key: Monday caches the first answer to a key for 30 minutes, errors
    /// included, so the old key would only replay the old failure. A replayed create is still safe
    /// (the item is looked up by its `npd_id` column first); updates and archives are idempotent.
    /// False when the job is not dead.
    pub async fn replay_dead_job(&self, id: i64) -> LedgerResult<bool> {
        let now = now_ms();
        let key = new_idempotency_key();
        let done = with_pool!(self, pool => {
            sqlx::query(
                "update outbox_jobs set state = 'pending', max_attempts = attempts + max_attempts, \
                 next_attempt_at = $2, done_at = null, idempotency_key = $3, updated_at = $2 \
                 where id = $1 and state = 'dead'",
            )
            .bind(id)
            .bind(now)
            .bind(key)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }
}

/// Raises a job's priority (never lowers it).
pub async fn raise_priority(tx: &mut Tx, id: i64, priority: Priority) -> LedgerResult<()> {
    with_tx!(tx, conn => {
        sqlx::query("update outbox_jobs set priority = $2, updated_at = $3 where id = $1 and priority < $2")
            .bind(id)
            .bind(priority)
            .bind(now_ms())
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

impl Store {
    /// Gives a leased job back (graceful shutdown): due now, lease cleared, token kept so the
    /// abandoned call's late outcome cannot land.
    pub async fn release_lease(&self, id: i64, token: i64) -> LedgerResult<bool> {
        let now = now_ms();
        let done = with_pool!(self, pool => {
            sqlx::query(
                "update outbox_jobs set state = 'pending', lease_until = null, next_attempt_at = $3, updated_at = $3 \
                 where id = $1 and state = 'leased' and lease_token = $2",
            )
            .bind(id)
            .bind(token)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }
}

impl Store {
    /// How many jobs are pending or leased (due or not).
    pub async fn open_job_count(&self) -> LedgerResult<i64> {
        let n = with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("select count(*) from outbox_jobs where state in ('pending', 'leased')")
                .fetch_one(pool)
                .await
        })?;
        Ok(n)
    }
}
