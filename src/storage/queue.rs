//! The storage contract's records: events to fan out, deliveries as the
//! queue holds them, claims and their leases, what a claim may take, what
//! happens after an attempt, and stored attempts.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::health::HealthChange;
use crate::model::{
    DeliveryDetail, DeliveryId, EventId, EventLogEntry, OrganizationId, SubscriptionId,
    WebhookSubscription,
};

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
/// [`DeliveryQueue::claim_deliveries_fairly`](super::DeliveryQueue::claim_deliveries_fairly)).
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
