//! The console's pages: each reads through the function the matching admin API handler calls
//! and renders its wire views.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use maud::Markup;
use serde::Deserialize;

use super::session::Session;
use super::views::{self, Chrome};
use crate::domain::entity::{EntityKind, NpdId};
use crate::domain::scan::ScanKind;
use crate::domain::search::SearchQuery;
use crate::domain::state::ConflictStatus;
use crate::http::AppState;
use crate::http::admin::dto::{BudgetView, ConflictQuery, PageQuery};
use crate::http::admin::{conflicts_page, dead_letters_page, entity_status};
use crate::http::backfill::{
    BackfillResponse, DriftScanResponse, MatchQuery, list_runs, matches_page,
};
use crate::http::error::ApiError;
use crate::sync::admin as admin_use;

/// Most entities a search shows.
const SEARCH_LIMIT: i64 = 50;

/// What a console page's query string may hold: the API's page parameters (same bounds), a
/// list's status, a search's `q`, and the code of the action just done.
#[derive(Debug, Default, Deserialize)]
pub struct ConsoleQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    status: Option<String>,
    q: Option<String>,
    done: Option<String>,
}

impl ConsoleQuery {
    fn page(&self) -> PageQuery {
        PageQuery {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }
}

/// A console page's query string; one that does not parse is a 400 page naming what is wrong.
pub struct Params(ConsoleQuery);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Query::<ConsoleQuery>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(Params(q)),
            Err(e) => {
                let detail = format!("the query string is not valid: {}", e.body_text());
                Err(views::error_page(ApiError::BadRequest(detail)))
            }
        }
    }
}

/// A signed-in page titled `title`.
fn render(session: &Session, q: &ConsoleQuery, title: &str, content: Markup) -> Response {
    let chrome = Chrome {
        actor: &session.admin.actor,
        csrf: &session.csrf,
        notice: views::notice(q.done.as_deref()),
    };
    views::page(&chrome, title, content).into_response()
}

/// The page, or the error as a page.
fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(views::error_page)
}

/// `GET /admin/console.css`.
pub async fn stylesheet(
    axum::Extension(slot): axum::Extension<crate::http::admin::AuditSlot>,
) -> Response {
    slot.skip_row();
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        views::STYLESHEET,
    )
        .into_response()
}

/// `GET /admin`: the queues, the Monday budget, dead letters, open conflicts and the last runs.
pub async fn overview(
    State(state): State<AppState>,
    session: Session,
    Params(q): Params,
) -> Response {
    session.admin.acts("console.overview", None);
    answer(
        async {
            let o = admin_use::overview(&state.store).await?;
            let budget = BudgetView::from(state.budget.remaining().await?);
            let last_backfill = match &o.last_backfill {
                Some(run) => state.scans.backfill_status(run.id).await?,
                None => None,
            };
            let last_backfill = last_backfill.as_ref().map(BackfillResponse::from);
            let last_drift_scan = o.last_drift_scan.as_ref().map(DriftScanResponse::from);
            let m = &state.settings.monday;
            let view = views::OverviewView {
                gauges: &o.gauges,
                budget: &budget,
                limits: (
                    m.requests_per_minute,
                    m.complexity_per_minute,
                    m.calls_per_day,
                ),
                last_backfill: last_backfill.as_ref(),
                last_drift_scan: last_drift_scan.as_ref(),
            };
            Ok::<Response, ApiError>(render(&session, &q, "Overview", views::overview(&view)))
        }
        .await,
    )
}

/// `GET /admin/entities?q=`: entities by name, e-mail, NPD id or Monday item id.
pub async fn search(
    State(state): State<AppState>,
    session: Session,
    Params(q): Params,
) -> Response {
    session.admin.acts("console.search", None);
    let text = q.q.clone().unwrap_or_default();
    let found = match SearchQuery::parse(&text) {
        None => Ok(Vec::new()),
        Some(query) => admin_use::search_entities(&state.store, &query, SEARCH_LIMIT).await,
    };
    match found {
        Ok(found) => render(&session, &q, "Search", views::search(&text, &found)),
        Err(e) => views::error_page(ApiError::from(e)),
    }
}

/// `GET /admin/contacts/{id}`.
pub async fn contact(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Params(q): Params,
) -> Response {
    entity(state, session, (EntityKind::Contact, id), q).await
}

/// `GET /admin/organizations/{id}`.
pub async fn organization(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Params(q): Params,
) -> Response {
    entity(state, session, (EntityKind::Organization, id), q).await
}

/// An entity and its timeline, read as `GET /api/v1/{kind}s/{id}/sync` reads it.
async fn entity(
    state: AppState,
    session: Session,
    (kind, raw_id): (EntityKind, String),
    q: ConsoleQuery,
) -> Response {
    session.admin.acts(&format!("{kind}.sync-status"), None);
    let Ok(id) = NpdId::parse(&raw_id) else {
        let detail = format!("{kind} id must be a UUID");
        return views::error_page(ApiError::BadRequest(detail));
    };
    answer(
        async {
            let status = entity_status(&state, &session.admin, (kind, id)).await?;
            let title = format!("{} {id}", capitalised(kind));
            let content = views::entity(kind, &id.to_string(), &status, &session.csrf);
            Ok::<Response, ApiError>(render(&session, &q, &title, content))
        }
        .await,
    )
}

fn capitalised(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Contact => "Contact",
        EntityKind::Organization => "Organization",
    }
}

/// `GET /admin/conflicts`: open conflicts (or `?status=resolved`), with their resolution forms.
pub async fn conflicts(
    State(state): State<AppState>,
    session: Session,
    Params(q): Params,
) -> Response {
    session.admin.acts("conflicts.list", None);
    let list = ConflictQuery {
        status: q.status.clone(),
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    answer(
        async {
            let page = conflicts_page(&state, &list).await?;
            let status = q.status.as_deref().unwrap_or(ConflictStatus::Open.as_str());
            let content = maud::html! {
                p { a href="/admin/conflicts" { "Open" } " · " a href=(format!("/admin/conflicts?status={}", ConflictStatus::Resolved)) { "Resolved" } }
                @if page.conflicts.is_empty() { p { "No " (status) " conflicts." } }
                @else { (views::conflict_table(&page.conflicts, &session.csrf)) }
                (views::next_page("/admin/conflicts", &format!("status={status}&"), page.next_cursor.as_deref()))
            };
            Ok::<Response, ApiError>(render(&session, &q, "Conflicts", content))
        }
        .await,
    )
}

/// `GET /admin/dead-letters`, oldest first, each with its replay button.
pub async fn dead_letters(
    State(state): State<AppState>,
    session: Session,
    Params(q): Params,
) -> Response {
    session.admin.acts("dead-letters.list", None);
    answer(
        async {
            let page = dead_letters_page(&state, &q.page()).await?;
            let content = maud::html! {
                (views::dead_letters(&page.dead_letters, &session.csrf))
                (views::next_page("/admin/dead-letters", "", page.next_cursor.as_deref()))
            };
            Ok::<Response, ApiError>(render(&session, &q, "Dead letters", content))
        }
        .await,
    )
}

/// `GET /admin/backfills`: the runs, newest first, and the review queue with its actions.
pub async fn backfills(
    State(state): State<AppState>,
    session: Session,
    Params(q): Params,
) -> Response {
    session.admin.acts("backfills.list", None);
    answer(
        async {
            let (runs, next) = list_runs(&state, ScanKind::Backfill, &q.page()).await?;
            let runs: Vec<BackfillResponse> = runs.iter().map(BackfillResponse::from).collect();
            let review = MatchQuery {
                status: None,
                limit: None,
                cursor: None,
            };
            let review = matches_page(&state, &review).await?;
            let content = maud::html! {
                @if runs.is_empty() { p { "No backfill has run." } } @else { (views::backfill_table(&runs)) }
                (views::next_page("/admin/backfills", "", next.as_deref()))
                h2 { "Review queue" }
                (views::review_queue(&review.matches, &session.csrf))
            };
            Ok::<Response, ApiError>(render(&session, &q, "Backfills", content))
        }
        .await,
    )
}

/// `GET /admin/drift-scans`, newest first.
pub async fn drift_scans(
    State(state): State<AppState>,
    session: Session,
    Params(q): Params,
) -> Response {
    session.admin.acts("drift-scans.list", None);
    answer(
        async {
            let (runs, next) = list_runs(&state, ScanKind::Drift, &q.page()).await?;
            let runs: Vec<DriftScanResponse> = runs.iter().map(DriftScanResponse::from).collect();
            let content = maud::html! {
                @if runs.is_empty() { p { "No drift scan has run." } } @else { (views::drift_table(&runs)) }
                (views::next_page("/admin/drift-scans", "", next.as_deref()))
            };
            Ok::<Response, ApiError>(render(&session, &q, "Drift scans", content))
        }
        .await,
    )
}
