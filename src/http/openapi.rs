//! `GET /openapi.json`: the gateway's HTTP surface as an OpenAPI 3.1 document.
//!
//! Owns: the document, written by hand next to the routes it describes; a test checks that every
//! route of the router is in it.
//! May import: axum, serde_json.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(document()) }))
}

/// Every route: (method, path, summary, success status, whether admin auth is needed).
pub const ROUTES: &[(&str, &str, &str, u16, bool)] = &[
    (
        "post",
        "/api/v1/npd/events",
        "Receive a signed NPD change event (Standard Webhooks v1)",
        202,
        false,
    ),
    (
        "post",
        "/webhooks/monday",
        "Receive a Monday webhook delivery signed with an HS256 JWT",
        200,
        false,
    ),
    (
        "post",
        "/webhooks/monday/{token}",
        "Receive an unsigned Monday webhook delivery on a secret path",
        200,
        false,
    ),
    (
        "post",
        "/api/v1/contacts/{id}/sync-to-monday",
        "Force a push of one contact to Monday",
        200,
        true,
    ),
    (
        "post",
        "/api/v1/organizations/{id}/sync-to-monday",
        "Force a push of one organization to Monday",
        200,
        true,
    ),
    (
        "get",
        "/api/v1/contacts/{id}/sync",
        "Sync status, link, jobs, conflicts and history of a contact",
        200,
        true,
    ),
    (
        "get",
        "/api/v1/organizations/{id}/sync",
        "Sync status, link, jobs, conflicts and history of an organization",
        200,
        true,
    ),
    (
        "get",
        "/api/v1/conflicts",
        "Conflicts (?status=open|resolved)",
        200,
        true,
    ),
    (
        "post",
        "/api/v1/conflicts/{id}/resolve",
        "Settle a conflict: {\"take\": \"npd\"|\"monday\"} or {\"value\": ...}",
        200,
        true,
    ),
    (
        "get",
        "/api/v1/dead-letters",
        "Jobs that went to the dead letters",
        200,
        true,
    ),
    (
        "post",
        "/api/v1/dead-letters/{id}/replay",
        "Queue a dead job again",
        200,
        true,
    ),
    ("get", "/healthz", "The process is up", 200, false),
    (
        "get",
        "/readyz",
        "The store is reachable and migrated",
        200,
        false,
    ),
    (
        "get",
        "/metrics",
        "Prometheus text from the ledger",
        200,
        false,
    ),
    ("get", "/openapi.json", "This document", 200, false),
];

fn document() -> Value {
    let problem = json!({"$ref": "#/components/schemas/Problem"});
    let mut paths = serde_json::Map::new();
    for (method, path, summary, status, admin) in ROUTES {
        let mut responses = serde_json::Map::new();
        responses.insert(status.to_string(), json!({"description": "success"}));
        for (code, what) in [
            ("400", "bad request"),
            ("401", "unauthorized"),
            ("404", "not found"),
            ("413", "body too large"),
            ("429", "rate limited"),
            ("503", "store unavailable"),
        ] {
            responses.insert(
                code.into(),
                json!({"description": what, "content": {"application/problem+json": {"schema": problem}}}),
            );
        }
        let mut operation = json!({"summary": summary, "responses": responses});
        if *admin {
            operation["security"] = json!([{"adminToken": []}]);
        }
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            operation["parameters"] = Value::Array(params);
        }
        let entry = paths.entry((*path).to_owned()).or_insert_with(|| json!({}));
        entry[*method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "npd-monday-gateway", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"},
                    "status": {"type": "integer"}, "detail": {"type": "string"}
                }
            }}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_once_with_its_method() {
        let doc = document();
        for (method, path, _, _, admin) in ROUTES {
            let op = &doc["paths"][*path][*method];
            assert!(op.is_object(), "{method} {path} missing");
            assert_eq!(
                op.get("security").is_some(),
                *admin,
                "{method} {path} security"
            );
        }
        let documented: usize = doc["paths"].as_object().map_or(0, |p| {
            p.values()
                .map(|v| v.as_object().map_or(0, |o| o.len()))
                .sum()
        });
        assert_eq!(documented, ROUTES.len());
    }
}
