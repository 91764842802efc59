//! [`AttemptHistory`]: what the attempts of each subscription left behind.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use super::{AttemptLog, EndpointHealth, Result};
use crate::model::{DeliveryDetail, OrganizationId, SubscriptionId};

/// Reads of what attempts left behind: the attempt logs, the latest status
/// per event, and the endpoint's failure streak. They are written by
/// [`DeliveryQueue::record_attempt_with_breaker`](super::DeliveryQueue::record_attempt_with_breaker),
/// atomically with the queue.
///
/// Every method is scoped: a subscription of another organization behaves
/// exactly like a missing one.
#[async_trait]
pub trait AttemptHistory: Send + Sync + Debug {
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
}

macro_rules! forward_attempt_history {
    ($ty:ty) => {
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: AttemptHistory + ?Sized> AttemptHistory for $ty {
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
            async fn endpoint_health(
                &self,
                organization: OrganizationId,
                subscription: SubscriptionId,
            ) -> Result<Option<EndpointHealth>> {
                (**self).endpoint_health(organization, subscription).await
            }
        }
    };
}

forward_attempt_history!(Arc<T>);
forward_attempt_history!(Box<T>);
