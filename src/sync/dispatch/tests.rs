//! Dispatch against in-memory fakes of Monday and NPD, over a real ledger: what is sent, what is
//! recorded, and how failures end.

use serde_json::json;

use crate::connectors::FailureClass;
use crate::domain::entity::{MondayItemId, Side};
use crate::domain::job::{Operation, Work};
use crate::domain::record::NpdValue;
use crate::domain::state::{EntityStatus, HistoryKind, JobState};
use crate::ledger::tx::Tx;
use crate::sync::dispatch::JobEnd;
use crate::sync::testkit::{ADA, Call, Kit, error, fixture};

async fn kit_with_ada() -> Kit {
    let kit = Kit::new().await;
    kit.npd("msg_1", &fixture("npd/contact.created.json")).await;
    kit
}

fn operations(ends: &[(crate::ledger::jobs::JobRow, JobEnd)]) -> Vec<(Operation, JobEnd)> {
    ends.iter().map(|(j, e)| (j.operation, e.clone())).collect()
}

#[tokio::test]
async fn a_new_contact_is_looked_up_created_linked_and_its_link_written_back() {
    // Arrange
    let kit = kit_with_ada().await;

    // Act
    let ends = kit.dispatch_all().await;

    // Assert
    assert_eq!(
        operations(&ends),
        vec![
            (Operation::PushItem, JobEnd::Done),
            (Operation::WriteLink, JobEnd::Done)
        ]
    );
    let calls = kit.fakes.calls();
    assert_eq!(
        calls[0],
        Call::Find {
            column: "npd_id".into(),
            value: ADA.into()
        },
        "a create is preceded by a lookup of the npd_id column"
    );
    let Call::CreateItem {
        name, columns, key, ..
    } = &calls[1]
    else {
        panic!("then the item is created: {calls:?}");
    };
    assert_eq!(name, "Ada Lovelace");
    assert_eq!(columns["npd_id"], json!(ADA));
    assert_eq!(
        columns["email"],
        json!({"email": "ada@example.com", "text": "ada@example.com"})
    );
    assert!(
        !columns.contains_key("notes"),
        "empty values are not sent on a create"
    );
    assert!(key.ends_with(":create_item"));
    let Call::Patch { fields, .. } = &calls[2] else {
        panic!("then the link goes back to NPD: {calls:?}");
    };
    assert_eq!(
        fields.get("monday_id"),
        Some(&NpdValue::Text("5200000101".into()))
    );
    let entity = kit.entity(ADA).await;
    assert_eq!(entity.monday_item_id, Some(MondayItemId(5_200_000_101)));
    assert_eq!(entity.status, EntityStatus::Synced);
    assert_eq!(
        entity.npd_echo_version,
        Some(2),
        "NPD's answer version is kept"
    );
}

#[tokio::test]
async fn an_item_found_by_its_npd_id_is_adopted_not_created_again() {
    let kit = kit_with_ada().await;
    kit.fakes.add_item(ADA, MondayItemId(77));

    kit.dispatch_all().await;

    let calls = kit.fakes.calls();
    assert!(
        !calls.iter().any(|c| matches!(c, Call::CreateItem { .. })),
        "{calls:?}"
    );
    let Some(Call::ChangeColumns { item, columns, .. }) = calls
        .iter()
        .find(|c| matches!(c, Call::ChangeColumns { .. }))
    else {
        panic!("the found item is updated: {calls:?}");
    };
    assert_eq!(*item, MondayItemId(77));
    assert_eq!(
        columns["name"],
        json!("Ada Lovelace"),
        "an adopted item is renamed"
    );
    assert_eq!(columns["npd_id"], json!(ADA));
    assert_eq!(kit.entity(ADA).await.monday_item_id, Some(MondayItemId(77)));
}

#[tokio::test]
async fn a_retryable_failure_is_retried_later_with_the_same_frozen_work() {
    let kit = kit_with_ada().await;
    kit.fakes
        .fail_next(error(Side::Monday, FailureClass::Retryable, 503));

    let first = kit.dispatcher.claim(10).await.expect("claim");
    let end = kit.dispatcher.run(first[0].clone()).await.expect("run");

    assert!(matches!(end, JobEnd::RetryLater(_)), "{end:?}");
    let job = kit
        .store
        .job(first[0].id)
        .await
        .expect("read")
        .expect("job");
    assert_eq!((job.state, job.attempts), (JobState::Pending, 1));
    assert!(
        matches!(job.payload.frozen, Some(Work::PushItem { all: true, .. })),
        "what the first attempt sends is frozen for its retries: {:?}",
        job.payload
    );
    let history = kit.store.history(job.entity_id, 10).await.expect("history");
    assert_eq!(history[0].kind, HistoryKind::Failed);
    assert!(
        history[0].reason.contains("retry in"),
        "{}",
        history[0].reason
    );
}

#[tokio::test]
async fn a_permanent_failure_goes_to_the_dead_letters_and_marks_the_entity_failed() {
    let kit = kit_with_ada().await;
    kit.fakes
        .fail_next(error(Side::Monday, FailureClass::Permanent, 400));

    let ends = kit.dispatch_all().await;

    assert!(matches!(ends[0].1, JobEnd::Dead(_)), "{ends:?}");
    let entity = kit.entity(ADA).await;
    assert_eq!(entity.status, EntityStatus::Failed);
    assert!(entity.last_error.is_some());
    let dead = kit
        .store
        .jobs_in_state(JobState::Dead, 10)
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 1);
    let fields = kit.store.entity_fields(entity.id).await.expect("fields");
    assert!(
        fields.values().all(|f| f.pending_monday.is_none()),
        "a dead write is no longer pending"
    );
}

#[tokio::test]
async fn a_vanished_item_is_unlinked_and_created_again() {
    let kit = kit_with_ada().await;
    kit.dispatch_all().await;
    kit.npd("msg_2", &fixture("npd/contact.updated.json")).await;
    kit.fakes
        .fail_next(error(Side::Monday, FailureClass::NotFound, 200));

    let ends = kit.dispatch_all().await;

    assert_eq!(ends[0].1, JobEnd::RetryLater(std::time::Duration::ZERO));
    let calls = kit.fakes.calls();
    let creates = calls
        .iter()
        .filter(|c| matches!(c, Call::CreateItem { .. }))
        .count();
    assert_eq!(creates, 2, "the item is created again: {calls:?}");
    assert_eq!(
        kit.entity(ADA).await.monday_item_id,
        Some(MondayItemId(5_200_000_102))
    );
}

#[tokio::test]
async fn a_worker_whose_lease_was_taken_over_records_nothing() {
    let kit = kit_with_ada().await;
    let job = kit.dispatcher.claim(10).await.expect("claim").remove(0);
    // Another worker takes the job over: the lease expired and it was claimed again.
    let mut tx: Tx = kit.store.begin().await.expect("tx");
    crate::ledger::jobs::retry_later(&mut tx, job.id, job.lease_token.unwrap_or(0), "lost", 0)
        .await
        .expect("released");
    tx.commit().await.expect("commit");
    let again = kit.dispatcher.claim(10).await.expect("claim").remove(0);
    assert_ne!(again.lease_token, job.lease_token);

    let end = kit.dispatcher.run(job).await.expect("run");

    assert_eq!(end, JobEnd::Fenced);
    assert!(
        kit.fakes.calls().is_empty(),
        "a fenced worker sends nothing"
    );
}

#[tokio::test]
async fn a_monday_edit_patches_only_that_field_in_npd() {
    let kit = kit_with_ada().await;
    kit.dispatch_all().await;
    let before = kit.fakes.calls().len();

    kit.monday(&fixture("monday/update_column_value_email.json"))
        .await;
    let ends = kit.dispatch_all().await;

    assert_eq!(operations(&ends), vec![(Operation::PatchNpd, JobEnd::Done)]);
    let calls = kit.fakes.calls();
    let Call::Patch { fields, key, .. } = &calls[before] else {
        panic!("{calls:?}");
    };
    assert_eq!(
        fields.keys().collect::<Vec<_>>(),
        vec!["email"],
        "only the changed field"
    );
    assert_eq!(
        fields["email"],
        NpdValue::Text("ada.lovelace@example.com".into())
    );
    assert!(key.starts_with("npd-monday-gateway:"));
}

/// NPD created `n` contacts (ADA's fixture with other ids and emails), all processed.
async fn kit_with_contacts(
    n: usize,
    tweak: impl FnOnce(&mut crate::config::Settings),
) -> (Kit, Vec<String>) {
    let kit = Kit::with(tweak).await;
    let mut ids = Vec::new();
    for i in 0..n {
        let id = uuid::Uuid::from_u128(0x3f0b_6a52_0000_0000_0000_0000_0000_0000 + i as u128);
        let body = fixture("npd/contact.created.json")
            .replace(ADA, &id.to_string())
            .replace("ada@example.com", &format!("ada{i}@example.com"));
        kit.npd(&format!("msg_{i}"), &body).await;
        ids.push(id.to_string());
    }
    (kit, ids)
}

fn batches(calls: &[Call]) -> Vec<(Vec<&'static str>, String)> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Batch { mutations, key } => Some((
                mutations
                    .iter()
                    .map(crate::connectors::Mutation::operation)
                    .collect(),
                key.clone(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn new_contacts_are_looked_up_together_and_created_in_one_request() {
    let (kit, ids) = kit_with_contacts(3, |_| {}).await;

    let ends = kit.dispatch_batches().await;

    let calls = kit.fakes.calls();
    assert_eq!(
        calls[0],
        Call::FindMany {
            column: "npd_id".into(),
            values: ids.clone()
        },
        "one lookup for every create"
    );
    let sent = batches(&calls);
    assert_eq!(sent.len(), 1, "{calls:?}");
    assert_eq!(sent[0].0, vec!["create_item"; 3]);
    assert!(sent[0].1.starts_with("npd-monday-gateway:batch:"));
    assert!(ends.iter().all(|(_, e)| *e == JobEnd::Done), "{ends:?}");
    for id in &ids {
        assert!(kit.entity(id).await.monday_item_id.is_some(), "{id} linked");
    }
}

#[tokio::test]
async fn a_refused_alias_dead_letters_only_its_own_contact() {
    let (kit, ids) = kit_with_contacts(3, |_| {}).await;
    kit.fakes
        .fail_alias(1, error(Side::Monday, FailureClass::Permanent, 200));

    let ends = kit.dispatch_batches().await;

    let dead: Vec<_> = ends
        .iter()
        .filter(|(_, e)| matches!(e, JobEnd::Dead(_)))
        .collect();
    assert_eq!(dead.len(), 1, "{ends:?}");
    assert_eq!(kit.entity(&ids[1]).await.status, EntityStatus::Failed);
    for id in [&ids[0], &ids[2]] {
        let entity = kit.entity(id).await;
        assert_eq!(entity.status, EntityStatus::Synced, "{id}");
        assert!(entity.monday_item_id.is_some());
    }
    assert_eq!(
        batches(&kit.fakes.calls()).len(),
        1,
        "created once, in one request"
    );
}

#[tokio::test]
async fn a_retried_batch_keeps_its_key_and_a_re_formed_one_gets_another() {
    let (kit, _) = kit_with_contacts(3, |_| {}).await;
    kit.fakes
        .fail_next(error(Side::Monday, FailureClass::Retryable, 503));
    let jobs = kit.dispatcher.claim(100).await.expect("claim");
    // The lookup fails: the three jobs are retried later.
    kit.dispatcher.run_batch(jobs.clone()).await.expect("ran");
    let retry = |jobs: &[crate::ledger::jobs::JobRow]| {
        jobs.iter()
            .map(|j| j.id)
            .collect::<std::collections::BTreeSet<_>>()
    };
    kit.fakes.succeed_next();
    kit.fakes
        .fail_next(error(Side::Monday, FailureClass::Retryable, 503));
    kit.make_due().await;
    let again = kit.dispatcher.claim(100).await.expect("claim");
    assert_eq!(retry(&again), retry(&jobs));
    // The lookup answers; the batch fails whole.
    kit.dispatcher.run_batch(again).await.expect("ran");
    kit.make_due().await;
    let third = kit.dispatcher.claim(100).await.expect("claim");
    kit.dispatcher.run_batch(third).await.expect("ran");

    let sent = batches(&kit.fakes.calls());
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        sent[0], sent[1],
        "the same request again, under the same key"
    );
    // Re-formed: only two of the jobs (a fresh kit with two contacts) give another key.
    let (other, _) = kit_with_contacts(2, |_| {}).await;
    other.dispatch_batches().await;
    assert_ne!(batches(&other.fakes.calls())[0].1, sent[0].1);
}

#[tokio::test]
async fn with_the_daily_cap_spent_monday_jobs_wait_uncounted_and_go_the_next_utc_day() {
    let day_ms: i64 = 86_400_000;
    let (kit, ids) = kit_with_contacts(3, |s| {
        s.monday.calls_per_day = 3;
        s.monday.batch_max = 1;
    })
    .await;
    // Half an hour before midnight UTC.
    let now = kit.clock.load(std::sync::atomic::Ordering::SeqCst);
    kit.advance_clock((now.div_euclid(day_ms) + 1) * day_ms - 1_800_000 - now);

    kit.dispatch_batches().await;

    // Live sync may spend 80 % of 3 calls a day (rounded up: 3): one lookup for the three
    // creates, then two creates; the third waits for the next day.
    let monday_calls = |kit: &Kit| {
        kit.fakes
            .calls()
            .iter()
            .filter(|c| !matches!(c, Call::Patch { .. }))
            .count()
    };
    assert_eq!(monday_calls(&kit), 3, "{:?}", kit.fakes.calls());
    assert_eq!(
        kit.store
            .all_jobs()
            .await
            .expect("jobs")
            .iter()
            .filter(|j| j.operation == Operation::PushItem && j.state == JobState::Done)
            .count(),
        2
    );
    let open: Vec<_> = kit
        .store
        .all_jobs()
        .await
        .expect("jobs")
        .into_iter()
        .filter(|j| j.state.is_open())
        .collect();
    assert!(!open.is_empty());
    assert!(
        open.iter().all(|j| j.attempts <= 1),
        "waiting costs no attempt: {open:?}"
    );
    assert_eq!(
        kit.dispatcher
            .budget()
            .remaining()
            .await
            .expect("remaining")
            .daily,
        Some(0)
    );

    kit.advance_clock(1_800_000);
    // The deferred jobs fall due when the day turns (the ledger's clock is the real one).
    kit.make_due().await;
    kit.dispatch_batches().await;

    assert_eq!(
        monday_calls(&kit),
        5,
        "the next day: a lookup and the last create"
    );
    for id in &ids {
        assert!(kit.entity(id).await.monday_item_id.is_some(), "{id}");
    }
}

/// A kit whose retries are due at once (1 ms backoff), Ada's event processed.
async fn kit_retrying_at_once(max_attempts: i64) -> Kit {
    let kit = Kit::with(|s| {
        s.sync.retry_base_ms = 1;
        s.sync.retry_cap_ms = 1;
        s.sync.max_attempts = max_attempts;
    })
    .await;
    kit.npd("msg_1", &fixture("npd/contact.created.json")).await;
    kit
}

/// Claims the next job (its retry is due within a millisecond) and runs it; the job as it
/// stands after the run, and how the run ended.
async fn run_next(kit: &Kit) -> (crate::ledger::jobs::JobRow, JobEnd) {
    let job = loop {
        if let Some(job) = kit.dispatcher.claim(1).await.expect("claim").pop() {
            break job;
        }
        tokio::task::yield_now().await;
    };
    let end = kit.dispatcher.run(job.clone()).await.expect("run");
    let after = kit.store.job(job.id).await.expect("read").expect("job");
    (after, end)
}

#[tokio::test]
async fn after_a_429_the_retry_gets_a_new_idempotency_key_after_a_5xx_the_same() {
    let kit = kit_retrying_at_once(10).await;
    let original = kit.store.all_jobs().await.expect("jobs")[0].clone();
    let rate_limited_in_200 = crate::connectors::ConnectorError {
        code: Some("COMPLEXITY_BUDGET_EXHAUSTED".into()),
        ..error(Side::Monday, FailureClass::Retryable, 200)
    };
    let cases = [
        (
            "HTTP 429",
            error(Side::Monday, FailureClass::Retryable, 429),
            true,
        ),
        (
            "HTTP 503",
            error(Side::Monday, FailureClass::Retryable, 503),
            false,
        ),
        ("complexity budget in a 200", rate_limited_in_200, true),
        (
            "HTTP 500",
            error(Side::Monday, FailureClass::Retryable, 500),
            false,
        ),
    ];
    let mut key = original.idempotency_key;
    for (name, failure, new_key) in cases {
        kit.fakes.fail_next(failure);
        let (job, end) = run_next(&kit).await;
        assert!(matches!(end, JobEnd::RetryLater(_)), "{name}: {end:?}");
        assert_eq!(job.idempotency_key != key, new_key, "{name}");
        key = job.idempotency_key;
    }

    let (_, end) = run_next(&kit).await;
    assert_eq!(end, JobEnd::Done);

    let Some(Call::CreateItem { key: sent, .. }) = kit
        .fakes
        .calls()
        .into_iter()
        .find(|c| matches!(c, Call::CreateItem { .. }))
    else {
        panic!("the item is created in the end");
    };
    assert!(
        sent.starts_with(&key),
        "{sent} is sent under the job's last key {key}"
    );
}

#[tokio::test]
async fn a_replayed_dead_letter_gets_a_full_set_of_attempts_and_shows_its_real_limit() {
    // Arrange: two attempts allowed; both fail.
    let kit = kit_retrying_at_once(2).await;
    for _ in 0..2 {
        kit.fakes
            .fail_next(error(Side::Monday, FailureClass::Retryable, 503));
    }
    run_next(&kit).await;
    let (dead, end) = run_next(&kit).await;
    assert!(matches!(end, JobEnd::Dead(_)), "{end:?}");
    assert_eq!(
        (dead.attempts, dead.max_attempts),
        (2, 2),
        "the configured limit"
    );

    // Act: replayed, its first attempt fails again.
    let replayed = crate::sync::admin::replay_dead_letter(&kit.store, dead.id, 2).await;
    assert!(replayed.expect("replay"));
    kit.fakes
        .fail_next(error(Side::Monday, FailureClass::Retryable, 503));
    let (replayed, end) = run_next(&kit).await;

    // Assert: retried, not dead: the replay has two attempts of its own.
    assert!(matches!(end, JobEnd::RetryLater(_)), "{end:?}");
    assert_eq!((replayed.attempts, replayed.max_attempts), (3, 4));
    let (done, end) = run_next(&kit).await;
    assert_eq!(end, JobEnd::Done);
    assert_eq!(done.state, JobState::Done);
    let calls = kit.fakes.calls();
    let lookups = calls.iter().filter(|c| matches!(c, Call::Find { .. }));
    assert_eq!(
        lookups.count(),
        4,
        "every attempt, the replayed ones too, sends: {calls:?}"
    );
    assert!(kit.entity(ADA).await.monday_item_id.is_some());
}

#[tokio::test]
async fn in_a_batch_a_job_whose_lease_was_taken_over_is_fenced_alone_and_the_rest_are_recorded() {
    // Arrange: three creates claimed together; another worker takes the second one over.
    let (kit, ids) = kit_with_contacts(3, |_| {}).await;
    let jobs = kit.dispatcher.claim(100).await.expect("claim");
    assert_eq!(jobs.len(), 3);
    let taken = &jobs[1];
    let mut tx: Tx = kit.store.begin().await.expect("tx");
    crate::ledger::jobs::retry_later(&mut tx, taken.id, taken.lease_token.unwrap_or(0), "lost", 0)
        .await
        .expect("released");
    tx.commit().await.expect("commit");
    let again = kit.dispatcher.claim(10).await.expect("claim");
    assert_eq!(again.iter().map(|j| j.id).collect::<Vec<_>>(), [taken.id]);

    // Act: the first worker runs its stale claim of all three as one batch (on SQLite, one
    // transaction prepares them and one records them).
    let ends = kit.dispatcher.run_batch(jobs.clone()).await.expect("ran");

    // Assert: only the taken job is fenced; the other two were created and recorded.
    let end_of = |id: i64| ends.iter().find(|(j, _)| *j == id).map(|(_, e)| e.clone());
    assert_eq!(end_of(taken.id), Some(JobEnd::Fenced));
    assert_eq!(end_of(jobs[0].id), Some(JobEnd::Done));
    assert_eq!(end_of(jobs[2].id), Some(JobEnd::Done));
    assert_eq!(
        batches(&kit.fakes.calls()),
        [(
            vec!["create_item", "create_item"],
            batches(&kit.fakes.calls())[0].1.clone()
        )],
        "the fenced job sent nothing"
    );
    for id in [&ids[0], &ids[2]] {
        let entity = kit.entity(id).await;
        assert_eq!(entity.status, EntityStatus::Synced, "{id}");
        assert!(entity.monday_item_id.is_some(), "{id}");
    }
    assert_eq!(kit.entity(&ids[1]).await.monday_item_id, None);
}
