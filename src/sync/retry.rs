//! The one retry policy of the gateway: exponential backoff with full jitter, the remote's own
//! `Retry-After` / `retry_in_seconds` honoured up to the cap (`retry_cap_ms`, and never more than
//! an hour, so a huge value cannot park an entity for years nor overflow the time arithmetic), and
//! a cap on attempts: the job's own `max_attempts`, which a replay raises.
//!
//! Owns: `RetryPolicy` (built from the `[sync]` settings) and `Verdict`. Whether an error is worth
//! retrying is decided once, by the connectors (`ConnectorError::class`); when, here.
//! May import: std, rand, crate::config, crate::connectors.

use std::time::Duration;

use rand::Rng;

use crate::config::SyncSettings;
use crate::connectors::{ConnectorError, FailureClass};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first attempt's backoff ceiling; it doubles with each attempt.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub cap: Duration,
    /// Attempts a new job gets before it goes to the dead letters (stored with the job).
    pub max_attempts: i64,
}

/// The longest wait the policy ever asks for, whatever the remote or the configuration says.
pub const MAX_DELAY: Duration = Duration::from_secs(3_600);

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Try again after this delay.
    RetryAfter(Duration),
    /// Give up: the reason goes to the dead letter.
    Dead(String),
}

/// The schedule configured in `[sync]`: `retry_base_ms`, `retry_cap_ms`, `max_attempts`.
impl From<&SyncSettings> for RetryPolicy {
    fn from(sync: &SyncSettings) -> Self {
        RetryPolicy {
            base: sync.retry_base(),
            cap: sync.retry_cap(),
            max_attempts: sync.max_attempts,
        }
    }
}

impl RetryPolicy {
    /// The backoff before attempt `attempt + 1`, `attempt` counting from 1: uniform in
    /// `[0, min(cap, base * 2^(attempt-1))]` (full jitter, so retries of many jobs do not march in
    /// step), and never shorter than what the remote asked for, up to `min(cap, MAX_DELAY)`.
    pub fn delay(
        &self,
        attempt: i64,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let longest = self.cap.min(MAX_DELAY);
        let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(longest);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let jittered = Duration::from_millis(rng.random_range(0..=ceiling_ms));
        jittered.max(retry_after.unwrap_or_default().min(longest))
    }

    /// The verdict after attempt number `attempts` of a job allowed `max_attempts` failed with
    /// `error`. The limit is the job's own: a replayed dead letter gets a full set again.
    pub fn verdict(
        &self,
        attempts: i64,
        max_attempts: i64,
        error: &ConnectorError,
        rng: &mut impl Rng,
    ) -> Verdict {
        match error.class {
            FailureClass::Retryable if attempts < max_attempts => {
                Verdict::RetryAfter(self.delay(attempts, error.retry_after, rng))
            }
            FailureClass::Retryable => {
                Verdict::Dead(format!("gave up after {attempts} attempts: {error}"))
            }
            FailureClass::Permanent | FailureClass::NotFound => Verdict::Dead(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(300),
            max_attempts: 10,
        }
    }

    fn error(class: FailureClass, retry_after: Option<Duration>) -> ConnectorError {
        ConnectorError {
            system: crate::domain::entity::Side::Monday,
            class,
            status: Some(503),
            code: None,
            message: "unavailable".into(),
            retry_after,
        }
    }

    #[test]
    fn verdicts_follow_the_class_and_the_attempt_cap() {
        let mut rng = StdRng::seed_from_u64(7);
        let cases = [
            ("retryable, attempts left", FailureClass::Retryable, 3, true),
            (
                "retryable, last attempt",
                FailureClass::Retryable,
                10,
                false,
            ),
            (
                "permanent, first attempt",
                FailureClass::Permanent,
                1,
                false,
            ),
            ("not found", FailureClass::NotFound, 1, false),
        ];
        for (name, class, attempts, retry) in cases {
            let verdict = policy().verdict(attempts, 10, &error(class, None), &mut rng);
            assert_eq!(
                matches!(verdict, Verdict::RetryAfter(_)),
                retry,
                "{name}: {verdict:?}"
            );
        }
    }

    #[test]
    fn the_ceiling_doubles_per_attempt_up_to_the_cap() {
        // With a seeded rng, the maximum over many draws approaches each attempt's ceiling.
        let mut rng = StdRng::seed_from_u64(1);
        for (attempt, ceiling_ms) in [
            (1, 500),
            (2, 1_000),
            (3, 2_000),
            (10, 256_000),
            (11, 300_000),
            (40, 300_000),
        ] {
            let max = (0..2_000)
                .map(|_| policy().delay(attempt, None, &mut rng).as_millis())
                .max()
                .unwrap_or_default();
            assert!(max <= ceiling_ms, "attempt {attempt}: {max} > {ceiling_ms}");
            assert!(
                max * 10 >= ceiling_ms * 9,
                "attempt {attempt}: jitter never neared the ceiling ({max})"
            );
        }
    }

    #[test]
    fn the_policy_follows_the_sync_settings() {
        let sync = SyncSettings {
            retry_base_ms: 50,
            retry_cap_ms: 1_000,
            max_attempts: 3,
            ..SyncSettings::default()
        };
        assert_eq!(
            RetryPolicy::from(&sync),
            RetryPolicy {
                base: Duration::from_millis(50),
                cap: Duration::from_secs(1),
                max_attempts: 3,
            }
        );
    }

    #[test]
    fn the_limit_is_the_jobs_own_so_a_replayed_job_gets_its_attempts_again() {
        // A job replayed once after dying at attempt 10 allows 20: attempt 11 is retried.
        let mut rng = StdRng::seed_from_u64(3);
        let retryable = error(FailureClass::Retryable, None);
        let verdict = policy().verdict(11, 20, &retryable, &mut rng);
        assert!(matches!(verdict, Verdict::RetryAfter(_)), "{verdict:?}");
        let verdict = policy().verdict(20, 20, &retryable, &mut rng);
        assert!(matches!(verdict, Verdict::Dead(_)), "{verdict:?}");
    }

    #[test]
    fn retry_after_is_capped_at_the_cap_and_an_hour_without_overflow() {
        let mut rng = StdRng::seed_from_u64(5);
        let huge = [
            Duration::from_secs(10 * 365 * 24 * 3_600),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ];
        for asked in huge {
            let d = policy().delay(1, Some(asked), &mut rng);
            assert_eq!(d, policy().cap, "{asked:?} is capped at retry_cap_ms");
            let lax = RetryPolicy {
                cap: Duration::from_secs(100_000),
                ..policy()
            };
            assert_eq!(lax.delay(40, Some(asked), &mut rng), MAX_DELAY, "{asked:?}");
        }
        let verdict = policy().verdict(
            1,
            10,
            &error(FailureClass::Retryable, Some(Duration::MAX)),
            &mut rng,
        );
        assert_eq!(verdict, Verdict::RetryAfter(policy().cap));
    }

    proptest! {
        #[test]
        fn delays_stay_within_the_ceiling_and_honour_retry_after(
            attempt in 1i64..50,
            retry_after_ms in proptest::option::of(0u64..600_000),
            seed in any::<u64>(),
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let retry_after = retry_after_ms.map(Duration::from_millis);
            let d = policy().delay(attempt, retry_after, &mut rng);
            let floor = retry_after.unwrap_or_default().min(policy().cap);
            prop_assert!(d >= floor);
            prop_assert!(d <= policy().cap);
        }
    }
}
