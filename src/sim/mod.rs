//! Simulators of Monday (`monday`) and NPD (`npd`), used by the tests and by `demo`.
//!
//! Each is an in-process axum server on a loopback port that behaves like the real system where
//! the gateway can tell: same wire shapes, same errors, signed webhooks/events back to the gateway,
//! a call log to assert on, and fault switches. Both count their outgoing deliveries
//! (`Deliveries`), so a test can wait until everything they sent has been answered instead of
//! sleeping and hoping. `existing` fills both with data related in every way a backfill meets.
//! May import: std, axum, tokio, reqwest, serde, serde_json, time, uuid, rand, apollo-compiler,
//! crate::{auth, domain}.

pub mod existing;
pub mod monday;
pub mod npd;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Waits until `find` finds something in a simulator's call log, looking again each time
/// `logged` (bumped as each call is logged) changes; None after `within`. Both simulators'
/// `wait_for_call` use it.
async fn wait_for_logged<T>(
    logged: &watch::Sender<u64>,
    within: Duration,
    find: impl Fn() -> Option<T>,
) -> Option<T> {
    // Subscribed before looking, so a call logged in between still wakes the loop.
    let mut seen = logged.subscribe();
    let found = async {
        loop {
            if let Some(hit) = find() {
                return Some(hit);
            }
            seen.changed().await.ok()?;
        }
    };
    tokio::time::timeout(within, found).await.ok().flatten()
}

/// What a simulator has sent to the gateway (Monday's webhooks, NPD's change events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deliveries {
    /// Deliveries ever queued; never goes down.
    pub queued: u64,
    /// Queued deliveries not finished yet: waiting, being sent, or between retries.
    pub pending: u64,
}

/// Counts a simulator's deliveries as they are queued and finish.
#[derive(Clone)]
struct DeliveryTracker(Arc<watch::Sender<Deliveries>>);

/// One queued delivery; dropping it finishes it (delivered, given up, or abandoned).
struct Delivery(DeliveryTracker);

impl DeliveryTracker {
    fn new() -> Self {
        DeliveryTracker(Arc::new(watch::Sender::new(Deliveries::default())))
    }

    /// Counts a delivery as queued and pending until the returned value is dropped.
    fn queue(&self) -> Delivery {
        self.0.send_modify(|d| {
            d.queued += 1;
            d.pending += 1;
        });
        Delivery(self.clone())
    }

    fn get(&self) -> Deliveries {
        *self.0.borrow()
    }

    /// Waits until no delivery is pending; false when that takes longer than `within`.
    async fn wait_idle(&self, within: Duration) -> bool {
        let mut seen = self.0.subscribe();
        matches!(
            tokio::time::timeout(within, seen.wait_for(|d| d.pending == 0)).await,
            Ok(Ok(_))
        )
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.0.0.send_modify(|d| d.pending -= 1);
    }
}
