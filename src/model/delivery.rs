//! Delivery records: what one attempt looked like (`DeliveryDetail`), the
//! latest status per event, log entries, and the queue's own records.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{DeliveryId, EventId, OrganizationId, SubscriptionId};
use super::subscription::WebhookSubscription;

/// The most bytes of a response body kept in `responseText`.
pub const RESPONSE_TEXT_LIMIT: usize = 1024;

/// The outcome of one delivery attempt, as shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetail {
    /// When the attempt was made, with milliseconds.
    #[serde(with = "super::time::millis")]
    pub delivery_timestamp: DateTime<Utc>,
    /// Whether the receiver answered 2xx.
    pub success: bool,
    /// The HTTP status, or 0 when there was no response (timeout, connection error, blocked).
    pub response_code: u16,
    /// At most [`RESPONSE_TEXT_LIMIT`] bytes of the response body, the reason
    /// phrase when the body is empty, or a short description of the failure.
    pub response_text: String,
}

/// The first `limit` bytes of `text`, cut back to a UTF-8 character boundary.
pub(crate) fn truncate_utf8(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `responseText` for a response: at most [`RESPONSE_TEXT_LIMIT`] bytes of the
/// body (lossily decoded, cut on a character boundary), or `reason` when the
/// body is empty.
pub(crate) fn response_text(body: &[u8], reason: &str) -> String {
    if body.is_empty() {
        return reason.to_owned();
    }
    // Decode at most a few bytes past the limit: enough to finish a character.
    let prefix = &body[..body.len().min(RESPONSE_TEXT_LIMIT + 4)];
    let text = String::from_utf8_lossy(prefix);
    truncate_utf8(&text, RESPONSE_TEXT_LIMIT).to_owned()
}

/// The latest state of deliveries of one event to one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "_type")]
pub enum DeliveryStatus {
    /// The latest attempt.
    DeliveryDetail(DeliveryDetail),
    /// Nothing was attempted recently.
    NoRecentDelivery,
}

/// One entry of `GET /v1/webhooks/{id}/delivery-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDeliveryStatus {
    /// The event name.
    pub event: String,
    /// Its latest delivery state.
    pub delivery_status: DeliveryStatus,
}

/// One entry of `GET /v1/webhooks/{id}/delivery-status/logs/{event}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLogEntry {
    /// The attempt.
    pub delivery_detail: DeliveryDetail,
    /// The exact body sent.
    pub payload: String,
}

/// A stored attempt: what the API shows plus the raw payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptLog {
    /// Which delivery this attempt belonged to.
    pub delivery_id: DeliveryId,
    /// The event delivered.
    pub event_id: EventId,
    /// The attempt's outcome.
    pub detail: DeliveryDetail,
    /// The exact body sent (shared with the queue; not copied per attempt).
    pub payload: Bytes,
}

impl AttemptLog {
    /// The API form of this attempt.
    pub fn to_entry(&self) -> EventLogEntry {
        EventLogEntry {
            delivery_detail: self.detail.clone(),
            payload: String::from_utf8_lossy(&self.payload).into_owned(),
        }
    }
}

/// An event ready for fan-out: serialized once, shared by every delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The tenant.
    pub organization_id: OrganizationId,
    /// Idempotency key (unique per organization).
    pub event_id: EventId,
    /// Catalogue name, used to pick subscriptions.
    pub event_name: String,
    /// The envelope bytes delivered, byte-identical on every attempt.
    pub payload: Bytes,
    /// When it was published (first attempts are due then).
    pub published_at: DateTime<Utc>,
}

/// Where a delivery stands in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DeliveryState {
    /// Waiting until `due_at`, or claimable now.
    Pending,
    /// Claimed by a worker whose lease has not expired.
    Leased,
    /// Ran out of attempts or was stopped by `410 Gone`; can be redelivered by hand.
    Failed,
}

/// One event's delivery to one subscription, as the queue holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Queue id.
    pub id: DeliveryId,
    /// The tenant.
    pub organization_id: OrganizationId,
    /// The target subscription.
    pub subscription_id: SubscriptionId,
    /// The event's idempotency key.
    pub event_id: EventId,
    /// The event's catalogue name.
    pub event_name: String,
    /// The envelope bytes.
    pub payload: Bytes,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due.
    pub due_at: DateTime<Utc>,
    /// Where it stands.
    pub state: DeliveryState,
}

/// Proof that a worker holds a delivery: only the holder of the current
/// lease may record its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The claimed delivery.
    pub delivery_id: DeliveryId,
    /// Unique per claim.
    pub token: uuid::Uuid,
    /// When another worker may claim the delivery again.
    pub expires_at: DateTime<Utc>,
}

/// A delivery handed to a worker, with the subscription as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The delivery (its `attempts` counts attempts made before this claim).
    pub delivery: Delivery,
    /// The subscription to deliver to (current url, headers, secret),
    /// shared so a batch of claims to one subscription holds one copy.
    pub subscription: Arc<WebhookSubscription>,
    /// The claim; pass it back when recording the outcome.
    pub lease: Lease,
}

/// How much one claim may take (see
/// [`Storage::claim_deliveries_fairly`](crate::storage::Storage::claim_deliveries_fairly)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimLimits {
    /// The most deliveries this claim returns.
    pub batch: usize,
    /// The most deliveries one subscription may have under a live lease,
    /// across every claimer of the store, counting those claimed before.
    pub per_subscription: usize,
}

impl ClaimLimits {
    /// At most `batch` deliveries, and at most `per_subscription` in flight
    /// per subscription.
    pub fn new(batch: usize, per_subscription: usize) -> Self {
        Self {
            batch,
            per_subscription,
        }
    }
}

/// What the queue does with a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NextStep {
    /// Delivered: remove it from the queue.
    Complete,
    /// Try again at the given time.
    Retry {
        /// When the next attempt is due.
        at: DateTime<Utc>,
    },
    /// Give up; keep it as failed for manual redelivery.
    Fail,
    /// Give up and disable the subscription (`410 Gone`).
    FailAndDisable,
}

/// Whether the worker still held the lease when it recorded an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseOutcome {
    /// The queue was updated as asked.
    Applied,
    /// The lease had expired and was taken over (or the delivery was
    /// cancelled): the attempt was logged, but the queue was left to the new
    /// holder.
    LeaseLost,
}
