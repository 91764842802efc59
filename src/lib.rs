#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api;
pub mod clock;
mod context;
pub mod delivery;
mod error;
pub mod model;
pub mod signature;
pub mod storage;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod transport;

pub use clock::{Clock, ManualClock, SystemClock};
pub use context::RequestContext;
pub use error::{
    BoxError, Error, ErrorBody, FieldError, Operation, Result, ValidationErrors,
    MAX_ERROR_MESSAGE_BYTES, MAX_REPORTED_ERRORS,
};
pub mod service;
pub mod validate;
mod webhooks;

pub use service::{
    WebhookService, WebhookServiceBuilder, DEFAULT_MAX_SUBSCRIPTIONS_PER_ORGANIZATION,
};
pub use webhooks::{Webhooks, WebhooksBuilder, DEFAULT_TRANSPORT_TIMEOUT};
