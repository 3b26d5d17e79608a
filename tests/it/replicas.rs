//! The delivery engine with real processes: several replicas sharing one PostgreSQL database,
//! kill -9 at random moments, and a worker frozen past its lease (SIGSTOP) whose late outcome
//! the fence refuses.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use npd_monday_gateway::auth::standard_webhooks::{WebhookSecret, sign};
use npd_monday_gateway::demo::{CONTACTS_BOARD, Sims, sample_contact};
use npd_monday_gateway::domain::entity::Side;
use npd_monday_gateway::domain::entity::{EntityKind, MondayItemId, NpdId};
use npd_monday_gateway::domain::job::Operation;
use npd_monday_gateway::domain::state::{HistoryKind, JobState};
use npd_monday_gateway::ledger::Store;
use npd_monday_gateway::sim::monday::MondaySim;
use rand::Rng;
use serde_json::{Value, json};

use crate::durability::open_store;
use crate::helpers::{
    Backend, GatewayProcess, TestDatabase, assert_all_stored, eventually, settle,
};
use crate::{postgres_test, store_tests};

store_tests!(kill_9_at_random_moments_loses_no_acknowledged_event_and_duplicates_nothing);

postgres_test! {
    async fn three_replicas_on_postgres_share_the_work_and_run_no_job_twice() {
        replicas_share_the_work(Backend::postgres()).await;
    }
}

postgres_test! {
    async fn a_worker_paused_past_its_lease_cannot_complete_its_stale_job() {
        paused_worker_is_fenced(Backend::postgres()).await;
    }
}

/// A config file for gateway processes, kept alive as long as the value.
pub fn config_file(toml: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(toml.as_bytes()).expect("write config");
    f
}

/// Executed mutations per idempotency key: more than one means a job ran twice.
fn doubled_keys(monday: &MondaySim) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for c in monday.calls() {
        let executed = [
            "create_item",
            "change_multiple_column_values",
            "archive_item",
        ]
        .iter()
        .any(|f| c.has(f))
            && c.status == 200
            && !c.replayed
            && c.response.get("errors").is_none();
        if executed {
            *seen
                .entry(c.idempotency_key.unwrap_or_default())
                .or_default() += 1;
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, _)| k)
        .collect()
}

fn role_of(monday: &MondaySim, item: MondayItemId) -> Value {
    monday
        .item(item)
        .map(|i| {
            i.column_values
                .get("role_title")
                .cloned()
                .unwrap_or(Value::Null)
        })
        .unwrap_or(Value::Null)
}

async fn item_of(store: &Store, id: NpdId) -> Option<MondayItemId> {
    store
        .entity_by_npd(EntityKind::Contact, id)
        .await
        .expect("query")
        .and_then(|e| e.monday_item_id)
}

async fn replicas_share_the_work(backend: Backend) {
    // Arrange: three gateways on one database; NPD events reach the first, Monday webhooks the
    // second; all three process and dispatch.
    const CONTACTS: usize = 200;
    let db = TestDatabase::create(&backend).await;
    let sims = Sims::start().await.expect("sims");
    let (env, toml) = sims.process_config(&db.url, "127.0.0.1:0", 8_000, 3_000);
    let config = config_file(&toml);
    let mut gateways = Vec::new();
    for _ in 0..3 {
        gateways.push(GatewayProcess::spawn(&env, Some(config.path())).await);
    }
    sims.deliver_to(
        &format!("http://{}", gateways[1].addr),
        &format!("http://{}", gateways[0].addr),
    );
    let store = open_store(&db.url).await;
    let ids: Vec<NpdId> = (0..CONTACTS).map(|_| NpdId(uuid::Uuid::new_v4())).collect();

    // Act: 200 creates, then per contact 6 NPD updates and 3 Monday edits, interleaved.
    create_contacts(&sims, &ids).await;
    settle(&store, &sims.monday, &sims.npd, Duration::from_secs(120)).await;
    let mut items = HashMap::new();
    for id in &ids {
        items.insert(*id, item_of(&store, *id).await.expect("linked"));
    }
    edit_both_sides(&sims, &items).await;
    settle(&store, &sims.monday, &sims.npd, Duration::from_secs(180)).await;

    // Assert: both sides at the newest state for every contact, every job ran once, and the
    // replicas shared the work.
    assert_newest_on_both_sides(&sims, &store, &items).await;
    assert_no_job_ran_twice(&sims.monday, &store, &ids).await;
    let by_worker = leased_by(&db.url).await;
    assert!(
        by_worker.len() >= 2,
        "the replicas shared the work: {by_worker:?}"
    );
    eprintln!(
        "jobs per replica: {by_worker:?}; events: {}",
        store.inbox_count().await.expect("count")
    );
}

/// Creates every contact in NPD, from 8 senders at once.
async fn create_contacts(sims: &Sims, ids: &[NpdId]) {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in ids.chunks(ids.len().div_ceil(8)) {
        let npd = sims.npd.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for id in chunk {
                assert_eq!(
                    npd.create_contact(sample_contact(id)).await.status,
                    Some(202)
                );
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.expect("creates");
    }
}

/// Per contact, 6 NPD role updates (the newest is `r6`) and, after every second one, a Monday
/// email edit (the newest is `e3-…`), from 8 senders at once.
async fn edit_both_sides(sims: &Sims, items: &HashMap<NpdId, MondayItemId>) {
    let pairs: Vec<(NpdId, MondayItemId)> = items.iter().map(|(id, item)| (*id, *item)).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in pairs.chunks(pairs.len().div_ceil(8)) {
        let npd = sims.npd.clone();
        let monday = sims.monday.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for (id, item) in chunk {
                for step in 1..=6 {
                    npd.update_contact(id, |c| c.role_title = Some(format!("r{step}")))
                        .await;
                    if step % 2 == 0 {
                        let address = format!("e{}-{}@example.com", step / 2, id.0.simple());
                        monday
                            .user_change_column(
                                item,
                                "email",
                                json!({"email": address, "text": address}),
                            )
                            .await;
                    }
                }
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.expect("updates");
    }
}

/// Monday holds NPD's newest role and NPD holds Monday's newest email, for every contact.
async fn assert_newest_on_both_sides(
    sims: &Sims,
    store: &Store,
    items: &HashMap<NpdId, MondayItemId>,
) {
    for (id, item) in items {
        assert_eq!(
            role_of(&sims.monday, *item),
            json!("r6"),
            "Monday role of {id}"
        );
        let email = sims.npd.contact(*id).and_then(|c| c.email);
        if email != Some(format!("e3-{}@example.com", id.0.simple())) {
            print_entity(store, *id).await;
        }
        assert_eq!(
            email,
            Some(format!("e3-{}@example.com", id.0.simple())),
            "NPD email of {id}"
        );
    }
}

/// One create_item per contact and one item each, no job executed or completed twice, and
/// every job done under its own key.
async fn assert_no_job_ran_twice(monday: &MondaySim, store: &Store, ids: &[NpdId]) {
    let created: usize = monday
        .calls()
        .iter()
        .filter(|c| c.status == 200 && !c.replayed && c.response.get("errors").is_none())
        .map(|c| c.count("create_item"))
        .sum();
    assert_eq!(created, ids.len());
    assert_eq!(monday.items(CONTACTS_BOARD).len(), ids.len());
    assert!(
        doubled_keys(monday).is_empty(),
        "a job ran twice: {:?}",
        doubled_keys(monday)
    );
    let jobs = store.all_jobs().await.expect("jobs");
    assert!(
        jobs.iter().all(|j| j.state == JobState::Done),
        "every job done: {:?}",
        jobs.iter()
            .filter(|j| j.state != JobState::Done)
            .collect::<Vec<_>>()
    );
    let keys: HashSet<&str> = jobs.iter().map(|j| j.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), jobs.len(), "every job has its own key");
    let mut sent_per_job: BTreeMap<i64, usize> = BTreeMap::new();
    for id in ids {
        let entity = store
            .entity_by_npd(EntityKind::Contact, *id)
            .await
            .expect("q")
            .expect("entity");
        for h in store.history(entity.id, 10_000).await.expect("history") {
            if h.kind == HistoryKind::Sent
                && let Some(job) = h.job_id
            {
                *sent_per_job.entry(job).or_default() += 1;
            }
        }
    }
    assert!(
        sent_per_job.values().all(|n| *n == 1),
        "a job completed twice"
    );
}

/// Jobs completed per worker (the `leased_by` of done jobs).
async fn leased_by(url: &str) -> BTreeMap<String, i64> {
    let pool = sqlx::PgPool::connect(url).await.expect("pg");
    let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
        "select leased_by, count(*) from outbox_jobs where state = 'done' group by leased_by",
    )
    .fetch_all(&pool)
    .await
    .expect("query");
    pool.close().await;
    rows.into_iter()
        .map(|(w, n)| (w.unwrap_or_default(), n))
        .collect()
}

/// How long a sender of the kill test waits before it sends an unacknowledged event again.
const RESEND_PAUSE: Duration = Duration::from_millis(50);

/// One NPD sender of the kill test: it signs each version of a contact and sends it until the
/// gateway acknowledges it, counting acknowledgements for the killer to pace itself by.
struct Sender {
    url: String,
    secret: WebhookSecret,
    acknowledged: Mutex<HashSet<String>>,
    acked: tokio::sync::watch::Sender<usize>,
}

impl Sender {
    fn new(base: &str, secret: WebhookSecret) -> Self {
        Sender {
            url: format!("{base}/api/v1/npd/events"),
            secret,
            acknowledged: Mutex::default(),
            acked: tokio::sync::watch::channel(0).0,
        }
    }

    async fn send_until_acknowledged(&self, id: NpdId, version: i64) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let mut data = serde_json::to_value(sample_contact(id)).expect("json");
        data["version"] = json!(version);
        data["role_title"] = json!(format!("r{version:02}"));
        let at = time::OffsetDateTime::now_utc();
        data["updated_at"] = json!(
            at.format(&time::format_description::well_known::Rfc3339)
                .expect("fmt")
        );
        let kind = if version == 1 {
            "contact.created"
        } else {
            "contact.updated"
        };
        let body = json!({"type": kind, "timestamp": data["updated_at"], "data": data}).to_string();
        let webhook_id = format!("evt_{}_{version}", id.0.simple());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ts = time::OffsetDateTime::now_utc().unix_timestamp();
            let response = client
                .post(&self.url)
                .header("webhook-id", &webhook_id)
                .header("webhook-timestamp", ts.to_string())
                .header(
                    "webhook-signature",
                    sign(&self.secret, &webhook_id, ts, body.as_bytes()),
                )
                .body(body.clone())
                .send()
                .await;
            if matches!(&response, Ok(r) if r.status().as_u16() == 202) {
                let count = {
                    let mut acknowledged = self.acknowledged.lock().expect("lock");
                    acknowledged.insert(webhook_id.clone());
                    acknowledged.len()
                };
                self.acked.send_replace(count);
                return;
            }
            assert!(Instant::now() < deadline, "{webhook_id} never acknowledged");
            // A sender's retry pause, as NPD's own: nothing waits on it.
            tokio::time::sleep(RESEND_PAUSE).await;
        }
    }
}

/// Sends every version of every contact from 4 senders that retry until acknowledged, while the
/// gateway is killed `kills` times, each after a random number of further acknowledgements (so
/// every kill lands mid-stream, and all before the last event). Answers the acknowledged ids.
async fn send_while_killing(
    ids: &[NpdId],
    versions: i64,
    sender: Sender,
    (gateway, kills): (&Arc<tokio::sync::Mutex<Option<GatewayProcess>>>, usize),
    (env, config): (&[(String, String)], &std::path::Path),
    pusher: Option<AdminPusher>,
) -> (HashSet<String>, Instant, PushCounts) {
    // Kills are spaced by a random number of acknowledgements in [spacing/2, spacing], so all
    // of them land before the last event.
    let spacing = (ids.len() * versions as usize / (kills + 1)).max(2);
    let acks = sender.acked.subscribe();
    let sender = Arc::new(sender);
    let stop_pushing = tokio_util::sync::CancellationToken::new();
    let pushes = pusher.map(|p| {
        let (sender, ids, stop) = (Arc::clone(&sender), ids.to_vec(), stop_pushing.clone());
        tokio::spawn(async move { p.push_while_sending(&sender, &ids, stop).await })
    });
    let mut senders = tokio::task::JoinSet::new();
    for chunk in ids.chunks(ids.len().div_ceil(4)) {
        let sender = Arc::clone(&sender);
        let chunk = chunk.to_vec();
        senders.spawn(async move {
            for id in chunk {
                for version in 1..=versions {
                    sender.send_until_acknowledged(id, version).await;
                }
            }
        });
    }
    let killer = {
        let gateway = Arc::clone(gateway);
        let env = env.to_vec();
        let config = config.to_owned();
        tokio::spawn(async move {
            let mut last_restart = Instant::now();
            for _ in 0..kills {
                let after = rand::rng().random_range(spacing / 2..=spacing);
                kill_and_restart(&gateway, (acks.clone(), after), &env, &config).await;
                last_restart = Instant::now();
            }
            last_restart
        })
    };
    while let Some(s) = senders.join_next().await {
        s.expect("sender");
    }
    let last_restart = killer.await.expect("killer");
    stop_pushing.cancel();
    let pushed = match pushes {
        Some(p) => p.await.expect("pusher"),
        None => PushCounts::default(),
    };
    let acknowledged = sender.acknowledged.lock().expect("lock").clone();
    (acknowledged, last_restart, pushed)
}

/// Admin pushes (`POST /api/v1/contacts/{id}/sync-to-monday`) sent while the NPD events flow
/// and the gateway is killed: each for a random contact whose `contact.created` was
/// acknowledged, one every `pause`, until the senders are done.
struct AdminPusher {
    base: String,
    token: String,
    pause: Duration,
}

/// How the admin pushes were answered: 200 (acknowledged), 404 (the contact not processed
/// yet) and no answer or another status (the gateway being killed: indeterminate).
#[derive(Debug, Default, Clone, Copy)]
struct PushCounts {
    acknowledged: usize,
    not_yet_known: usize,
    indeterminate: usize,
}

impl AdminPusher {
    async fn push_while_sending(
        self,
        sender: &Sender,
        ids: &[NpdId],
        stop: tokio_util::sync::CancellationToken,
    ) -> PushCounts {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let mut counts = PushCounts::default();
        while !stop.is_cancelled() {
            let id = ids[rand::rng().random_range(0..ids.len())];
            let created = format!("evt_{}_1", id.0.simple());
            if sender.acknowledged.lock().expect("lock").contains(&created) {
                let answer = client
                    .post(format!("{}/api/v1/contacts/{id}/sync-to-monday", self.base))
                    .bearer_auth(&self.token)
                    .send()
                    .await;
                match answer.map(|r| r.status().as_u16()) {
                    Ok(200) => counts.acknowledged += 1,
                    Ok(404) => counts.not_yet_known += 1,
                    _ => counts.indeterminate += 1,
                }
            }
            // The operator's pace, as the senders' RESEND_PAUSE: nothing waits on it.
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(self.pause) => {}
            }
        }
        counts
    }
}

/// Waits for `after` further acknowledgements, then kills the gateway with SIGKILL and starts
/// a new one on the same port.
async fn kill_and_restart(
    gateway: &tokio::sync::Mutex<Option<GatewayProcess>>,
    (mut acks, after): (tokio::sync::watch::Receiver<usize>, usize),
    env: &[(String, String)],
    config: &std::path::Path,
) {
    let at = *acks.borrow() + after;
    tokio::time::timeout(Duration::from_secs(60), acks.wait_for(|n| *n >= at))
        .await
        .expect("the senders keep being acknowledged")
        .expect("senders running");
    let mut slot = gateway.lock().await;
    if let Some(running) = slot.take() {
        running.kill_9().await;
    }
    *slot = Some(GatewayProcess::spawn(env, Some(config)).await);
}

async fn kill_9_at_random_moments_loses_no_acknowledged_event_and_duplicates_nothing(
    backend: Backend,
) {
    kill_test(
        backend,
        KillTest {
            contacts: 100,
            kills: 10,
        },
    )
    .await;
}

/// RELIABILITY.md T6 at full size on PostgreSQL: 20 kills during 10,000 events (1,000 contacts;
/// `T6_CONTACTS` sets another size, `.ci/run` runs a smaller one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes at full size: run explicitly (`-- --ignored t6_full_size`), as .ci/run does"]
async fn t6_full_size_kill_9_20_times_during_10000_events_loses_nothing() {
    let contacts = std::env::var("T6_CONTACTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    kill_test(
        Backend::postgres(),
        KillTest {
            contacts,
            kills: 20,
        },
    )
    .await;
}

/// The kill test's size: contacts (10 events each) and kills.
struct KillTest {
    contacts: usize,
    kills: usize,
}

async fn kill_test(backend: Backend, KillTest { contacts, kills }: KillTest) {
    // Arrange: one gateway on a fixed port, so the simulators and the senders find it after
    // each restart; short leases so a killed worker's jobs come back quickly.
    const VERSIONS: i64 = 10;
    let started = Instant::now();
    let db = TestDatabase::create(&backend).await;
    let sims = Sims::start().await.expect("sims");
    let listen = free_listen_address();
    let (env, toml) = sims.process_config(&db.url, &listen, 2_500, 1_500);
    let config = config_file(&toml);
    let gateway = Arc::new(tokio::sync::Mutex::new(Some(
        GatewayProcess::spawn(&env, Some(config.path())).await,
    )));
    let base = format!("http://{listen}");
    sims.deliver_to(&base, &base);
    let ids: Vec<NpdId> = (0..contacts).map(|_| NpdId(uuid::Uuid::new_v4())).collect();
    for id in &ids {
        sims.npd.insert_contact(sample_contact(*id));
    }
    // This test is the only sender of NPD events: the simulator's own echo of the monday_id
    // write-back would otherwise compete with the test's versions.
    sims.npd.faults().set_emit_on_patch(false);

    // Act: 10 signed NPD events per contact (created, then 9 versioned updates), sent by 4
    // senders that retry until acknowledged, while the gateway is killed `kills` times, each
    // after a random number of further acknowledgements (so every kill lands mid-stream).
    let secret = WebhookSecret::parse(sims.npd_secret()).expect("secret");
    // Meanwhile an operator pushes random known contacts to Monday (admin pushes).
    let pusher = AdminPusher {
        base: base.clone(),
        token: sims.admin_token().to_owned(),
        pause: Duration::from_millis(20),
    };
    let (acknowledged, last_restart, pushes) = send_while_killing(
        &ids,
        VERSIONS,
        Sender::new(&base, secret),
        (&gateway, kills),
        (&env, config.path()),
        Some(pusher),
    )
    .await;
    let sent = Instant::now();
    let store = open_store(&db.url).await;
    // Every event terminal within 5 minutes of the last restart (RELIABILITY.md T6).
    settle(&store, &sims.monday, &sims.npd, Duration::from_secs(300)).await;
    let drained = last_restart.elapsed();

    // Assert: nothing acknowledged is missing, every job ended, no duplicate item, newest state.
    assert_eq!(acknowledged.len(), contacts * VERSIONS as usize);

    assert_all_stored(&store, &acknowledged).await;
    let jobs = store.all_jobs().await.expect("jobs");
    assert!(jobs.iter().all(|j| !j.state.is_open()), "open jobs remain");
    let dead = jobs.iter().filter(|j| j.state == JobState::Dead).count();
    assert_eq!(dead, 0, "no job should die of a crash");
    assert_one_item_each_at(&store, &sims.monday, &ids, &format!("r{VERSIONS:02}")).await;
    assert!(
        pushes.acknowledged > 0,
        "no admin push was acknowledged: {pushes:?}"
    );
    eprintln!(
        "T6: {} NPD events acknowledged, admin pushes {} acknowledged / {} not yet known (404) \
         / {} indeterminate, {kills} kills, 0 lost; {} jobs, all done; drained {} ms after the \
         last restart ({} ms after the last event); {} s in all",
        acknowledged.len(),
        pushes.acknowledged,
        pushes.not_yet_known,
        pushes.indeterminate,
        jobs.len(),
        drained.as_millis(),
        sent.elapsed().as_millis(),
        started.elapsed().as_secs()
    );
    if let Some(g) = gateway.lock().await.take() {
        g.kill_9().await;
    }
}

/// A listen address on a port that was free a moment ago, so a restarted gateway keeps it.
pub fn free_listen_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    format!("127.0.0.1:{}", l.local_addr().expect("addr").port())
}

/// Monday holds exactly one item per contact, each with the newest role.
async fn assert_one_item_each_at(store: &Store, monday: &MondaySim, ids: &[NpdId], role: &str) {
    assert_eq!(
        monday.items(CONTACTS_BOARD).len(),
        ids.len(),
        "duplicate or missing Monday items"
    );
    for id in ids {
        let item = item_of(store, *id).await.expect("linked");
        if role_of(monday, item) != json!(role) {
            print_entity(store, *id).await;
        }
        assert_eq!(role_of(monday, item), json!(role), "newest state of {id}");
    }
}

async fn paused_worker_is_fenced(backend: Backend) {
    // Arrange: two replicas; Monday answers slowly, leases are short. Should the freeze catch
    // the holder inside a transaction (its processor's, say), PostgreSQL ends that session after
    // the idle-in-transaction timeout and its locks go with it: 5 s here, well inside the 30 s
    // the takeover may take.
    let db = TestDatabase::create(&backend).await;
    let sims = Sims::start().await.expect("sims");
    let (env, toml) = sims.process_config(&db.url, "127.0.0.1:0", 3_000, 2_500);
    let toml = toml.replacen(
        "[gateway]\n",
        "[gateway]\ndatabase_idle_in_transaction_timeout_ms = 5000\n",
        1,
    );
    let config = config_file(&toml);
    let a = GatewayProcess::spawn(&env, Some(config.path())).await;
    let b = GatewayProcess::spawn(&env, Some(config.path())).await;
    sims.deliver_to(&format!("http://{}", a.addr), &format!("http://{}", a.addr));
    sims.monday
        .faults()
        .set_latency(Duration::from_millis(1_500));
    let store = open_store(&db.url).await;

    // Act: a contact's create is claimed by one replica, which is frozen past its lease.
    let id = NpdId(uuid::Uuid::new_v4());
    sims.npd.create_contact(sample_contact(id)).await;
    let job = eventually(Duration::from_secs(30), async || {
        let leased = store
            .jobs_in_state(JobState::Leased, 10)
            .await
            .expect("jobs");
        leased
            .into_iter()
            .find(|j| j.operation == Operation::PushItem)
            .ok_or_else(|| "no replica has claimed the create".to_owned())
    })
    .await;
    let holder = worker_pid(&db.url, job.id).await;
    // Freeze it while its call to Monday is under way (no transaction is open then): the
    // simulator records the call before its latency, so the call is still unanswered.
    sims.monday
        .wait_for_call(Duration::from_secs(10), |c| c.has("create_item"))
        .await
        .expect("the holder called Monday");
    let frozen = if holder == a.pid() { &a } else { &b };
    frozen.signal("STOP").await;
    // The other replica takes the job over once the lease has expired, and completes it.
    let taken_over = eventually(Duration::from_secs(30), async || {
        let now = store.job(job.id).await.expect("job").expect("exists");
        if now.state == JobState::Done {
            Ok(now)
        } else {
            Err(format!("the job was not taken over: {now:?}"))
        }
    })
    .await;
    assert!(
        taken_over.lease_token.unwrap_or(0) > job.lease_token.unwrap_or(0),
        "taken over under a new token"
    );
    frozen.signal("CONT").await;

    // Assert: once thawed, the worker finishes its call, and its late outcome is refused; one
    // completion, one item.
    let refused = frozen
        .wait_for_log(
            Duration::from_secs(30),
            "lease lost: outcome refused by the fence",
        )
        .await;
    assert!(
        refused.is_some(),
        "the stale worker's completion was not refused by the fence"
    );
    assert_completed_once(&store, &sims.monday, id, job.id).await;
}

/// The job has exactly one `sent` in its entity's history, and Monday holds one item made by
/// one execution.
async fn assert_completed_once(store: &Store, monday: &MondaySim, id: NpdId, job: i64) {
    let entity = store
        .entity_by_npd(EntityKind::Contact, id)
        .await
        .expect("q")
        .expect("entity");
    let sent = store
        .history(entity.id, 100)
        .await
        .expect("history")
        .into_iter()
        .filter(|h| h.kind == HistoryKind::Sent && h.job_id == Some(job))
        .count();
    assert_eq!(sent, 1, "the job completed exactly once");
    assert_eq!(
        monday.items(CONTACTS_BOARD).len(),
        1,
        "Monday saw at most a same-key replay"
    );
    assert!(doubled_keys(monday).is_empty());
}

/// The process id in a leased job's worker name (`gw-<pid>-<suffix>`).
async fn worker_pid(url: &str, job: i64) -> u32 {
    let pool = sqlx::PgPool::connect(url).await.expect("pg");
    let by: Option<String> = sqlx::query_scalar("select leased_by from outbox_jobs where id = $1")
        .bind(job)
        .fetch_one(&pool)
        .await
        .expect("query");
    pool.close().await;
    by.and_then(|w| w.split('-').nth(1).and_then(|p| p.parse().ok()))
        .expect("worker pid")
}

/// The ledger's account of one contact, printed when an assertion about it is about to fail.
async fn print_entity(store: &Store, id: NpdId) {
    let Ok(Some(entity)) = store.entity_by_npd(EntityKind::Contact, id).await else {
        return;
    };
    for h in store
        .history(entity.id, 200)
        .await
        .unwrap_or_default()
        .iter()
        .rev()
    {
        eprintln!(
            "{} job={:?} inbox={:?} {} {}",
            h.kind,
            h.job_id,
            h.inbox_event_id,
            h.reason,
            h.detail.clone().unwrap_or_default()
        );
    }
    eprintln!(
        "role_title: {:?}",
        store
            .entity_fields(entity.id)
            .await
            .ok()
            .and_then(|f| f.get("role_title").cloned())
    );
    for j in store.entity_jobs(entity.id, 100).await.unwrap_or_default() {
        eprintln!(
            "job {} {} {} attempts={} payload={:?} err={:?}",
            j.id, j.operation, j.state, j.attempts, j.payload, j.last_error
        );
    }
}

postgres_test! {
    async fn per_entity_order_holds_with_three_replicas_processing_in_parallel() {
        shuffled_versions_reach_three_replicas(Backend::postgres()).await;
    }
}

/// Three gateways in this process on one database, their NPD events and Monday webhooks going
/// to the first; answers their addresses and their stop tokens.
async fn in_process_replicas(
    sims: &Sims,
    url: &str,
) -> Vec<(String, tokio_util::sync::CancellationToken)> {
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let app = npd_monday_gateway::startup::Application::build(sims.settings(url))
            .await
            .expect("replica");
        let addr = format!("http://{}", app.local_addr().expect("addr"));
        replicas.push((addr, app.shutdown_token()));
        tokio::spawn(app.run_until_stopped());
    }
    sims.deliver_to(&replicas[0].0, &replicas[0].0);
    replicas
}

async fn shuffled_versions_reach_three_replicas(backend: Backend) {
    // Arrange: three replicas (each with its processing tasks), 50 contacts created and synced.
    const CONTACTS: usize = 50;
    const UPDATES: i64 = 199;
    let db = TestDatabase::create(&backend).await;
    let sims = Sims::start().await.expect("sims");
    sims.npd.faults().set_emit_on_patch(false);
    let replicas = in_process_replicas(&sims, &db.url).await;
    let store = open_store(&db.url).await;
    let ids: Vec<NpdId> = (0..CONTACTS).map(|_| NpdId(uuid::Uuid::new_v4())).collect();
    create_contacts(&sims, &ids).await;
    settle(&store, &sims.monday, &sims.npd, Duration::from_secs(60)).await;
    sims.monday.clear_calls();

    // Act: versions 2..=200 of every contact, shuffled (10% twice), spread over the replicas.
    let deliveries = crate::conflicts::shuffled_versions(&ids, UPDATES);
    let urls: Vec<String> = replicas.iter().map(|(a, _)| a.clone()).collect();
    send_signed(sims.npd_secret(), &urls, deliveries).await;
    settle(&store, &sims.monday, &sims.npd, Duration::from_secs(120)).await;

    // Assert: every item at the newest version, and no older value ever written after a newer.
    let written = crate::helpers::column_writes(&sims.monday, "role_title");
    let newest = format!("v{}", UPDATES + 1);
    for id in &ids {
        let item = item_of(&store, *id).await.expect("linked");
        assert_eq!(role_of(&sims.monday, item), json!(newest), "contact {id}");
        let sequence: Vec<i64> = written
            .get(&item.to_string())
            .map(|w| w.iter().filter_map(|v| v[1..].parse().ok()).collect())
            .unwrap_or_default();
        assert!(
            sequence.is_sorted(),
            "contact {id}: an older version was written after a newer one: {sequence:?}"
        );
    }
    assert_eq!(sims.monday.items(CONTACTS_BOARD).len(), CONTACTS);
    let failed = store
        .inbox_events(Side::Npd, 1_000_000)
        .await
        .expect("inbox");
    let failed: Vec<_> = failed
        .iter()
        .filter(|r| r.outcome == Some(npd_monday_gateway::domain::state::InboxOutcome::Failed))
        .collect();
    assert!(failed.is_empty(), "no event failed: {failed:?}");
    for (_, stop) in replicas {
        stop.cancel();
    }
}

/// Sends the NPD deliveries, signed, from 8 senders at once, each to the replicas in turn.
async fn send_signed(secret: &str, urls: &[String], deliveries: Vec<(String, Value)>) {
    let client = reqwest::Client::new();
    let mut sends = tokio::task::JoinSet::new();
    for (n, chunk) in deliveries.chunks(deliveries.len().div_ceil(8)).enumerate() {
        let (client, secret, urls) = (client.clone(), secret.to_owned(), urls.to_vec());
        let chunk = chunk.to_vec();
        sends.spawn(async move {
            for (i, (id, body)) in chunk.into_iter().enumerate() {
                let body = body.to_string();
                let ts = time::OffsetDateTime::now_utc().unix_timestamp();
                let status = client
                    .post(format!("{}/api/v1/npd/events", urls[(n + i) % urls.len()]))
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts.to_string())
                    .header(
                        "webhook-signature",
                        crate::helpers::sign_npd(&secret, &id, ts, body.as_bytes()),
                    )
                    .body(body)
                    .send()
                    .await
                    .expect("sent")
                    .status();
                assert_eq!(status.as_u16(), 202, "{id}");
            }
        });
    }
    while let Some(done) = sends.join_next().await {
        done.expect("sender");
    }
}
