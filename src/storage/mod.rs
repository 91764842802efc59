//! The [`Storage`] trait: subscriptions, the delivery queue, attempt logs and
//! latest statuses. [`MemoryStore`] is always compiled; `PostgresStore`
//! comes with the `postgres` feature. Every backend proves itself with the
//! conformance suite in `webhook_subscriptions::testing` (feature `testing`).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::delivery::CircuitBreaker;
use crate::model::{
    DeliveryDetail, DeliveryId, OrganizationId, SubscriptionChange, SubscriptionId,
    WebhookSubscription,
};

mod error;
mod health;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod queue;

pub use error::{Error, ErrorKind, Result};
pub use health::{EndpointHealth, HealthChange, HealthUpdate};
pub use memory::{MemoryStore, MemoryStoreConfig, MemoryStoreStats, DEFAULT_DEDUP_WINDOW};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresStore, PostgresStoreConfig, DEFAULT_MAX_CONNECTIONS, DEFAULT_SCHEMA};
pub use queue::{
    AttemptLog, ClaimLimits, ClaimedDelivery, Delivery, DeliveryState, Lease, LeaseOutcome,
    NewEvent, NextStep, Recorded,
};

/// The default number of attempts kept per subscription and event.
pub const DEFAULT_LOG_CAP: usize = 100;

/// The most due deliveries [`Storage::queue_stats`] counts: past it the
/// count stops, so sampling a large backlog stays cheap.
pub const QUEUE_STATS_COUNT_LIMIT: u64 = 10_000;

/// How far behind the delivery queue is at one instant (see
/// [`Storage::queue_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Deliveries claimable now (pending and due, or leased with an expired
    /// lease), counted up to [`QUEUE_STATS_COUNT_LIMIT`].
    pub due: u64,
    /// When the longest-waiting of them became claimable (its due time, or
    /// when its lease expired); `None` when nothing is due.
    pub oldest_due_at: Option<DateTime<Utc>>,
}

impl QueueStats {
    /// Stats of `due` claimable deliveries, the oldest claimable since
    /// `oldest_due_at` (for backends outside this crate).
    pub fn new(due: u64, oldest_due_at: Option<DateTime<Utc>>) -> Self {
        Self { due, oldest_due_at }
    }

    /// How long the oldest due delivery has waited at `now` (zero when
    /// nothing is due): the queue's lag.
    pub fn lag(&self, now: DateTime<Utc>) -> std::time::Duration {
        self.oldest_due_at
            .and_then(|at| (now - at).to_std().ok())
            .unwrap_or_default()
    }
}

/// Where subscriptions, queued deliveries, attempt logs and statuses live.
///
/// Every method is scoped: a subscription of another organization behaves
/// exactly like a missing one. Backends report their own failures as a
/// storage [`Error`] naming the store; the service shows it to API clients
/// only as [`Error::Internal`](crate::Error::Internal).
#[async_trait]
pub trait Storage: Send + Sync + Debug {
    /// Stores a new subscription of `organization`.
    async fn insert_subscription(
        &self,
        organization: OrganizationId,
        subscription: &WebhookSubscription,
    ) -> Result<()>;

    /// The subscription, if it exists in `organization`.
    async fn get_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
    ) -> Result<Option<WebhookSubscription>>;

    /// All subscriptions of `organization`, oldest first (ties in insertion order).
    async fn list_subscriptions(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<WebhookSubscription>>;

    /// Applies `change` atomically (see [`WebhookSubscription::apply`]) and
    /// returns the result, or `None` if the subscription is not in `organization`.
    async fn update_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
        change: &SubscriptionChange,
    ) -> Result<Option<WebhookSubscription>>;

    /// Deletes the subscription with its logs and statuses, and cancels its
    /// pending deliveries. Returns whether it existed in `organization`.
    async fn delete_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
    ) -> Result<bool>;

    /// Fan-out, atomically: unless `event.event_id` was already enqueued for
    /// its organization, enqueues one delivery (due at `published_at`) per
    /// enabled subscription of that organization subscribed to
    /// `event.event_name`. Returns how many were enqueued (0 for a duplicate).
    async fn enqueue_event(&self, event: &NewEvent) -> Result<usize>;

    /// Claims up to `limit` deliveries that are due at `now` (pending and due,
    /// or leased with an expired lease), leasing each until `now + lease_for`.
    /// A delivery is never handed to two claimers while its lease holds.
    ///
    /// Takes turns like
    /// [`claim_deliveries_fairly`](Storage::claim_deliveries_fairly), which
    /// it calls, but with no per-subscription in-flight cap.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>> {
        let limits = ClaimLimits::new(limit, usize::MAX);
        self.claim_deliveries_fairly(now, lease_for, limits).await
    }

    /// Claims like [`claim_deliveries`](Storage::claim_deliveries), at most
    /// `limits.batch` deliveries, fairly:
    ///
    /// - **in-flight cap**: a subscription never has more than
    ///   `limits.per_subscription` deliveries under a live lease (`now <
    ///   expires_at`), counting every claimer sharing the store; the due
    ///   deliveries of a saturated subscription wait while others flow;
    /// - **circuit breaker**: a subscription whose endpoint is paused (see
    ///   [`endpoint_health`](Storage::endpoint_health)) has nothing claimed
    ///   until `paused_until`, and then at most one delivery in flight
    ///   (its probe) until a success closes the circuit;
    /// - **turns**: deliveries are handed out round-robin across
    ///   organizations, then across the subscriptions of an organization,
    ///   then by due time; an organization (or subscription) with fewer
    ///   deliveries in flight goes first. A backlog of one tenant therefore
    ///   never keeps another tenant's due delivery out of the next claim that
    ///   has a free slot for it.
    ///
    /// The work done follows the number of subscriptions with queued
    /// deliveries, not the number of queued deliveries.
    async fn claim_deliveries_fairly(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limits: ClaimLimits,
    ) -> Result<Vec<ClaimedDelivery>>;

    /// Records one attempt of a claimed delivery without touching its
    /// endpoint's health: [`record_attempt_with_breaker`] with no breaker.
    ///
    /// [`record_attempt_with_breaker`]: Storage::record_attempt_with_breaker
    async fn record_attempt(
        &self,
        claim: &ClaimedDelivery,
        detail: &DeliveryDetail,
        next: NextStep,
    ) -> Result<LeaseOutcome> {
        let recorded = self
            .record_attempt_with_breaker(claim, detail, next, None)
            .await?;
        Ok(recorded.lease)
    }

    /// Records one attempt of a claimed delivery: appends it to the log of its
    /// subscription and event (reads never show more than the log cap; a
    /// backend may trim the stored excess lazily), makes it
    /// the latest status, and, if the claim's lease is still held, applies
    /// `next` to the queue. A delivery whose subscription was deleted is
    /// neither logged nor changed ([`LeaseOutcome::LeaseLost`]).
    ///
    /// With a `breaker`, the attempt also counts towards its endpoint's
    /// health ([`endpoint_health`](Storage::endpoint_health)), atomically
    /// with the log, whatever the lease: the stored health becomes
    /// [`CircuitBreaker::after_attempt`] of the stored one (a backend that
    /// records attempts in batches may apply a batch's attempts of one
    /// subscription at once: any success closes, failures add up). A
    /// [`HealthChange::Disabled`] also
    /// disables the subscription. The change is returned for the caller to
    /// report. Without one (deliveries not sent), health is left alone.
    async fn record_attempt_with_breaker(
        &self,
        claim: &ClaimedDelivery,
        detail: &DeliveryDetail,
        next: NextStep,
        breaker: Option<&CircuitBreaker>,
    ) -> Result<Recorded>;

    /// The failure streak of a subscription's endpoint; `None` when it is
    /// healthy or not in `organization`.
    ///
    /// Claims honour it whoever recorded it: a subscription whose
    /// `paused_until` is later than the claim's `now` has nothing claimed;
    /// one whose `paused_until` has passed (half-open) has at most one
    /// delivery under a live lease.
    async fn endpoint_health(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
    ) -> Result<Option<EndpointHealth>>;

    /// Gives a claimed delivery back without an attempt (graceful shutdown):
    /// it is claimable again at once.
    async fn release(&self, claim: &ClaimedDelivery) -> Result<LeaseOutcome>;

    /// Failed deliveries of a subscription, most recently due first, at most `limit`.
    async fn failed_deliveries(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        limit: usize,
    ) -> Result<Vec<Delivery>>;

    /// Puts a failed delivery back in the queue, due at `now`, with a fresh
    /// attempt count. Returns whether such a failed delivery existed in `organization`.
    async fn redeliver(
        &self,
        organization: OrganizationId,
        delivery: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Puts the failed deliveries of `subscription` that `which` picks back
    /// in the queue, atomically: each is due at `now` with a fresh attempt
    /// count. At most `limit` of them, the most recently due first. Returns
    /// how many were requeued (0 when the subscription is not in
    /// `organization`); deliveries of other subscriptions are never touched.
    async fn redeliver_failed(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        which: FailedSelection,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize>;

    /// Enqueues `event` for `subscription` alone (one delivery, due at
    /// `published_at`), whatever events it subscribes to: how test events
    /// reach one endpoint. Returns the delivery's id, or `None` when the
    /// subscription is not in the event's organization or the `event_id`
    /// was already enqueued for it.
    async fn enqueue_for_subscription(
        &self,
        event: &NewEvent,
        subscription: SubscriptionId,
    ) -> Result<Option<DeliveryId>>;

    /// The attempts for one subscription and event, newest first (at most the log cap).
    async fn list_attempts(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        event: &str,
    ) -> Result<Vec<AttemptLog>>;

    /// The latest attempt per event for one subscription (events never
    /// attempted are absent).
    async fn latest_statuses(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
    ) -> Result<Vec<(String, DeliveryDetail)>>;

    /// How many deliveries are claimable at `now` (up to
    /// [`QUEUE_STATS_COUNT_LIMIT`]) and since when the oldest of them is.
    /// Deliveries of an endpoint whose circuit is open are not claimable,
    /// so a paused tenant does not show as lag.
    /// Meant to be sampled periodically for monitoring: cheap on a large
    /// queue, and never blocked by claimers.
    async fn queue_stats(&self, now: DateTime<Utc>) -> Result<QueueStats>;

    /// Retention, all organizations: removes failed deliveries last due
    /// before `before` (with their payloads, once nothing else needs them)
    /// and attempt log entries made before `before`, and forgets event ids
    /// whose de-duplication window is over at `now` and that nothing still
    /// needs. Pending and leased deliveries are never removed. Returns how
    /// many deliveries and log entries were removed. Meant for a periodic
    /// maintenance job (the worker runs it, see
    /// [`WorkerBuilder::retention`](crate::delivery::WorkerBuilder::retention)).
    async fn prune(&self, now: DateTime<Utc>, before: DateTime<Utc>) -> Result<u64>;
}

/// Which failed deliveries of one subscription [`Storage::redeliver_failed`]
/// puts back in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailedSelection {
    /// The failed delivery with this id.
    One(DeliveryId),
    /// Every failed delivery whose last attempt was due at or after this time.
    Since(DateTime<Utc>),
}

macro_rules! forward_storage {
    ($ty:ty) => {
        // Forwards every method, provided ones included: a store's own
        // `claim_deliveries` or `record_attempt` must never be bypassed.
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: Storage + ?Sized> Storage for $ty {
            async fn insert_subscription(
                &self,
                organization: OrganizationId,
                subscription: &WebhookSubscription,
            ) -> Result<()> {
                (**self)
                    .insert_subscription(organization, subscription)
                    .await
            }
            async fn get_subscription(
                &self,
                organization: OrganizationId,
                id: SubscriptionId,
            ) -> Result<Option<WebhookSubscription>> {
                (**self).get_subscription(organization, id).await
            }
            async fn list_subscriptions(
                &self,
                organization: OrganizationId,
            ) -> Result<Vec<WebhookSubscription>> {
                (**self).list_subscriptions(organization).await
            }
            async fn update_subscription(
                &self,
                organization: OrganizationId,
                id: SubscriptionId,
                change: &SubscriptionChange,
            ) -> Result<Option<WebhookSubscription>> {
                (**self).update_subscription(organization, id, change).await
            }
            async fn delete_subscription(
                &self,
                organization: OrganizationId,
                id: SubscriptionId,
            ) -> Result<bool> {
                (**self).delete_subscription(organization, id).await
            }
            async fn enqueue_event(&self, event: &NewEvent) -> Result<usize> {
                (**self).enqueue_event(event).await
            }
            async fn claim_deliveries(
                &self,
                now: DateTime<Utc>,
                lease_for: Duration,
                limit: usize,
            ) -> Result<Vec<ClaimedDelivery>> {
                (**self).claim_deliveries(now, lease_for, limit).await
            }
            async fn claim_deliveries_fairly(
                &self,
                now: DateTime<Utc>,
                lease_for: Duration,
                limits: ClaimLimits,
            ) -> Result<Vec<ClaimedDelivery>> {
                (**self)
                    .claim_deliveries_fairly(now, lease_for, limits)
                    .await
            }
            async fn record_attempt(
                &self,
                claim: &ClaimedDelivery,
                detail: &DeliveryDetail,
                next: NextStep,
            ) -> Result<LeaseOutcome> {
                (**self).record_attempt(claim, detail, next).await
            }
            async fn record_attempt_with_breaker(
                &self,
                claim: &ClaimedDelivery,
                detail: &DeliveryDetail,
                next: NextStep,
                breaker: Option<&CircuitBreaker>,
            ) -> Result<Recorded> {
                (**self)
                    .record_attempt_with_breaker(claim, detail, next, breaker)
                    .await
            }
            async fn endpoint_health(
                &self,
                organization: OrganizationId,
                subscription: SubscriptionId,
            ) -> Result<Option<EndpointHealth>> {
                (**self).endpoint_health(organization, subscription).await
            }
            async fn release(&self, claim: &ClaimedDelivery) -> Result<LeaseOutcome> {
                (**self).release(claim).await
            }
            async fn failed_deliveries(
                &self,
                organization: OrganizationId,
                subscription: SubscriptionId,
                limit: usize,
            ) -> Result<Vec<Delivery>> {
                (**self)
                    .failed_deliveries(organization, subscription, limit)
                    .await
            }
            async fn redeliver(
                &self,
                organization: OrganizationId,
                delivery: DeliveryId,
                now: DateTime<Utc>,
            ) -> Result<bool> {
                (**self).redeliver(organization, delivery, now).await
            }
            async fn redeliver_failed(
                &self,
                organization: OrganizationId,
                subscription: SubscriptionId,
                which: FailedSelection,
                now: DateTime<Utc>,
                limit: usize,
            ) -> Result<usize> {
                (**self)
                    .redeliver_failed(organization, subscription, which, now, limit)
                    .await
            }
            async fn enqueue_for_subscription(
                &self,
                event: &NewEvent,
                subscription: SubscriptionId,
            ) -> Result<Option<DeliveryId>> {
                (**self).enqueue_for_subscription(event, subscription).await
            }
            async fn list_attempts(
                &self,
                organization: OrganizationId,
                subscription: SubscriptionId,
                event: &str,
            ) -> Result<Vec<AttemptLog>> {
                (**self)
                    .list_attempts(organization, subscription, event)
                    .await
            }
            async fn latest_statuses(
                &self,
                organization: OrganizationId,
                subscription: SubscriptionId,
            ) -> Result<Vec<(String, DeliveryDetail)>> {
                (**self).latest_statuses(organization, subscription).await
            }
            async fn queue_stats(&self, now: DateTime<Utc>) -> Result<QueueStats> {
                (**self).queue_stats(now).await
            }
            async fn prune(&self, now: DateTime<Utc>, before: DateTime<Utc>) -> Result<u64> {
                (**self).prune(now, before).await
            }
        }
    };
}

forward_storage!(Arc<T>);
forward_storage!(Box<T>);
