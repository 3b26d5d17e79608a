//! Monday's call budget as pure state: what has been spent in the current minute window and the
//! current UTC day, and who may spend more.
//!
//! Owns: `BudgetLimits`, `Cost`, `BudgetState` (serialisable, so every replica can share one in
//! the ledger), `Remaining`. The clock is a parameter (unix ms) everywhere.
//!
//! Monday's minute budgets (requests and complexity points) "reset 60 seconds after the first API
//! call was made": a window opens with the first call and closes 60 s later. The daily call limit
//! resets at midnight UTC. Monday's own `RateLimit` report of what remains (it covers every
//! process using the app's token) tightens the local count, never loosens it. Each priority may
//! spend only its share of each limit, so when the budget is short, admin pushes go first, then
//! live sync, then drift repairs, then backfill.
//! May import: std, serde, crate::domain.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::job::Priority;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// The limits the gateway keeps to (`[monday]` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimits {
    pub requests_per_minute: u64,
    pub points_per_minute: u64,
    /// Calls per UTC day; 0 means no daily cap.
    pub calls_per_day: u64,
}

/// What one request costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub requests: u64,
    pub points: u64,
}

impl Cost {
    pub fn request(points: u64) -> Self {
        Cost {
            requests: 1,
            points,
        }
    }
}

/// What remains at a moment, per kind of budget (for metrics and status pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    pub minute: u64,
    pub complexity: u64,
    /// `None` when there is no daily cap.
    pub daily: Option<u64>,
}

/// Spending so far. `Default` is an unspent budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BudgetState {
    /// When the current minute window opened (unix ms); 0: no window is open.
    pub minute_started_ms: i64,
    pub minute_requests: u64,
    pub minute_points: u64,
    /// The UTC day (days since the epoch) `day_calls` counts.
    pub day: i64,
    pub day_calls: u64,
    /// What Monday last reported remaining, valid until `reported_until_ms`.
    pub reported_requests_left: Option<u64>,
    pub reported_points_left: Option<u64>,
    pub reported_until_ms: i64,
}

/// The share of a limit `priority` may use, in percent.
fn share_percent(priority: Priority) -> u64 {
    match priority {
        Priority::Admin => 100,
        Priority::Live => 80,
        Priority::Drift => 60,
        Priority::Backfill => 40,
    }
}

fn share(limit: u64, priority: Priority) -> u64 {
    // Rounded up, so a small limit still leaves every priority at least one call.
    // In u128: "no limit" is u64::MAX, and its share is no limit either.
    let share = (u128::from(limit) * u128::from(share_percent(priority))).div_ceil(100);
    u64::try_from(share).unwrap_or(u64::MAX)
}

impl BudgetState {
    /// Closes a window that has run its 60 s, starts a new day at midnight UTC, and forgets an
    /// expired report.
    fn roll(&mut self, now_ms: i64) {
        if self.minute_started_ms != 0 && now_ms >= self.minute_started_ms + MINUTE_MS {
            self.minute_started_ms = 0;
            self.minute_requests = 0;
            self.minute_points = 0;
        }
        let today = now_ms.div_euclid(DAY_MS);
        if today != self.day {
            self.day = today;
            self.day_calls = 0;
        }
        if now_ms >= self.reported_until_ms {
            self.reported_requests_left = None;
            self.reported_points_left = None;
        }
    }

    /// Requests and points counted against the minute: this ledger's count, or what Monday says
    /// is spent, whichever is more.
    fn minute_spent(&self, limits: &BudgetLimits) -> (u64, u64) {
        let reported = |left: Option<u64>, limit: u64| left.map_or(0, |l| limit.saturating_sub(l));
        (
            self.minute_requests.max(reported(
                self.reported_requests_left,
                limits.requests_per_minute,
            )),
            self.minute_points.max(reported(
                self.reported_points_left,
                limits.points_per_minute,
            )),
        )
    }

    /// `Ok` when `cost` fits `priority`'s share at `now_ms`, else how long until it might.
    fn check(
        &self,
        limits: &BudgetLimits,
        cost: Cost,
        priority: Priority,
        now_ms: i64,
    ) -> Result<(), Duration> {
        let (requests, points) = self.minute_spent(limits);
        let minute_ok = requests.saturating_add(cost.requests) <= share(limits.requests_per_minute, priority)
            // A single request dearer than the whole share still fits an empty window.
            && (points.saturating_add(cost.points) <= share(limits.points_per_minute, priority)
                || points == 0);
        let day_ok = limits.calls_per_day == 0
            || self.day_calls.saturating_add(cost.requests)
                <= share(limits.calls_per_day, priority);
        if !day_ok {
            let next_day = (self.day + 1) * DAY_MS;
            return Err(until(next_day, now_ms));
        }
        if !minute_ok {
            let window_end = if self.minute_started_ms == 0 {
                now_ms + MINUTE_MS
            } else {
                self.minute_started_ms + MINUTE_MS
            };
            return Err(until(window_end.max(self.reported_until_ms), now_ms));
        }
        Ok(())
    }

    /// Spends `cost` for `priority` when it fits at `now_ms`; else says how long until it might.
    pub fn try_spend(
        &mut self,
        limits: &BudgetLimits,
        cost: Cost,
        priority: Priority,
        now_ms: i64,
    ) -> Result<(), Duration> {
        self.roll(now_ms);
        self.check(limits, cost, priority, now_ms)?;
        if self.minute_started_ms == 0 {
            self.minute_started_ms = now_ms;
        }
        self.minute_requests += cost.requests;
        self.minute_points += cost.points;
        self.day_calls += cost.requests;
        Ok(())
    }

    /// The lowest priority that could spend `cost` at `now_ms` (`None`: not even an admin).
    /// Records nothing.
    pub fn room(&self, limits: &BudgetLimits, cost: Cost, now_ms: i64) -> Option<Priority> {
        let mut state = self.clone();
        state.roll(now_ms);
        Priority::ALL
            .into_iter()
            .find(|p| state.check(limits, cost, *p, now_ms).is_ok())
    }

    /// Takes in Monday's report of what remains (its `RateLimit` header or a `complexity` answer),
    /// valid for `reset_in` (at most a minute).
    pub fn observe(
        &mut self,
        requests_left: Option<u64>,
        points_left: Option<u64>,
        reset_in: Option<Duration>,
        now_ms: i64,
    ) {
        if requests_left.is_none() && points_left.is_none() {
            return;
        }
        self.roll(now_ms);
        let reset_ms = reset_in.map_or(MINUTE_MS, |d| {
            i64::try_from(d.as_millis()).unwrap_or(MINUTE_MS)
        });
        self.reported_requests_left = requests_left.or(self.reported_requests_left);
        self.reported_points_left = points_left.or(self.reported_points_left);
        self.reported_until_ms = now_ms + reset_ms.clamp(0, MINUTE_MS);
    }

    /// What remains at `now_ms`.
    pub fn remaining(&self, limits: &BudgetLimits, now_ms: i64) -> Remaining {
        let mut state = self.clone();
        state.roll(now_ms);
        let (requests, points) = state.minute_spent(limits);
        Remaining {
            minute: limits.requests_per_minute.saturating_sub(requests),
            complexity: limits.points_per_minute.saturating_sub(points),
            daily: (limits.calls_per_day > 0)
                .then(|| limits.calls_per_day.saturating_sub(state.day_calls)),
        }
    }
}

fn until(at_ms: i64, now_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(at_ms - now_ms).unwrap_or(0).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_796_000_000_000;

    fn limits(requests: u64, points: u64, daily: u64) -> BudgetLimits {
        BudgetLimits {
            requests_per_minute: requests,
            points_per_minute: points,
            calls_per_day: daily,
        }
    }

    #[test]
    fn limits_as_large_as_u64_allow_every_priority_without_overflow() {
        let l = limits(u64::MAX, u64::MAX, u64::MAX);
        let mut s = BudgetState::default();
        for p in [
            Priority::Backfill,
            Priority::Drift,
            Priority::Live,
            Priority::Admin,
        ] {
            assert!(share(u64::MAX, p) >= u64::MAX / 100 * share_percent(p));
            assert!(s.try_spend(&l, Cost::request(1), p, T0).is_ok());
        }
        assert_eq!(share(u64::MAX, Priority::Admin), u64::MAX);
    }

    #[test]
    fn each_priority_stops_at_its_share_and_admins_use_the_rest() {
        let l = limits(10, 1_000_000, 0);
        let mut s = BudgetState::default();
        let spent = |s: &mut BudgetState, p| {
            (0..20)
                .take_while(|_| s.try_spend(&l, Cost::request(1), p, T0).is_ok())
                .count()
        };
        assert_eq!(spent(&mut s, Priority::Backfill), 4);
        assert_eq!(spent(&mut s, Priority::Drift), 2);
        assert_eq!(spent(&mut s, Priority::Live), 2);
        assert_eq!(spent(&mut s, Priority::Admin), 2);
        assert_eq!(s.room(&l, Cost::request(1), T0), None);
    }

    #[test]
    fn the_window_opens_with_the_first_call_and_resets_60_s_later() {
        let l = limits(2, 1_000_000, 0);
        let mut s = BudgetState::default();
        s.try_spend(&l, Cost::request(1), Priority::Admin, T0 + 5_000)
            .expect("first");
        s.try_spend(&l, Cost::request(1), Priority::Admin, T0 + 30_000)
            .expect("second");
        let wait = s
            .try_spend(&l, Cost::request(1), Priority::Admin, T0 + 40_000)
            .expect_err("full");
        assert_eq!(
            wait,
            Duration::from_secs(25),
            "until 60 s after the first call"
        );
        s.try_spend(&l, Cost::request(1), Priority::Admin, T0 + 65_000)
            .expect("a new window");
    }

    #[test]
    fn points_are_budgeted_like_requests_and_one_dear_request_fits_an_empty_window() {
        let l = limits(1_000, 50_000, 0);
        let mut s = BudgetState::default();
        s.try_spend(&l, Cost::request(250_000), Priority::Live, T0)
            .expect("alone in its window");
        assert!(
            s.try_spend(&l, Cost::request(1), Priority::Admin, T0)
                .is_err()
        );
    }

    #[test]
    fn the_daily_cap_holds_exactly_and_resumes_the_next_utc_day() {
        let l = limits(1_000, 10_000_000, 10);
        let mut s = BudgetState::default();
        let midnight = (T0.div_euclid(DAY_MS) + 1) * DAY_MS;
        let mut at = midnight - 3_600_000;
        let mut calls = 0;
        while s
            .try_spend(&l, Cost::request(1), Priority::Admin, at)
            .is_ok()
        {
            calls += 1;
            at += 61_000;
        }
        assert_eq!(calls, 10, "never above the cap");
        let wait = s
            .try_spend(&l, Cost::request(1), Priority::Admin, at)
            .expect_err("spent");
        assert_eq!(
            Duration::from_millis(u64::try_from(midnight - at).unwrap_or(0)),
            wait
        );
        assert_eq!(s.remaining(&l, at).daily, Some(0));
        s.try_spend(&l, Cost::request(1), Priority::Admin, midnight)
            .expect("the next day");
        assert_eq!(s.remaining(&l, midnight).daily, Some(9));
    }

    #[test]
    fn the_daily_cap_keeps_a_share_for_each_priority() {
        let l = limits(1_000, 10_000_000, 100);
        let mut s = BudgetState::default();
        let mut at = T0;
        let mut spend = |p| {
            let mut n = 0;
            while s.try_spend(&l, Cost::request(1), p, at).is_ok() {
                n += 1;
                at += 1;
            }
            n
        };
        assert_eq!(spend(Priority::Backfill), 40);
        assert_eq!(spend(Priority::Live), 40);
        assert_eq!(spend(Priority::Admin), 20);
    }

    #[test]
    fn mondays_report_of_less_left_tightens_the_count_until_it_resets() {
        let l = limits(100, 1_000_000, 0);
        let mut s = BudgetState::default();
        s.observe(Some(10), None, Some(Duration::from_secs(30)), T0);
        let wait = s
            .try_spend(&l, Cost::request(1), Priority::Live, T0)
            .expect_err("other replicas spent it");
        assert!(wait >= Duration::from_secs(30), "{wait:?}");
        assert_eq!(s.room(&l, Cost::request(1), T0), Some(Priority::Admin));
        s.try_spend(&l, Cost::request(1), Priority::Live, T0 + 30_000)
            .expect("the report expired");
        assert_eq!(s.remaining(&l, T0 + 30_000).minute, 99);
    }

    #[test]
    fn state_survives_its_stored_form() {
        let mut s = BudgetState::default();
        let l = limits(5, 5, 5);
        s.try_spend(&l, Cost::request(1), Priority::Live, T0)
            .expect("fits");
        let text = serde_json::to_string(&s).expect("serialise");
        let back: BudgetState = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, s);
        let old: BudgetState = serde_json::from_str("{}").expect("an empty row is unspent");
        assert_eq!(old, BudgetState::default());
    }
}
