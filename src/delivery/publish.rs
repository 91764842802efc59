//! Publishing: an event becomes one envelope, serialized once, and fans
//! out to every subscription that [`wants`] it.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::model::time::truncate_to_millis;
use crate::model::{
    Event, EventCatalogue, EventEnvelope, EventId, Organization, SubscriptionId,
    WebhookSubscription,
};
use crate::storage::NewEvent;
#[cfg(feature = "postgres")]
use crate::storage::PostgresStore;
use crate::storage::Storage;

/// The default cap on a delivered body: 256 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// The payload version used when an event names none.
const DEFAULT_EVENT_VERSION: &str = "1";

/// Limits applied to events at publish time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishLimits {
    /// The largest serialized envelope accepted, in bytes.
    pub max_body_bytes: usize,
}

impl PublishLimits {
    /// Limits with the given cap on the serialized envelope.
    pub fn new(max_body_bytes: usize) -> Self {
        Self { max_body_bytes }
    }
}

impl Default for PublishLimits {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BODY_BYTES)
    }
}

/// What publishing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishReceipt {
    /// The event's idempotency key (the one given, or the one generated).
    pub event_id: EventId,
    /// Deliveries enqueued: one per enabled subscription of the organization
    /// subscribed to the event; 0 when the `event_id` was already published.
    pub enqueued: usize,
}

/// Publishes `event` for `organization`: validates it against `catalogue`
/// and `limits`, builds and serializes its envelope once, and enqueues one
/// delivery per enabled subscription that wants it (see [`prepare_event`]).
///
/// Publishing the same `event_id` again for the organization enqueues nothing.
pub async fn publish(
    storage: &dyn Storage,
    clock: &dyn Clock,
    catalogue: &EventCatalogue,
    limits: &PublishLimits,
    organization: &Organization,
    event: Event,
) -> Result<PublishReceipt> {
    let new_event = prepare_event(catalogue, limits, organization, event, clock.now())?;
    let enqueued = storage.enqueue_event(&new_event).await?;
    Ok(receipt(&new_event, enqueued))
}

/// [`publish`] on the host's own PostgreSQL `connection`, typically inside
/// its transaction (a transactional outbox): the deliveries are written into
/// `store`'s schema on that connection, so workers see them once the host
/// commits and a rollback leaves nothing.
///
/// Validation, envelope, size limit and de-duplication are those of
/// [`publish`]; an invalid event is refused before anything is written.
/// [`WebhookService::publish_in`](crate::WebhookService::publish_in) explains
/// concurrent publishers and isolation levels.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub async fn publish_in(
    store: &PostgresStore,
    connection: &mut sqlx::PgConnection,
    clock: &dyn Clock,
    catalogue: &EventCatalogue,
    limits: &PublishLimits,
    organization: &Organization,
    event: Event,
) -> Result<PublishReceipt> {
    let new_event = prepare_event(catalogue, limits, organization, event, clock.now())?;
    let enqueued = store.enqueue_event_in(connection, &new_event).await?;
    Ok(receipt(&new_event, enqueued))
}

/// The fan-out rule: whether `subscription` receives `event`. It does when
/// it is enabled and subscribes to the event's name.
///
/// This is the one definition of who receives what: every store's
/// [`enqueue_event`](crate::storage::DeliveryQueue::enqueue_event) picks exactly the
/// subscriptions [`select_targets`] picks (the conformance suite compares
/// them), whatever index or query it uses to find them fast.
pub fn wants(subscription: &WebhookSubscription, event: &NewEvent) -> bool {
    subscription.enabled && subscription.subscribed_events.contains(&event.event_name)
}

/// The subscriptions among `subscriptions` (those of the event's
/// organization) that [`wants`] `event`, in the order given.
pub fn select_targets<'a, I>(event: &NewEvent, subscriptions: I) -> Vec<SubscriptionId>
where
    I: IntoIterator<Item = &'a WebhookSubscription>,
{
    subscriptions
        .into_iter()
        .filter(|subscription| wants(subscription, event))
        .map(|subscription| subscription.id)
        .collect()
}

/// The receipt of a publish that enqueued `enqueued` deliveries of `event`,
/// counted in the metrics.
fn receipt(event: &NewEvent, enqueued: usize) -> PublishReceipt {
    #[cfg(feature = "metrics")]
    super::metrics::record_published(enqueued);
    PublishReceipt {
        event_id: event.event_id,
        enqueued,
    }
}

/// Builds the queue record for `event` without storing it (pure).
///
/// The envelope gets the event's id (a new v4 UUID if none), its timestamp
/// (`now` if none) cut to milliseconds, and its version (`"1"` if none).
/// Refuses, as [`Error::InvalidEvent`], a name not in `catalogue`, data that
/// is not a JSON object, an empty version, and an envelope larger than
/// `limits.max_body_bytes`.
pub fn prepare_event(
    catalogue: &EventCatalogue,
    limits: &PublishLimits,
    organization: &Organization,
    event: Event,
    now: DateTime<Utc>,
) -> Result<NewEvent> {
    let Some(fqn) = catalogue.fqn(&event.name) else {
        return Err(Error::InvalidEvent(format!(
            "unknown event name `{}`, expected one of: {}",
            event.name,
            catalogue.allowed_list()
        )));
    };
    if !event.data.is_object() {
        return Err(Error::InvalidEvent(format!(
            "data must be a JSON object, got {}",
            json_kind(&event.data)
        )));
    }
    let version = event
        .version
        .unwrap_or_else(|| DEFAULT_EVENT_VERSION.to_owned());
    if version.is_empty() {
        return Err(Error::InvalidEvent(
            "event version must not be empty".to_owned(),
        ));
    }
    let event_id = event.id.unwrap_or_else(EventId::new_v4);
    let envelope = EventEnvelope {
        event_id,
        event_fqn: fqn.to_owned(),
        event_version: version,
        event_timestamp: truncate_to_millis(event.timestamp.unwrap_or(now)),
        organization: organization.clone(),
        data: event.data,
    };
    let payload = serde_json::to_vec(&envelope).map_err(Error::internal)?;
    if payload.len() > limits.max_body_bytes {
        return Err(Error::InvalidEvent(format!(
            "payload is {} bytes, more than the limit of {} bytes",
            payload.len(),
            limits.max_body_bytes
        )));
    }
    Ok(NewEvent {
        organization_id: organization.id,
        event_id,
        event_name: event.name,
        payload: Bytes::from(payload),
        published_at: now,
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
