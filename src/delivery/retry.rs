//! When to try again: a validated schedule of delays with jitter.
//!
//! Scheduling is kept apart from classifying (see [`Outcome`]): the policy
//! only turns "how many attempts were made and how the last one went" into a
//! [`NextStep`].

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::outcome::Outcome;
use crate::error::{Error, Result};
use crate::storage::NextStep;

/// The longest single delay a policy accepts (30 days).
pub const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The most retries (delays) a policy accepts.
pub const MAX_RETRIES: usize = 100;

/// The default schedule after the first attempt.
const DEFAULT_DELAYS: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 60 * 60),
    Duration::from_secs(5 * 60 * 60),
    Duration::from_secs(10 * 60 * 60),
    Duration::from_secs(10 * 60 * 60),
];

/// The default jitter: each delay is moved by up to 20 % either way.
const DEFAULT_JITTER: f64 = 0.2;

/// Uniform randomness in `[0, 1)` for jitter, injectable so tests are
/// deterministic. Any `Fn() -> f64` closure is a source.
///
/// Values outside `[0, 1)` are clamped into it (and `NaN` counts as `0.5`,
/// no jitter), so a faulty source can never push a delay out of bounds.
pub trait JitterSource: Send + Sync {
    /// A number in `[0, 1)`.
    fn sample(&self) -> f64;
}

impl<F: Fn() -> f64 + Send + Sync> JitterSource for F {
    fn sample(&self) -> f64 {
        self()
    }
}

/// Jitter from the operating system's random number generator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OsJitter;

impl JitterSource for OsJitter {
    fn sample(&self) -> f64 {
        // Without OS randomness, use the midpoint: the plain scheduled delay.
        getrandom::u64().map_or(0.5, |bits| {
            // The top 53 bits make an evenly spread f64 in [0, 1).
            (bits >> 11) as f64 / (1u64 << 53) as f64
        })
    }
}

/// How many times a delivery is tried and how long to wait in between.
///
/// Attempt `n + 1` follows attempt `n` after `delays[n - 1]`, moved by a
/// random factor in `[1 - jitter, 1 + jitter)`. After `delays.len() + 1`
/// attempts the delivery fails for good (it can still be redelivered by hand).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    delays: Vec<Duration>,
    jitter: f64,
}

impl RetryPolicy {
    /// A policy with the given delays between attempts and jitter fraction.
    ///
    /// Refuses an empty schedule, more than [`MAX_RETRIES`] delays, a zero
    /// delay or one above [`MAX_DELAY`], and a jitter outside `[0, 1)`.
    pub fn new(delays: Vec<Duration>, jitter: f64) -> Result<Self> {
        let invalid =
            |why: String| Err(Error::InvalidConfiguration(format!("retry policy: {why}")));
        if delays.is_empty() {
            return invalid("at least one retry delay is required".to_owned());
        }
        if delays.len() > MAX_RETRIES {
            return invalid(format!(
                "{} retry delays given, at most {MAX_RETRIES} are allowed",
                delays.len()
            ));
        }
        for (i, delay) in delays.iter().enumerate() {
            if delay.is_zero() {
                return invalid(format!("retry delay {} is zero", i + 1));
            }
            if *delay > MAX_DELAY {
                return invalid(format!(
                    "retry delay {} ({delay:?}) is longer than the maximum of 30 days",
                    i + 1
                ));
            }
        }
        if !(0.0..1.0).contains(&jitter) {
            return invalid(format!("jitter must be in [0, 1), got {jitter}"));
        }
        Ok(Self { delays, jitter })
    }

    /// The delays between attempts, without jitter.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The jitter fraction: each delay is scaled by a factor in `[1 - jitter, 1 + jitter)`.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// How many attempts a delivery gets in all (the first plus one per delay).
    pub fn max_attempts(&self) -> u32 {
        // `new` caps the schedule at MAX_RETRIES, so this always fits.
        u32::try_from(self.delays.len()).map_or(u32::MAX, |n| n + 1)
    }

    /// The jittered delay before the attempt after attempt number
    /// `attempts_made` (counting from 1), or `None` when none is left.
    pub fn delay_after(&self, attempts_made: u32, jitter: &dyn JitterSource) -> Option<Duration> {
        let index = usize::try_from(attempts_made.max(1) - 1).ok()?;
        let base = *self.delays.get(index)?;
        let unit = jitter.sample();
        let unit = if unit.is_nan() {
            0.5
        } else {
            unit.clamp(0.0, 1.0)
        };
        // In [1 - jitter, 1 + jitter], always positive since jitter < 1; with
        // delays capped at MAX_DELAY the product cannot overflow.
        let factor = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Some(base.mul_f64(factor))
    }

    /// What to do after attempt number `attempts_made` (counting from 1)
    /// ended with `outcome` at `now`.
    ///
    /// Success completes; `410 Gone` fails and disables; anything else
    /// retries after the scheduled delay (a `Retry-After` is honoured but
    /// clamped to `[delay, 2 x delay]`), or fails once the schedule is used up.
    pub fn next_step(
        &self,
        attempts_made: u32,
        outcome: &Outcome,
        now: DateTime<Utc>,
        jitter: &dyn JitterSource,
    ) -> NextStep {
        match outcome {
            Outcome::Success => NextStep::Complete,
            Outcome::Gone => NextStep::FailAndDisable,
            Outcome::RetryAfter(_) | Outcome::Retryable => {
                let Some(delay) = self.delay_after(attempts_made, jitter) else {
                    return NextStep::Fail;
                };
                let delay = match outcome {
                    Outcome::RetryAfter(asked) => (*asked).clamp(delay, delay.saturating_mul(2)),
                    _ => delay,
                };
                NextStep::Retry {
                    at: add_saturating(now, delay),
                }
            }
        }
    }
}

impl Default for RetryPolicy {
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h with ±20 % jitter (8 attempts).
    fn default() -> Self {
        Self {
            delays: DEFAULT_DELAYS.to_vec(),
            jitter: DEFAULT_JITTER,
        }
    }
}

/// `at + delay`, stopping at the latest representable instant instead of panicking.
pub(crate) fn add_saturating(at: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(delay)
        .ok()
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
