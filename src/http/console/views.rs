//! The console's markup (maud escapes every value it prints) and its stylesheet.
//!
//! Views take the admin API's wire views (`http::admin::dto`, `http::backfill`), so a page shows
//! what the API answers. No page has a script; every form posts back to `/admin` with the
//! session's `csrf_token`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::domain::entity::EntityKind;
use crate::domain::state::{ConflictStatus, JobState, Resolution};
use crate::http::admin::dto::{
    BudgetView, ConflictView, DeadLetterView, HistoryView, JobView, SyncStatusResponse,
};
use crate::http::backfill::{BackfillResponse, DriftScanResponse, MatchResponse};
use crate::http::error::{ApiError, ProblemDetail};
use crate::ledger::entities::EntityRow;
use crate::ledger::stats::QueueGauges;

/// The stylesheet of every page (served same-origin: the CSP allows no inline style).
pub const STYLESHEET: &str = "\
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}\
header{background:#1d3557;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center;flex-wrap:wrap}\
header a{color:#fff;text-decoration:none}header form{margin:0}\
main{padding:1em 1.2em;max-width:80em}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse;background:#fff;width:100%}td,th{border:1px solid #d5d9de;padding:.3em .5em;text-align:left;vertical-align:top}\
th{background:#eef1f4}pre{margin:0;white-space:pre-wrap;word-break:break-word;font-size:12px}\
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{background:#fff;border:1px solid #d5d9de;padding:.8em 1em;min-width:12em}\
.card b{font-size:1.6em;display:block}.notice{background:#e3f6e8;border:1px solid #8fd19e;padding:.5em 1em}\
.error{background:#fdecea;border:1px solid #f5a3a0;padding:.5em 1em}meter{width:10em}\
button{cursor:pointer}form.inline{display:inline}";

/// What every signed-in page shows around its content.
pub struct Chrome<'a> {
    pub actor: &'a str,
    pub csrf: &'a str,
    /// What the last action did (from a fixed list, never from the query string's text).
    pub notice: Option<&'static str>,
}

/// The text of an action's `?done=` code.
pub fn notice(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "pushed" => Some("Push queued: the entity is on its way to Monday."),
        "resolved" => Some("Conflict resolved: the value is on its way to the side lacking it."),
        "replayed" => Some("Dead letter replayed: the job is queued again."),
        "settled" => Some("Review record settled."),
        _ => None,
    }
}

/// A whole signed-in page.
pub fn page(chrome: &Chrome<'_>, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · npd-monday-gateway" }
                link rel="stylesheet" href="/admin/console.css";
            }
            body {
                header {
                    strong { a href="/admin" { "npd-monday-gateway" } }
                    a href="/admin/conflicts" { "Conflicts" }
                    a href="/admin/dead-letters" { "Dead letters" }
                    a href="/admin/backfills" { "Backfills" }
                    a href="/admin/drift-scans" { "Drift scans" }
                    form method="get" action="/admin/entities" {
                        input type="search" name="q" placeholder="Name, e-mail, NPD or Monday id" aria-label="Search";
                        button type="submit" { "Search" }
                    }
                    span { "Signed in as " (chrome.actor) }
                    form method="post" action="/admin/logout" {
                        input type="hidden" name="csrf_token" value=(chrome.csrf);
                        button type="submit" id="sign-out" { "Sign out" }
                    }
                }
                main {
                    @if let Some(n) = chrome.notice { p.notice role="status" { (n) } }
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The sign-in page: the form with its pre-session CSRF token, and why the last try failed.
pub fn login(csrf: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Sign in · npd-monday-gateway" }
                link rel="stylesheet" href="/admin/console.css";
            }
            body { main {
                h1 { "Sign in to the gateway's console" }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                form method="post" action="/admin/login" {
                    input type="hidden" name="csrf_token" value=(csrf);
                    label { "Admin token " input type="password" name="token" id="token" autocomplete="off" required; }
                    " "
                    button type="submit" id="sign-in" { "Sign in" }
                }
                p { "Use GATEWAY_ADMIN_TOKEN or a token made with " code { "admin-token create" } "." }
            } }
        }
    }
}

/// An error as a page: the problem's status and detail (and `Retry-After`), kept in the
/// response's extensions for the audit row, as the API's problem+json keeps it.
pub fn error_page(e: ApiError) -> Response {
    let problem = e.into_response();
    let status = problem.status();
    let detail = problem
        .extensions()
        .get::<ProblemDetail>()
        .map_or_else(|| status.to_string(), |d| d.0.clone());
    let mut response = problem_page(status, detail);
    if let Some(r) = problem.headers().get(header::RETRY_AFTER) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, r.clone());
    }
    response
}

/// 403 with `detail`: a form without its CSRF token.
pub fn forbidden(detail: &str) -> Response {
    problem_page(StatusCode::FORBIDDEN, detail.to_owned())
}

/// The page of a refusal or failure answered with `status`.
fn problem_page(status: StatusCode, detail: String) -> Response {
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (status) } link rel="stylesheet" href="/admin/console.css"; }
            body { main {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p.error role="alert" { (detail) }
                p { a href="/admin" { "Back to the overview" } }
            } }
        }
    };
    let mut response = (status, body).into_response();
    response.extensions_mut().insert(ProblemDetail(detail));
    response
}

/// `<meter>` of what remains of a budget.
fn gauge(label: &str, left: u64, of: u64) -> Markup {
    html! {
        div.card {
            span { (label) }
            b { (left) }
            meter min="0" max=(of) value=(left) title=(format!("{left} of {of}")) {}
            " of " (of)
        }
    }
}

fn card(label: &str, value: impl std::fmt::Display, href: Option<&str>) -> Markup {
    html! {
        div.card {
            span { (label) }
            b { (value.to_string()) }
            @if let Some(h) = href { a href=(h) { "See them" } }
        }
    }
}

/// What the overview shows.
pub struct OverviewView<'a> {
    pub gauges: &'a QueueGauges,
    pub budget: &'a BudgetView,
    /// The budget's limits: per minute, complexity per minute, per day (0: no daily cap).
    pub limits: (u64, u64, u64),
    pub last_backfill: Option<&'a BackfillResponse>,
    pub last_drift_scan: Option<&'a DriftScanResponse>,
}

pub fn overview(v: &OverviewView<'_>) -> Markup {
    let jobs = |state: JobState| {
        v.gauges
            .jobs
            .iter()
            .filter(|(s, _)| *s == state)
            .map(|(_, n)| *n)
            .sum::<i64>()
    };
    let (minute, complexity, daily) = v.limits;
    html! {
        h2 { "Queues" }
        div.cards {
            (card("Inbox: events waiting", v.gauges.inbox_unprocessed, None))
            (card("Outbox: jobs pending", jobs(JobState::Pending), None))
            (card("Outbox: jobs in flight", jobs(JobState::Leased), None))
            (card("Dead letters", jobs(JobState::Dead), Some("/admin/dead-letters")))
            (card("Open conflicts", v.gauges.open_conflicts, Some("/admin/conflicts")))
        }
        h2 { "Monday budget left" }
        div.cards {
            (gauge("Requests this minute", v.budget.minute, minute))
            (gauge("Complexity this minute", v.budget.complexity, complexity))
            @match v.budget.daily {
                Some(left) => { (gauge("Calls today", left, daily)) }
                None => { (card("Calls today", "no daily cap", None)) }
            }
        }
        h2 { "Last backfill" }
        @match v.last_backfill {
            Some(b) => { (backfill_table(std::slice::from_ref(b))) }
            None => { p { "No backfill has run." } }
        }
        h2 { "Last drift scan" }
        @match v.last_drift_scan {
            Some(d) => { (drift_table(std::slice::from_ref(d))) }
            None => { p { "No drift scan has run." } }
        }
    }
}

/// An entity's name and e-mail address, from its newest NPD record.
fn label(e: &EntityRow) -> (String, String) {
    let Some(record) = &e.npd_snapshot else {
        return (String::new(), String::new());
    };
    let text = |f: &str| record.fields.get(f).and_then(|v| v.as_text()).unwrap_or("");
    let name = ["first_name", "last_name", "name"]
        .iter()
        .map(|f| text(f))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (name, text("email").to_owned())
}

/// The console path of an entity's page, when it has an NPD id.
pub fn entity_path(kind: EntityKind, npd_id: &str) -> String {
    format!("/admin/{}/{npd_id}", kind.plural())
}

pub fn search(q: &str, found: &[EntityRow]) -> Markup {
    html! {
        form method="get" action="/admin/entities" {
            input type="search" name="q" value=(q) id="q" aria-label="Search";
            button type="submit" id="search" { "Search" }
        }
        @if found.is_empty() {
            p { "Nothing matches." }
        } @else {
            table id="results" {
                tr { th { "Kind" } th { "Name" } th { "E-mail" } th { "NPD id" } th { "Monday item" } th { "Status" } }
                @for e in found {
                    @let (name, email) = label(e);
                    tr {
                        td { (e.kind) }
                        td { @match e.npd_id {
                            Some(id) => { a href=(entity_path(e.kind, &id.to_string())) { (if name.is_empty() { id.to_string() } else { name }) } }
                            None => { (name) }
                        } }
                        td { (email) }
                        td { (e.npd_id.map(|i| i.to_string()).unwrap_or_default()) }
                        td { (e.monday_item_id.map(|i| i.to_string()).unwrap_or_default()) }
                        td { (e.status) }
                    }
                }
            }
        }
    }
}

fn hidden_csrf(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(csrf); }
}

fn jobs_table(jobs: &[JobView]) -> Markup {
    html! {
        table {
            tr { th { "Job" } th { "To" } th { "Operation" } th { "State" } th { "Attempts" } th { "Priority" } th { "Next attempt" } th { "Last error" } }
            @for j in jobs {
                tr {
                    td { (j.id) } td { (j.target) } td { (j.operation) } td { (j.state) }
                    td { (j.attempts) " / " (j.max_attempts) } td { (j.priority) }
                    td { (j.next_attempt_at.as_deref().unwrap_or("")) }
                    td { (j.last_error.as_deref().unwrap_or("")) }
                }
            }
        }
    }
}

/// The timeline: every history entry, newest first, with its decision or its call and answer.
fn timeline(history: &[HistoryView]) -> Markup {
    html! {
        table id="timeline" {
            tr { th { "When" } th { "What" } th { "Why" } th { "Decision, or call and answer" } }
            @for h in history {
                tr {
                    td { (h.at.as_deref().unwrap_or("")) }
                    td { (h.kind) @if let Some(job) = h.job_id { br; small { "job " (job) } } }
                    td { (h.reason) }
                    td { @if let Some(d) = &h.detail {
                        pre { (serde_json::to_string_pretty(d).unwrap_or_default()) }
                    } }
                }
            }
        }
    }
}

/// An entity's page: status, link, fields, jobs, conflicts, dead jobs and the timeline.
pub fn entity(kind: EntityKind, npd_id: &str, s: &SyncStatusResponse, csrf: &str) -> Markup {
    html! {
        p {
            "Status " strong id="status" { (s.status) }
            " · Monday item " strong id="monday-id" { (s.link.monday_id.as_deref().unwrap_or("none")) }
            " · sync " (if s.sync_enabled { "enabled" } else { "disabled in NPD" })
            @if let Some(e) = &s.last_error { " · last error: " (e) }
        }
        form method="post" action=(format!("{}/push", entity_path(kind, npd_id))) {
            (hidden_csrf(csrf))
            button type="submit" id="push" { "Push to Monday" }
        }
        h2 { "Fields" }
        table {
            tr { th { "Field" } th { "Agreed" } th { "NPD" } th { "Monday" } th { "On its way to NPD" } th { "On its way to Monday" } }
            @for (name, f) in &s.fields {
                tr {
                    td { (name) } td { (f.base.as_deref().unwrap_or("")) } td { (f.npd.as_deref().unwrap_or("")) }
                    td { (f.monday.as_deref().unwrap_or("")) } td { (f.pending.npd.as_deref().unwrap_or("")) }
                    td { (f.pending.monday.as_deref().unwrap_or("")) }
                }
            }
        }
        @if !s.open_conflicts.is_empty() { h2 { "Open conflicts" } (conflict_table(&s.open_conflicts, csrf)) }
        @if !s.pending_jobs.is_empty() { h2 { "Jobs on their way" } (jobs_table(&s.pending_jobs)) }
        @if !s.dead_jobs.is_empty() { h2 { "Dead jobs" } (jobs_table(&s.dead_jobs)) }
        h2 { "Timeline" }
        (timeline(&s.history))
    }
}

pub fn conflict_table(conflicts: &[ConflictView], csrf: &str) -> Markup {
    html! {
        table id="conflicts" {
            tr { th { "Conflict" } th { "Field" } th { "Agreed" } th { "NPD" } th { "Monday" } th { "Opened" } th { "Status" } th { "Resolve" } }
            @for c in conflicts {
                tr {
                    td { (c.id) } td { (c.field) } td { (c.base.as_deref().unwrap_or("")) }
                    td { (c.npd.as_deref().unwrap_or("")) } td { (c.monday.as_deref().unwrap_or("")) }
                    td { (c.opened_at.as_deref().unwrap_or("")) } td { (c.status) }
                    td { @if c.status == ConflictStatus::Open.as_str() {
                        @let action = format!("/admin/conflicts/{}/resolve", c.id);
                        form.inline method="post" action=(action) {
                            (hidden_csrf(csrf)) input type="hidden" name="take" value=(Resolution::Npd.as_str());
                            button type="submit" id=(format!("take-npd-{}", c.id)) { "Take NPD's" }
                        }
                        " "
                        form.inline method="post" action=(action) {
                            (hidden_csrf(csrf)) input type="hidden" name="take" value=(Resolution::Monday.as_str());
                            button type="submit" id=(format!("take-monday-{}", c.id)) { "Take Monday's" }
                        }
                        form method="post" action=(action) {
                            (hidden_csrf(csrf)) input type="hidden" name="take" value=(Resolution::Value.as_str());
                            input type="text" name="value" aria-label="Value of your own";
                            button type="submit" { "Use this value" }
                        }
                    } @else { (c.resolution.as_deref().unwrap_or("")) " by " (c.resolved_by.as_deref().unwrap_or("")) } }
                }
            }
        }
    }
}

/// A "next page" link keeping the other query parameters.
pub fn next_page(path: &str, extra: &str, next: Option<&str>) -> Markup {
    html! {
        @if let Some(cursor) = next {
            p { a rel="next" href=(format!("{path}?{extra}cursor={cursor}")) { "Next page" } }
        }
    }
}

pub fn dead_letters(rows: &[DeadLetterView], csrf: &str) -> Markup {
    html! {
        @if rows.is_empty() { p { "No dead letters." } }
        @else {
            table id="dead-letters" {
                tr { th { "Job" } th { "Entity" } th { "To" } th { "Operation" } th { "Attempts" } th { "Last error" } th { "" } }
                @for d in rows {
                    tr {
                        td { (d.job.id) }
                        td { @match &d.npd_id {
                            Some(id) => { a href=(format!("/admin/{}s/{id}", d.kind)) { (d.kind) " " (id) } }
                            None => { (d.kind) " item " (d.monday_id.as_deref().unwrap_or("")) }
                        } }
                        td { (d.job.target) } td { (d.job.operation) } td { (d.job.attempts) }
                        td { (d.job.last_error.as_deref().unwrap_or("")) }
                        td { form method="post" action=(format!("/admin/dead-letters/{}/replay", d.job.id)) {
                            (hidden_csrf(csrf))
                            button type="submit" id=(format!("replay-{}", d.job.id)) { "Replay" }
                        } }
                    }
                }
            }
        }
    }
}

pub fn backfill_table(runs: &[BackfillResponse]) -> Markup {
    html! {
        table.backfills {
            tr { th { "Run" } th { "Kind" } th { "Dry run" } th { "Status" } th { "Scanned NPD / Monday" } th { "Linked" } th { "Created in Monday" } th { "To review" } th { "Unmatched in Monday" } th { "Started" } th { "Finished" } th { "Error" } }
            @for b in runs {
                tr {
                    td { (b.id) } td { (b.kind.as_str()) } td { (b.dry_run) } td { (b.status.as_str()) }
                    td { (b.counts.scanned.npd) " / " (b.counts.scanned.monday) } td { (b.counts.linked) }
                    td { (b.counts.created_in_monday) " of " (b.counts.to_create_in_monday) } td { (b.counts.to_review) }
                    td { (b.counts.unmatched_in_monday) } td { (b.started_at.as_deref().unwrap_or("")) }
                    td { (b.finished_at.as_deref().unwrap_or("")) } td { (b.error.as_deref().unwrap_or("")) }
                }
            }
        }
    }
}

pub fn review_queue(matches: &[MatchResponse], csrf: &str) -> Markup {
    html! {
        @if matches.is_empty() { p { "Nothing to review." } }
        @else {
            table id="review" {
                tr { th { "Record" } th { "Kind" } th { "NPD id" } th { "Candidates" } th { "Or" } }
                @for m in matches {
                    @let action = format!("/admin/matches/{}/resolve", m.id);
                    tr {
                        td { (m.id) } td { (m.kind) } td { (m.npd_id) }
                        td { @for c in &m.candidates {
                            form method="post" action=(action) {
                                (hidden_csrf(csrf)) input type="hidden" name="link" value=(c.monday_item_id);
                                button type="submit" { "Link item " (c.monday_item_id) } " " (c.name) " (" (c.why) ")"
                            }
                        } }
                        td {
                            form.inline method="post" action=(action) {
                                (hidden_csrf(csrf)) input type="hidden" name="create" value="true";
                                button type="submit" { "Create a new item" }
                            }
                            " "
                            form.inline method="post" action=(action) {
                                (hidden_csrf(csrf)) input type="hidden" name="ignore" value="true";
                                button type="submit" { "Ignore" }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn drift_table(runs: &[DriftScanResponse]) -> Markup {
    html! {
        table.drift-scans {
            tr { th { "Scan" } th { "Status" } th { "Scanned" } th { "In sync" } th { "Repaired to Monday / NPD" } th { "Conflicts" } th { "Deleted in Monday / NPD" } th { "Skipped" } th { "Started" } th { "Finished" } th { "Error" } }
            @for d in runs {
                tr {
                    td { (d.id) } td { (d.status.as_str()) } td { (d.counts.scanned) } td { (d.counts.in_sync) }
                    td { (d.counts.repaired.to_monday) " / " (d.counts.repaired.to_npd) } td { (d.counts.conflicts) }
                    td { (d.counts.deleted.in_monday) " / " (d.counts.deleted.in_npd) } td { (d.counts.skipped) }
                    td { (d.started_at.as_deref().unwrap_or("")) } td { (d.finished_at.as_deref().unwrap_or("")) }
                    td { (d.error.as_deref().unwrap_or("")) }
                }
            }
        }
    }
}
