//! Limits and operations: body limit, header-read and request timeouts, unknown routes, health.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp, fixture, problem};
use crate::store_tests;

store_tests!(
    bodies_over_256_kib_get_413_and_store_nothing,
    health_and_readiness_answer,
);

async fn bodies_over_256_kib_get_413_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut big: serde_json::Value =
        serde_json::from_str(&fixture("npd/contact.created.json")).expect("json");
    big["data"]["notes"] = "x".repeat(256 * 1024).into();
    let big = big.to_string();

    // Declared length over the limit.
    let npd = app.post_npd_signed("msg_big", &big).await;
    let monday = app
        .post_monday_signed(&format!(
            "{{\"event\": {{\"pad\": \"{}\"}}}}",
            "y".repeat(300_000)
        ))
        .await;
    // No declared length (chunked): the limit holds while streaming.
    let chunked = post_chunked(&app, "/webhooks/monday", 40, 8 * 1024).await;

    let npd = problem(npd, 413).await;
    assert!(
        npd["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("262144")
    );
    problem(monday, 413).await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "chunked: {chunked}");
    assert_eq!(app.store.inbox_count().await.expect("count"), 0);
}

/// Sends `chunks` chunks of `size` bytes with `Transfer-Encoding: chunked` and returns the status line.
async fn post_chunked(app: &TestApp, path: &str, chunks: usize, size: usize) -> String {
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let chunk = format!("{size:x}\r\n{}\r\n", "z".repeat(size));
    for _ in 0..chunks {
        // The server may answer and stop reading before the end: later writes may fail.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn health_and_readiness_answer(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let unknown = app
        .client
        .get(app.url("/webhooks/nowhere"))
        .send()
        .await
        .expect("unknown");
    let wrong_method = app
        .client
        .get(app.url("/api/v1/npd/events"))
        .send()
        .await
        .expect("get");

    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(ready.status().as_u16(), 200);
    assert!(
        ready.headers().contains_key("x-request-id"),
        "every answer carries a request id"
    );
    problem(unknown, 404).await;
    problem(wrong_method, 405).await;

    // Once the store is gone, readiness says so.
    app.store.close().await;
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    problem(ready, 503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_trickles_its_headers_is_disconnected() {
    let app = TestApp::spawn_with(&Backend::Sqlite, |s| s.http.header_read_timeout_ms = 300).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream
        .write_all(b"POST /api/v1/npd/events HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // The head is never finished: the server must close the connection on its own.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the connection was still open 5 s after a 300 ms header timeout"
    );
    // A well-behaved client is still served.
    let ok = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(ok.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slower_than_the_request_timeout_gets_408() {
    let app = TestApp::spawn_with(&Backend::Sqlite, |s| s.http.request_timeout_ms = 500).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream
        .write_all(b"POST /webhooks/monday HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"event\":")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "got: {text}");
    assert!(text.contains("application/problem+json"), "got: {text}");
    assert_eq!(app.store.inbox_count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_exists_and_the_document_is_served() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let doc: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 15, "{} paths", paths.len());
    assert!(
        !paths
            .keys()
            .any(|p| p == "/admin" || p.starts_with("/admin/")),
        "the console's HTML routes are not part of the API document"
    );
    for (path, operations) in paths {
        if path.contains("{token}") {
            continue; // without the right token this route answers 404 by design
        }
        let concrete = path.replace("{id}", "3f0b6a52-4c1e-4d7a-9f7e-2b1c9d8e7a10");
        for method in operations.as_object().expect("operations").keys() {
            let request = match method.as_str() {
                "get" => app.client.get(app.url(&concrete)),
                _ => app.client.post(app.url(&concrete)).body("{}"),
            };
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            assert!(
                status != 405 && !body.contains("no such route"),
                "{method} {path} is documented but not routed: {status} {body}"
            );
        }
    }
}
