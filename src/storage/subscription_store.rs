//! [`SubscriptionStore`]: where subscriptions live.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use super::Result;
use crate::model::{OrganizationId, SubscriptionChange, SubscriptionId, WebhookSubscription};

/// Subscriptions, per organization: create, read, change, delete.
///
/// Every method is scoped: a subscription of another organization behaves
/// exactly like a missing one.
#[async_trait]
pub trait SubscriptionStore: Send + Sync + Debug {
    /// Stores a new subscription of `organization`.
    async fn insert_subscription(
        &self,
        organization: OrganizationId,
        subscription: &WebhookSubscription,
    ) -> Result<()>;

    /// The subscription, if it exists in `organization`.
    ///
    /// Provided: searches [`list_subscriptions`](Self::list_subscriptions).
    /// A backend that can look one subscription up directly should.
    async fn get_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
    ) -> Result<Option<WebhookSubscription>> {
        let subscriptions = self.list_subscriptions(organization).await?;
        Ok(subscriptions.into_iter().find(|s| s.id == id))
    }

    /// All subscriptions of `organization`, oldest first (ties in insertion order).
    async fn list_subscriptions(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<WebhookSubscription>>;

    /// Applies `change` atomically (see [`WebhookSubscription::apply`]) and
    /// returns the result, or `None` if the subscription is not in `organization`.
    ///
    /// A change of `url`, or enabling a disabled subscription, also forgets
    /// its endpoint's failure streak (see
    /// [`AttemptHistory::endpoint_health`](super::AttemptHistory::endpoint_health)).
    async fn update_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
        change: &SubscriptionChange,
    ) -> Result<Option<WebhookSubscription>>;

    /// Deletes the subscription with its logs, statuses and health, and
    /// cancels its queued deliveries. Returns whether it existed in
    /// `organization`.
    async fn delete_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
    ) -> Result<bool>;
}

macro_rules! forward_subscription_store {
    ($ty:ty) => {
        // Forwards every method, provided ones included: a store's own
        // `get_subscription` must never be bypassed.
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: SubscriptionStore + ?Sized> SubscriptionStore for $ty {
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
        }
    };
}

forward_subscription_store!(Arc<T>);
forward_subscription_store!(Box<T>);
