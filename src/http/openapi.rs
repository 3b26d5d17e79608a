//! `GET /openapi.json`: the gateway's HTTP surface as an OpenAPI 3.1 document, generated from the
//! handlers' own `#[utoipa::path]` annotations and wire types.
//!
//! Owns: the document's root (`document`: title, version, the `adminToken` bearer scheme, the
//! `Problem` schema) and the route that serves the finished document. The paths themselves are
//! collected by `OpenApiRouter` from every route registered with `routes!` (`http::router`).
//! May import: axum, serde_json, utoipa, crate::http.

use axum::Router;
use axum::http::header;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::http::AppState;
use crate::http::error::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "npd-monday-gateway",
        description = "Keeps NPD contacts and organizations in sync with Monday.com boards. \
            Errors are application/problem+json (RFC 9457). Admin routes need \
            `Authorization: Bearer <admin token>`."
    ),
    paths(openapi_json),
    components(schemas(Problem)),
    modifiers(&AdminToken),
    tags(
        (name = "ingress", description = "Deliveries from NPD and Monday"),
        (name = "admin", description = "Admin API (bearer token)"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

/// The `adminToken` security scheme: `Authorization: Bearer <token>`.
struct AdminToken;

impl utoipa::Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "GATEWAY_ADMIN_TOKEN or a token made with `admin-token create`",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("adminToken", SecurityScheme::Http(scheme));
    }
}

/// The document's root, before the routes add their paths.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// This document (documented here; served by `router`, which holds the finished document).
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
#[expect(dead_code, reason = "documents the route `router` serves")]
fn openapi_json() {}

/// Serves the finished document, serialised once.
pub fn router(document: &utoipa::openapi::OpenApi) -> Router<AppState> {
    let json = document.to_json().unwrap_or_else(|_| "{}".to_owned());
    Router::new().route(
        "/openapi.json",
        get(move || {
            let json = json.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], json) }
        }),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::http::error::PROBLEM_JSON;

    /// The document the running router serves.
    fn served() -> Value {
        let (_, document) =
            utoipa_axum::router::OpenApiRouter::<crate::http::AppState>::with_openapi(
                super::document(),
            )
            .merge(crate::http::health::router())
            .merge(crate::http::npd::router())
            .merge(crate::http::monday::router())
            .merge(crate::http::admin::documented_routes())
            .split_for_parts();
        serde_json::to_value(&document).expect("json")
    }

    #[test]
    fn every_route_is_documented_with_typed_answers_and_problems() {
        let doc = served();
        let paths = doc["paths"].as_object().expect("paths");
        for (path, ops) in paths {
            for (method, op) in ops.as_object().expect("operations") {
                let responses = op["responses"].as_object().expect("responses");
                let ok = responses.keys().find(|s| s.starts_with('2'));
                assert!(ok.is_some(), "{method} {path}: a success answer");
                for (status, answer) in responses {
                    if !status.starts_with('2') {
                        assert!(
                            answer["content"][PROBLEM_JSON].is_object(),
                            "{method} {path} {status} is a problem"
                        );
                    }
                }
                let admin = path.starts_with("/api/v1/") && path != "/api/v1/npd/events";
                assert_eq!(
                    op.get("security").is_some(),
                    admin,
                    "{method} {path} security"
                );
            }
        }
        for route in [
            "/api/v1/audit",
            "/api/v1/dead-letters",
            "/api/v1/contacts/{id}/sync-to-monday",
            "/webhooks/monday/{token}",
            "/api/v1/npd/events",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(paths.contains_key(route), "{route} is documented");
        }
        let id = &doc["paths"]["/api/v1/contacts/{id}/sync"]["get"]["parameters"][0]["schema"];
        assert_eq!(id["format"], "uuid", "{id}");
        let job =
            &doc["paths"]["/api/v1/dead-letters/{id}/replay"]["post"]["parameters"][0]["schema"];
        assert_eq!(job["type"], "integer", "{job}");
    }
}
