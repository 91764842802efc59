//! The delivery engine.
//!
//! - [`publish`] turns a host's [`Event`](crate::model::Event) into one
//!   envelope, serialized once, and lets the store fan it out to every
//!   enabled subscription that wants it; `publish_in` (feature `postgres`)
//!   does it inside the host's own PostgreSQL transaction.
//! - [`Outcome::classify`] says what an attempt's result means and
//!   [`delivery_detail`] how it is logged; [`RetryPolicy`] decides, from
//!   that classification alone, when to try again.
//! - [`build_request`] makes the signed HTTP request of one attempt.
//! - [`Worker`] (feature `runtime-tokio`) claims due deliveries, sends them
//!   with bounded concurrency and records every attempt.
//! - [`CircuitBreaker`] pauses a failing endpoint's deliveries, probes it,
//!   and disables a subscription whose endpoint never heals.
//! - [`redeliver`] puts a failed delivery back in the queue by hand.
//! - [`WorkerEvent`]s tell a host what the worker does (see
//!   [`WorkerBuilder::on_event`]); with feature `metrics`, `metrics`
//!   lists what is measured.

mod breaker;
#[cfg(feature = "runtime-tokio")]
mod events;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod outcome;
mod publish;
mod redeliver;
mod request;
mod retry;
#[cfg(feature = "runtime-tokio")]
mod worker;

pub use breaker::{
    CircuitBreaker, DEFAULT_COOL_DOWN, DEFAULT_DISABLE_AFTER, DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_MAX_COOL_DOWN, MAX_BREAKER_WINDOW,
};
#[cfg(feature = "runtime-tokio")]
pub use events::{DeliveryRef, DisableReason, FailureReason, StoreOperation, WorkerEvent};
pub use outcome::{delivery_detail, retry_after, AttemptResult, Outcome};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use publish::publish_in;
pub use publish::{
    prepare_event, publish, select_targets, wants, PublishLimits, PublishReceipt,
    DEFAULT_MAX_BODY_BYTES,
};
pub use redeliver::redeliver;
pub use request::{build_request, InvalidRequest, DELIVERY_USER_AGENT};
pub use retry::{JitterSource, OsJitter, RetryPolicy, MAX_DELAY, MAX_RETRIES};
#[cfg(feature = "runtime-tokio")]
pub use worker::{
    RunReport, Worker, WorkerBuilder, DEFAULT_MAX_IN_FLIGHT_PER_SUBSCRIPTION, DEFAULT_RETENTION,
    LEASE_MARGIN,
};
