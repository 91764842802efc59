//! How the API shows a subscription's circuit breaker (the policy is
//! [`CircuitBreaker`](crate::delivery::CircuitBreaker), the stored state
//! [`EndpointHealth`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::storage::EndpointHealth;

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
