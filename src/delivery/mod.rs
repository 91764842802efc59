//! The delivery engine (SPEC 5 and 6).
//!
//! - [`publish`] turns a host's [`Event`](crate::model::Event) into one
//!   envelope, serialized once, and lets the store fan it out to every
//!   enabled subscription that wants it.
//! - [`Outcome::classify`] says what an attempt's result means and
//!   [`delivery_detail`] how it is logged; [`RetryPolicy`] decides, from
//!   that classification alone, when to try again.
//! - [`redeliver`] puts a failed delivery back in the queue by hand.

mod outcome;
mod publish;
mod redeliver;
mod retry;

pub use outcome::{delivery_detail, retry_after, AttemptResult, Outcome};
pub use publish::{prepare_event, publish, PublishLimits, PublishReceipt, DEFAULT_MAX_BODY_BYTES};
pub use redeliver::redeliver;
pub use retry::{JitterSource, OsJitter, RetryPolicy, MAX_DELAY, MAX_RETRIES};
