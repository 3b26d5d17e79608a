//! A client-side budget for Monday's per-minute limits: requests and complexity points.
//!
//! Owns: `Budget`. Before each call the dispatcher asks for the call's cost; the budget waits
//! until the last 60 s of spending leaves room, so the gateway stays under the configured limits
//! instead of running into storms of 429s. Routine sync leaves a reserve (a fifth of each limit)
//! untouched, so an admin's push goes ahead when the budget is short. What Monday reports in its
//! `RateLimit` header (shared by every replica of the app) tightens the local view: when Monday
//! says fewer requests or points remain than the local count thinks, the local count follows.
//! May import: std, tokio.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window Monday's per-minute limits are measured over.
const WINDOW: Duration = Duration::from_secs(60);

/// Per-minute limits and what was spent in the last minute.
#[derive(Debug)]
pub struct Budget {
    requests_per_minute: u64,
    points_per_minute: u64,
    state: Mutex<Spent>,
}

#[derive(Debug, Default)]
struct Spent {
    /// (when, points) of every call in the window.
    calls: VecDeque<(Instant, u64)>,
    /// Monday's own view of what remains, with when it resets.
    reported: Option<Reported>,
}

#[derive(Debug, Clone, Copy)]
struct Reported {
    requests_remaining: Option<u64>,
    points_remaining: Option<u64>,
    until: Instant,
}

/// A reading of Monday's `RateLimit` header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    pub requests_remaining: Option<u64>,
    pub points_remaining: Option<u64>,
    pub reset_in: Option<Duration>,
}

/// What is left of each limit at one moment, for reading only (`/metrics`). `None`: no such
/// limit is set (the daily cap is optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Remaining {
    /// Requests left in the current minute.
    pub minute: u64,
    /// Complexity points left in the current minute.
    pub complexity: u64,
    /// Calls left today.
    pub daily: Option<u64>,
}

/// How much of the budget one call may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Routine sync: keeps a fifth of each limit in reserve.
    Routine,
    /// An admin's push: may use the reserve.
    Admin,
}

impl Budget {
    pub fn new(requests_per_minute: u64, points_per_minute: u64) -> Self {
        Budget {
            requests_per_minute: requests_per_minute.max(1),
            points_per_minute: points_per_minute.max(1),
            state: Mutex::new(Spent::default()),
        }
    }

    /// Waits until a call of `points` fits, then records it. Returns how long it waited (zero
    /// when it fitted at once).
    pub async fn acquire(&self, points: u64, urgency: Urgency) -> Duration {
        let started = Instant::now();
        let mut waited = false;
        loop {
            match self.try_spend(points, urgency, Instant::now()) {
                Ok(()) if waited => return started.elapsed(),
                Ok(()) => return Duration::ZERO,
                Err(wait) => {
                    waited = true;
                    tokio::time::sleep(wait.clamp(Duration::from_millis(5), WINDOW)).await;
                }
            }
        }
    }

    /// Records the call when it fits now, else says how long until it might.
    pub fn try_spend(&self, points: u64, urgency: Urgency, now: Instant) -> Result<(), Duration> {
        let mut spent = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while spent
            .calls
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW)
        {
            spent.calls.pop_front();
        }
        if spent.reported.is_some_and(|r| now >= r.until) {
            spent.reported = None;
        }
        if self.fits(self.counted(&spent, now), 1, points, urgency) {
            spent.calls.push_back((now, points));
            return Ok(());
        }
        let oldest = spent.calls.front().map_or(Duration::ZERO, |(t, _)| {
            WINDOW.saturating_sub(now.duration_since(*t))
        });
        let reported = spent
            .reported
            .map_or(Duration::ZERO, |r| r.until.saturating_duration_since(now));
        Err(oldest.max(reported).max(Duration::from_millis(5)))
    }

    /// Who may start work of `calls` requests and `points` complexity now: `Some(Routine)` when
    /// routine sync may, `Some(Admin)` when only an admin's push may, `None` when nothing fits.
    /// Records nothing.
    pub fn room(&self, calls: u64, points: u64) -> Option<Urgency> {
        let now = Instant::now();
        let spent = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let counted = self.counted(&spent, now);
        [Urgency::Routine, Urgency::Admin]
            .into_iter()
            .find(|urgency| self.fits(counted, calls, points, *urgency))
    }

    /// Requests and points that count against the window at `now`: this process's calls of the
    /// last minute, or what Monday reported spent (which covers every replica), whichever is more.
    fn counted(&self, spent: &Spent, now: Instant) -> (u64, u64) {
        let (own_requests, own_points) = own(spent, now);
        let reported = spent.reported.filter(|r| now < r.until);
        let reported_requests = reported
            .and_then(|r| r.requests_remaining)
            .map_or(0, |left| self.requests_per_minute.saturating_sub(left));
        let reported_points = reported
            .and_then(|r| r.points_remaining)
            .map_or(0, |left| self.points_per_minute.saturating_sub(left));
        (
            own_requests.max(reported_requests),
            own_points.max(reported_points),
        )
    }

    /// Whether `calls` more requests costing `points` fit in the share of `urgency`. A single call
    /// dearer than the whole share still fits an empty window (it could never fit otherwise).
    fn fits(
        &self,
        (requests, points_used): (u64, u64),
        calls: u64,
        points: u64,
        urgency: Urgency,
    ) -> bool {
        requests + calls <= self.share(self.requests_per_minute, urgency)
            && points_used.saturating_add(points)
                <= self.share(self.points_per_minute, urgency).max(points)
    }

    /// The part of `limit` a call of this urgency may use.
    fn share(&self, limit: u64, urgency: Urgency) -> u64 {
        match urgency {
            Urgency::Routine => limit - limit / 5,
            Urgency::Admin => limit,
        }
    }

    /// Takes in Monday's own report of what remains (its `RateLimit` header).
    pub fn observe(&self, observed: Observed) {
        if observed.requests_remaining.is_none() && observed.points_remaining.is_none() {
            return;
        }
        let mut spent = self.state.lock().unwrap_or_else(|e| e.into_inner());
        spent.reported = Some(Reported {
            requests_remaining: observed.requests_remaining,
            points_remaining: observed.points_remaining,
            until: Instant::now() + observed.reset_in.unwrap_or(WINDOW).min(WINDOW),
        });
    }

    /// What is left of each limit now (the whole limit, reserve included), as this process sees
    /// it: its own spending of the last minute, or Monday's report when that says less is left.
    /// Read-only; the one thing `/metrics` reads of the budget.
    pub fn remaining(&self) -> Remaining {
        let spent = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (requests, points) = self.counted(&spent, Instant::now());
        Remaining {
            minute: self.requests_per_minute.saturating_sub(requests),
            complexity: self.points_per_minute.saturating_sub(points),
            daily: None,
        }
    }

    /// Requests and points spent in the last minute by this process.
    pub fn spent(&self) -> (u64, u64) {
        let spent = self.state.lock().unwrap_or_else(|e| e.into_inner());
        own(&spent, Instant::now())
    }
}

/// This process's requests and points of the last minute.
fn own(spent: &Spent, now: Instant) -> (u64, u64) {
    spent
        .calls
        .iter()
        .filter(|(t, _)| now.duration_since(*t) < WINDOW)
        .fold((0, 0), |(n, p), (_, points)| (n + 1, p + points))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_calls_stop_at_four_fifths_and_admin_calls_use_the_reserve() {
        let budget = Budget::new(10, 1_000_000);
        let now = Instant::now();
        for i in 0..8 {
            assert!(
                budget.try_spend(1, Urgency::Routine, now).is_ok(),
                "call {i}"
            );
        }
        assert!(
            budget.try_spend(1, Urgency::Routine, now).is_err(),
            "the reserve is kept"
        );
        assert!(budget.try_spend(1, Urgency::Admin, now).is_ok());
        assert!(budget.try_spend(1, Urgency::Admin, now).is_ok());
        assert!(
            budget.try_spend(1, Urgency::Admin, now).is_err(),
            "the limit itself holds"
        );
    }

    #[test]
    fn points_are_budgeted_like_requests() {
        let budget = Budget::new(1_000, 50_000);
        let now = Instant::now();
        for _ in 0..4 {
            assert!(budget.try_spend(10_000, Urgency::Routine, now).is_ok());
        }
        let wait = budget
            .try_spend(10_000, Urgency::Routine, now)
            .expect_err("40k of a 40k share");
        assert!(
            wait > Duration::from_secs(59),
            "waits for the window to slide: {wait:?}"
        );
        // A minute later the window has slid.
        assert!(
            budget
                .try_spend(10_000, Urgency::Routine, now + WINDOW)
                .is_ok()
        );
    }

    #[test]
    fn monday_reporting_less_left_tightens_the_local_view() {
        let budget = Budget::new(100, 1_000_000);
        budget.observe(Observed {
            requests_remaining: Some(10),
            points_remaining: None,
            reset_in: Some(Duration::from_secs(30)),
        });
        let wait = budget
            .try_spend(1, Urgency::Routine, Instant::now())
            .expect_err("other replicas spent it");
        assert!(wait >= Duration::from_secs(29), "{wait:?}");
        assert!(
            budget.try_spend(1, Urgency::Admin, Instant::now()).is_ok(),
            "the reserve remains for admins"
        );
    }

    #[test]
    fn room_says_who_may_call_without_spending() {
        let budget = Budget::new(5, 1_000_000);
        let now = Instant::now();
        assert_eq!(budget.room(1, 1), Some(Urgency::Routine));
        for _ in 0..3 {
            budget.try_spend(1, Urgency::Routine, now).expect("fits");
        }
        assert_eq!(
            budget.room(1, 1),
            Some(Urgency::Routine),
            "one routine call left"
        );
        assert_eq!(budget.room(2, 2), Some(Urgency::Admin), "but not two");
        budget.try_spend(1, Urgency::Routine, now).expect("fits");
        assert_eq!(budget.room(1, 1), Some(Urgency::Admin));
        budget.try_spend(1, Urgency::Admin, now).expect("fits");
        assert_eq!(budget.room(1, 1), None);
        assert_eq!(budget.spent(), (5, 5));
    }

    #[test]
    fn remaining_is_the_limit_less_what_counts_against_it() {
        let budget = Budget::new(10, 1_000);
        let now = Instant::now();
        budget.try_spend(300, Urgency::Routine, now).expect("fits");
        let left = budget.remaining();
        assert_eq!((left.minute, left.complexity, left.daily), (9, 700, None));
        budget.observe(Observed {
            requests_remaining: Some(2),
            points_remaining: None,
            reset_in: Some(Duration::from_secs(30)),
        });
        assert_eq!(
            budget.remaining().minute,
            2,
            "Monday says other replicas spent more"
        );
    }

    #[tokio::test]
    async fn acquire_waits_until_the_call_fits() {
        let budget = Budget::new(1, 1_000);
        assert_eq!(budget.acquire(1, Urgency::Admin).await, Duration::ZERO);
        let waited =
            tokio::time::timeout(Duration::from_millis(50), budget.acquire(1, Urgency::Admin))
                .await;
        assert!(
            waited.is_err(),
            "a second call in the same minute must wait"
        );
        assert_eq!(budget.spent(), (1, 1));
    }
}
