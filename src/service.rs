//! [`WebhookService`]: what hosts call to manage subscriptions and read their
//! delivery logs and statuses. Every method is scoped to a [`RequestContext`].

use std::fmt;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::delivery::{self, PublishLimits, PublishReceipt};
use crate::error::{Error, Result};
use crate::model::{
    time, CreateWebhookSubscription, DeliveryStatus, EventCatalogue, EventDeliveryStatus,
    EventLogEntry, PatchWebhookSubscription, SecretKey, SubscriptionId, WebhookSubscription,
};
use crate::model::{Event, Organization};
use crate::storage::{MemoryStore, Storage};
use crate::validate::Validator;
use crate::RequestContext;

/// Subscription management for hosts: create, list, get, patch, delete, and
/// the delivery statuses and logs of a subscription.
///
/// Cheap to clone; clones share the store and the clock.
#[derive(Clone)]
pub struct WebhookService {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    validator: Arc<Validator>,
    limits: PublishLimits,
    max_subscriptions: usize,
}

/// The default of [`WebhookServiceBuilder::max_subscriptions_per_organization`].
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_ORGANIZATION: usize = 1_000;

impl Default for WebhookService {
    /// An in-memory service with the system clock and the conversation catalogue.
    fn default() -> Self {
        Self::builder(Arc::new(MemoryStore::new())).build()
    }
}

impl fmt::Debug for WebhookService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookService")
            .field("storage", &self.storage)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Configures a [`WebhookService`].
#[must_use]
#[derive(Debug)]
pub struct WebhookServiceBuilder {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    validator: Validator,
    limits: PublishLimits,
    max_subscriptions: usize,
}

impl WebhookServiceBuilder {
    /// The most subscriptions one organization may have (default
    /// [`DEFAULT_MAX_SUBSCRIPTIONS_PER_ORGANIZATION`], 1,000); creating one
    /// more answers [`Error::LimitReached`] (`409 Conflict`). Checked before
    /// each insert, so creates racing for the last place may pass it by as
    /// many as race.
    pub fn max_subscriptions_per_organization(mut self, max: usize) -> Self {
        self.max_subscriptions = max;
        self
    }

    /// Caps published envelopes (default 256 KiB).
    pub fn publish_limits(mut self, limits: PublishLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Reads time from `clock` instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Validates requests with `validator` (its catalogue and reserved headers).
    pub fn validator(mut self, validator: Validator) -> Self {
        self.validator = validator;
        self
    }

    /// The configured service.
    pub fn build(self) -> WebhookService {
        WebhookService {
            storage: self.storage,
            clock: self.clock,
            validator: Arc::new(self.validator),
            limits: self.limits,
            max_subscriptions: self.max_subscriptions,
        }
    }
}

impl WebhookService {
    /// Starts configuring a service over `storage`.
    pub fn builder(storage: Arc<dyn Storage>) -> WebhookServiceBuilder {
        WebhookServiceBuilder {
            storage,
            clock: Arc::new(SystemClock),
            validator: Validator::default(),
            limits: PublishLimits::default(),
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS_PER_ORGANIZATION,
        }
    }

    /// The store behind this service.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The clock this service stamps times with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The event catalogue requests are checked against.
    pub fn catalogue(&self) -> &EventCatalogue {
        self.validator.catalogue()
    }

    /// The validator requests are checked with.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// Creates a subscription with a fresh id and secret;
    /// [`Error::LimitReached`] when the organization already has the most
    /// allowed (see [`WebhookServiceBuilder::max_subscriptions_per_organization`]).
    pub async fn create(
        &self,
        ctx: &RequestContext,
        request: &CreateWebhookSubscription,
    ) -> Result<WebhookSubscription> {
        check_context(ctx)?;
        let valid = self.validator.validate_create(request)?;
        let existing = self.storage.list_subscriptions(ctx.organization_id).await?;
        if existing.len() >= self.max_subscriptions {
            return Err(Error::LimitReached(format!(
                "the organization already has {} webhook subscriptions, the most allowed is {}",
                existing.len(),
                self.max_subscriptions
            )));
        }
        let now = time::truncate_to_seconds(self.clock.now());
        let subscription = WebhookSubscription {
            id: SubscriptionId::new_v4(),
            name: valid.name,
            url: valid.url,
            subscribed_events: valid.events,
            headers: valid.headers,
            secret_key: SecretKey::generate()?,
            enabled: valid.enabled,
            created_at: now,
            created_by: ctx.user_id,
            updated_at: now,
            updated_by: ctx.user_id,
            filters: None,
        };
        self.storage
            .insert_subscription(ctx.organization_id, &subscription)
            .await?;
        Ok(subscription)
    }

    /// The organization's subscriptions, oldest first.
    pub async fn list(&self, ctx: &RequestContext) -> Result<Vec<WebhookSubscription>> {
        check_context(ctx)?;
        self.storage.list_subscriptions(ctx.organization_id).await
    }

    /// One subscription; [`Error::NotFound`] if it is not the organization's.
    pub async fn get(
        &self,
        ctx: &RequestContext,
        id: SubscriptionId,
    ) -> Result<WebhookSubscription> {
        check_context(ctx)?;
        self.storage
            .get_subscription(ctx.organization_id, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Applies a patch: absent fields are kept, `events` and `customHeaders`
    /// replace the old set and map, `authorization` replaces the old
    /// credentials; `updatedAt`/`updatedBy` always move.
    pub async fn patch(
        &self,
        ctx: &RequestContext,
        id: SubscriptionId,
        request: &PatchWebhookSubscription,
    ) -> Result<WebhookSubscription> {
        check_context(ctx)?;
        let now = time::truncate_to_seconds(self.clock.now());
        let change = self.validator.validate_patch(request, now, ctx.user_id)?;
        self.storage
            .update_subscription(ctx.organization_id, id, &change)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Deletes a subscription and cancels its pending deliveries.
    pub async fn delete(&self, ctx: &RequestContext, id: SubscriptionId) -> Result<()> {
        check_context(ctx)?;
        if self
            .storage
            .delete_subscription(ctx.organization_id, id)
            .await?
        {
            Ok(())
        } else {
            Err(not_found(id))
        }
    }

    /// One entry per subscribed event: the latest attempt, or `NoRecentDelivery`.
    pub async fn delivery_statuses(
        &self,
        ctx: &RequestContext,
        id: SubscriptionId,
    ) -> Result<Vec<EventDeliveryStatus>> {
        let subscription = self.get(ctx, id).await?;
        let mut latest = self
            .storage
            .latest_statuses(ctx.organization_id, id)
            .await?;
        Ok(subscription
            .subscribed_events
            .into_iter()
            .map(|event| {
                let delivery_status = match latest.iter().position(|(name, _)| *name == event) {
                    Some(i) => DeliveryStatus::DeliveryDetail(latest.swap_remove(i).1),
                    None => DeliveryStatus::NoRecentDelivery,
                };
                EventDeliveryStatus {
                    event,
                    delivery_status,
                }
            })
            .collect())
    }

    /// The attempts for one event, newest first. `event` must be a catalogue
    /// name ([`Error::InvalidPathParameter`] otherwise).
    pub async fn event_logs(
        &self,
        ctx: &RequestContext,
        id: SubscriptionId,
        event: &str,
    ) -> Result<Vec<EventLogEntry>> {
        check_context(ctx)?;
        self.validator.validate_event_parameter("event", event)?;
        self.get(ctx, id).await?;
        let attempts = self
            .storage
            .list_attempts(ctx.organization_id, id, event)
            .await?;
        Ok(attempts.iter().map(|a| a.to_entry()).collect())
    }
}

impl WebhookService {
    /// Publishes a domain event of `organization`: builds and serializes the
    /// envelope once and enqueues one delivery per enabled subscription of the
    /// organization subscribed to it (nothing when its `event_id` was already
    /// published). See [`delivery::publish`].
    pub async fn publish(
        &self,
        organization: &Organization,
        event: Event,
    ) -> Result<PublishReceipt> {
        delivery::publish(
            &*self.storage,
            &*self.clock,
            self.validator.catalogue(),
            &self.limits,
            organization,
            event,
        )
        .await
    }
}

fn check_context(ctx: &RequestContext) -> Result<()> {
    if ctx.organization_id.as_uuid().is_nil() {
        return Err(Error::InvalidRequestContext(
            "organization id must not be the nil UUID".to_owned(),
        ));
    }
    if ctx.user_id.as_uuid().is_nil() {
        return Err(Error::InvalidRequestContext(
            "user id must not be the nil UUID".to_owned(),
        ));
    }
    Ok(())
}

fn not_found(id: SubscriptionId) -> Error {
    Error::NotFound(format!("webhook subscription {id}"))
}
