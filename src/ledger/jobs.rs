//! The outbox: jobs that write to Monday or NPD, claimed with a lease and a fencing token.
//!
//! Owns: `outbox_jobs` rows. A job is `pending` until a worker claims it (`leased`, with
//! `lease_until` and a `lease_token` that increases on every claim), then `done` or `dead`, or back
//! to `pending` for a retry. Completion and failure name the token they were claimed with and
//! change nothing if it no longer matches (a stale worker is fenced off). Per entity and side,
//! only the oldest open job may be claimed, and none while a job of the entity is leased: one
//! write in flight per entity, in order per side. A job waiting for its retry holds back later
//! jobs to its own side only (an NPD outage does not stop the entity's Monday updates, nor a
//! spent Monday budget its NPD writes). A dead job blocks nothing. A job keeps its idempotency
//! key across retries, except after a rate-limit refusal and on replay from the dead letters,
//! which give it a new one.
//! May import: std, sqlx, uuid, crate::{domain, ledger}.

use sqlx::FromRow;

use crate::domain::entity::{EntityKind, MondayItemId, NpdId, Side};
use crate::domain::job::{JobPayload, Operation, Priority, Sent};
use crate::domain::state::JobState;
use crate::ledger::tx::{Tx, on_pool, on_tx};
use crate::ledger::{LedgerResult, Store, now_ms};

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
    /// When the oldest event this job carries was accepted (unix ms); None for work no event
    /// caused. The start of the sync latency.
    pub accepted_at: Option<i64>,
}

/// The `from … where …` of the jobs a claim may take, with the placeholders of `now`, the Monday
/// priority floor and the side (`''`: both; `one_side` says one is bound). Runnable: pending,
/// due, allowed by the floor, no older open job of the entity to the same side, no job of the
/// entity leased, and no older job of the entity to the other side that is runnable itself (of an
/// entity's two candidates the older goes first). A claim to one side walks
/// `outbox_jobs_claim_idx` in its order and stops at its limit; `+j.next_attempt_at` keeps SQLite
/// from choosing `outbox_jobs_ready_idx` instead (a range over every due job, then a sort).
fn runnable(now: &str, floor: &str, side: &str, one_side: bool) -> String {
    let side = if one_side {
        format!("j.target = {side}")
    } else {
        format!("{side} = ''")
    };
    format!(
        "from outbox_jobs j where j.state = 'pending' and +j.next_attempt_at <= {now} \
         and (j.target <> 'monday' or j.priority >= {floor}) and {side} \
         and not exists (select 1 from outbox_jobs o where o.entity_id = j.entity_id and o.id < j.id \
                         and o.target = j.target and o.state in ('pending', 'leased')) \
         and not exists (select 1 from outbox_jobs o where o.entity_id = j.entity_id and o.state = 'leased') \
         and not exists (select 1 from outbox_jobs o where o.entity_id = j.entity_id and o.id < j.id \
                         and o.target <> j.target and o.state = 'pending' and o.next_attempt_at <= {now} \
                         and (o.target <> 'monday' or o.priority >= {floor}) \
                         and not exists (select 1 from outbox_jobs p where p.entity_id = o.entity_id \
                                         and p.id < o.id and p.target = o.target \
                                         and p.state in ('pending', 'leased')))"
    )
}

const JOB_COLUMNS: &str = "id, entity_id, target, operation, payload, idempotency_key, priority, state, \
     attempts, max_attempts, next_attempt_at, lease_until, lease_token, last_error, request_id, \
     done_at, created_at, updated_at, accepted_at";

/// A dead letter: the dead job and the entity it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DeadLetterRow {
    #[sqlx(flatten)]
    pub job: JobRow,
    pub kind: EntityKind,
    pub npd_id: Option<NpdId>,
    pub monday_item_id: Option<MondayItemId>,
}

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
    /// When the event behind it was accepted (unix ms), if an event caused it.
    pub accepted_at: Option<i64>,
}

/// A fresh idempotency key: stable for all attempts of a job, new for a replayed one.
fn new_idempotency_key() -> String {
    format!("npd-monday-gateway:{}", uuid::Uuid::new_v4())
}

/// Enqueues a job with a fresh idempotency key, stable for all its attempts.
pub async fn enqueue(tx: &mut Tx, job: &NewJob<'_>) -> LedgerResult<i64> {
    let now = now_ms();
    Ok(on_tx!(
        tx,
        scalar i64,
        "insert into outbox_jobs (entity_id, target, operation, payload, idempotency_key, priority, state, \
         attempts, max_attempts, next_attempt_at, request_id, created_at, updated_at, accepted_at) \
         values ($1, $2, $3, $4, $5, $6, $10, 0, $7, $8, $9, $8, $8, $11) returning id",
        job.entity_id,
        job.operation.target(),
        job.operation,
        &job.payload,
        new_idempotency_key(),
        job.priority,
        job.max_attempts,
        now,
        job.request_id,
        JobState::Pending,
        job.accepted_at
    )?)
}

/// Notes that an event accepted at `accepted_at` joined job `id` (coalescing): the job keeps the
/// oldest acceptance it carries, so its latency counts from the event that waited longest.
pub async fn note_accepted(tx: &mut Tx, id: i64, accepted_at: i64) -> LedgerResult<()> {
    let sql = "update outbox_jobs set accepted_at = $2 where id = $1 \
               and (accepted_at is null or accepted_at > $2)";
    on_tx!(tx, execute, sql, id, accepted_at)?;
    Ok(())
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
    Ok(on_tx!(tx, optional JobRow, &sql, entity_id, operation)?)
}

/// Open (pending or leased) jobs of one entity, oldest first.
pub async fn open_jobs(tx: &mut Tx, entity_id: i64) -> LedgerResult<Vec<JobRow>> {
    let sql = format!(
        "select {JOB_COLUMNS} from outbox_jobs where entity_id = $1 and state in ('pending', 'leased') order by id"
    );
    Ok(on_tx!(tx, all JobRow, &sql, entity_id)?)
}

/// Replaces a job's payload (coalescing into an unsent job, or freezing what is sent on the first
/// attempt so every retry sends the same thing under the same idempotency key).
pub async fn set_payload(tx: &mut Tx, id: i64, payload: &JobPayload) -> LedgerResult<()> {
    let sql = "update outbox_jobs set payload = $2, updated_at = $3 where id = $1";
    on_tx!(tx, execute, sql, id, payload, now_ms())?;
    Ok(())
}

/// Raises a job's priority (never lowers it).
pub async fn raise_priority(tx: &mut Tx, id: i64, priority: Priority) -> LedgerResult<()> {
    let sql =
        "update outbox_jobs set priority = $2, updated_at = $3 where id = $1 and priority < $2";
    on_tx!(tx, execute, sql, id, priority, now_ms())?;
    Ok(())
}

/// `for update` on PostgreSQL (SQLite's write transaction already excludes every other writer).
fn row_lock(tx: &Tx) -> &'static str {
    match tx {
        Tx::Sqlite(..) => "",
        Tx::Postgres(_) => " for update",
    }
}

/// The job, if it is still leased under `token`: the fence every outcome goes through. The row
/// stays locked until the transaction ends, so the lease cannot be reaped and taken over between
/// this check and the outcome recorded after it (which would record a completion twice).
pub async fn fenced(tx: &mut Tx, id: i64, token: i64) -> LedgerResult<Option<JobRow>> {
    let sql = format!(
        "select {JOB_COLUMNS} from outbox_jobs where id = $1 and state = 'leased' and lease_token = $2{}",
        row_lock(tx)
    );
    Ok(on_tx!(tx, optional JobRow, &sql, id, token)?)
}

/// The end of a leased job's attempt, each a fenced update of its row.
enum Settle<'a> {
    /// Done, with the call's answer.
    Complete(&'a Sent),
    /// Back to pending, due at the time given.
    RetryAt(&'a str, i64),
    /// The same, under a new idempotency key (the attempt was refused unprocessed: a 429).
    RetryAtWithNewKey(&'a str, i64),
    /// To the dead letters.
    Bury(&'a str),
}

/// Applies `settle` to a job still leased under `token`; false when fenced off (nothing changed).
async fn settle(tx: &mut Tx, id: i64, token: i64, settle: Settle<'_>) -> LedgerResult<bool> {
    let now = now_ms();
    let fence = "where id = $1 and state = 'leased' and lease_token = $2";
    let done = match settle {
        Settle::Complete(result) => {
            let sql = format!(
                "update outbox_jobs set state = 'done', result = $3, done_at = $4, lease_until = null, \
                 last_error = null, updated_at = $4 {fence}"
            );
            on_tx!(tx, execute, &sql, id, token, result, now)?
        }
        Settle::RetryAt(error, at) => {
            let sql = format!(
                "update outbox_jobs set state = 'pending', last_error = $3, next_attempt_at = $4, \
                 lease_until = null, updated_at = $5 {fence}"
            );
            on_tx!(tx, execute, &sql, id, token, error, at, now)?
        }
        Settle::RetryAtWithNewKey(error, at) => {
            let sql = format!(
                "update outbox_jobs set state = 'pending', last_error = $3, next_attempt_at = $4, \
                 lease_until = null, idempotency_key = $6, updated_at = $5 {fence}"
            );
            let key = new_idempotency_key();
            on_tx!(tx, execute, &sql, id, token, error, at, now, key)?
        }
        Settle::Bury(error) => {
            let sql = format!(
                "update outbox_jobs set state = 'dead', last_error = $3, done_at = $4, lease_until = null, \
                 updated_at = $4 {fence}"
            );
            on_tx!(tx, execute, &sql, id, token, error, now)?
        }
    };
    Ok(done == 1)
}

/// Marks a leased job done; false when the lease token no longer matches (nothing changed).
pub async fn complete(tx: &mut Tx, id: i64, token: i64, result: &Sent) -> LedgerResult<bool> {
    settle(tx, id, token, Settle::Complete(result)).await
}

/// Puts a leased job back for a later attempt; false when fenced off.
pub async fn retry_later(
    tx: &mut Tx,
    id: i64,
    token: i64,
    error: &str,
    next_attempt_at: i64,
) -> LedgerResult<bool> {
    settle(tx, id, token, Settle::RetryAt(error, next_attempt_at)).await
}

/// Like `retry_later`, with a new idempotency key: after a 429 Monday did not process the
/// request, and a retry under the same key would be answered with the cached refusal.
pub async fn retry_later_with_new_key(
    tx: &mut Tx,
    id: i64,
    token: i64,
    error: &str,
    next_attempt_at: i64,
) -> LedgerResult<bool> {
    settle(
        tx,
        id,
        token,
        Settle::RetryAtWithNewKey(error, next_attempt_at),
    )
    .await
}

/// The dead job `id`, locked for a replay (`None` when no job by that id is dead).
pub async fn dead(tx: &mut Tx, id: i64) -> LedgerResult<Option<JobRow>> {
    let sql = format!(
        "select {JOB_COLUMNS} from outbox_jobs where id = $1 and state = 'dead'{}",
        row_lock(tx)
    );
    Ok(on_tx!(tx, optional JobRow, &sql, id)?)
}

/// Puts a dead job back to `pending`, due now, with a full set of attempts again: its limit
/// becomes its attempts so far plus `allowance` (what a new job gets, `[sync] max_attempts`), so
/// the API shows the real limit, and a second replay gives `allowance` again, not the grown
/// limit of the first. It gets a new idempotency
/// key: Monday caches the first answer to a key for 30 minutes, errors included, so the old key
/// would only replay the old failure. A replayed create is still safe (the item is looked up by
/// its `npd_id` column first); updates and archives are idempotent. False when it is not dead.
pub async fn replay(tx: &mut Tx, id: i64, allowance: i64) -> LedgerResult<bool> {
    let sql = "update outbox_jobs set state = 'pending', max_attempts = attempts + $4, \
               next_attempt_at = $2, done_at = null, idempotency_key = $3, updated_at = $2 \
               where id = $1 and state = 'dead'";
    let allowance = allowance.max(1);
    Ok(on_tx!(
        tx,
        execute,
        sql,
        id,
        now_ms(),
        new_idempotency_key(),
        allowance
    )? == 1)
}

/// Moves a leased job to the dead letters with its error; false when fenced off.
pub async fn bury(tx: &mut Tx, id: i64, token: i64, error: &str) -> LedgerResult<bool> {
    settle(tx, id, token, Settle::Bury(error)).await
}

impl Store {
    /// Claims up to `limit` runnable jobs for `worker`: pending, due, the oldest open job of their
    /// entity to their side, no job of that entity leased, and at most one job per entity (the
    /// older of its Monday and NPD candidates). Monday jobs are claimed only when their priority
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
        self.claim_jobs_to(None, worker, lease_ms, limit, monday_floor)
            .await
    }

    /// `claim_jobs` for the jobs to one side only (`None`: both): the dispatcher claims for each
    /// side into that side's own slots, so jobs stuck on a slow side never take the other's.
    pub async fn claim_jobs_to(
        &self,
        side: Option<Side>,
        worker: &str,
        lease_ms: i64,
        limit: i64,
        monday_floor: Option<Priority>,
    ) -> LedgerResult<Vec<JobRow>> {
        let now = now_ms();
        let pick = format!(
            "select j.id {} order by j.priority desc, j.id limit $2",
            runnable("$1", "$5", "$6", side.is_some())
        );
        let side = side.map_or("", Side::as_str);
        let monday_min_priority = monday_floor.map_or(i64::MAX, Priority::as_i64);
        let update = |pick: &str| {
            format!(
                "update outbox_jobs set state = 'leased', lease_until = $3, lease_token = coalesce(lease_token, 0) + 1, \
                 leased_by = $4, attempts = attempts + 1, updated_at = $1 where id in ({pick}) returning {JOB_COLUMNS}"
            )
        };
        let lease_until = now + lease_ms;
        let mut rows = match self {
            // SQLite: the write lock of BEGIN IMMEDIATE makes the claim exclusive.
            Store::Sqlite(_) => {
                let mut tx = self.begin().await?;
                let sql = update(&pick);
                let rows = on_tx!(&mut tx, all JobRow, &sql, now, limit, lease_until, worker, monday_min_priority, side)?;
                tx.commit().await?;
                rows
            }
            // PostgreSQL: replicas claim different rows without waiting for each other.
            Store::Postgres(_) => {
                let sql = update(&format!("{pick} for update of j skip locked"));
                on_pool!(self, all JobRow, &sql, now, limit, lease_until, worker, monday_min_priority, side)?
            }
        };
        rows.sort_by_key(|j| (std::cmp::Reverse(j.priority), j.id));
        Ok(rows)
    }

    /// What `claim_jobs_to` would claim now, without claiming it: how many jobs (at most `limit`)
    /// and the highest priority among them. The dispatcher asks before it sends a partial Monday
    /// batch while another is in flight (it waits for a full one unless an admin's job is ready).
    pub async fn ready_jobs_to(
        &self,
        side: Side,
        limit: i64,
        monday_floor: Option<Priority>,
    ) -> LedgerResult<(i64, Option<Priority>)> {
        let sql = format!(
            "select count(*), max(r.priority) from (select j.priority {} \
             order by j.priority desc, j.id limit $4) r",
            runnable("$1", "$2", "$3", true)
        );
        let monday_min_priority = monday_floor.map_or(i64::MAX, Priority::as_i64);
        let (ready, top): (i64, Option<i64>) = on_pool!(
            self,
            one(i64, Option<i64>),
            &sql,
            now_ms(),
            monday_min_priority,
            side.as_str(),
            limit
        )?;
        Ok((ready, top.map(Priority::from_i64)))
    }

    /// Returns jobs whose lease expired (a worker died or stalled) to `pending`. Their token stays,
    /// so the stalled worker's late outcome is refused. A lease that was its job's last attempt
    /// stays: claimed again it would pass `max_attempts`, so the dispatcher's reaper settles it
    /// as that attempt's failure (`expired_last_attempts`).
    pub async fn reap_expired_leases(&self) -> LedgerResult<u64> {
        let sql = "update outbox_jobs set state = 'pending', lease_until = null, \
                   last_error = coalesce(last_error, 'lease expired'), updated_at = $1 \
                   where state = 'leased' and lease_until < $1 and attempts < max_attempts";
        Ok(on_pool!(self, execute, sql, now_ms())?)
    }

    /// Expired leases that were their job's last attempt, oldest first (at most `limit`): still
    /// leased under the token they were claimed with, for the reaper to settle.
    pub async fn expired_last_attempts(&self, limit: i64) -> LedgerResult<Vec<JobRow>> {
        let sql = format!(
            "select {JOB_COLUMNS} from outbox_jobs where state = 'leased' and lease_until < $1 \
             and attempts >= max_attempts order by id limit $2"
        );
        Ok(on_pool!(self, all JobRow, &sql, now_ms(), limit)?)
    }

    /// Gives a leased job back (graceful shutdown): due now, lease cleared, token kept so the
    /// abandoned call's late outcome cannot land. A lease on the job's last attempt is kept
    /// (false): it expires, and the reaper settles it (`reap_expired_leases`).
    pub async fn release_lease(&self, id: i64, token: i64) -> LedgerResult<bool> {
        let sql = "update outbox_jobs set state = 'pending', lease_until = null, next_attempt_at = $3, \
                   updated_at = $3 where id = $1 and state = 'leased' and lease_token = $2 \
                   and attempts < max_attempts";
        Ok(on_pool!(self, execute, sql, id, token, now_ms())? == 1)
    }

    /// Gives a leased job back without counting the attempt (it never reached the remote: the
    /// Monday budget is spent until `until`); token kept, so nothing of this lease can land.
    pub async fn defer(&self, id: i64, token: i64, until: i64) -> LedgerResult<bool> {
        let sql = "update outbox_jobs set state = 'pending', lease_until = null, next_attempt_at = $3, \
                   attempts = attempts - 1, updated_at = $4 \
                   where id = $1 and state = 'leased' and lease_token = $2";
        Ok(on_pool!(self, execute, sql, id, token, until, now_ms())? == 1)
    }

    pub async fn job(&self, id: i64) -> LedgerResult<Option<JobRow>> {
        let sql = format!("select {JOB_COLUMNS} from outbox_jobs where id = $1");
        Ok(on_pool!(self, optional JobRow, &sql, id)?)
    }

    /// Jobs of one entity, newest first (bounded by `limit`).
    pub async fn entity_jobs(&self, entity_id: i64, limit: i64) -> LedgerResult<Vec<JobRow>> {
        let sql = format!(
            "select {JOB_COLUMNS} from outbox_jobs where entity_id = $1 order by id desc limit $2"
        );
        Ok(on_pool!(self, all JobRow, &sql, entity_id, limit)?)
    }

    /// Jobs in one state, oldest first (bounded by `limit`): `dead` lists the dead letters.
    pub async fn jobs_in_state(&self, state: JobState, limit: i64) -> LedgerResult<Vec<JobRow>> {
        let sql =
            format!("select {JOB_COLUMNS} from outbox_jobs where state = $1 order by id limit $2");
        Ok(on_pool!(self, all JobRow, &sql, state, limit)?)
    }

    /// One page of the dead letters, each with its entity: the dead jobs after job `after`
    /// (0: from the start), oldest first, at most `limit` (keyset pagination over
    /// `outbox_jobs_state_id_idx`).
    pub async fn dead_letters(&self, after: i64, limit: i64) -> LedgerResult<Vec<DeadLetterRow>> {
        let columns = JOB_COLUMNS
            .split(", ")
            .map(|c| format!("j.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "select {columns}, e.kind, e.npd_id, e.monday_item_id from outbox_jobs j \
             join entities e on e.id = j.entity_id \
             where j.state = 'dead' and j.id > $1 order by j.id limit $2"
        );
        Ok(on_pool!(self, all DeadLetterRow, &sql, after, limit)?)
    }

    /// All jobs, oldest first (tests and diagnostics).
    pub async fn all_jobs(&self) -> LedgerResult<Vec<JobRow>> {
        let sql = format!("select {JOB_COLUMNS} from outbox_jobs order by id");
        Ok(on_pool!(self, all JobRow, &sql)?)
    }

    /// How many jobs are pending or leased (due or not).
    pub async fn open_job_count(&self) -> LedgerResult<i64> {
        let sql = "select count(*) from outbox_jobs where state in ('pending', 'leased')";
        Ok(on_pool!(self, scalar i64, sql)?)
    }
}
