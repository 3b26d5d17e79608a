//! The console's actions: each calls the one function the admin API's handler calls, then sends
//! the browser back (303) to the page it came from with the code of what was done.

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::form::{Nothing, Posted};
use super::session::see_other;
use super::views;
use crate::domain::entity::{EntityKind, MondayItemId, NpdId};
use crate::domain::state::Resolution;
use crate::http::AppState;
use crate::http::admin::{parse_number, push_entity, replay, resolve_with};
use crate::http::backfill::settle_review;
use crate::http::error::ApiError;
use crate::sync::backfill::ReviewChoice;
use crate::sync::resolve::Take;

/// 303 to `location` when the action worked, else its error as a page.
fn back<T>(result: Result<T, ApiError>, location: &str) -> Response {
    match result {
        Ok(_) => see_other(location, &[]),
        Err(e) => views::error_page(e),
    }
}

/// `POST /admin/contacts/{id}/push`.
pub async fn push_contact(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<Nothing>,
) -> Response {
    push(state, (EntityKind::Contact, id), posted).await
}

/// `POST /admin/organizations/{id}/push`.
pub async fn push_organization(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<Nothing>,
) -> Response {
    push(state, (EntityKind::Organization, id), posted).await
}

/// Queues a forced push as `POST /api/v1/{kind}s/{id}/sync-to-monday` does (without waiting).
async fn push(
    state: AppState,
    (kind, raw): (EntityKind, String),
    posted: Posted<Nothing>,
) -> Response {
    let admin = &posted.session.admin;
    admin.acts(&format!("{kind}.sync-to-monday"), None);
    let Ok(id) = NpdId::parse(&raw) else {
        let detail = format!("{kind} id must be a UUID");
        return views::error_page(ApiError::BadRequest(detail));
    };
    let result = push_entity(&state, admin, (kind, id), false).await;
    let page = format!("{}?done=pushed", views::entity_path(kind, &id.to_string()));
    back(result, &page)
}

/// The conflict form: `take` = `npd` | `monday` | `value` (then `value`, empty to clear).
#[derive(Debug, Deserialize)]
pub struct ResolveForm {
    take: String,
    #[serde(default)]
    value: Option<String>,
}

/// `POST /admin/conflicts/{id}/resolve`, as `POST /api/v1/conflicts/{id}/resolve` settles it.
pub async fn resolve_conflict(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted<ResolveForm>,
) -> Response {
    let admin = &posted.session.admin;
    admin.acts("conflicts.resolve", None);
    let take = match posted.form.take.parse::<Resolution>() {
        Ok(Resolution::Npd) => Take::Npd,
        Ok(Resolution::Monday) => Take::Monday,
        Ok(Resolution::Value) => Take::Value(posted.form.value.clone().filter(|v| !v.is_empty())),
        Err(_) => {
            let detail = "`take` must be npd, monday or value".to_owned();
            return views::error_page(ApiError::BadRequest(detail));
        }
    };
    let result = match parse_number("conflict", &raw) {
        Ok(id) => resolve_with(&state, admin, id, take).await,
        Err(e) => Err(e),
    };
    back(result, "/admin/conflicts?done=resolved")
}

/// `POST /admin/dead-letters/{id}/replay`, as `POST /api/v1/dead-letters/{id}/replay` does.
pub async fn replay_dead_letter(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted<Nothing>,
) -> Response {
    let admin = &posted.session.admin;
    admin.acts("dead-letters.replay", None);
    let result = match parse_number("dead letter", &raw) {
        Ok(id) => replay(&state, admin, id).await,
        Err(e) => Err(e),
    };
    back(result, "/admin/dead-letters?done=replayed")
}

/// The review form: exactly one of `link` (an item id), `create=true`, `ignore=true`.
#[derive(Debug, Deserialize)]
pub struct MatchForm {
    link: Option<String>,
    create: Option<String>,
    ignore: Option<String>,
}

/// `POST /admin/matches/{id}/resolve`, as `POST /api/v1/matches/{id}/resolve` settles it.
pub async fn resolve_match(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: Posted<MatchForm>,
) -> Response {
    let admin = &posted.session.admin;
    admin.acts("matches.resolve", None);
    let f = &posted.form;
    let choice = match (f.link.as_deref(), f.create.as_deref(), f.ignore.as_deref()) {
        (Some(item), None, None) => item.parse::<MondayItemId>().ok().map(ReviewChoice::Link),
        (None, Some("true"), None) => Some(ReviewChoice::Create),
        (None, None, Some("true")) => Some(ReviewChoice::Ignore),
        _ => None,
    };
    let Some(choice) = choice else {
        let detail = "the form must hold exactly one of link=<item id>, create=true, ignore=true";
        return views::error_page(ApiError::BadRequest(detail.to_owned()));
    };
    let result = match parse_number("match", &raw) {
        Ok(id) => settle_review(&state, admin, id, choice).await,
        Err(e) => Err(e),
    };
    back(result, "/admin/backfills?done=settled")
}
