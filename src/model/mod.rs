//! Domain types and their wire format. Pure data: no I/O.

mod authorization;
mod delivery;
mod event;
mod health;
mod ids;
mod redact;
mod replay;
mod request;
mod response;
mod secret;
mod subscription;
pub mod time;

pub use authorization::{Authorization, AUTHORIZATION_HEADER};
pub(crate) use delivery::{response_text, truncate_utf8};
pub use delivery::{
    DeliveryDetail, DeliveryStatus, EventDeliveryStatus, EventLogEntry, RESPONSE_TEXT_LIMIT,
};
pub use event::{
    fully_qualified_name, Event, EventCatalogue, EventEnvelope, InvalidCatalogue, Organization,
    CONVERSATION_EVENTS, TEST_EVENT,
};
pub use health::{CircuitState, DeliveryStatusReport, EndpointStatus};
pub use ids::{DeliveryId, EventId, OrganizationId, SubscriptionId, UserId};
pub(crate) use redact::RedactedHeaders;
pub use replay::{
    FailedDelivery, RedeliverFailedSince, Redelivered, RotateSecret, RotatedSecret,
    TestEventReceipt,
};
pub use request::{CreateWebhookSubscription, PatchWebhookSubscription};
pub use response::DataEnvelope;
pub use secret::{InvalidSecretKey, PreviousSecret, SecretKey};
pub use subscription::{SecretRotation, SubscriptionChange, WebhookSubscription};

// The storage contract's records moved to `crate::storage`; these old paths
// stay for code written before the move.
#[doc(hidden)]
pub use crate::storage::{
    AttemptLog, ClaimLimits, ClaimedDelivery, Delivery, DeliveryState, EndpointHealth,
    HealthChange, HealthUpdate, Lease, LeaseOutcome, NewEvent, NextStep, Recorded,
};
