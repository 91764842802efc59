//! [`DeliveryQueue`]: deliveries from fan-out to their last attempt.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::{
    ClaimLimits, ClaimedDelivery, Delivery, LeaseOutcome, NewEvent, NextStep, QueueStats, Recorded,
    Result, SubscriptionStore,
};
use crate::delivery::{select_targets, CircuitBreaker};
use crate::model::{DeliveryDetail, DeliveryId, OrganizationId, SubscriptionId};

/// The delivery queue: enqueue (fan-out), claim under a lease, record an
/// attempt's outcome (complete, retry or fail), release, redeliver, and
/// retention.
///
/// It builds on [`SubscriptionStore`]: fan-out reads the subscriptions, and
/// an attempt that fails for good may disable its subscription.
///
/// Required: [`enqueue_deliveries`](Self::enqueue_deliveries),
/// [`claim_deliveries_fairly`](Self::claim_deliveries_fairly),
/// [`record_attempt_with_breaker`](Self::record_attempt_with_breaker),
/// [`release`](Self::release), the failed-delivery methods,
/// [`queue_stats`](Self::queue_stats) and [`prune`](Self::prune). The rest
/// is provided on top of them and may be overridden with a faster path.
#[async_trait]
pub trait DeliveryQueue: SubscriptionStore {
    /// Fan-out: unless `event.event_id` was already enqueued for its
    /// organization, enqueues one delivery (due at `published_at`) per
    /// subscription of that organization that
    /// [`wants`](crate::delivery::wants) the event. Returns how many were
    /// enqueued (0 for a duplicate).
    ///
    /// Provided: [`select_targets`] over
    /// [`list_subscriptions`](SubscriptionStore::list_subscriptions), then
    /// [`enqueue_deliveries`](Self::enqueue_deliveries). A backend may
    /// override it with a faster path (an index by event name, one SQL
    /// statement) as long as it picks exactly the subscriptions
    /// [`select_targets`] would pick; the conformance suite checks that.
    async fn enqueue_event(&self, event: &NewEvent) -> Result<usize> {
        let subscriptions = self.list_subscriptions(event.organization_id).await?;
        let targets = select_targets(event, &subscriptions);
        Ok(self.enqueue_deliveries(event, &targets).await?.len())
    }

    /// Persists a fan-out chosen by the caller, atomically: unless
    /// `event.event_id` was already enqueued for its organization, remembers
    /// it (for the de-duplication window) and enqueues one delivery, due at
    /// `published_at`, per subscription in `targets` (distinct ids) that
    /// exists in the event's organization, whatever events it subscribes to.
    /// Other ids (deleted since they were chosen, or of another
    /// organization) are skipped. Returns the ids of the deliveries
    /// enqueued; none for a duplicate.
    async fn enqueue_deliveries(
        &self,
        event: &NewEvent,
        targets: &[SubscriptionId],
    ) -> Result<Vec<DeliveryId>>;

    /// Enqueues `event` for `subscription` alone (one delivery, due at
    /// `published_at`), whatever events it subscribes to: how test events
    /// reach one endpoint. Returns the delivery's id, or `None` when the
    /// subscription is not in the event's organization or the `event_id`
    /// was already enqueued for it. An event id offered to a missing
    /// subscription stays free.
    ///
    /// Provided: [`get_subscription`](SubscriptionStore::get_subscription),
    /// then [`enqueue_deliveries`](Self::enqueue_deliveries).
    async fn enqueue_for_subscription(
        &self,
        event: &NewEvent,
        subscription: SubscriptionId,
    ) -> Result<Option<DeliveryId>> {
        let found = self
            .get_subscription(event.organization_id, subscription)
            .await?;
        if found.is_none() {
            return Ok(None);
        }
        let queued = self.enqueue_deliveries(event, &[subscription]).await?;
        Ok(queued.into_iter().next())
    }

    /// Claims up to `limit` deliveries that are due at `now` (pending and due,
    /// or leased with an expired lease), leasing each until `now + lease_for`.
    /// A delivery is never handed to two claimers while its lease holds.
    ///
    /// Provided: [`claim_deliveries_fairly`](Self::claim_deliveries_fairly)
    /// with no per-subscription in-flight cap.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>> {
        let limits = ClaimLimits::new(limit, usize::MAX);
        self.claim_deliveries_fairly(now, lease_for, limits).await
    }

    /// Claims like [`claim_deliveries`](Self::claim_deliveries), at most
    /// `limits.batch` deliveries, fairly:
    ///
    /// - **in-flight cap**: a subscription never has more than
    ///   `limits.per_subscription` deliveries under a live lease (`now <
    ///   expires_at`), counting every claimer sharing the store; the due
    ///   deliveries of a saturated subscription wait while others flow;
    /// - **circuit breaker**: a subscription whose endpoint is paused (see
    ///   [`AttemptHistory::endpoint_health`](super::AttemptHistory::endpoint_health))
    ///   has nothing claimed until `paused_until`, and then at most one
    ///   delivery in flight (its probe) until a success closes the circuit;
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
    /// endpoint's health.
    ///
    /// Provided: [`record_attempt_with_breaker`] with no breaker.
    ///
    /// [`record_attempt_with_breaker`]: Self::record_attempt_with_breaker
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
    /// health
    /// ([`AttemptHistory::endpoint_health`](super::AttemptHistory::endpoint_health)),
    /// atomically with the log, whatever the lease: the stored health
    /// becomes [`CircuitBreaker::after_attempt`] of the stored one (a
    /// backend that records attempts in batches may apply a batch's
    /// attempts of one subscription at once: any success closes, failures
    /// add up). A [`HealthChange::Disabled`](super::HealthChange::Disabled)
    /// also disables the subscription. The change is returned for the
    /// caller to report. Without one (deliveries not sent), health is left
    /// alone.
    async fn record_attempt_with_breaker(
        &self,
        claim: &ClaimedDelivery,
        detail: &DeliveryDetail,
        next: NextStep,
        breaker: Option<&CircuitBreaker>,
    ) -> Result<Recorded>;

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

    /// How many deliveries are claimable at `now` (up to
    /// [`QUEUE_STATS_COUNT_LIMIT`](super::QUEUE_STATS_COUNT_LIMIT)) and
    /// since when the oldest of them is. Deliveries of an endpoint whose
    /// circuit is open are not claimable, so a paused tenant does not show
    /// as lag. Meant to be sampled periodically for monitoring: cheap on a
    /// large queue, and never blocked by claimers.
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

/// Which failed deliveries of one subscription
/// [`DeliveryQueue::redeliver_failed`] puts back in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailedSelection {
    /// The failed delivery with this id.
    One(DeliveryId),
    /// Every failed delivery whose last attempt was due at or after this time.
    Since(DateTime<Utc>),
}

macro_rules! forward_delivery_queue {
    ($ty:ty) => {
        // Forwards every method, provided ones included: a store's own
        // `enqueue_event`, `claim_deliveries` or `record_attempt` must
        // never be bypassed.
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: DeliveryQueue + ?Sized> DeliveryQueue for $ty {
            async fn enqueue_event(&self, event: &NewEvent) -> Result<usize> {
                (**self).enqueue_event(event).await
            }
            async fn enqueue_deliveries(
                &self,
                event: &NewEvent,
                targets: &[SubscriptionId],
            ) -> Result<Vec<DeliveryId>> {
                (**self).enqueue_deliveries(event, targets).await
            }
            async fn enqueue_for_subscription(
                &self,
                event: &NewEvent,
                subscription: SubscriptionId,
            ) -> Result<Option<DeliveryId>> {
                (**self).enqueue_for_subscription(event, subscription).await
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
            async fn queue_stats(&self, now: DateTime<Utc>) -> Result<QueueStats> {
                (**self).queue_stats(now).await
            }
            async fn prune(&self, now: DateTime<Utc>, before: DateTime<Utc>) -> Result<u64> {
                (**self).prune(now, before).await
            }
        }
    };
}

forward_delivery_queue!(Arc<T>);
forward_delivery_queue!(Box<T>);
