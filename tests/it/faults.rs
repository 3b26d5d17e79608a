//! The database and the remotes failing under load, through the tests' fault proxy
//! (RELIABILITY.md T7, T8): PostgreSQL cut (refused and reset) several times while senders post
//! NPD events and Monday users edit items; Monday and NPD slow past the client timeout, resetting
//! and cutting answers mid-way; and SIGTERM during load (T22). Results are stated as Jepsen does: what was acknowledged, what
//! was refused, and a final read after healing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use npd_monday_gateway::demo::{CONTACTS_BOARD, Sims, World, sample_contact};
use npd_monday_gateway::domain::entity::{EntityKind, MondayItemId, NpdId, Side};
use npd_monday_gateway::domain::job::Operation;
use npd_monday_gateway::domain::state::JobState;
use npd_monday_gateway::sim::monday::{MondayCall, MondaySim};
use npd_monday_gateway::sim::npd::{NpdCall, NpdSim};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backpressure::{
    Answer, assert_all_stored_at, deliver_signed, new_contact_event, sender,
};
use crate::durability::open_store;
use crate::fault_proxy::{FaultProxy, Faults, target_of};
use crate::helpers::{Backend, GatewayProcess, TestDatabase, settle, settle_world};
use crate::replicas::{config_file, free_listen_address};
use crate::{postgres_test, store_tests};

store_tests!(
    monday_and_npd_slow_cut_and_reset_get_same_key_retries_and_no_duplicates,
    sigterm_under_load_answers_in_flight_releases_leases_and_loses_nothing,
);

/// How long a sender waits before it sends an unacknowledged event again.
const RESEND_PAUSE: Duration = Duration::from_millis(50);

/// One answer with when it was asked and answered.
struct Exchange {
    answer: Answer,
    sent: Instant,
    answered: Instant,
}

/// Every answer the senders got, and running counts the cutter paces itself by.
struct Record {
    exchanges: Mutex<Vec<Exchange>>,
    /// (acknowledged, refused) so far.
    counts: watch::Sender<(usize, usize)>,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            exchanges: Mutex::default(),
            counts: watch::channel((0, 0)).0,
        }
    }
}

impl Record {
    fn push(&self, exchange: Exchange) {
        let acknowledged = exchange.answer.status == Some(202);
        self.exchanges.lock().expect("lock").push(exchange);
        self.counts.send_modify(|(a, r)| {
            if acknowledged {
                *a += 1;
            } else {
                *r += 1;
            }
        });
    }

    /// Waits until `more` further answers of the kind (`acknowledged` or refused) came in.
    async fn wait_for(&self, acknowledged: bool, more: usize) -> Instant {
        let pick = move |c: &(usize, usize)| if acknowledged { c.0 } else { c.1 };
        let target = pick(&self.counts.borrow()) + more;
        let mut counts = self.counts.subscribe();
        tokio::time::timeout(
            Duration::from_secs(60),
            counts.wait_for(|c| pick(c) >= target),
        )
        .await
        .unwrap_or_else(|_| panic!("no {more} further answers (acknowledged: {acknowledged})"))
        .expect("record");
        Instant::now()
    }

    fn acknowledged(&self) -> HashSet<String> {
        let exchanges = self.exchanges.lock().expect("lock");
        exchanges
            .iter()
            .filter(|e| e.answer.status == Some(202))
            .map(|e| e.answer.id.clone())
            .collect()
    }
}

/// `senders` senders, each posting `each` new contacts, every one until it is acknowledged.
fn start_senders(
    base: &str,
    secret: &str,
    (senders, each): (usize, usize),
    record: &Arc<Record>,
) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..senders {
        let (base, secret, record) = (base.to_owned(), secret.to_owned(), Arc::clone(record));
        tasks.spawn(async move {
            let client = sender();
            for _ in 0..each {
                let (id, body) = new_contact_event();
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    let sent = Instant::now();
                    let answer = deliver_signed(&client, (&base, &secret), &id, &body).await;
                    let done = answer.status == Some(202);
                    let answered = Instant::now();
                    record.push(Exchange {
                        answer,
                        sent,
                        answered,
                    });
                    if done {
                        break;
                    }
                    assert!(Instant::now() < deadline, "{id} never acknowledged");
                    // A sender's retry pause: nothing waits on it.
                    tokio::time::sleep(RESEND_PAUSE).await;
                }
            }
        });
    }
    tasks
}

/// Monday users editing the items' emails, one edit every 20 ms, until `stop`.
fn start_editors(monday: MondaySim, items: Vec<MondayItemId>, stop: CancellationToken) {
    tokio::spawn(async move {
        for n in 0.. {
            let item = items[n % items.len()];
            let address = format!("edit{n}@example.com");
            let value = json!({"email": address, "text": address});
            tokio::select! {
                () = monday.user_change_column(item, "email", value) => {}
                () = stop.cancelled() => return,
            }
            // A user's pace: nothing waits on it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// Creates `n` contacts in NPD and waits until they are on Monday; their ids and items.
async fn baseline(world: &World, n: usize) -> Vec<(NpdId, MondayItemId)> {
    let ids: Vec<NpdId> = (0..n).map(|_| NpdId(uuid::Uuid::new_v4())).collect();
    for id in &ids {
        world.npd.create_contact(sample_contact(*id)).await;
    }
    settle_world(world, Duration::from_secs(60)).await;
    let mut items = Vec::new();
    for id in ids {
        let entity = world.store.entity_by_npd(EntityKind::Contact, id).await;
        let item = entity.expect("query").and_then(|e| e.monday_item_id);
        items.push((id, item.expect("linked")));
    }
    items
}

/// Executed (not replayed, not failed) `create_item` mutations at Monday.
pub fn executed_creates(monday: &MondaySim) -> usize {
    monday
        .calls()
        .iter()
        .filter(|c| c.status == 200 && !c.replayed && c.response.get("errors").is_none())
        .map(|c| c.count("create_item"))
        .sum()
}

/// The Monday webhooks the gateway acknowledged, by their delivery id.
fn acknowledged_webhooks(monday: &MondaySim) -> HashSet<String> {
    monday
        .webhooks()
        .iter()
        .filter(|w| w.status.is_some_and(|s| (200..300).contains(&s)))
        .filter_map(|w| w.body["event"]["triggerUuid"].as_str().map(str::to_owned))
        .collect()
}

postgres_test! {
    async fn the_database_cut_4_times_under_load_acknowledges_nothing_it_loses() {
        the_database_cut_under_load().await;
    }
}

/// One outage: when the database went away and came back, and how long the first
/// acknowledgement after its return took.
struct Outage {
    down: Instant,
    up: Instant,
    recovered: Duration,
}

async fn the_database_cut_under_load() {
    // Arrange: the gateway reaches PostgreSQL through the fault proxy; 10 items on Monday.
    let db = TestDatabase::create(&Backend::postgres()).await;
    let proxy = FaultProxy::start(target_of(&db.url)).await;
    let sims = Sims::start().await.expect("sims");
    let secret = sims.npd_secret().to_owned();
    let world = World::with_sims(sims, &proxy.url_for(&db.url), |_| {})
        .await
        .expect("world");
    let items = baseline(&world, 10)
        .await
        .into_iter()
        .map(|(_, item)| item)
        .collect();
    let base = world.url("");
    let record = Arc::new(Record::default());
    let stop = CancellationToken::new();

    // Act: 4 senders post 60 new contacts each while users edit on Monday; meanwhile the
    // database is cut 4 times (refused and reset), each time until the senders saw 5 refusals.
    let mut senders = start_senders(&base, &secret, (4, 60), &record);
    start_editors(world.monday.clone(), items, stop.clone());
    let mut outages = Vec::new();
    for _ in 0..4 {
        record.wait_for(true, 20).await;
        let down = Instant::now();
        proxy.go_down();
        record.wait_for(false, 5).await;
        let up = Instant::now();
        proxy.heal();
        let recovered = record.wait_for(true, 1).await.duration_since(up);
        outages.push(Outage {
            down,
            up,
            recovered,
        });
    }
    while let Some(s) = senders.join_next().await {
        s.expect("sender");
    }
    stop.cancel();
    settle_world(&world, Duration::from_secs(120)).await;

    // Assert
    assert_never_acknowledged_while_down(&record, &outages);
    for outage in &outages {
        assert!(
            outage.recovered < Duration::from_secs(30),
            "no recovery within 30 s"
        );
    }
    let acknowledged = record.acknowledged();
    assert_eq!(
        acknowledged.len(),
        4 * 60,
        "every sender was acknowledged in the end"
    );
    assert_all_stored_at(&db.url, &acknowledged).await;
    assert_webhooks_stored(&db.url, &world.monday).await;
    assert_eq!(
        executed_creates(&world.monday),
        10 + 4 * 60,
        "one create_item per contact"
    );
    assert_eq!(world.monday.items(CONTACTS_BOARD).len(), 10 + 4 * 60);
    let refused = record.exchanges.lock().expect("lock").len() - acknowledged.len();
    let recoveries: Vec<u128> = outages.iter().map(|o| o.recovered.as_millis()).collect();
    eprintln!(
        "T7: 240 NPD events and {} Monday webhooks acknowledged, {refused} answers refused (503) \
         across 4 cuts; first acknowledgement after each return (ms): {recoveries:?}",
        acknowledged_webhooks(&world.monday).len()
    );
}

/// No request sent after a cut and answered before its end was acknowledged; every refusal
/// was a 503 with Retry-After (or a failed connection, never another status).
fn assert_never_acknowledged_while_down(record: &Record, outages: &[Outage]) {
    let exchanges = record.exchanges.lock().expect("lock");
    for e in exchanges.iter() {
        let inside = outages.iter().any(|o| e.sent > o.down && e.answered < o.up);
        if inside {
            assert_ne!(
                e.answer.status,
                Some(202),
                "acknowledged while down: {:?}",
                e.answer
            );
        }
        if e.answer.status != Some(202) {
            assert_eq!(e.answer.status, Some(503), "{:?}", e.answer);
            assert!(e.answer.retry_after.is_some(), "503 without Retry-After");
        }
    }
}

/// Every Monday webhook the gateway acknowledged is in the Monday inbox.
async fn assert_webhooks_stored(url: &str, monday: &MondaySim) {
    let store = open_store(url).await;
    let stored: HashSet<String> = store
        .inbox_events(Side::Monday, 1_000_000)
        .await
        .expect("inbox")
        .into_iter()
        .map(|r| r.delivery_id)
        .collect();
    let acknowledged = acknowledged_webhooks(monday);
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "acknowledged Monday webhooks lost: {lost:?}"
    );
    store.close().await;
}

/// One fault phase of T8: its name and the faults both remotes' proxies apply.
type Phase = (&'static str, fn(&mut Faults));

/// The T8 phases, each aimed at the writes only (GraphQL mutations to Monday, PATCH and POST to
/// NPD; see `aim`): latency above the client timeout (3 s in the tests' settings), answers cut
/// after 12 bytes (the remote executed, the gateway saw no answer), connections reset while
/// their answer is on its way, the client side reset as soon as the request went up (the
/// remote still executes it), answers trickled at 40 B/s (slower than the client timeout), and
/// sockets held 4 s after the answer (slow_close).
const PHASES: [Phase; 6] = [
    ("latency 4 s", |f| {
        f.downstream_latency = Duration::from_secs(4)
    }),
    ("cut after 12 bytes", |f| f.cut_answer_after = Some(12)),
    ("reset in flight", |f| {
        f.downstream_latency = Duration::from_millis(400);
    }),
    ("reset after the request", |f| f.reset_after_request = true),
    ("bandwidth 40 B/s", |f| f.answer_bytes_per_s = Some(40)),
    ("slow_close 4 s", |f| f.slow_close = Duration::from_secs(4)),
];

/// The longest a T8 phase's faults last.
const PHASE_MAX: Duration = Duration::from_secs(20);

/// What each remote's proxy aims its faults at: the requests that change something.
const MONDAY_WRITES: &[&str] = &["mutation"];
const NPD_WRITES: &[&str] = &["PATCH ", "POST "];

/// The writes one T8 phase makes: the new contacts' ids (in their `create_item`), the NPD edits'
/// roles (in a `change_multiple_column_values`) and the Monday edits' addresses (in an NPD PATCH).
#[derive(Default)]
struct PhaseWrites {
    creates: Vec<String>,
    roles: Vec<String>,
    addresses: Vec<String>,
}

impl PhaseWrites {
    /// Waits until every write of the phase reached its remote at least once (the remotes log a
    /// request as it arrives, whatever the proxy then does to its answer), or `PHASE_MAX` passed
    /// for one of them (the caller bounds the whole phase by `PHASE_MAX` too).
    async fn reached_their_remotes(&self, world: &World) {
        let mutations = [
            ("create_item", &self.creates),
            ("change_multiple_column_values", &self.roles),
        ];
        for (field, markers) in mutations {
            for marker in markers {
                let sent = |c: &MondayCall| {
                    c.has(field) && c.variables.to_string().contains(marker.as_str())
                };
                world.monday.wait_for_call(PHASE_MAX, sent).await;
            }
        }
        for address in &self.addresses {
            let sent = |c: &NpdCall| {
                c.method == "PATCH"
                    && c.body
                        .as_ref()
                        .is_some_and(|b| b.to_string().contains(address.as_str()))
            };
            world.npd.wait_for_call(PHASE_MAX, sent).await;
        }
    }
}

/// Resets every connection of both proxies as each Monday mutation arrives (its answer is held
/// 400 ms, so the reset finds it in flight; lookups are left to pass, or no create could ever
/// get as far as its mutation); runs until dropped.
async fn reset_on_every_monday_call(monday: &MondaySim, proxies: [&FaultProxy; 2]) {
    let mut last = Instant::now();
    loop {
        if let Some(call) = monday
            .wait_for_call(Duration::from_secs(60), |c| {
                c.at > last && (c.has("create_item") || c.has("change_multiple_column_values"))
            })
            .await
        {
            last = call.at;
            proxies.iter().for_each(|p| p.reset_all());
        }
    }
}

async fn monday_and_npd_slow_cut_and_reset_get_same_key_retries_and_no_duplicates(
    backend: Backend,
) {
    // Arrange: the gateway reaches Monday and NPD through fault proxies, one mutation per request.
    let db = TestDatabase::create(&backend).await;
    let sims = Sims::start().await.expect("sims");
    let monday_proxy = FaultProxy::start(target_of(&sims.monday.api_url())).await;
    let npd_proxy = FaultProxy::start(target_of(&sims.npd.url())).await;
    let monday_url = monday_proxy.url_for(&sims.monday.api_url());
    let npd_url = npd_proxy.url_for(&sims.npd.url());
    let world = World::with_sims(sims, &db.url, |s| {
        s.monday.api_url = monday_url;
        s.npd.api_url = Some(npd_url);
        s.monday.batch_max = 1;
        // The faults last up to PHASE_MAX in each of six phases: at the tests' 1 s retry cap,
        // 10 attempts of 3 s timeouts ran out before the links healed (write-backs to NPD went
        // to the dead letters). 50 outlast the six phases' 2 minutes of faults at most.
        s.sync.max_attempts = 50;
    })
    .await
    .expect("world");
    let items = baseline(&world, 4).await;
    world.monday.clear_calls();
    world.npd.clear_calls();

    // Act: per phase, 4 new NPD contacts, 4 NPD edits and 4 Monday edits meet the faults on
    // both links until each of those 12 writes reached its remote at least once; then the next
    // phase's faults replace them (retries of one phase meet the later phases' too), and at the
    // end the links heal.
    for (n, (name, faults)) in PHASES.iter().enumerate() {
        for (proxy, writes) in [(&monday_proxy, MONDAY_WRITES), (&npd_proxy, NPD_WRITES)] {
            proxy.set(|f| {
                faults(f);
                f.only_requests_containing = writes;
            });
        }
        let mut phase = PhaseWrites::default();
        for (i, (id, item)) in items.iter().enumerate() {
            let new = NpdId(uuid::Uuid::new_v4());
            world.npd.create_contact(sample_contact(new)).await;
            phase.creates.push(new.to_string());
            let role = format!("role-phase{n}-{i}");
            phase.roles.push(role.clone());
            world
                .npd
                .update_contact(*id, |c| c.role_title = Some(role))
                .await;
            let address = format!("phase{n}-{i}@example.com");
            phase.addresses.push(address.clone());
            let value = json!({"email": address, "text": address});
            world.monday.user_change_column(*item, "email", value).await;
        }
        // A phase ends when its writes all reached their remotes, or after 20 s: a write queued
        // behind its entity's faulted write to the other side may not get its turn in a phase.
        let reached = tokio::time::timeout(PHASE_MAX, phase.reached_their_remotes(&world));
        if *name == "reset in flight" {
            tokio::select! {
                _ = reached => {},
                () = reset_on_every_monday_call(&world.monday, [&monday_proxy, &npd_proxy]) => {},
            }
        } else {
            let _ = reached.await;
        }
        monday_proxy.heal();
        npd_proxy.heal();
    }
    settle_world(&world, Duration::from_secs(180)).await;

    // Assert
    let created = 4 * PHASES.len();
    assert_eq!(
        executed_creates(&world.monday),
        created,
        "one create_item per new contact"
    );
    assert_eq!(world.monday.items(CONTACTS_BOARD).len(), 4 + created);
    let gaps = assert_same_key_per_job(&world.monday);
    assert!(gaps.iter().all(|g| *g > 0), "a retry with no gap: {gaps:?}");
    assert!(
        monday_proxy.faulted() > 0 && npd_proxy.faulted() > 0,
        "the faults reached no write"
    );
    every_monday_key_is_a_job_s_key(&world).await;
    assert_npd_retries_keep_their_key(&world.npd);
    let open = open_jobs(&world).await;
    assert!(open.is_empty(), "every job done after healing: {open:?}");
    let attempts = world.monday.calls().len();
    let replays = world.monday.calls().iter().filter(|c| c.replayed).count();
    // Not asserted yet: with the faults aimed at the mutations Monday still sees no same-key
    // replay (a faulted write is not sent again as the same request); see issue 9.
    let npd_writes = world
        .npd
        .calls()
        .iter()
        .filter(|c| c.method != "GET")
        .count();
    eprintln!(
        "T8: phases {:?}; faults aimed at {} Monday and {} NPD write connections; {attempts} \
         Monday calls for {created} creates, {created} NPD and {created} Monday edits, \
         {replays} same-key replays answered from Monday's cache, 0 duplicate items; \
         {npd_writes} NPD writes, each repeat with its key; gaps between attempts of one \
         job (ms): {gaps:?}",
        PHASES.iter().map(|p| p.0).collect::<Vec<_>>(),
        monday_proxy.faulted(),
        npd_proxy.faulted(),
    );
}

/// The jobs not done: id, operation, state, attempts, last error.
async fn open_jobs(world: &World) -> Vec<(i64, Operation, JobState, i64, Option<String>)> {
    let jobs = world.store.all_jobs().await.expect("jobs");
    jobs.into_iter()
        .filter(|j| j.state != JobState::Done)
        .map(|j| (j.id, j.operation, j.state, j.attempts, j.last_error))
        .collect()
}

/// Every idempotency key Monday saw is some job's key (a batch's `job:attempt` form counts as
/// that job's): no retry made a key up.
async fn every_monday_key_is_a_job_s_key(world: &World) {
    let job_keys: HashSet<String> = world
        .store
        .all_jobs()
        .await
        .expect("jobs")
        .into_iter()
        .map(|j| j.idempotency_key)
        .collect();
    for c in world.monday.calls() {
        if let Some(key) = c.idempotency_key {
            let job = key.rsplit_once(':').map_or(key.as_str(), |(job, _)| job);
            assert!(
                job_keys.contains(job),
                "{key} is no job's key: a retry changed it"
            );
        }
    }
}

/// Every attempt of one mutation (same document and variables) carried one key, attempts of
/// a job are spaced by less than the lease (none held it past its lease), and the gaps are
/// jittered (not all jobs' retries at the same offsets). Answers the gaps in milliseconds.
fn assert_same_key_per_job(monday: &MondaySim) -> Vec<u128> {
    let mut jobs: HashMap<String, Vec<(Option<String>, Instant)>> = HashMap::new();
    for c in monday.calls() {
        let mutation = c.has("create_item") || c.has("change_multiple_column_values");
        if mutation {
            let what = format!("{}{}", c.query, c.variables);
            jobs.entry(what)
                .or_default()
                .push((c.idempotency_key, c.at));
        }
    }
    let mut gaps = Vec::new();
    for (what, attempts) in &jobs {
        let keys: HashSet<_> = attempts.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys.len(),
            1,
            "one key for every attempt of {what}: {keys:?}"
        );
        assert!(keys.iter().all(Option::is_some), "a mutation without a key");
        for pair in attempts.windows(2) {
            let gap = pair[1].1.duration_since(pair[0].1);
            assert!(gap < Duration::from_secs(10), "attempts {gap:?} apart");
            gaps.push(gap.as_millis());
        }
    }
    let distinct: HashSet<_> = gaps.iter().copied().collect();
    assert!(
        gaps.len() < 3 || distinct.len() > 1,
        "retries are not jittered: {gaps:?}"
    );
    gaps.sort_unstable();
    gaps
}

/// Every repeated write to NPD (same method, path and body) carried one `Idempotency-Key`.
fn assert_npd_retries_keep_their_key(npd: &NpdSim) {
    let mut writes: HashMap<String, HashSet<Option<String>>> = HashMap::new();
    for c in npd.calls() {
        if c.method != "GET" {
            let what = format!("{} {} {:?}", c.method, c.path, c.body);
            let key = c.headers.get("idempotency-key").cloned();
            writes.entry(what).or_default().insert(key);
        }
    }
    for (what, keys) in writes {
        assert_eq!(
            keys.len(),
            1,
            "one key for every attempt of {what}: {keys:?}"
        );
    }
}

async fn sigterm_under_load_answers_in_flight_releases_leases_and_loses_nothing(backend: Backend) {
    // Arrange: the gateway binary on a fixed port; Monday answers in 200 ms, so jobs are in
    // flight when SIGTERM comes.
    let db = TestDatabase::create(&backend).await;
    let sims = Sims::start().await.expect("sims");
    sims.monday.faults().set_latency(Duration::from_millis(200));
    let listen = free_listen_address();
    let (env, toml) = sims.process_config(&db.url, &listen, 10_000, 3_000);
    let config = config_file(&toml);
    let gateway = GatewayProcess::spawn(&env, Some(config.path())).await;
    let base = format!("http://{listen}");
    sims.deliver_to(&base, &base);
    let record = Arc::new(Record::default());

    // Act: 4 senders post 40 new contacts each; SIGTERM after 40 acknowledgements, then a restart.
    let mut senders = start_senders(&base, sims.npd_secret(), (4, 40), &record);
    record.wait_for(true, 40).await;
    let stopping = Instant::now();
    let (status, _) = gateway.terminate(Duration::from_secs(15)).await;
    let stopped = stopping.elapsed();
    let store = open_store(&db.url).await;
    let jobs = store.all_jobs().await.expect("jobs");
    let leased = jobs.iter().filter(|j| j.state == JobState::Leased).count();
    let restarting = Instant::now();
    let _gateway = GatewayProcess::spawn(&env, Some(config.path())).await;
    let resumed = record.wait_for(true, 1).await.duration_since(restarting);
    while let Some(s) = senders.join_next().await {
        s.expect("sender");
    }
    settle(&store, &sims.monday, &sims.npd, Duration::from_secs(120)).await;

    // Assert
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert_eq!(leased, 0, "a job was left leased after SIGTERM");
    assert!(
        resumed < Duration::from_secs(5),
        "resumed after {resumed:?}"
    );
    let (straddling, failed) = assert_in_flight_answered(&record, stopping);
    let acknowledged = record.acknowledged();
    assert_eq!(acknowledged.len(), 4 * 40);
    assert_all_stored_at(&db.url, &acknowledged).await;
    assert_eq!(
        executed_creates(&sims.monday),
        4 * 40,
        "one create_item per contact"
    );
    eprintln!(
        "T22: SIGTERM during 160 deliveries: exited 0 in {} ms with {} jobs, 0 leased; {straddling} \
         requests straddling it answered, {failed} refused a connection; resumed {} ms after restart",
        stopped.as_millis(),
        jobs.len(),
        resumed.as_millis()
    );
}

/// Requests sent before `stopping` and answered after it: every one that was answered got a
/// 202 or a 503, never a cut or a 5xx of the shutdown. Answers (answered, failed to connect).
fn assert_in_flight_answered(record: &Record, stopping: Instant) -> (usize, usize) {
    let exchanges = record.exchanges.lock().expect("lock");
    let straddling: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| e.sent < stopping && e.answered > stopping)
        .collect();
    for e in &straddling {
        if let Some(status) = e.answer.status {
            assert!(status == 202 || status == 503, "{:?}", e.answer);
        }
    }
    let failed = straddling
        .iter()
        .filter(|e| e.answer.status.is_none())
        .count();
    (straddling.len() - failed, failed)
}
