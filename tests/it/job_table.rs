//! T5 (RELIABILITY.md (c)): the outbox's job table against an in-memory model, on both stores.
//!
//! proptest generates sequences of operations (enqueue, claim, complete, fail under the real
//! retry policy, a 429, a permanent failure, a stale worker's outcome, reap, release, defer,
//! replay); each is applied to the real ledger and to the model, and after every step the table
//! must equal the model and the invariants hold: no job both done and claimable, `attempts`
//! never above `max_attempts`, a leased job claimable again only once its lease expired (and the
//! reaper ran), a dead letter never claimed until replayed, and a replay a full set of attempts.
//!
//! The ledger's clock is the wall clock (`now_ms`, not injectable), so the test drives time
//! through what the API takes: a lease of -1 ms is over at once, one of an hour outlives the case;
//! a retry is due at 0 or parked a day ahead.

use npd_monday_gateway::connectors::{ConnectorError, FailureClass};
use npd_monday_gateway::domain::entity::{EntityKind, NpdId, Side};
use npd_monday_gateway::domain::job::{JobPayload, Operation, Priority, Sent};
use npd_monday_gateway::domain::state::{EntityStatus, JobState};
use npd_monday_gateway::ledger::entities::{self, NewEntity};
use npd_monday_gateway::ledger::jobs::{self, JobRow, NewJob};
use npd_monday_gateway::ledger::{Store, now_ms};
use npd_monday_gateway::sync::retry::{RetryPolicy, Verdict};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::helpers::{Backend, migrated_store};
use crate::store_tests;

const ENTITIES: usize = 3;
const LONG_LEASE_MS: i64 = 3_600_000;
const PARKED_MS: i64 = 86_400_000;
const CASES: u32 = 64;
const STEPS: usize = 40;

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        entity: usize,
        max_attempts: i64,
        target: Side,
    },
    Claim {
        limit: i64,
        expired: bool,
    },
    Complete(Index),
    Fail {
        pick: Index,
        due: bool,
        rate_limited: bool,
    },
    FailPermanently(Index),
    StaleOutcome(Index),
    Reap,
    Release(Index),
    Defer {
        pick: Index,
        due: bool,
    },
    Replay(Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..ENTITIES, 1i64..=3, prop::bool::ANY)
            .prop_map(|(entity, max_attempts, to_npd)| Op::Enqueue {
                entity,
                max_attempts,
                target: if to_npd { Side::Npd } else { Side::Monday },
            }),
        4 => (1i64..=4, prop::bool::weighted(0.3))
            .prop_map(|(limit, expired)| Op::Claim { limit, expired }),
        2 => any::<Index>().prop_map(Op::Complete),
        3 => (any::<Index>(), prop::bool::weighted(0.8), prop::bool::weighted(0.25))
            .prop_map(|(pick, due, rate_limited)| Op::Fail { pick, due, rate_limited }),
        1 => any::<Index>().prop_map(Op::FailPermanently),
        1 => any::<Index>().prop_map(Op::StaleOutcome),
        2 => Just(Op::Reap),
        1 => any::<Index>().prop_map(Op::Release),
        1 => (any::<Index>(), any::<bool>()).prop_map(|(pick, due)| Op::Defer { pick, due }),
        2 => any::<Index>().prop_map(Op::Replay),
    ]
}

/// What the model knows of one job.
#[derive(Debug, Clone)]
struct ModelJob {
    id: i64,
    entity: usize,
    target: Side,
    state: JobState,
    attempts: i64,
    max_attempts: i64,
    /// The attempts it was enqueued with: what a replay must give again.
    allowance: i64,
    /// The last lease token (0: never claimed).
    token: i64,
    /// Leased with a lease that is already over.
    lease_over: bool,
    /// Pending and due now (not parked a day ahead).
    due: bool,
    key: String,
}

#[derive(Default)]
struct Model {
    jobs: Vec<ModelJob>,
    entities: Vec<i64>,
}

impl Model {
    /// A claim would take this job: pending, due, the oldest open job of its entity to its side,
    /// no job of its entity leased, and no older job of its entity to the other side that could
    /// run itself (one job per entity at a time, the older first).
    fn claimable(&self, job: &ModelJob) -> bool {
        let first_of_its_side = |job: &ModelJob| {
            job.state == JobState::Pending
                && job.due
                && !self.jobs.iter().any(|j| {
                    j.entity == job.entity
                        && j.target == job.target
                        && j.id < job.id
                        && matches!(j.state, JobState::Pending | JobState::Leased)
                })
        };
        first_of_its_side(job)
            && !self.jobs.iter().any(|j| {
                j.entity == job.entity
                    && (j.state == JobState::Leased || (j.id < job.id && first_of_its_side(j)))
            })
    }

    fn in_state(&self, state: JobState, pick: &Index) -> Option<usize> {
        let found: Vec<usize> = (0..self.jobs.len())
            .filter(|&i| self.jobs[i].state == state)
            .collect();
        (!found.is_empty()).then(|| found[pick.index(found.len())])
    }
}

async fn new_entities(store: &Store) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in 0..ENTITIES {
        let mut tx = store.begin().await.expect("tx");
        let entity = NewEntity {
            kind: EntityKind::Contact,
            npd_id: Some(NpdId(uuid::Uuid::from_u128(n as u128 + 1))),
            monday_item_id: None,
            board_id: None,
            sync_enabled: true,
            status: EntityStatus::Pending,
        };
        ids.push(entities::insert(&mut tx, &entity).await.expect("entity").id);
        tx.commit().await.expect("commit");
    }
    ids
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        base: std::time::Duration::from_millis(100),
        cap: std::time::Duration::from_secs(60),
        max_attempts: 3,
    }
}

fn failure(class: FailureClass, rate_limited: bool) -> ConnectorError {
    ConnectorError {
        system: Side::Monday,
        class,
        status: Some(if rate_limited { 429 } else { 503 }),
        code: None,
        message: "refused by the test".into(),
        retry_after: None,
    }
}

type Step = Result<(), TestCaseError>;

async fn enqueue(
    store: &Store,
    model: &mut Model,
    entity: usize,
    max_attempts: i64,
    target: Side,
) -> Step {
    let mut tx = store.begin().await.expect("tx");
    let operation = match target {
        Side::Monday => Operation::PushItem,
        Side::Npd => Operation::PatchNpd,
    };
    let job = NewJob {
        entity_id: model.entities[entity],
        operation,
        payload: JobPayload::default(),
        priority: Priority::Live,
        max_attempts,
        request_id: None,
        accepted_at: None,
    };
    let id = jobs::enqueue(&mut tx, &job).await.expect("enqueue");
    tx.commit().await.expect("commit");
    let row = store.job(id).await.expect("job").expect("stored");
    model.jobs.push(ModelJob {
        id,
        entity,
        target,
        state: JobState::Pending,
        attempts: 0,
        max_attempts,
        allowance: max_attempts,
        token: 0,
        lease_over: false,
        due: true,
        key: row.idempotency_key,
    });
    Ok(())
}

async fn claim(store: &Store, model: &mut Model, limit: i64, expired: bool) -> Step {
    let expected: Vec<i64> = model
        .jobs
        .iter()
        .filter(|j| model.claimable(j))
        .map(|j| j.id)
        .take(usize::try_from(limit).unwrap_or(0))
        .collect();
    let lease = if expired { -1 } else { LONG_LEASE_MS };
    let claimed = store
        .claim_jobs("model", lease, limit, Some(Priority::Backfill))
        .await
        .expect("claim");
    let got: Vec<i64> = claimed.iter().map(|j| j.id).collect();
    prop_assert_eq!(&got, &expected, "claimed jobs differ from the model's");
    for row in &claimed {
        let job = model
            .jobs
            .iter_mut()
            .find(|j| j.id == row.id)
            .expect("known");
        job.state = JobState::Leased;
        job.attempts += 1;
        job.token += 1;
        job.lease_over = expired;
        prop_assert_eq!(
            row.lease_token,
            Some(job.token),
            "a claim raises the token by one"
        );
    }
    Ok(())
}

async fn complete(store: &Store, model: &mut Model, pick: &Index) -> Step {
    let Some(i) = model.in_state(JobState::Leased, pick) else {
        return Ok(());
    };
    let job = &mut model.jobs[i];
    let mut tx = store.begin().await.expect("tx");
    let done = jobs::complete(&mut tx, job.id, job.token, &Sent::Nothing)
        .await
        .expect("complete");
    tx.commit().await.expect("commit");
    prop_assert!(done, "the holder of the lease completes its job");
    job.state = JobState::Done;
    Ok(())
}

/// A failed attempt, settled as the dispatcher does: the retry policy's verdict, then a retry
/// (with a new key after a 429) or the dead letters.
async fn fail(
    store: &Store,
    model: &mut Model,
    pick: &Index,
    error: ConnectorError,
    due: bool,
) -> Step {
    let Some(i) = model.in_state(JobState::Leased, pick) else {
        return Ok(());
    };
    let job = &mut model.jobs[i];
    let verdict = policy().verdict(job.attempts, job.max_attempts, &error, &mut rand::rng());
    let at = if due { 0 } else { now_ms() + PARKED_MS };
    let mut tx = store.begin().await.expect("tx");
    let settled = match verdict {
        Verdict::RetryAfter(_) if error.is_rate_limited() => {
            jobs::retry_later_with_new_key(&mut tx, job.id, job.token, "429", at).await
        }
        Verdict::RetryAfter(_) => jobs::retry_later(&mut tx, job.id, job.token, "503", at).await,
        Verdict::Dead(ref reason) => jobs::bury(&mut tx, job.id, job.token, reason).await,
    }
    .expect("settle");
    tx.commit().await.expect("commit");
    prop_assert!(settled, "the holder of the lease settles its job");
    let retryable = error.class == FailureClass::Retryable && job.attempts < job.max_attempts;
    prop_assert_eq!(matches!(verdict, Verdict::RetryAfter(_)), retryable);
    job.state = if retryable {
        JobState::Pending
    } else {
        JobState::Dead
    };
    job.due = due;
    if retryable && error.is_rate_limited() {
        expect_new_key(store, job).await?;
    }
    Ok(())
}

async fn expect_new_key(store: &Store, job: &mut ModelJob) -> Step {
    let row = store.job(job.id).await.expect("job").expect("stored");
    prop_assert_ne!(
        &row.idempotency_key,
        &job.key,
        "job {} keeps its old key",
        job.id
    );
    job.key = row.idempotency_key;
    Ok(())
}

/// A worker whose lease was taken over (or that never held this one) reports: refused, and
/// nothing changes (the table is compared with the model after the step).
async fn stale_outcome(store: &Store, model: &Model, pick: &Index) -> Step {
    let claimed: Vec<&ModelJob> = model.jobs.iter().filter(|j| j.token > 0).collect();
    if claimed.is_empty() {
        return Ok(());
    }
    let job = claimed[pick.index(claimed.len())];
    let token = if job.state == JobState::Leased {
        job.token - 1
    } else {
        job.token
    };
    let mut tx = store.begin().await.expect("tx");
    let completed = jobs::complete(&mut tx, job.id, token, &Sent::Nothing).await;
    let retried = jobs::retry_later(&mut tx, job.id, token, "stale", 0).await;
    let buried = jobs::bury(&mut tx, job.id, token, "stale").await;
    tx.commit().await.expect("commit");
    for (what, landed) in [
        ("complete", completed),
        ("retry", retried),
        ("bury", buried),
    ] {
        prop_assert!(
            !landed.expect("settle"),
            "a stale {} of job {} landed",
            what,
            job.id
        );
    }
    Ok(())
}

/// The ledger's reaper returns expired leases to the queue, except one that was its job's last
/// attempt; that one the dispatcher's reaper settles as the attempt's failure (here: the retry
/// policy's verdict, then `bury` under the lease's token), so no job passes its limit.
async fn reap(store: &Store, model: &mut Model) -> Step {
    let reaped = store.reap_expired_leases().await.expect("reap");
    let last = store
        .expired_last_attempts(100)
        .await
        .expect("last attempts");
    let error = failure(FailureClass::Retryable, false);
    for row in &last {
        let verdict = policy().verdict(row.attempts, row.max_attempts, &error, &mut rand::rng());
        prop_assert!(
            matches!(verdict, Verdict::Dead(_)),
            "job {} could retry",
            row.id
        );
        let mut tx = store.begin().await.expect("tx");
        let token = row.lease_token.unwrap_or(0);
        let buried = jobs::bury(&mut tx, row.id, token, "lease expired")
            .await
            .expect("bury");
        tx.commit().await.expect("commit");
        prop_assert!(buried);
    }
    let (mut returned, mut settled) = (Vec::new(), Vec::new());
    for job in model.jobs.iter_mut() {
        if job.state == JobState::Leased && job.lease_over {
            if job.attempts < job.max_attempts {
                job.state = JobState::Pending;
                returned.push(job.id);
            } else {
                job.state = JobState::Dead;
                settled.push(job.id);
            }
        }
    }
    prop_assert_eq!(
        reaped,
        returned.len() as u64,
        "returned to the queue: {:?}",
        returned
    );
    let last: Vec<i64> = last.iter().map(|j| j.id).collect();
    prop_assert_eq!(last, settled, "expired last attempts");
    Ok(())
}

/// Graceful shutdown gives a lease back, unless it is the job's last attempt (kept until it
/// expires, then settled by the reaper).
async fn release(store: &Store, model: &mut Model, pick: &Index) -> Step {
    let Some(i) = model.in_state(JobState::Leased, pick) else {
        return Ok(());
    };
    let job = &mut model.jobs[i];
    let released = store
        .release_lease(job.id, job.token)
        .await
        .expect("release");
    let last = job.attempts >= job.max_attempts;
    prop_assert_eq!(
        released,
        !last,
        "release of job {} at {} of {}",
        job.id,
        job.attempts,
        job.max_attempts
    );
    if released {
        job.state = JobState::Pending;
        job.due = true;
    }
    Ok(())
}

async fn defer(store: &Store, model: &mut Model, pick: &Index, due: bool) -> Step {
    let Some(i) = model.in_state(JobState::Leased, pick) else {
        return Ok(());
    };
    let job = &mut model.jobs[i];
    let until = if due { 0 } else { now_ms() + PARKED_MS };
    let deferred = store.defer(job.id, job.token, until).await.expect("defer");
    prop_assert!(deferred);
    job.state = JobState::Pending;
    job.attempts -= 1;
    job.due = due;
    Ok(())
}

async fn replay(store: &Store, model: &mut Model, pick: &Index) -> Step {
    let Some(i) = model.in_state(JobState::Dead, pick) else {
        if let Some(job) = model.jobs.first() {
            let mut tx = store.begin().await.expect("tx");
            let replayed = jobs::replay(&mut tx, job.id, job.allowance)
                .await
                .expect("replay");
            tx.commit().await.expect("commit");
            prop_assert!(!replayed, "job {} is not dead and was replayed", job.id);
        }
        return Ok(());
    };
    let job = &mut model.jobs[i];
    let mut tx = store.begin().await.expect("tx");
    let replayed = jobs::replay(&mut tx, job.id, job.allowance)
        .await
        .expect("replay");
    tx.commit().await.expect("commit");
    prop_assert!(replayed);
    job.state = JobState::Pending;
    job.due = true;
    job.max_attempts = job.attempts + job.allowance;
    expect_new_key(store, job).await
}

async fn apply(store: &Store, model: &mut Model, op: &Op) -> Step {
    match op {
        Op::Enqueue {
            entity,
            max_attempts,
            target,
        } => enqueue(store, model, *entity, *max_attempts, *target).await,
        Op::Claim { limit, expired } => claim(store, model, *limit, *expired).await,
        Op::Complete(pick) => complete(store, model, pick).await,
        Op::Fail {
            pick,
            due,
            rate_limited,
        } => {
            let error = failure(FailureClass::Retryable, *rate_limited);
            fail(store, model, pick, error, *due).await
        }
        Op::FailPermanently(pick) => {
            let error = failure(FailureClass::Permanent, false);
            fail(store, model, pick, error, true).await
        }
        Op::StaleOutcome(pick) => stale_outcome(store, model, pick).await,
        Op::Reap => reap(store, model).await,
        Op::Release(pick) => release(store, model, pick).await,
        Op::Defer { pick, due } => defer(store, model, pick, *due).await,
        Op::Replay(pick) => replay(store, model, pick).await,
    }
}

/// The table equals the model, and the invariants hold for every row.
fn check(rows: &[JobRow], model: &Model) -> Step {
    prop_assert_eq!(rows.len(), model.jobs.len());
    for (row, job) in rows.iter().zip(&model.jobs) {
        prop_assert_eq!(row.id, job.id);
        prop_assert_eq!(row.state, job.state, "state of job {}", job.id);
        prop_assert_eq!(row.attempts, job.attempts, "attempts of job {}", job.id);
        prop_assert_eq!(
            row.max_attempts,
            job.max_attempts,
            "limit of job {}",
            job.id
        );
        prop_assert_eq!(
            row.lease_token.unwrap_or(0),
            job.token,
            "token of job {}",
            job.id
        );
        prop_assert_eq!(&row.idempotency_key, &job.key, "key of job {}", job.id);
        prop_assert!(
            row.attempts <= row.max_attempts,
            "job {} made {} attempts of {}",
            row.id,
            row.attempts,
            row.max_attempts
        );
        let terminal = matches!(row.state, JobState::Done | JobState::Dead);
        prop_assert!(
            !(terminal && model.claimable(job)),
            "job {} is {} and claimable",
            row.id,
            row.state
        );
        prop_assert_eq!(row.lease_until.is_some(), row.state == JobState::Leased);
        if row.state == JobState::Pending {
            prop_assert!(
                row.max_attempts - row.attempts >= 1,
                "pending job {} has no attempt left",
                row.id
            );
        }
    }
    Ok(())
}

async fn run_case(backend: &Backend, ops: &[Op]) -> Step {
    let (store, _db) = migrated_store(backend).await;
    let mut model = Model {
        entities: new_entities(&store).await,
        ..Model::default()
    };
    for op in ops {
        apply(&store, &mut model, op).await?;
        let rows = store.all_jobs().await.expect("jobs");
        check(&rows, &model)?;
    }
    Ok(())
}

async fn job_table_follows_its_model(backend: Backend) {
    let handle = tokio::runtime::Handle::current();
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    let result = tokio::task::block_in_place(|| {
        TestRunner::new(config).run(&prop::collection::vec(op(), 1..=STEPS), |ops| {
            handle.block_on(run_case(&backend, &ops))
        })
    });
    if let Err(e) = result {
        panic!("the job table left its model: {e}");
    }
}

store_tests!(job_table_follows_its_model);
