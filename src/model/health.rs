//! How healthy a subscription's endpoint is, as its circuit breaker sees it
//! (the policy is [`CircuitBreaker`](crate::delivery::CircuitBreaker)), and
//! how the API shows it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::delivery::LeaseOutcome;

/// The failure streak of one subscription's endpoint. A store keeps one
/// only while the endpoint is failing: a success removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointHealth {
    /// Failed attempts since the last success.
    pub failure_streak: u32,
    /// When the first attempt of the streak was made.
    pub failing_since: DateTime<Utc>,
    /// `Some` once the circuit opened during this streak: until then no
    /// delivery of the subscription is claimed; after it, one probe at a
    /// time is (half-open).
    pub paused_until: Option<DateTime<Utc>>,
    /// How many times the circuit opened during this streak (each cool-down
    /// doubles the previous one).
    pub times_opened: u32,
}

impl EndpointHealth {
    /// A streak of `failure_streak` failures since `failing_since`, paused
    /// until `paused_until` after opening `times_opened` times (for backends
    /// outside this crate reading a stored row).
    pub fn new(
        failure_streak: u32,
        failing_since: DateTime<Utc>,
        paused_until: Option<DateTime<Utc>>,
        times_opened: u32,
    ) -> Self {
        Self {
            failure_streak,
            failing_since,
            paused_until,
            times_opened,
        }
    }

    /// The circuit's state at `now`.
    pub fn circuit(&self, now: DateTime<Utc>) -> CircuitState {
        match self.paused_until {
            None => CircuitState::Closed,
            Some(until) if now < until => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }
}

/// Whether a subscription's deliveries flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CircuitState {
    /// Deliveries flow, up to the per-subscription in-flight cap.
    Closed,
    /// Paused after repeated failures: nothing is sent until the cool-down
    /// ends, and no attempt is spent meanwhile.
    Open,
    /// The cool-down is over: one probe attempt at a time; a success closes
    /// the circuit, a failure opens it again for twice as long.
    HalfOpen,
}

/// A change of an endpoint's health that an attempt caused, for the worker
/// to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthChange {
    /// The circuit opened (or opened again after a failed probe).
    CircuitOpened {
        /// When the cool-down ends.
        until: DateTime<Utc>,
        /// Failed attempts since the last success.
        failure_streak: u32,
    },
    /// A success closed an open or half-open circuit.
    CircuitClosed,
    /// No attempt succeeded for the policy's whole window: the subscription
    /// was disabled (`enabled: false`) and its streak forgotten.
    Disabled {
        /// When the first failure of the streak was.
        failing_since: DateTime<Utc>,
    },
}

/// An endpoint's health after an attempt, and the change worth reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthUpdate {
    /// The health to keep; `None` when the endpoint is healthy (or the
    /// subscription was disabled).
    pub health: Option<EndpointHealth>,
    /// What changed, if anything worth reporting.
    pub change: Option<HealthChange>,
}

/// What recording an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recorded {
    /// Whether the queue took the attempt's next step.
    pub lease: LeaseOutcome,
    /// How the attempt changed its endpoint's health, if it did in a way
    /// worth reporting.
    pub change: Option<HealthChange>,
}

impl Recorded {
    /// An attempt recorded with `lease`, changing the endpoint's health by `change`.
    pub fn new(lease: LeaseOutcome, change: Option<HealthChange>) -> Self {
        Self { lease, change }
    }
}

/// The `endpoint` member of `GET /v1/webhooks/{id}/delivery-status`: the
/// subscription's circuit breaker, shown only while it is open or
/// half-open (the member is absent while deliveries flow normally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    /// `open` or `halfOpen`.
    pub state: CircuitState,
    /// Failed attempts since the last success.
    pub failure_streak: u32,
    /// When the current failure streak began.
    #[serde(with = "super::time::millis")]
    pub failing_since: DateTime<Utc>,
    /// When the circuit's cool-down ends (or ended, when half-open).
    #[serde(with = "super::time::millis")]
    pub paused_until: DateTime<Utc>,
}

impl EndpointStatus {
    /// The status to show at `now` of an endpoint with `health` (`None`:
    /// healthy): `Some` only once its circuit opened during the current
    /// failure streak.
    pub fn at(health: Option<&EndpointHealth>, now: DateTime<Utc>) -> Option<Self> {
        let health = health?;
        Some(Self {
            state: health.circuit(now),
            failure_streak: health.failure_streak,
            failing_since: health.failing_since,
            paused_until: health.paused_until?,
        })
    }
}

/// The body of `GET /v1/webhooks/{id}/delivery-status`: the latest status of
/// each subscribed event, and the endpoint's circuit breaker while it is
/// open or half-open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStatusReport {
    /// One entry per subscribed event.
    pub data: Vec<super::EventDeliveryStatus>,
    /// The subscription's circuit breaker; absent while it is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointStatus>,
}
