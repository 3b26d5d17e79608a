//! What the benchmarks share: posting signed NPD events to a gateway with 64 in flight.
//! May import: std, tokio, reqwest, anyhow, npd_monday_gateway.

use std::sync::Arc;
use std::time::Instant;

use npd_monday_gateway::auth::standard_webhooks::{WebhookSecret, sign};
use npd_monday_gateway::demo::World;
use tokio::sync::Semaphore;

/// Posts events with 64 in flight; returns when each was accepted.
pub async fn post_all(
    world: &World,
    secret: &WebhookSecret,
    events: Vec<(String, String)>,
) -> anyhow::Result<Vec<Instant>> {
    post_all_to(world.url("/api/v1/npd/events"), secret, events).await
}

/// `post_all` to the NPD events endpoint at `url`.
pub async fn post_all_to(
    url: String,
    secret: &WebhookSecret,
    events: Vec<(String, String)>,
) -> anyhow::Result<Vec<Instant>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for (id, body) in events {
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let (client, url, secret) = (client.clone(), url.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let ts = time::OffsetDateTime::now_utc().unix_timestamp();
            let sig = sign(&secret, &id, ts, body.as_bytes());
            let response = client
                .post(&url)
                .header("webhook-id", &id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body)
                .send()
                .await;
            drop(permit);
            response
                .is_ok_and(|r| r.status().as_u16() == 202)
                .then(Instant::now)
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.push(
            t.await?
                .ok_or_else(|| anyhow::anyhow!("an event was refused"))?,
        );
    }
    Ok(accepted)
}
