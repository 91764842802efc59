//! Wire types of replaying failed deliveries, test events and secret rotation.

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::ids::{DeliveryId, EventId};
use super::secret::SecretKey;
use crate::storage::Delivery;

/// One entry of `GET /v1/webhooks/{id}/failed-deliveries`: a delivery that
/// ran out of attempts (or was stopped by `410 Gone`) and can be redelivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FailedDelivery {
    /// The delivery's id, for redelivering it.
    pub id: DeliveryId,
    /// The event name.
    pub event: String,
    /// The event's idempotency key (`event_id` in the payload).
    pub event_id: EventId,
    /// Attempts made.
    pub attempts: u32,
    /// When its last attempt was due, with milliseconds.
    #[serde(with = "super::time::millis")]
    pub last_attempt_due_at: DateTime<Utc>,
}

impl From<&Delivery> for FailedDelivery {
    fn from(delivery: &Delivery) -> Self {
        Self {
            id: delivery.id,
            event: delivery.event_name.clone(),
            event_id: delivery.event_id,
            attempts: delivery.attempts,
            last_attempt_due_at: delivery.due_at,
        }
    }
}

/// Body of `POST /v1/webhooks/{id}/failed-deliveries/redeliver`. Unknown
/// fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RedeliverFailedSince {
    /// Failed deliveries whose last attempt was due at or after this time
    /// (RFC 3339) are redelivered.
    #[serde(
        serialize_with = "super::time::millis::serialize",
        deserialize_with = "rfc3339"
    )]
    pub since: DateTime<Utc>,
}

/// A field that, when sent, must hold a value: `null` is refused like any
/// other wrong type.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// An RFC 3339 timestamp, refused with a message that says what is expected.
fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    super::time::millis::deserialize(d).map_err(|e| {
        D::Error::custom(format!(
            "expected an RFC 3339 timestamp such as 2026-01-01T00:00:00Z ({e})"
        ))
    })
}

/// What a redelivery request did: `{"redelivered": N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Redelivered {
    /// How many failed deliveries were put back in the queue.
    pub redelivered: usize,
}

impl Redelivered {
    /// `redelivered` deliveries were put back in the queue.
    pub fn new(redelivered: usize) -> Self {
        Self { redelivered }
    }
}

/// What `POST /v1/webhooks/{id}/test-event` queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TestEventReceipt {
    /// The test event's id (`event_id` in the payload).
    pub event_id: EventId,
    /// The queued delivery's id.
    pub delivery_id: DeliveryId,
}

/// Body of `POST /v1/webhooks/{id}/rotate-secret` (the body itself is
/// optional). Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RotateSecret {
    /// How long the old secret keeps signing next to the new one, in
    /// seconds; 24 hours when absent, 0 retires it at once. `null` is refused.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub grace_period_seconds: Option<u64>,
}

/// The answer to a secret rotation: the new `secretKey` and until when the
/// old one keeps signing. The old secret itself is never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RotatedSecret {
    /// The new signing secret (64 lowercase hex characters).
    pub secret_key: SecretKey,
    /// Until when deliveries are signed by the old secret too (second
    /// precision); absent when it was retired at once.
    #[serde(
        default,
        with = "super::time::seconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}
