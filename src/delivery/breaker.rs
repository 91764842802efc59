//! The circuit breaker: when repeated failures pause a subscription's
//! deliveries, and when a failure that never heals disables it.
//!
//! The policy is pure: [`CircuitBreaker::after_attempt`] turns an endpoint's
//! [`EndpointHealth`] and one attempt's result into its next health. Stores
//! keep the health and apply the policy where they record attempts, so every
//! worker sharing a store sees the same circuit.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::retry::add_saturating;
use crate::error::{Error, Result};
use crate::storage::{EndpointHealth, HealthChange, HealthUpdate};

/// The default of [`CircuitBreaker::failure_threshold`].
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// The default first cool-down: 30 seconds.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(30);
/// The default longest cool-down: 1 hour.
pub const DEFAULT_MAX_COOL_DOWN: Duration = Duration::from_secs(60 * 60);
/// The default of [`CircuitBreaker::disable_after`]: 5 days.
pub const DEFAULT_DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 60 * 60);
/// The longest cool-down or disable window a policy accepts (30 days).
pub const MAX_BREAKER_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// When a failing endpoint is paused, probed and disabled.
///
/// - After [`failure_threshold`](Self::failure_threshold) failed attempts in
///   a row the circuit **opens**: the subscription's due deliveries wait,
///   unclaimed and without spending attempts, for a cool-down.
/// - When the cool-down ends the circuit is **half-open**: one attempt at a
///   time is let through as a probe. A success closes the circuit; a failed
///   probe opens it again for twice as long, up to the longest cool-down.
/// - If no attempt succeeded for [`disable_after`](Self::disable_after)
///   since the streak began, the subscription is disabled.
///
/// Every failed attempt counts (an error status, a timeout, a refused
/// connection, a blocked address); deliveries not sent because their
/// subscription is disabled do not.
///
/// ```
/// use std::time::Duration;
/// use webhook_subscriptions::delivery::CircuitBreaker;
///
/// let breaker = CircuitBreaker::new(3, Duration::from_secs(10), Duration::from_secs(600))?
///     .with_disable_after(Some(Duration::from_secs(3 * 24 * 60 * 60)))?;
/// assert_eq!(breaker.cool_down_after(0), Duration::from_secs(10));
/// assert_eq!(breaker.cool_down_after(2), Duration::from_secs(40));
/// assert_eq!(breaker.cool_down_after(20), Duration::from_secs(600));
/// # Ok::<(), webhook_subscriptions::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    cool_down: Duration,
    max_cool_down: Duration,
    disable_after: Option<Duration>,
}

impl Default for CircuitBreaker {
    /// Opens after 5 failures in a row, cools down for 30 s doubling up to
    /// 1 h, and disables after 5 days without a success.
    fn default() -> Self {
        Self {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            cool_down: DEFAULT_COOL_DOWN,
            max_cool_down: DEFAULT_MAX_COOL_DOWN,
            disable_after: Some(DEFAULT_DISABLE_AFTER),
        }
    }
}

impl CircuitBreaker {
    /// Opens after `failure_threshold` failures in a row (at least 1) for
    /// `cool_down`, doubling after each failed probe up to `max_cool_down`
    /// (both at least 1 ms and at most [`MAX_BREAKER_WINDOW`]). Disables
    /// after the default 5 days without a success.
    pub fn new(
        failure_threshold: u32,
        cool_down: Duration,
        max_cool_down: Duration,
    ) -> Result<Self> {
        let invalid = |why: String| {
            Err(Error::InvalidConfiguration(format!(
                "circuit breaker: {why}"
            )))
        };
        if failure_threshold == 0 {
            return invalid("the failure threshold must be at least 1".to_owned());
        }
        for (name, value) in [
            ("cool-down", cool_down),
            ("longest cool-down", max_cool_down),
        ] {
            if value < Duration::from_millis(1) || value > MAX_BREAKER_WINDOW {
                return invalid(format!(
                    "the {name} must be between 1 ms and {MAX_BREAKER_WINDOW:?}, not {value:?}"
                ));
            }
        }
        if max_cool_down < cool_down {
            return invalid(format!(
                "the longest cool-down ({max_cool_down:?}) is shorter than the first ({cool_down:?})"
            ));
        }
        Ok(Self {
            failure_threshold,
            cool_down,
            max_cool_down,
            disable_after: Some(DEFAULT_DISABLE_AFTER),
        })
    }

    /// Disables a subscription once `window` passed since the first failure
    /// of a streak with no success (`None`: never; at most
    /// [`MAX_BREAKER_WINDOW`], at least 1 ms).
    pub fn with_disable_after(mut self, window: Option<Duration>) -> Result<Self> {
        if let Some(window) = window {
            if window < Duration::from_millis(1) || window > MAX_BREAKER_WINDOW {
                return Err(Error::InvalidConfiguration(format!(
                    "circuit breaker: the disable window must be between 1 ms and \
                     {MAX_BREAKER_WINDOW:?}, not {window:?}"
                )));
            }
        }
        self.disable_after = window;
        Ok(self)
    }

    /// A breaker that never opens and never disables: failures are still
    /// counted, so the delivery status shows the streak.
    pub fn never() -> Self {
        Self {
            failure_threshold: u32::MAX,
            disable_after: None,
            ..Self::default()
        }
    }

    /// Failures in a row that open the circuit.
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// The first cool-down.
    pub fn cool_down(&self) -> Duration {
        self.cool_down
    }

    /// The longest cool-down.
    pub fn max_cool_down(&self) -> Duration {
        self.max_cool_down
    }

    /// How long a failing streak may last before the subscription is
    /// disabled (`None`: never).
    pub fn disable_after(&self) -> Option<Duration> {
        self.disable_after
    }

    /// The cool-down after the circuit already opened `times_opened` times
    /// in this streak: the first doubled that many times, capped.
    pub fn cool_down_after(&self, times_opened: u32) -> Duration {
        let factor = 1u32.checked_shl(times_opened).unwrap_or(u32::MAX);
        self.cool_down
            .checked_mul(factor)
            .map_or(self.max_cool_down, |d| d.min(self.max_cool_down))
    }

    /// The endpoint's health after one attempt made at `at` (when it was
    /// sent) that `succeeded` or not, given its `health` before (`None`:
    /// healthy).
    ///
    /// A success forgets the streak (closing an open circuit). A failure
    /// extends it; it opens the circuit when the streak reaches the
    /// threshold, or again when the failed attempt was a probe (sent after
    /// the cool-down ended); and it disables the subscription when the
    /// streak has lasted the disable window. Attempts sent before the
    /// circuit opened that fail afterwards only count.
    pub fn after_attempt(
        &self,
        health: Option<&EndpointHealth>,
        succeeded: bool,
        at: DateTime<Utc>,
    ) -> HealthUpdate {
        if succeeded {
            let change = health
                .and_then(|h| h.paused_until)
                .map(|_| HealthChange::CircuitClosed);
            return HealthUpdate {
                health: None,
                change,
            };
        }
        let mut next = health
            .copied()
            .unwrap_or_else(|| EndpointHealth::new(0, at, None, 0));
        next.failure_streak = next.failure_streak.saturating_add(1);
        if self.expired(next.failing_since, at) {
            return HealthUpdate {
                health: None,
                change: Some(HealthChange::Disabled {
                    failing_since: next.failing_since,
                }),
            };
        }
        let opens = match next.paused_until {
            None => next.failure_streak >= self.failure_threshold,
            Some(until) => at >= until,
        };
        let mut change = None;
        if opens {
            let until = add_saturating(at, self.cool_down_after(next.times_opened));
            next.paused_until = Some(until);
            next.times_opened = next.times_opened.saturating_add(1);
            change = Some(HealthChange::CircuitOpened {
                until,
                failure_streak: next.failure_streak,
            });
        }
        HealthUpdate {
            health: Some(next),
            change,
        }
    }

    /// Whether a streak begun at `since` has outlasted the disable window at `at`.
    fn expired(&self, since: DateTime<Utc>, at: DateTime<Utc>) -> bool {
        self.disable_after
            .and_then(|window| TimeDelta::from_std(window).ok())
            .is_some_and(|window| at - since >= window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CircuitState;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn fail(breaker: &CircuitBreaker, health: Option<EndpointHealth>, at: i64) -> HealthUpdate {
        breaker.after_attempt(health.as_ref(), false, t(at))
    }

    #[test]
    fn opens_at_the_threshold_and_not_before() {
        let breaker = CircuitBreaker::default();
        let mut health = None;
        for at in 0..4 {
            let update = fail(&breaker, health, at);
            assert_eq!(update.change, None, "failure {} opened it", at + 1);
            health = update.health;
        }
        let update = fail(&breaker, health, 4);
        assert_eq!(
            update.change,
            Some(HealthChange::CircuitOpened {
                until: t(4 + 30),
                failure_streak: 5
            })
        );
        let health = update.health.unwrap();
        assert_eq!(health.failing_since, t(0));
        assert_eq!(health.circuit(t(33)), CircuitState::Open);
        assert_eq!(health.circuit(t(34)), CircuitState::HalfOpen);
    }

    #[test]
    fn late_failures_of_attempts_sent_before_opening_do_not_extend_the_pause() {
        let breaker =
            CircuitBreaker::new(1, Duration::from_secs(30), Duration::from_secs(60)).unwrap();
        let opened = fail(&breaker, None, 0).health;
        assert_eq!(opened.unwrap().paused_until, Some(t(30)));
        let late = fail(&breaker, opened, 5);
        assert_eq!(late.change, None);
        assert_eq!(late.health.unwrap().paused_until, Some(t(30)));
        assert_eq!(late.health.unwrap().failure_streak, 2);
    }

    #[test]
    fn a_failed_probe_doubles_the_cool_down_up_to_the_cap() {
        let breaker =
            CircuitBreaker::new(1, Duration::from_secs(30), Duration::from_secs(100)).unwrap();
        let mut health = fail(&breaker, None, 0).health;
        let mut probe_at = 30;
        for expected in [60, 100, 100] {
            let update = fail(&breaker, health, probe_at);
            let until = update.health.unwrap().paused_until.unwrap();
            assert_eq!(until, t(probe_at + expected), "probe at {probe_at}");
            health = update.health;
            probe_at += expected;
        }
    }

    #[test]
    fn a_success_closes_and_forgets() {
        let breaker =
            CircuitBreaker::new(1, Duration::from_secs(30), Duration::from_secs(60)).unwrap();
        let open = fail(&breaker, None, 0).health;
        let healed = breaker.after_attempt(open.as_ref(), true, t(31));
        assert_eq!(healed.health, None);
        assert_eq!(healed.change, Some(HealthChange::CircuitClosed));
        // A success on a streak that never opened closes nothing.
        let failing = fail(&CircuitBreaker::default(), None, 0).health;
        let healed = breaker.after_attempt(failing.as_ref(), true, t(1));
        assert_eq!((healed.health, healed.change), (None, None));
    }

    #[test]
    fn disables_once_the_window_has_passed_without_a_success() {
        let breaker = CircuitBreaker::default()
            .with_disable_after(Some(Duration::from_secs(100)))
            .unwrap();
        let first = fail(&breaker, None, 0).health;
        let within = fail(&breaker, first, 99);
        assert_eq!(within.change, None);
        let past = fail(&breaker, within.health, 100);
        assert_eq!(past.health, None);
        assert_eq!(
            past.change,
            Some(HealthChange::Disabled {
                failing_since: t(0)
            })
        );
        let never = CircuitBreaker::never();
        let mut health = None;
        for at in [0, 10_000_000, 20_000_000] {
            let update = fail(&never, health, at);
            assert_eq!(update.change, None);
            health = update.health;
        }
        assert_eq!(health.unwrap().failure_streak, 3);
    }

    #[test]
    fn refuses_nonsense() {
        let second = Duration::from_secs(1);
        assert!(CircuitBreaker::new(0, second, second).is_err());
        assert!(CircuitBreaker::new(1, Duration::ZERO, second).is_err());
        assert!(CircuitBreaker::new(1, second * 2, second).is_err());
        assert!(CircuitBreaker::new(1, second, MAX_BREAKER_WINDOW * 2).is_err());
        let ok = CircuitBreaker::new(1, second, second).unwrap();
        assert!(ok.with_disable_after(Some(Duration::ZERO)).is_err());
        assert!(ok.with_disable_after(None).is_ok());
    }

    #[test]
    fn cool_downs_never_overflow() {
        let breaker = CircuitBreaker::new(1, MAX_BREAKER_WINDOW, MAX_BREAKER_WINDOW).unwrap();
        assert_eq!(breaker.cool_down_after(u32::MAX), MAX_BREAKER_WINDOW);
    }
}
