//! The metrics the engine records through the [`metrics`] facade (feature
//! `metrics`); the host installs the recorder (a Prometheus exporter, say)
//! and may call [`describe`] once for help texts.
//!
//! | name | kind | recorded |
//! |---|---|---|
//! | [`ATTEMPTS_TOTAL`] | counter, label `outcome` = `success` or `failure` | per attempt (2xx is a success; any other status, a timeout or a connection error a failure) |
//! | [`ATTEMPT_DURATION_SECONDS`] | histogram | per attempt, sending to answer |
//! | [`EVENTS_PUBLISHED_TOTAL`] | counter | per event [`publish`](super::publish)ed (duplicates included) |
//! | [`DELIVERIES_ENQUEUED_TOTAL`] | counter | per delivery those events enqueued |
//! | [`QUEUE_DUE`] | gauge | deliveries due now, sampled by [`Worker::run`](super::Worker::run) |
//! | [`QUEUE_OLDEST_DUE_SECONDS`] | gauge | how long the oldest due delivery has waited (the lag), sampled likewise |

use metrics::{counter, describe_counter, describe_gauge, describe_histogram};

/// Counter of attempts, by `outcome` (`success` or `failure`).
pub const ATTEMPTS_TOTAL: &str = "webhook_attempts_total";
/// Histogram of attempt durations, in seconds.
pub const ATTEMPT_DURATION_SECONDS: &str = "webhook_attempt_duration_seconds";
/// Counter of published events.
pub const EVENTS_PUBLISHED_TOTAL: &str = "webhook_events_published_total";
/// Counter of deliveries enqueued by publishing (one per event and subscriber).
pub const DELIVERIES_ENQUEUED_TOTAL: &str = "webhook_deliveries_enqueued_total";
/// Gauge of deliveries due now (counted up to [`QUEUE_STATS_COUNT_LIMIT`](crate::storage::QUEUE_STATS_COUNT_LIMIT)).
pub const QUEUE_DUE: &str = "webhook_queue_due";
/// Gauge of the seconds the oldest due delivery has waited (0 when none is due).
pub const QUEUE_OLDEST_DUE_SECONDS: &str = "webhook_queue_oldest_due_seconds";

/// Registers the help texts of every metric with the installed recorder.
pub fn describe() {
    describe_counter!(ATTEMPTS_TOTAL, "Webhook delivery attempts, by outcome");
    describe_histogram!(
        ATTEMPT_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time from sending a webhook to its answer"
    );
    describe_counter!(EVENTS_PUBLISHED_TOTAL, "Events published");
    describe_counter!(DELIVERIES_ENQUEUED_TOTAL, "Webhook deliveries enqueued");
    describe_gauge!(QUEUE_DUE, "Webhook deliveries due now");
    describe_gauge!(
        QUEUE_OLDEST_DUE_SECONDS,
        metrics::Unit::Seconds,
        "How long the oldest due webhook delivery has waited"
    );
}

#[cfg(feature = "runtime-tokio")]
pub(crate) fn record_attempt(outcome: &'static str, latency: std::time::Duration) {
    counter!(ATTEMPTS_TOTAL, "outcome" => outcome).increment(1);
    metrics::histogram!(ATTEMPT_DURATION_SECONDS).record(latency.as_secs_f64());
}

pub(crate) fn record_published(enqueued: usize) {
    counter!(EVENTS_PUBLISHED_TOTAL).increment(1);
    counter!(DELIVERIES_ENQUEUED_TOTAL).increment(u64::try_from(enqueued).unwrap_or(u64::MAX));
}

#[cfg(feature = "runtime-tokio")]
pub(crate) fn record_queue(due: u64, lag: std::time::Duration) {
    // Counts stay far below 2^53, exact as f64.
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(QUEUE_DUE).set(due as f64);
    metrics::gauge!(QUEUE_OLDEST_DUE_SECONDS).set(lag.as_secs_f64());
}
