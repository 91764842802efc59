//! What the worker reports as it works: the [`WorkerEvent`]s passed to the
//! hook of [`WorkerBuilder::on_event`](super::WorkerBuilder::on_event), for
//! operational webhooks, alerting or logs of the host's own.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::StatusCode;

use super::outcome::Outcome;
use crate::model::{DeliveryId, EventId, OrganizationId, SubscriptionId};
use crate::storage::Error as StoreError;
use crate::storage::{ClaimedDelivery, NextStep};

/// Something the worker did or met. Events carry ids, the event name and
/// numbers only: never a secret, a header value or a payload.
///
/// The hook is called on the worker's tasks as things happen: it must be
/// quick and must not block (hand the event to a channel for slow work).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum WorkerEvent<'a> {
    /// An attempt got its answer (or failed to get one); the outcome is not
    /// recorded in the store yet.
    #[non_exhaustive]
    AttemptFinished {
        /// The delivery attempted.
        delivery: DeliveryRef<'a>,
        /// How the attempt went, as the retry policy sees it.
        outcome: Outcome,
        /// The receiver's status; `None` when there was no answer (timeout,
        /// connection error, refused by the address policy).
        status: Option<StatusCode>,
        /// From sending the request to having the answer (or the error).
        latency: Duration,
        /// What the worker asks the store to do next with the delivery.
        next: NextStep,
    },
    /// A delivery was recorded as failed: it stays failed until redelivered
    /// by hand.
    #[non_exhaustive]
    DeliveryFailed {
        /// The delivery that failed.
        delivery: DeliveryRef<'a>,
        /// Why it failed.
        reason: FailureReason,
    },
    /// A subscription was disabled; it receives nothing more until it is
    /// enabled again.
    #[non_exhaustive]
    SubscriptionDisabled {
        /// The subscription's organization.
        organization_id: OrganizationId,
        /// The subscription disabled.
        subscription_id: SubscriptionId,
        /// Why it was disabled.
        reason: DisableReason,
    },
    /// A subscription's circuit opened after repeated failures (or opened
    /// again after a failed probe): its deliveries wait, unclaimed, until
    /// `until`, then one probe goes out.
    #[non_exhaustive]
    CircuitOpened {
        /// The subscription's organization.
        organization_id: OrganizationId,
        /// The subscription paused.
        subscription_id: SubscriptionId,
        /// When the cool-down ends.
        until: DateTime<Utc>,
        /// Failed attempts since the last success.
        failure_streak: u32,
    },
    /// A success closed a subscription's open circuit: its deliveries flow again.
    #[non_exhaustive]
    CircuitClosed {
        /// The subscription's organization.
        organization_id: OrganizationId,
        /// The subscription that recovered.
        subscription_id: SubscriptionId,
    },
    /// A store call failed. The worker goes on; an affected delivery is
    /// claimed again once its lease expires.
    #[non_exhaustive]
    StoreError {
        /// The call that failed.
        operation: StoreOperation,
        /// The store's error, naming the store (kept for logs; never show it
        /// to API clients).
        error: &'a StoreError,
    },
    /// An attempt was logged, but another worker had taken the delivery
    /// over (the lease expired first): that worker decides what happens next.
    #[non_exhaustive]
    LeaseLost {
        /// The delivery whose lease was lost.
        delivery: DeliveryRef<'a>,
    },
}

/// Which delivery an event is about: its ids, event name and attempt number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryRef<'a> {
    /// The organization the event belongs to.
    pub organization_id: OrganizationId,
    /// The subscription delivered to.
    pub subscription_id: SubscriptionId,
    /// The delivery (one event to one subscription).
    pub delivery_id: DeliveryId,
    /// The event's id, as receivers see it.
    pub event_id: EventId,
    /// The event's name.
    pub event_name: &'a str,
    /// The number of this attempt: 1 for the first (counting from the last
    /// manual redelivery).
    pub attempt: u32,
}

impl<'a> DeliveryRef<'a> {
    /// The delivery of `claim`, about to make its next attempt.
    pub(crate) fn of(claim: &'a ClaimedDelivery) -> Self {
        let delivery = &claim.delivery;
        Self {
            organization_id: delivery.organization_id,
            subscription_id: delivery.subscription_id,
            delivery_id: delivery.id,
            event_id: delivery.event_id,
            event_name: &delivery.event_name,
            attempt: delivery.attempts.saturating_add(1),
        }
    }
}

/// Why a delivery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureReason {
    /// Its last attempt failed and the retry policy allows no more.
    RetriesExhausted,
    /// The receiver answered `410 Gone` (its subscription is disabled too).
    Gone,
    /// Not sent: its subscription is disabled or no longer subscribed to the event.
    NotSent,
}

/// Why a subscription was disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisableReason {
    /// Its receiver answered `410 Gone`.
    Gone,
    /// No attempt succeeded for the circuit breaker's disable window
    /// (see [`CircuitBreaker`](super::CircuitBreaker)).
    #[non_exhaustive]
    Failing {
        /// When the first failure of the streak was.
        since: DateTime<Utc>,
    },
}

/// A store call the worker makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreOperation {
    /// Claiming due deliveries.
    Claim,
    /// Recording an attempt's outcome.
    RecordAttempt,
    /// Giving a claim back at shutdown.
    Release,
    /// Sampling the queue's statistics for metrics.
    QueueStats,
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureReason::RetriesExhausted => "retries exhausted",
            FailureReason::Gone => "410 gone",
            FailureReason::NotSent => "not sent",
        })
    }
}

impl fmt::Display for DisableReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DisableReason::Gone => "410 gone",
            DisableReason::Failing { .. } => "no success within the disable window",
        })
    }
}

impl fmt::Display for StoreOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreOperation::Claim => "claim_deliveries",
            StoreOperation::RecordAttempt => "record_attempt",
            StoreOperation::Release => "release",
            StoreOperation::QueueStats => "queue_stats",
        })
    }
}
