//! The storage contract: [`SubscriptionStore`] (subscriptions),
//! [`DeliveryQueue`] (fan-out, claims, outcomes, retention) and
//! [`AttemptHistory`] (attempt logs, latest statuses, endpoint health),
//! united as [`Storage`]. [`MemoryStore`] is always compiled; `PostgresStore`
//! comes with the `postgres` feature. Every backend proves itself with the
//! conformance suite in `webhook_subscriptions::testing` (feature `testing`).

use chrono::{DateTime, Utc};

mod attempt_history;
mod delivery_queue;
mod error;
mod health;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod queue;
mod subscription_store;

pub use attempt_history::AttemptHistory;
pub use delivery_queue::{DeliveryQueue, FailedSelection};
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
pub use subscription_store::SubscriptionStore;

/// The default number of attempts kept per subscription and event.
pub const DEFAULT_LOG_CAP: usize = 100;

/// The most due deliveries [`DeliveryQueue::queue_stats`] counts: past it the
/// count stops, so sampling a large backlog stays cheap.
pub const QUEUE_STATS_COUNT_LIMIT: u64 = 10_000;

/// How far behind the delivery queue is at one instant (see
/// [`DeliveryQueue::queue_stats`]).
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

/// Where subscriptions, queued deliveries, attempt logs and statuses live:
/// the union of [`SubscriptionStore`], [`DeliveryQueue`] and
/// [`AttemptHistory`], so a host passes one value.
///
/// It is implemented for every type that implements the three; a backend
/// implements those, never `Storage` itself. Backends report their own
/// failures as a storage [`Error`] naming the store; the service shows it
/// to API clients only as [`Error::Internal`](crate::Error::Internal).
///
/// Calling a method through `dyn Storage` needs the trait that declares it
/// in scope: `use webhook_subscriptions::storage::prelude::*;` brings all
/// four.
pub trait Storage: SubscriptionStore + DeliveryQueue + AttemptHistory {}

impl<T: SubscriptionStore + DeliveryQueue + AttemptHistory + ?Sized> Storage for T {}

/// The storage traits, to glob-import where their methods are called.
pub mod prelude {
    pub use super::{AttemptHistory, DeliveryQueue, Storage, SubscriptionStore};
}
