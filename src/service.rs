//! [`WebhookService`]: what hosts call to manage subscriptions and read their
//! delivery logs and statuses. Every method is scoped to a [`RequestContext`].

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use crate::clock::{Clock, SystemClock};
use crate::delivery::{self, PublishLimits, PublishReceipt};
use crate::error::{Error, Result};
use crate::model::{
    time, CreateWebhookSubscription, DeliveryStatus, EventCatalogue, EventDeliveryStatus,
    EventLogEntry, PatchWebhookSubscription, SecretKey, SubscriptionId, WebhookSubscription,
};
use crate::model::{
    DeliveryId, FailedDelivery, Redelivered, RotatedSecret, SecretRotation, SubscriptionChange,
    TestEventReceipt, TEST_EVENT,
};
use crate::model::{DeliveryStatusReport, EndpointStatus};
use crate::model::{Event, Organization};
#[cfg(feature = "postgres")]
use crate::storage::PostgresStore;
use crate::storage::{FailedSelection, MemoryStore, Storage};
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
            previous_secret: None,
        };
        self.storage
            .insert_subscription(ctx.organization_id, &subscription)
            .await?;
        Ok(subscription)
    }

    /// The organization's subscriptions, oldest first.
    pub async fn list(&self, ctx: &RequestContext) -> Result<Vec<WebhookSubscription>> {
        check_context(ctx)?;
        Ok(self.storage.list_subscriptions(ctx.organization_id).await?)
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
        Ok(self.delivery_status_report(ctx, id).await?.data)
    }

    /// The body of `GET /v1/webhooks/{id}/delivery-status`: the latest
    /// status of each subscribed event (as [`delivery_statuses`]) and the
    /// state of the subscription's circuit breaker.
    ///
    /// [`delivery_statuses`]: WebhookService::delivery_statuses
    pub async fn delivery_status_report(
        &self,
        ctx: &RequestContext,
        id: SubscriptionId,
    ) -> Result<DeliveryStatusReport> {
        let subscription = self.get(ctx, id).await?;
        let mut latest = self
            .storage
            .latest_statuses(ctx.organization_id, id)
            .await?;
        let health = self
            .storage
            .endpoint_health(ctx.organization_id, id)
            .await?;
        let data = subscription
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
            .collect();
        Ok(DeliveryStatusReport {
            data,
            endpoint: EndpointStatus::at(health.as_ref(), self.clock.now()),
        })
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

/// How long a rotated-out secret keeps signing unless told otherwise: 24 hours.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest grace period a rotation accepts: 7 days.
pub const MAX_GRACE_PERIOD: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The most failed deliveries [`WebhookService::failed_deliveries`] lists.
pub const FAILED_DELIVERIES_LIMIT: usize = 100;

/// The most failed deliveries one [`WebhookService::redeliver_failed_since`]
/// call requeues; call again while it returns this many.
pub const MAX_REDELIVERIES_PER_CALL: usize = 1000;

/// Builds test events: a catalogue of the test event alone.
static TEST_CATALOGUE: LazyLock<EventCatalogue> = LazyLock::new(|| {
    EventCatalogue::new([TEST_EVENT])
        .unwrap_or_else(|e| unreachable!("the test event name is valid: {e}"))
});

/// Replaying failed deliveries, test events and secret rotation.
impl WebhookService {
    /// The subscription's failed deliveries (out of attempts, or stopped by
    /// `410 Gone`), most recently due first, at most
    /// [`FAILED_DELIVERIES_LIMIT`].
    pub async fn failed_deliveries(
        &self,
        ctx: &RequestContext,
        id: SubscriptionId,
    ) -> Result<Vec<FailedDelivery>> {
        self.get(ctx, id).await?;
        let failed = self
            .storage
            .failed_deliveries(ctx.organization_id, id, FAILED_DELIVERIES_LIMIT)
            .await?;
        Ok(failed.iter().map(FailedDelivery::from).collect())
    }

    /// Puts one failed delivery of the subscription back in the queue, due
    /// now with a fresh attempt count. [`Error::NotFound`] when the
    /// subscription has no such failed delivery (another organization's
    /// answers the same).
    pub async fn redeliver_failed(
        &self,
        ctx: &RequestContext,
        id: SubscriptionId,
        delivery: DeliveryId,
    ) -> Result<Redelivered> {
        check_context(ctx)?;
        let requeued = self
            .storage
            .redeliver_failed(
                ctx.organization_id,
                id,
                FailedSelection::One(delivery),
                self.clock.now(),
                1,
            )
            .await?;
        if requeued == 0 {
            return Err(Error::NotFound(format!(
                "failed delivery {delivery} of webhook subscription {id}"
            )));
        }
        Ok(Redelivered::new(requeued))
    }

    /// Puts every failed delivery of the subscription whose last attempt was
    /// due at or after `since` back in the queue, in one atomic store call:
    /// at most [`MAX_REDELIVERIES_PER_CALL`], the most recently due first
    /// (call again while it requeues that many).
    pub async fn redeliver_failed_since(
        &self,
        ctx: &RequestContext,
        id: SubscriptionId,
        since: DateTime<Utc>,
    ) -> Result<Redelivered> {
        self.get(ctx, id).await?;
        let requeued = self
            .storage
            .redeliver_failed(
                ctx.organization_id,
                id,
                FailedSelection::Since(since),
                self.clock.now(),
                MAX_REDELIVERIES_PER_CALL,
            )
            .await?;
        Ok(Redelivered::new(requeued))
    }

    /// Queues a test event for this subscription alone, delivered, signed,
    /// retried and logged like any other, whatever events the subscription
    /// takes (a disabled one receives nothing). Its name is [`TEST_EVENT`]
    /// (fully-qualified `WEBHOOK_TEST`, logged under `WebhookTest`), and its
    /// `data` is `{"test": true, "webhookSubscriptionId": ...}`; the
    /// envelope's `organization.name` is empty, since the request context
    /// carries only the organization's id.
    pub async fn send_test_event(
        &self,
        ctx: &RequestContext,
        id: SubscriptionId,
    ) -> Result<TestEventReceipt> {
        check_context(ctx)?;
        let organization = Organization::new(ctx.organization_id, "");
        let data = json!({"test": true, "webhookSubscriptionId": id});
        let event = delivery::prepare_event(
            &TEST_CATALOGUE,
            &self.limits,
            &organization,
            Event::new(TEST_EVENT, data),
            self.clock.now(),
        )?;
        let delivery_id = self
            .storage
            .enqueue_for_subscription(&event, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(TestEventReceipt {
            event_id: event.event_id,
            delivery_id,
        })
    }

    /// Replaces the subscription's signing secret with a fresh one. For
    /// `grace_period` (at most [`MAX_GRACE_PERIOD`]; [`DEFAULT_GRACE_PERIOD`]
    /// is the usual choice) every delivery is signed by both the new and the
    /// old secret, so receivers can switch keys without refusing one; zero
    /// retires the old secret at once. A secret still in the grace period of
    /// an earlier rotation stops signing. `updatedAt`/`updatedBy` move.
    ///
    /// A longer grace period is [`Error::InvalidBody`], naming the REST
    /// field `gracePeriodSeconds`.
    pub async fn rotate_secret(
        &self,
        ctx: &RequestContext,
        id: SubscriptionId,
        grace_period: Duration,
    ) -> Result<RotatedSecret> {
        check_context(ctx)?;
        if grace_period > MAX_GRACE_PERIOD {
            return Err(Error::InvalidBody(format!(
                "gracePeriodSeconds: must be at most {} (7 days), got {}",
                MAX_GRACE_PERIOD.as_secs(),
                grace_period.as_secs()
            )));
        }
        let now = time::truncate_to_seconds(self.clock.now());
        let previous_expires_at = if grace_period.is_zero() {
            None
        } else {
            // At most 7 days, so always representable.
            Some(now + TimeDelta::from_std(grace_period).map_err(Error::internal)?)
        };
        let mut change = SubscriptionChange::touch(now, ctx.user_id);
        change.rotate_secret = Some(SecretRotation::new(
            SecretKey::generate()?,
            previous_expires_at,
        ));
        let rotated = self
            .storage
            .update_subscription(ctx.organization_id, id, &change)
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(RotatedSecret {
            secret_key: rotated.secret_key,
            previous_secret_expires_at: rotated.previous_secret.map(|p| p.expires_at),
        })
    }
}

/// Publishing inside the host's own PostgreSQL transaction (feature `postgres`).
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
impl WebhookService {
    /// Publishes like [`publish`](Self::publish), but writes on the host's
    /// own PostgreSQL `connection`, typically inside its transaction (a
    /// transactional outbox): workers see the deliveries once the host
    /// commits, and a rollback leaves nothing, so an event is queued if and
    /// only if the change that caused it is committed. A host killed after
    /// its commit loses nothing; one killed before it publishes nothing.
    ///
    /// `store` is where workers claim from, normally the store this service
    /// was built over; its schema may sit beside the host's tables in any
    /// other schema of the database, as every statement names it. The
    /// event is validated, wrapped, size-checked and de-duplicated exactly
    /// as by `publish`. An invalid event is refused before anything is
    /// written, so the transaction stays usable; a database error aborts the
    /// transaction, as any failed statement does, so roll it back.
    ///
    /// ```no_run
    /// # async fn demo(service: webhook_subscriptions::WebhookService,
    /// #     store: webhook_subscriptions::storage::PostgresStore, pool: sqlx::PgPool)
    /// #     -> Result<(), Box<dyn std::error::Error>> {
    /// use serde_json::json;
    /// use webhook_subscriptions::model::{Event, Organization, OrganizationId};
    ///
    /// let organization = Organization::new(OrganizationId::new_v4(), "Acme");
    /// let mut tx = pool.begin().await?;
    /// sqlx::query("INSERT INTO orders (id, total_cents) VALUES ($1, $2)")
    ///     .bind(uuid::Uuid::new_v4())
    ///     .bind(4200_i64)
    ///     .execute(&mut *tx)
    ///     .await?;
    /// let event = Event::new("OrderCreated", json!({"totalCents": 4200}));
    /// service.publish_in(&store, &mut tx, &organization, event).await?;
    /// tx.commit().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # The same event id in concurrent transactions
    ///
    /// Publishing inserts the event id, so a second transaction publishing
    /// the same id for the organization waits for the first to end. If the
    /// first rolls back, the second fans out; if it commits, the second
    /// enqueues nothing (`enqueued == 0`) under READ COMMITTED, and fails
    /// with a serialization failure under REPEATABLE READ and SERIALIZABLE.
    ///
    /// # Isolation levels
    ///
    /// Any level works; each changes which subscriptions the fan-out sees.
    ///
    /// - **READ COMMITTED** (PostgreSQL's default, recommended): the fan-out
    ///   reaches every subscription committed before the publish statement
    ///   starts.
    /// - **REPEATABLE READ**: the fan-out reaches the subscriptions of the
    ///   transaction's snapshot, taken at its first statement. A subscription
    ///   created or enabled after that misses the event; one disabled,
    ///   unsubscribed or deleted after it still gets a delivery queued, which
    ///   the worker checks again and does not send.
    /// - **SERIALIZABLE**: as REPEATABLE READ; besides, PostgreSQL may fail
    ///   any statement of the transaction, the publish included, or its
    ///   commit with a serialization failure when it conflicts with another
    ///   serializable transaction.
    ///
    /// After a serialization failure roll back and retry the whole
    /// transaction, the publish included: nothing of the failed try was
    /// queued. Choose the event id once, before the first try
    /// ([`Event::with_id`]): then a retry after an unclear outcome (the
    /// connection lost during `COMMIT`) enqueues nothing a second time. The
    /// [`source`](std::error::Error::source) of the returned
    /// [`Error::Internal`] is a [`storage::Error`](crate::storage::Error) of
    /// kind [`Conflict`](crate::storage::ErrorKind::Conflict) (serialization
    /// failures, deadlocks), whose own source is the [`sqlx::Error`]:
    ///
    /// ```
    /// use webhook_subscriptions::storage::{Error as StoreError, ErrorKind};
    ///
    /// fn is_serialization_failure(error: &webhook_subscriptions::Error) -> bool {
    ///     let Some(store) = std::error::Error::source(error)
    ///         .and_then(|source| source.downcast_ref::<StoreError>())
    ///     else {
    ///         return false;
    ///     };
    ///     store.kind() == ErrorKind::Conflict
    ///         && std::error::Error::source(store)
    ///             .and_then(|source| source.downcast_ref::<sqlx::Error>())
    ///             .and_then(|source| source.as_database_error())
    ///             .and_then(|source| source.code())
    ///             .is_some_and(|code| code == "40001")
    /// }
    /// ```
    pub async fn publish_in(
        &self,
        store: &PostgresStore,
        connection: &mut sqlx::PgConnection,
        organization: &Organization,
        event: Event,
    ) -> Result<PublishReceipt> {
        delivery::publish_in(
            store,
            connection,
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
