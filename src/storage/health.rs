//! A subscription endpoint's failure streak, as stores keep it for the
//! circuit breaker, and the changes of it an attempt can cause.

use chrono::{DateTime, Utc};

use crate::model::CircuitState;

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
