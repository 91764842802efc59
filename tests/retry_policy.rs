//! The retry schedule: validation, the default schedule, jitter bounds,
//! `Retry-After` clamping and exhaustion.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use webhook_subscriptions::delivery::{Outcome, RetryPolicy};
use webhook_subscriptions::storage::NextStep;
use webhook_subscriptions::Error;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 9, 15, 12, 0, 0).unwrap()
}

/// A jitter source that always returns the midpoint: no jitter at all.
fn no_jitter() -> f64 {
    0.5
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn retry_at(step: NextStep) -> DateTime<Utc> {
    match step {
        NextStep::Retry { at } => at,
        other => panic!("expected a retry, got {other:?}"),
    }
}

/// A small deterministic generator (SplitMix64) mapped to [0, 1).
fn splitmix(seed: u64) -> impl Fn() -> f64 + Send + Sync {
    let state = AtomicU64::new(seed);
    move || {
        let mut z = state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn default_policy_matches_the_documented_schedule() {
    let policy = RetryPolicy::default();
    let expected = [
        secs(5),
        secs(5 * 60),
        secs(30 * 60),
        secs(2 * 3600),
        secs(5 * 3600),
        secs(10 * 3600),
        secs(10 * 3600),
    ];
    assert_eq!(policy.delays(), expected);
    assert_eq!(policy.jitter(), 0.2);
    assert_eq!(policy.max_attempts(), 8);
}

#[test]
fn default_schedule_without_jitter_waits_the_listed_delays() {
    let policy = RetryPolicy::default();
    let expected_secs = [5, 300, 1800, 7200, 18000, 36000, 36000];
    for (attempt, secs) in (1u32..).zip(expected_secs) {
        let at = retry_at(policy.next_step(attempt, &Outcome::Retryable, now(), &no_jitter));
        assert_eq!(
            at - now(),
            chrono::Duration::seconds(secs),
            "after attempt {attempt}"
        );
    }
}

#[test]
fn schedule_exhaustion_fails_after_the_last_attempt() {
    let policy = RetryPolicy::default();
    assert_eq!(
        policy.next_step(8, &Outcome::Retryable, now(), &no_jitter),
        NextStep::Fail
    );
    assert_eq!(
        policy.next_step(8, &Outcome::RetryAfter(secs(10)), now(), &no_jitter),
        NextStep::Fail
    );
    let short = RetryPolicy::new(vec![secs(1)], 0.0).unwrap();
    assert_eq!(short.max_attempts(), 2);
    assert!(matches!(
        short.next_step(1, &Outcome::Retryable, now(), &no_jitter),
        NextStep::Retry { .. }
    ));
    assert_eq!(
        short.next_step(2, &Outcome::Retryable, now(), &no_jitter),
        NextStep::Fail
    );
}

#[test]
fn success_completes_and_gone_disables_at_any_attempt() {
    let policy = RetryPolicy::default();
    for attempt in [1, 4, 8] {
        assert_eq!(
            policy.next_step(attempt, &Outcome::Success, now(), &no_jitter),
            NextStep::Complete
        );
        assert_eq!(
            policy.next_step(attempt, &Outcome::Gone, now(), &no_jitter),
            NextStep::FailAndDisable
        );
    }
}

#[test]
fn every_jittered_delay_stays_within_twenty_percent() {
    let policy = RetryPolicy::default();
    let jitter = splitmix(42);
    for (attempt, base) in (1u32..).zip(policy.delays().to_vec()) {
        let base_ms = base.as_millis() as i64;
        let (mut lowest, mut highest) = (i64::MAX, i64::MIN);
        for _ in 0..2_000 {
            let at = retry_at(policy.next_step(attempt, &Outcome::Retryable, now(), &jitter));
            let waited = (at - now()).num_milliseconds();
            assert!(
                waited >= base_ms * 8 / 10 && waited <= base_ms * 12 / 10,
                "attempt {attempt}: waited {waited} ms for a base of {base_ms} ms"
            );
            lowest = lowest.min(waited);
            highest = highest.max(waited);
        }
        // The draws really spread over the band, not just sit at the middle.
        assert!(
            lowest < base_ms * 82 / 100,
            "attempt {attempt}: lowest {lowest}"
        );
        assert!(
            highest > base_ms * 118 / 100,
            "attempt {attempt}: highest {highest}"
        );
    }
}

#[test]
fn extreme_and_faulty_jitter_samples_stay_in_bounds() {
    let policy = RetryPolicy::new(vec![secs(100)], 0.2).unwrap();
    let waited = |sample: f64| {
        let at = retry_at(policy.next_step(1, &Outcome::Retryable, now(), &move || sample));
        (at - now()).num_milliseconds()
    };
    assert_eq!(waited(0.0), 80_000);
    assert!(waited(0.999_999) <= 120_000);
    assert_eq!(waited(-5.0), 80_000);
    assert_eq!(waited(7.0), 120_000);
    assert_eq!(waited(f64::NAN), 100_000);
}

#[test]
fn retry_after_is_clamped_to_between_one_and_two_scheduled_delays() {
    let policy = RetryPolicy::default();
    let wait = |asked: Duration| {
        let at = retry_at(policy.next_step(1, &Outcome::RetryAfter(asked), now(), &no_jitter));
        (at - now()).num_milliseconds()
    };
    // The first scheduled delay is 5 s.
    assert_eq!(wait(secs(1)), 5_000, "shorter than the delay: raised to it");
    assert_eq!(wait(Duration::ZERO), 5_000);
    assert_eq!(wait(secs(7)), 7_000, "within bounds: honoured");
    assert_eq!(
        wait(secs(3600)),
        10_000,
        "longer than twice the delay: capped"
    );
}

#[test]
fn retry_after_clamps_around_the_jittered_delay() {
    let policy = RetryPolicy::new(vec![secs(100)], 0.2).unwrap();
    let lowest = || 0.0; // scheduled delay 80 s
    let at = retry_at(policy.next_step(1, &Outcome::RetryAfter(secs(1000)), now(), &lowest));
    assert_eq!((at - now()).num_seconds(), 160);
    let at = retry_at(policy.next_step(1, &Outcome::RetryAfter(secs(10)), now(), &lowest));
    assert_eq!((at - now()).num_seconds(), 80);
}

#[test]
fn custom_schedule_is_followed() {
    let policy = RetryPolicy::new(vec![secs(1), secs(2), secs(3)], 0.0).unwrap();
    assert_eq!(policy.max_attempts(), 4);
    for (attempt, expected) in [(1, 1), (2, 2), (3, 3)] {
        let at = retry_at(policy.next_step(attempt, &Outcome::Retryable, now(), &splitmix(1)));
        assert_eq!((at - now()).num_seconds(), expected);
    }
}

fn refused(delays: Vec<Duration>, jitter: f64) -> String {
    match RetryPolicy::new(delays, jitter) {
        Err(Error::InvalidConfiguration(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn new_refuses_invalid_schedules() {
    assert!(refused(vec![], 0.2).contains("at least one retry delay"));
    assert!(refused(vec![secs(5), Duration::ZERO], 0.2).contains("retry delay 2 is zero"));
    assert!(refused(vec![secs(31 * 24 * 3600)], 0.2).contains("30 days"));
    assert!(refused(vec![secs(1); 101], 0.2).contains("at most 100"));
    for jitter in [1.0, 1.5, -0.1, f64::NAN, f64::INFINITY] {
        assert!(
            refused(vec![secs(5)], jitter).contains("jitter"),
            "{jitter}"
        );
    }
}

#[test]
fn new_accepts_boundary_values() {
    assert!(RetryPolicy::new(vec![secs(30 * 24 * 3600)], 0.0).is_ok());
    assert!(RetryPolicy::new(vec![Duration::from_millis(1)], 0.999).is_ok());
    assert!(RetryPolicy::new(vec![secs(1); 100], 0.5).is_ok());
}
