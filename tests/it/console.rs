//! The admin console at `/admin`, over HTTP as a browser uses it (a cookie jar, forms, no
//! redirects followed): signing in with the admin API's token check and failure limit, the
//! session cookie's flags and its hashed row, the security headers, CSRF on every POST, the
//! idle and absolute expiry, signing out, and the actions (push, conflict resolution, dead-letter
//! replay) going through the API's own use cases and audit rows.

use std::time::Duration;

use npd_monday_gateway::auth::console_session::stored_form;
use npd_monday_gateway::config::Settings;
use npd_monday_gateway::demo::World;
use npd_monday_gateway::domain::entity::{MondayItemId, NpdId};
use npd_monday_gateway::domain::reconcile::ConflictPolicy;
use npd_monday_gateway::domain::state::{AuditOutcome, ConflictStatus, JobState};
use npd_monday_gateway::http::console::{CONTENT_SECURITY_POLICY, SESSION_COOKIE};
use npd_monday_gateway::ledger::jobs::JobRow;
use reqwest::StatusCode;

use crate::helpers::{
    Backend, TestDatabase, contact_monday_refuses, created_contact, edit_email_on_both_sides,
    settle_world,
};
use crate::store_tests;

store_tests!(
    a_wrong_token_shows_the_form_again_and_repeated_failures_are_limited,
    signing_in_sets_a_strict_cookie_whose_session_is_stored_hashed,
    pages_without_a_session_send_the_browser_to_sign_in,
    a_post_without_this_sessions_csrf_token_is_refused,
    a_push_from_the_console_reaches_monday_and_is_audited,
    conflicts_are_resolved_and_dead_letters_replayed_from_the_console,
    signing_out_ends_the_session,
    a_revoked_tokens_sessions_end_and_name_it_in_the_audit,
    an_idle_or_expired_session_is_refused,
    the_search_finds_a_contact_by_name_email_and_ids,
    entities_from_before_the_console_are_found_by_their_names_and_email,
    the_review_queue_is_settled_from_the_backfills_page_and_scans_are_listed,
);

const SETTLE: Duration = Duration::from_secs(30);

/// A browser: a cookie jar, redirects not followed (each 303 is asserted).
pub struct Browser {
    pub client: reqwest::Client,
    base: String,
}

impl Browser {
    pub fn new(world: &World) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            base: world.url(""),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        self.client.get(url).send().await.expect("get")
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        self.client.post(url).form(form).send().await.expect("post")
    }

    /// The page's text, asserting its status.
    pub async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.text().await.expect("html")
    }

    /// Signs in through the form; the answer to the form's POST.
    pub async fn sign_in(&self, token: &str) -> reqwest::Response {
        let form = self.page("/admin/login").await;
        let csrf = csrf_of(&form);
        self.post("/admin/login", &[("token", token), ("csrf_token", &csrf)])
            .await
    }

    /// Signs in and asserts it worked; the session's CSRF token (read from the overview).
    pub async fn signed_in(&self, token: &str) -> String {
        let response = self.sign_in(token).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/admin");
        csrf_of(&self.page("/admin").await)
    }
}

/// The first `csrf_token` field's value in a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("a csrf_token field") + marker.len();
    html[start..].split('"').next().expect("value").to_owned()
}

pub fn location(response: &reqwest::Response) -> String {
    response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

async fn world(backend: &Backend, tweak: impl FnOnce(&mut Settings)) -> (World, TestDatabase) {
    crate::helpers::world_with(backend, tweak).await
}

async fn a_wrong_token_shows_the_form_again_and_repeated_failures_are_limited(backend: Backend) {
    // Arrange: three failures a minute per address, as for the API.
    let (world, _db) = world(&backend, |s| s.sync.admin_auth_failures_per_minute = 3).await;
    let browser = Browser::new(&world);

    // Act
    let mut statuses = Vec::new();
    let mut first = None;
    for guess in 0..5 {
        let response = browser.sign_in(&format!("gwa_guess{guess}")).await;
        statuses.push(response.status().as_u16());
        if first.is_none() {
            first = Some(response.text().await.expect("html"));
        }
    }
    let right = browser.sign_in(&world.admin_token).await;

    // Assert: the form again with its error, then 429 even for the right token.
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    let first = first.expect("first answer");
    assert!(first.contains("That admin token is not valid"), "{first}");
    assert!(first.contains("name=\"csrf_token\""), "a fresh form");
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(right.headers().contains_key("retry-after"));
    let audit = world.store.audit_log(50).await.expect("audit");
    let denied: Vec<_> = audit
        .iter()
        .filter(|a| a.outcome == AuditOutcome::Denied)
        .collect();
    assert_eq!(
        denied.len(),
        4,
        "three failures, the first refusal: {audit:?}"
    );
    assert!(world.store.console_sessions().await.expect("q").is_empty());
}

async fn signing_in_sets_a_strict_cookie_whose_session_is_stored_hashed(backend: Backend) {
    // Arrange: behind TLS.
    let (world, _db) = world(&backend, |s| {
        s.http.public_url = Some("https://gateway.example.com".into());
    })
    .await;
    let browser = Browser::new(&world);
    let login = browser.get("/admin/login").await;
    let h = login.headers();
    assert_eq!(h["content-security-policy"], CONTENT_SECURITY_POLICY);
    assert!(CONTENT_SECURITY_POLICY.contains("default-src 'none'"));
    assert!(!CONTENT_SECURITY_POLICY.contains("script-src"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    let login_cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let csrf = csrf_of(&login.text().await.expect("html"));

    // Act: the Secure cookie is not sent back over http by a jar: send it by hand.
    let pair = login_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    let response = browser
        .client
        .post(world.url("/admin/login"))
        .header("cookie", pair)
        .form(&[("token", world.admin_token.as_str()), ("csrf_token", &csrf)])
        .send()
        .await
        .expect("post");

    // Assert
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin");
    let id = strict_session_cookie(&response);
    let rows = world.store.console_sessions().await.expect("sessions");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].session_sha256,
        stored_form(&id),
        "stored as its SHA-256"
    );
    assert_ne!(rows[0].session_sha256, id, "never the cookie's value");
    assert_eq!(rows[0].actor, "bootstrap");
    the_overview_opens_with(&browser, &world, &id).await;
}

/// The session cookie a sign-in set, checked for its flags; its value.
fn strict_session_cookie(response: &reqwest::Response) -> String {
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{SESSION_COOKIE}=")))
        .expect("the session cookie");
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Secure",
        "Max-Age=43200",
    ] {
        assert!(
            session.split("; ").any(|f| f == flag),
            "{flag} in {session}"
        );
    }
    let id = session
        .split(';')
        .next()
        .and_then(|p| p.split_once('='))
        .expect("value")
        .1;
    assert!(id.len() >= 43, "32 random bytes: {id}");
    id.to_owned()
}

/// The overview answers the session `id` (sent by hand: a jar keeps a Secure cookie off http).
async fn the_overview_opens_with(browser: &Browser, world: &World, id: &str) {
    let overview = browser
        .client
        .get(world.url("/admin"))
        .header("cookie", format!("{SESSION_COOKIE}={id}"))
        .send()
        .await
        .expect("get");
    assert_eq!(overview.status(), StatusCode::OK);
    assert_eq!(
        overview.headers()["content-security-policy"],
        CONTENT_SECURITY_POLICY
    );
    let html = overview.text().await.expect("html");
    assert!(
        html.contains("Open conflicts") && html.contains("Monday budget left"),
        "{html}"
    );
}

async fn pages_without_a_session_send_the_browser_to_sign_in(backend: Backend) {
    let (world, _db) = world(&backend, |_| {}).await;
    let browser = Browser::new(&world);
    let id = uuid::Uuid::new_v4();
    let pages = [
        "/admin".to_owned(),
        "/admin/entities?q=ada".to_owned(),
        format!("/admin/contacts/{id}"),
        format!("/admin/organizations/{id}"),
        "/admin/conflicts".to_owned(),
        "/admin/dead-letters".to_owned(),
        "/admin/backfills".to_owned(),
        "/admin/drift-scans".to_owned(),
    ];
    for page in &pages {
        let response = browser.get(page).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{page}");
        assert_eq!(location(&response), "/admin/login", "{page}");
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    let push = browser
        .post(
            &format!("/admin/contacts/{id}/push"),
            &[("csrf_token", "x")],
        )
        .await;
    assert_eq!(push.status(), StatusCode::SEE_OTHER);
    let forged = browser.get("/admin").await;
    assert_eq!(location(&forged), "/admin/login");
    // A cookie that names no session is no better.
    let guessed = browser
        .client
        .get(world.url("/admin"))
        .header("cookie", format!("{SESSION_COOKIE}=guessed"))
        .send()
        .await
        .expect("get");
    assert_eq!(guessed.status(), StatusCode::SEE_OTHER);
    assert!(
        world.store.audit_log(10).await.expect("audit").is_empty(),
        "nobody signed in: nothing to audit"
    );
}

async fn a_post_without_this_sessions_csrf_token_is_refused(backend: Backend) {
    // Arrange: a synced contact and a signed-in browser.
    let (world, _db) = world(&backend, |_| {}).await;
    let (id, _) = created_contact(&world).await;
    let browser = Browser::new(&world);
    let csrf = browser.signed_in(&world.admin_token).await;
    let other = Browser::new(&world);
    let other_csrf = other.signed_in(&world.admin_token).await;
    assert_ne!(csrf, other_csrf, "each session has its own token");
    world.monday.clear_calls();
    let push = format!("/admin/contacts/{id}/push");

    // Act
    let without = browser.post(&push, &[]).await;
    let wrong = browser.post(&push, &[("csrf_token", "forged")]).await;
    let anothers = browser.post(&push, &[("csrf_token", &other_csrf)]).await;
    let login_without = Browser::new(&world)
        .post("/admin/login", &[("token", world.admin_token.as_str())])
        .await;

    // Assert: 403, nothing queued; the session is still good.
    for response in [without, wrong, anothers, login_without] {
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let html = response.text().await.expect("html");
        assert!(
            html.contains("csrf_token") && html.contains("403 Forbidden"),
            "{html}"
        );
    }
    let audit = world.store.audit_log(50).await.expect("audit");
    assert!(
        !audit.iter().any(|a| a.action == "contact.sync-to-monday"),
        "no push was made: {audit:?}"
    );
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.outcome == AuditOutcome::Denied && a.actor == "bootstrap")
            .count(),
        3,
        "each refused post of the session is audited"
    );
    assert!(world.monday.calls().is_empty(), "nothing reached Monday");
    let overview = browser.get("/admin").await;
    assert_eq!(overview.status(), StatusCode::OK);
}

async fn a_push_from_the_console_reaches_monday_and_is_audited(backend: Backend) {
    // Arrange
    let (world, _db) = world(&backend, |_| {}).await;
    let (id, item) = created_contact(&world).await;
    let browser = Browser::new(&world);
    let csrf = browser.signed_in(&world.admin_token).await;
    world.monday.clear_calls();

    // Act
    let response = browser
        .post(
            &format!("/admin/contacts/{id}/push"),
            &[("csrf_token", &csrf)],
        )
        .await;

    // Assert: back to the entity's page; the push reached Monday for its item.
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&response),
        format!("/admin/contacts/{id}?done=pushed")
    );
    let call = world
        .monday
        .wait_for_call(SETTLE, |c| {
            c.status == 200 && c.variables.to_string().contains(&item.to_string())
        })
        .await
        .expect("the push reached the Monday simulator");
    assert!(call.idempotency_key.is_some(), "a mutation: {call:?}");
    let audit = world.store.audit_log(20).await.expect("audit");
    let row = audit
        .iter()
        .find(|a| a.action == "contact.sync-to-monday")
        .expect("an audit row for the push");
    assert_eq!(row.actor, "bootstrap");
    assert_eq!(row.outcome, AuditOutcome::Queued);
    assert_eq!(row.target.as_deref(), Some(id.to_string().as_str()));
    settle_world(&world, SETTLE).await;
    let page = browser
        .page(&format!("/admin/contacts/{id}?done=pushed"))
        .await;
    assert!(page.contains("Push queued"), "the notice");
    assert!(
        page.contains("id=\"timeline\"") && page.contains("requested"),
        "{page}"
    );
}

async fn conflicts_are_resolved_and_dead_letters_replayed_from_the_console(backend: Backend) {
    // Arrange: a manual conflict on a contact's email, and a contact Monday refuses.
    let (world, _db) = world(&backend, |s| s.conflicts.default = ConflictPolicy::Manual).await;
    let contact = created_contact(&world).await;
    edit_email_on_both_sides(&world, contact, "npd@example.com", "monday@example.com").await;
    let refused = contact_monday_refuses(&world).await;
    settle_world(&world, SETTLE).await;
    let browser = Browser::new(&world);
    let csrf = browser.signed_in(&world.admin_token).await;
    let open = world
        .store
        .conflicts(ConflictStatus::Open, 10)
        .await
        .expect("q");
    assert_eq!(open.len(), 1);
    let dead = world.store.dead_letters(0, 10).await.expect("dead");
    assert_eq!(dead.len(), 1);
    let listed = browser.page("/admin/conflicts").await;
    assert!(listed.contains("npd@example.com") && listed.contains("monday@example.com"));
    let letters = browser.page("/admin/dead-letters").await;
    assert!(letters.contains(&refused.to_string()), "names its entity");

    // Act
    let resolved = browser
        .post(
            &format!("/admin/conflicts/{}/resolve", open[0].id),
            &[("csrf_token", &csrf), ("take", "monday")],
        )
        .await;
    let replayed = browser
        .post(
            &format!("/admin/dead-letters/{}/replay", dead[0].job.id),
            &[("csrf_token", &csrf)],
        )
        .await;

    // Assert: Monday's value reaches NPD; the dead job was queued again with a full set of
    // attempts; both audited as the API audits them.
    assert_eq!(resolved.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resolved), "/admin/conflicts?done=resolved");
    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&replayed), "/admin/dead-letters?done=replayed");
    settle_world(&world, SETTLE).await;
    monday_value_reached_npd_and_replay_got_new_attempts(&world, contact, &dead[0].job).await;
    let again = browser
        .post(
            &format!("/admin/conflicts/{}/resolve", open[0].id),
            &[("csrf_token", &csrf), ("take", "npd")],
        )
        .await;
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "already resolved, as the API says"
    );
}

/// After the console settled the conflict (Monday's value) and replayed `dead`: the value is in
/// NPD, no conflict is open, the job got a full set of attempts again, both were audited as
/// the API audits them.
async fn monday_value_reached_npd_and_replay_got_new_attempts(
    world: &World,
    contact: (NpdId, MondayItemId),
    dead: &JobRow,
) {
    assert_eq!(
        world
            .npd
            .contact(contact.0)
            .and_then(|c| c.email)
            .as_deref(),
        Some("monday@example.com")
    );
    assert!(
        world
            .store
            .conflicts(ConflictStatus::Open, 10)
            .await
            .expect("q")
            .is_empty()
    );
    let job = world.store.job(dead.id).await.expect("q").expect("job");
    assert!(job.max_attempts > dead.max_attempts, "replayed: {job:?}");
    assert!(
        job.attempts > dead.attempts || job.state != JobState::Dead,
        "{job:?}"
    );
    let audit = world.store.audit_log(50).await.expect("audit");
    for (action, outcome) in [
        ("conflicts.resolve", AuditOutcome::Resolved),
        ("dead-letters.replay", AuditOutcome::Queued),
    ] {
        assert!(
            audit
                .iter()
                .any(|a| a.action == action && a.outcome == outcome && a.actor == "bootstrap"),
            "{action}: {audit:?}"
        );
    }
}

async fn signing_out_ends_the_session(backend: Backend) {
    let (world, _db) = world(&backend, |_| {}).await;
    let browser = Browser::new(&world);
    let csrf = browser.signed_in(&world.admin_token).await;
    let id = world.store.console_sessions().await.expect("q")[0]
        .session_sha256
        .clone();

    let out = browser
        .post("/admin/logout", &[("csrf_token", &csrf)])
        .await;

    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/admin/login");
    assert!(world.store.console_sessions().await.expect("q").is_empty());
    assert!(
        !world
            .store
            .set_console_session_times(&id, (0, 0))
            .await
            .expect("q")
    );
    let after = browser.get("/admin").await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER, "the session is gone");
    let audit = world.store.audit_log(10).await.expect("audit");
    assert!(audit.iter().any(|a| a.action == "console.sign-out"));
    assert!(
        audit
            .iter()
            .any(|a| a.action == "console.sign-in" && a.outcome == AuditOutcome::Ok)
    );
}

async fn a_revoked_tokens_sessions_end_and_name_it_in_the_audit(backend: Backend) {
    // Arrange: a token made as `admin-token create` makes it, and a session signed in with it.
    let (world, _db) = world(&backend, |_| {}).await;
    let token = npd_monday_gateway::auth::admin_token::generate();
    let hash = npd_monday_gateway::auth::admin_token::hash(&token);
    assert!(
        world
            .store
            .insert_admin_token("ops-alice", &hash)
            .await
            .expect("q")
    );
    let browser = Browser::new(&world);
    browser.signed_in(&token).await;
    let rows = world.store.console_sessions().await.expect("q");
    assert_eq!(rows[0].actor, "ops-alice");

    // Act
    assert!(
        world
            .store
            .revoke_admin_token("ops-alice")
            .await
            .expect("q")
    );
    let after = browser.get("/admin").await;

    // Assert: the session no longer counts; the sign-in was audited under the token's name.
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&after), "/admin/login");
    let audit = world.store.audit_log(10).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.action == "console.sign-in" && a.actor == "ops-alice"),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|a| a.action == "console.overview" && a.actor == "ops-alice")
    );
}

async fn an_idle_or_expired_session_is_refused(backend: Backend) {
    // Arrange: three sessions; one left idle too long, one past its absolute maximum.
    let (world, _db) = world(&backend, |s| {
        s.console.session_idle = Duration::from_secs(600);
    })
    .await;
    let browsers = [
        Browser::new(&world),
        Browser::new(&world),
        Browser::new(&world),
    ];
    for b in &browsers {
        b.signed_in(&world.admin_token).await;
    }
    let rows = world.store.console_sessions().await.expect("q");
    let now = npd_monday_gateway::ledger::now_ms();
    let idle = (now - 601_000, rows[0].expires_at);
    let expired = (now, now - 1);
    assert!(
        world
            .store
            .set_console_session_times(&rows[0].session_sha256, idle)
            .await
            .expect("q")
    );
    assert!(
        world
            .store
            .set_console_session_times(&rows[1].session_sha256, expired)
            .await
            .expect("q")
    );

    // Act
    let answers = [
        browsers[0].get("/admin").await,
        browsers[1].get("/admin").await,
        browsers[2].get("/admin").await,
    ];

    // Assert
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [303, 303, 200]);
    assert_eq!(location(&answers[0]), "/admin/login");
}

async fn the_search_finds_a_contact_by_name_email_and_ids(backend: Backend) {
    let (world, _db) = world(&backend, |_| {}).await;
    let (id, item) = created_contact(&world).await;
    let browser = Browser::new(&world);
    browser.signed_in(&world.admin_token).await;
    let link = format!("/admin/contacts/{id}");
    for q in [
        "Ada",
        "lovel",
        "ada lovelace",
        "ADA@example",
        &id.to_string(),
        &item.to_string(),
    ] {
        let page = browser
            .page(&format!("/admin/entities?q={}", urlencode(q)))
            .await;
        assert!(page.contains(&link), "{q}: {page}");
    }
    for q in ["nobody", "da", "4100000999999"] {
        let page = browser.page(&format!("/admin/entities?q={q}")).await;
        assert!(
            !page.contains(&link) && page.contains("Nothing matches"),
            "{q}"
        );
    }
    let page = browser
        .page(&format!("/admin/entities?q={}", urlencode("<b>x")))
        .await;
    assert!(
        page.contains("&lt;b&gt;x") && !page.contains("<b>x"),
        "escaped"
    );
    let bad = browser.get("/admin/dead-letters?limit=0").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "paged as the API");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The store's migrations up to (not including) `version`, applied with sqlx directly.
async fn migrate_before(backend: &Backend, url: &str, version: i64) {
    let dir = match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres(_) => "migrations/postgres",
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut migrator = sqlx::migrate::Migrator::new(path)
        .await
        .expect("migrations");
    let earlier: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect();
    migrator.migrations = earlier.into();
    let insert = "insert into entities (kind, npd_id, npd_snapshot, sync_enabled, status, \
                  created_at, updated_at) values ('contact', $1, $2, true, 'synced', 1, 1)";
    let snapshot = serde_json::json!({
        "id": "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10", "version": 3,
        "first_name": "Grace", "last_name": "Hopper", "email": "Grace@Example.com", "phone": "+12025550169",
    })
    .to_string();
    let id = "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10";
    match backend {
        Backend::Sqlite => {
            let options = url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .expect("url");
            let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
                .await
                .expect("sqlite");
            migrator.run(&pool).await.expect("earlier migrations");
            sqlx::query(insert)
                .bind(id)
                .bind(&snapshot)
                .execute(&pool)
                .await
                .expect("entity");
            pool.close().await;
        }
        Backend::Postgres(_) => {
            let pool = sqlx::PgPool::connect(url).await.expect("postgres");
            migrator.run(&pool).await.expect("earlier migrations");
            sqlx::query(insert)
                .bind(id)
                .bind(&snapshot)
                .execute(&pool)
                .await
                .expect("entity");
            pool.close().await;
        }
    }
}

async fn entities_from_before_the_console_are_found_by_their_names_and_email(backend: Backend) {
    // Arrange: a ledger from before this version, holding a contact.
    let db = TestDatabase::create(&backend).await;
    if let Backend::Sqlite = backend {
        let path = db.url.trim_start_matches("sqlite://");
        std::fs::create_dir_all(std::path::Path::new(path).parent().expect("dir")).expect("mkdir");
    }
    migrate_before(&backend, &db.url, 20261203002000).await;

    // Act: the gateway starts and applies the console's migration.
    let world = World::start(&db.url, |_| {}).await.expect("world");

    // Assert
    let browser = Browser::new(&world);
    browser.signed_in(&world.admin_token).await;
    let link = "/admin/contacts/3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10";
    for q in ["grace", "Hopp", "grace%20hopper", "grace%40example.com"] {
        let page = browser.page(&format!("/admin/entities?q={q}")).await;
        assert!(page.contains(link), "{q}: {page}");
    }
}

async fn the_review_queue_is_settled_from_the_backfills_page_and_scans_are_listed(
    backend: Backend,
) {
    use npd_monday_gateway::demo::CONTACTS_BOARD;
    use npd_monday_gateway::sim::existing::{Relations, seed_contacts};

    // Arrange: a backfill that left two records in review (two candidate items each), and a
    // drift scan.
    let (world, _db) = crate::backfill::roomy_world(&backend).await;
    let relations = Relations {
        twins: 2,
        ..Relations::default()
    };
    let seeded = seed_contacts(&world.npd, &world.monday, CONTACTS_BOARD, &relations);
    let run = crate::backfill::backfill(&world, serde_json::json!({"kind": "contacts"})).await;
    assert_eq!(run["to_review"], 2, "{run}");
    let scan = world.admin_post("/api/v1/drift-scans").await.expect("post");
    assert_eq!(scan.status().as_u16(), 202);
    let browser = Browser::new(&world);
    let csrf = browser.signed_in(&world.admin_token).await;
    let page = browser.page("/admin/backfills").await;
    assert!(page.contains("id=\"review\""), "{page}");
    let reviews = crate::helpers::get_json(&world, "/api/v1/matches?status=review").await;
    let reviews = reviews["matches"].as_array().cloned().unwrap_or_default();
    let (record, items) = seeded.twins[0];
    let review = reviews
        .iter()
        .find(|m| m["npd_id"] == record.to_string())
        .and_then(|m| m["id"].as_i64())
        .expect("in review");
    assert!(page.contains(&format!("/admin/matches/{review}/resolve")));

    // Act: link the record to its second candidate, from the page's form.
    let item = items[1].to_string();
    let linked = browser
        .post(
            &format!("/admin/matches/{review}/resolve"),
            &[("csrf_token", &csrf), ("link", &item)],
        )
        .await;

    // Assert: linked as the API links it; the backfill and the drift scan are listed.
    assert_eq!(linked.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&linked), "/admin/backfills?done=settled");
    settle_world(&world, SETTLE).await;
    let entity = world
        .store
        .entity_by_npd(
            npd_monday_gateway::domain::entity::EntityKind::Contact,
            record,
        )
        .await
        .expect("q")
        .expect("entity");
    assert_eq!(entity.monday_item_id, Some(items[1]));
    let after = browser.page("/admin/backfills?done=settled").await;
    assert!(after.contains("Review record settled"));
    assert!(
        !after.contains(&format!("/admin/matches/{review}/resolve")),
        "settled"
    );
    let audit = world.store.audit_log(30).await.expect("audit");
    assert!(audit.iter().any(|a| a.action == "matches.resolve"
        && a.outcome == AuditOutcome::Resolved
        && a.target.as_deref() == Some(review.to_string().as_str())));
    let scans = browser.page("/admin/drift-scans").await;
    assert!(scans.contains("class=\"drift-scans\""), "{scans}");
}
