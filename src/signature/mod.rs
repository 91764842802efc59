//! Signing schemes and receiver-side verification.
//!
//! Pure code: no clock reads and no I/O; the time of an attempt and the
//! receiver's `now` are passed in.
//!
//! Two schemes are built in, chosen with [`SignatureScheme`]:
//!
//! - [`TimestampedScheme`] (the default): `X-Webhook-Signature:
//!   t=<unix ms>,v1=<lowercase hex HMAC-SHA256(secret, t + "." + body)>`,
//!   plus `X-Webhook-Subscription-Id` and `X-Webhook-Event-Id`. The header
//!   names are configurable.
//! - [`StandardWebhooksScheme`]: `webhook-id`, `webhook-timestamp` (unix
//!   seconds) and `webhook-signature: v1,<base64 HMAC-SHA256(secret, id + "." +
//!   timestamp + "." + body)>`, as specified by
//!   [Standard Webhooks](https://www.standardwebhooks.com).
//!
//! The key is a subscription's [`SecretKey`] bytes (the 32 bytes behind the
//! 64 hex characters of `secretKey`). Verifiers accept a list of keys, so a
//! receiver can keep the old secret next to the new one while rotating, and
//! any one of several signatures in a header. They refuse timestamps outside
//! the tolerance ([`DEFAULT_TOLERANCE`] is 5 minutes) to stop replays, check
//! the shape of every signature before comparing it (an empty or truncated
//! signature never matches), and compare in constant time.
//!
//! # Verifying a request as a receiver
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use webhook_subscriptions::model::SecretKey;
//! use webhook_subscriptions::signature::{SignatureScheme, VerifyError, DEFAULT_TOLERANCE};
//!
//! // The `secretKey` shown when the subscription was created.
//! let key = SecretKey::from_hex(
//!     "00000000000000000000000000000000000000000000000000000000000000ff",
//! )?;
//!
//! // What arrived; take these from your web framework's request.
//! let mut headers = http::HeaderMap::new();
//! headers.insert(
//!     "x-webhook-signature",
//!     "t=1748264463123,v1=993258eba09571f26f599af94786bab93c605f1d84c6f8a174bd09d2cc8bcebe"
//!         .parse()?,
//! );
//! let body = b"{}";
//!
//! // Your clock: here two seconds after the request was signed.
//! let now = Utc.timestamp_millis_opt(1_748_264_465_123).unwrap();
//!
//! let scheme = SignatureScheme::default();
//! scheme.verify(&[key.clone()], &headers, body, now, DEFAULT_TOLERANCE)?;
//!
//! // A tampered body, or the same request replayed an hour later, is refused.
//! assert_eq!(
//!     scheme.verify(&[key.clone()], &headers, b"{\"admin\":true}", now, DEFAULT_TOLERANCE),
//!     Err(VerifyError::NoMatchingSignature),
//! );
//! let later = now + chrono::Duration::hours(1);
//! assert_eq!(
//!     scheme.verify(&[key], &headers, body, later, DEFAULT_TOLERANCE),
//!     Err(VerifyError::TimestampOutsideTolerance),
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use chrono::{DateTime, Duration, Utc};
use http::HeaderMap;

use crate::model::{EventId, SecretKey, SubscriptionId};

pub mod hex;
mod sign;
mod standard;
mod timestamped;
mod verify;

pub use standard::{
    sign_standard, verify_standard, InvalidStandardWebhooksSecret, StandardWebhooksScheme,
    StandardWebhooksSecret,
};
pub use timestamped::{sign_timestamped, verify_timestamped, TimestampedScheme};
pub use verify::VerifyError;

/// How far a signed timestamp may be from the receiver's clock, either way,
/// unless the receiver chooses otherwise.
pub const DEFAULT_TOLERANCE: Duration = Duration::minutes(5);

/// What one delivery attempt signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedMessage<'a> {
    /// The subscription delivered to.
    pub subscription_id: SubscriptionId,
    /// The event delivered (the receivers' idempotency key).
    pub event_id: EventId,
    /// When this attempt is made; every attempt is signed afresh.
    pub timestamp: DateTime<Utc>,
    /// The exact body sent.
    pub body: &'a [u8],
}

/// How deliveries are signed and the headers that carry the signature.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureScheme {
    /// The default: `X-Webhook-Signature: t=<unix ms>,v1=<lowercase hex
    /// HMAC-SHA256(secret, t + "." + body)>` with configurable header names.
    Timestamped(TimestampedScheme),
    /// Standard Webhooks: `webhook-id` (the event id), `webhook-timestamp`
    /// (unix seconds), `webhook-signature: v1,<base64 HMAC-SHA256(secret,
    /// id + "." + timestamp + "." + body)>`, plus the subscription-id header.
    StandardWebhooks(StandardWebhooksScheme),
}

impl Default for SignatureScheme {
    fn default() -> Self {
        SignatureScheme::Timestamped(TimestampedScheme::default())
    }
}

impl From<TimestampedScheme> for SignatureScheme {
    fn from(scheme: TimestampedScheme) -> Self {
        SignatureScheme::Timestamped(scheme)
    }
}

impl From<StandardWebhooksScheme> for SignatureScheme {
    fn from(scheme: StandardWebhooksScheme) -> Self {
        SignatureScheme::StandardWebhooks(scheme)
    }
}

impl SignatureScheme {
    /// Every header this scheme sets (signature, subscription id, event id or
    /// `webhook-id`, timestamp), lowercase; subscriptions may not use them as
    /// custom headers.
    pub fn reserved_header_names(&self) -> Vec<String> {
        match self {
            SignatureScheme::Timestamped(scheme) => scheme.reserved_header_names(),
            SignatureScheme::StandardWebhooks(scheme) => scheme.reserved_header_names(),
        }
    }

    /// Signs one attempt with `key` and sets the scheme's headers in
    /// `headers`, replacing any earlier values of them.
    pub fn sign(&self, key: &SecretKey, message: &SignedMessage<'_>, headers: &mut HeaderMap) {
        self.sign_with_keys(&[key], message, headers);
    }

    /// Like [`sign`](Self::sign), with one signature per key, in order: what
    /// a delivery carries during a secret rotation's grace period (the new
    /// secret's signature, then the old one's), so a receiver holding either
    /// key accepts it.
    pub fn sign_with_keys(
        &self,
        keys: &[&SecretKey],
        message: &SignedMessage<'_>,
        headers: &mut HeaderMap,
    ) {
        let keys: Vec<&[u8]> = keys.iter().map(|key| key.as_bytes().as_slice()).collect();
        match self {
            SignatureScheme::Timestamped(scheme) => scheme.sign_with_keys(&keys, message, headers),
            SignatureScheme::StandardWebhooks(scheme) => {
                scheme.sign_with_keys(&keys, message, headers)
            }
        }
    }

    /// Receiver side: verifies a request's headers and body against any of
    /// `keys` (several during secret rotation), refusing timestamps further
    /// than `tolerance` from `now`.
    pub fn verify(
        &self,
        keys: &[SecretKey],
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
        tolerance: Duration,
    ) -> Result<(), VerifyError> {
        let keys = keys.iter().map(SecretKey::as_bytes);
        match self {
            SignatureScheme::Timestamped(scheme) => {
                scheme.verify(keys, headers, body, now, tolerance)
            }
            SignatureScheme::StandardWebhooks(scheme) => {
                scheme.verify(keys, headers, body, now, tolerance)
            }
        }
    }
}
