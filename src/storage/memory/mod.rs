//! [`MemoryStore`]: storage in process memory, for tests, development and
//! single-process hosts that can lose their queue on restart.

use std::fmt;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::delivery::CircuitBreaker;
use crate::error::{Error, Result};
use crate::model::{
    DeliveryDetail, DeliveryId, OrganizationId, SubscriptionChange, SubscriptionId,
    WebhookSubscription,
};
use crate::storage::{
    AttemptHistory, DeliveryQueue, FailedSelection, QueueStats, Result as StoreResult,
    SubscriptionStore, DEFAULT_LOG_CAP,
};
use crate::storage::{
    AttemptLog, ClaimLimits, ClaimedDelivery, Delivery, EndpointHealth, LeaseOutcome, NewEvent,
    NextStep, Recorded,
};

mod state;

use state::State;

/// How long an `event_id` is remembered for de-duplication by default: 24 hours.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::hours(24);

/// Settings of a [`MemoryStore`].
///
/// ```
/// use chrono::Duration;
/// use webhook_subscriptions::storage::{MemoryStore, MemoryStoreConfig};
///
/// let config = MemoryStoreConfig::new()
///     .with_log_cap(20)
///     .with_dedup_window(Duration::hours(1));
/// let store = MemoryStore::with_config(config)?;
/// # Ok::<(), webhook_subscriptions::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStoreConfig {
    /// Attempts kept per subscription and event (at least 1); the oldest are
    /// dropped beyond it. Default [`DEFAULT_LOG_CAP`].
    pub log_cap: usize,
    /// How long an enqueued `event_id` is remembered, counted from the
    /// event's `published_at`. A duplicate arriving this long or longer after
    /// the first is enqueued again (receivers dedupe on `event_id` anyway);
    /// the window keeps the memory for ids bounded. Default
    /// [`DEFAULT_DEDUP_WINDOW`] (24 hours).
    pub dedup_window: Duration,
}

impl MemoryStoreConfig {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`log_cap`](Self::log_cap).
    #[must_use]
    pub fn with_log_cap(mut self, log_cap: usize) -> Self {
        self.log_cap = log_cap;
        self
    }

    /// Sets [`dedup_window`](Self::dedup_window).
    #[must_use]
    pub fn with_dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        Self {
            log_cap: DEFAULT_LOG_CAP,
            dedup_window: DEFAULT_DEDUP_WINDOW,
        }
    }
}

/// What a [`MemoryStore`] holds right now (see [`MemoryStore::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MemoryStoreStats {
    /// Stored subscriptions, all organizations.
    pub subscriptions: usize,
    /// Deliveries waiting for their due time or claimable now.
    pub pending_deliveries: usize,
    /// Claimed deliveries not yet recorded or released (leases may have expired).
    pub leased_deliveries: usize,
    /// Failed deliveries kept for manual redelivery.
    pub failed_deliveries: usize,
    /// Event ids remembered for de-duplication.
    pub event_ids: usize,
    /// Attempt log entries, all subscriptions and events.
    pub log_entries: usize,
}

/// Storage in process memory: always compiled, nothing survives a restart.
///
/// Safe to share between tasks and threads (wrap it in an `Arc`). Memory
/// stays bounded by what is live: completed deliveries are removed, logs are
/// capped per subscription and event, event ids are forgotten after the
/// de-duplication window, and deleting a subscription drops everything of it.
/// Fan-out costs follow the number of matching subscriptions, and claims pop
/// the earliest due deliveries from ordered indexes.
pub struct MemoryStore {
    config: MemoryStoreConfig,
    state: RwLock<State>,
}

impl MemoryStore {
    /// An empty store with the default settings.
    pub fn new() -> Self {
        Self {
            config: MemoryStoreConfig::default(),
            state: RwLock::default(),
        }
    }

    /// An empty store with `config`; refuses a `log_cap` of 0 (the newest
    /// attempt is the latest status) and a negative `dedup_window`.
    pub fn with_config(config: MemoryStoreConfig) -> Result<Self> {
        if config.log_cap == 0 {
            return Err(Error::InvalidConfiguration(
                "log_cap must be at least 1".to_owned(),
            ));
        }
        if config.dedup_window < Duration::zero() {
            return Err(Error::InvalidConfiguration(
                "dedup_window must not be negative".to_owned(),
            ));
        }
        Ok(Self {
            config,
            state: RwLock::default(),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &MemoryStoreConfig {
        &self.config
    }

    /// Counts of what the store holds; cheap (no scan).
    pub fn stats(&self) -> MemoryStoreStats {
        self.read().stats()
    }

    // Every operation leaves the state consistent before it can panic, so a
    // poisoned lock still guards valid data.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

// No method awaits: each takes the lock, works, and releases it before
// returning; subscriptions are cloned after the lock is released (claims
// share them).
#[async_trait]
impl SubscriptionStore for MemoryStore {
    async fn insert_subscription(
        &self,
        organization: OrganizationId,
        subscription: &WebhookSubscription,
    ) -> StoreResult<()> {
        self.write().insert(organization, subscription)
    }

    async fn get_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
    ) -> StoreResult<Option<WebhookSubscription>> {
        let found = self.read().get(organization, id);
        Ok(found.map(|sub| WebhookSubscription::clone(&sub)))
    }

    async fn list_subscriptions(
        &self,
        organization: OrganizationId,
    ) -> StoreResult<Vec<WebhookSubscription>> {
        let found = self.read().list(organization);
        Ok(found
            .iter()
            .map(|sub| WebhookSubscription::clone(sub))
            .collect())
    }

    async fn update_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
        change: &SubscriptionChange,
    ) -> StoreResult<Option<WebhookSubscription>> {
        let updated = self.write().update(organization, id, change);
        Ok(updated.map(|sub| WebhookSubscription::clone(&sub)))
    }

    async fn delete_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
    ) -> StoreResult<bool> {
        Ok(self.write().delete(organization, id))
    }
}

#[async_trait]
impl DeliveryQueue for MemoryStore {
    async fn enqueue_event(&self, event: &NewEvent) -> StoreResult<usize> {
        self.write().enqueue(event, self.config.dedup_window)
    }

    async fn enqueue_deliveries(
        &self,
        event: &NewEvent,
        targets: &[SubscriptionId],
    ) -> StoreResult<Vec<DeliveryId>> {
        self.write()
            .enqueue_to(event, targets, self.config.dedup_window, |_| true)
    }

    async fn claim_deliveries_fairly(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limits: ClaimLimits,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        Ok(self.write().claim(now, lease_for, limits))
    }

    async fn record_attempt_with_breaker(
        &self,
        claim: &ClaimedDelivery,
        detail: &DeliveryDetail,
        next: NextStep,
        breaker: Option<&CircuitBreaker>,
    ) -> StoreResult<Recorded> {
        Ok(self
            .write()
            .record_attempt(claim, detail, next, breaker, self.config.log_cap))
    }

    async fn release(&self, claim: &ClaimedDelivery) -> StoreResult<LeaseOutcome> {
        Ok(self.write().release(claim))
    }

    async fn failed_deliveries(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        Ok(self.read().failed(organization, subscription, limit))
    }

    async fn redeliver(
        &self,
        organization: OrganizationId,
        delivery: DeliveryId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        Ok(self.write().redeliver(organization, delivery, now))
    }

    async fn redeliver_failed(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        which: FailedSelection,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<usize> {
        Ok(self
            .write()
            .redeliver_failed(organization, subscription, which, now, limit))
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<QueueStats> {
        Ok(self.read().queue_stats(now))
    }

    async fn prune(&self, now: DateTime<Utc>, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(self.write().prune(now, before))
    }
}

#[async_trait]
impl AttemptHistory for MemoryStore {
    async fn endpoint_health(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
    ) -> StoreResult<Option<EndpointHealth>> {
        Ok(self.read().health(organization, subscription))
    }

    async fn list_attempts(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        event: &str,
    ) -> StoreResult<Vec<AttemptLog>> {
        Ok(self.read().attempts(organization, subscription, event))
    }

    async fn latest_statuses(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
    ) -> StoreResult<Vec<(String, DeliveryDetail)>> {
        Ok(self.read().latest(organization, subscription))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use super::*;
    use crate::model::{SecretKey, UserId};

    #[tokio::test]
    async fn a_poisoned_lock_still_serves_requests() {
        let store = MemoryStore::new();
        let poisoned = catch_unwind(AssertUnwindSafe(|| {
            let _guard = store.write();
            panic!("poisoning the lock on purpose");
        }));
        assert!(poisoned.is_err());
        assert!(store.state.is_poisoned());

        let org = OrganizationId::new_v4();
        let user = UserId::new_v4();
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let sub = WebhookSubscription {
            id: SubscriptionId::new_v4(),
            name: "after poison".to_owned(),
            url: "https://example.com/".to_owned(),
            subscribed_events: Vec::new(),
            headers: BTreeMap::new(),
            secret_key: SecretKey::from_bytes([1; 32]),
            enabled: true,
            created_at: now,
            created_by: user,
            updated_at: now,
            updated_by: user,
            filters: None,
            previous_secret: None,
        };
        store.insert_subscription(org, &sub).await.unwrap();
        assert_eq!(
            store.get_subscription(org, sub.id).await.unwrap(),
            Some(sub)
        );
        assert_eq!(store.stats().subscriptions, 1);
    }
}
