//! The subscription resource and the change a validated patch makes to it.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::authorization::AUTHORIZATION_HEADER;
use super::ids::{SubscriptionId, UserId};
use super::redact::{RedactedHeaders, RedactedOption};
use super::secret::{PreviousSecret, SecretKey};

/// A customer's webhook subscription, as stored and as shown by the API.
///
/// `Debug` never shows the secret (see [`SecretKey`]) nor header values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSubscription {
    /// Assigned by the library (v4).
    pub id: SubscriptionId,
    /// 1..=255 characters after trimming.
    pub name: String,
    /// Absolute http/https URL that deliveries are posted to.
    pub url: String,
    /// Event names delivered to this subscription (a set, in request order).
    pub subscribed_events: Vec<String>,
    /// Headers added to every delivery: `Authorization` (from the
    /// authorization) plus the custom headers.
    pub headers: BTreeMap<String, String>,
    /// The signing secret (64 lowercase hex characters on the wire).
    pub secret_key: SecretKey,
    /// Disabled subscriptions receive nothing.
    pub enabled: bool,
    /// Creation time, second precision.
    #[serde(with = "super::time::seconds")]
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: UserId,
    /// Last change, second precision.
    #[serde(with = "super::time::seconds")]
    pub updated_at: DateTime<Utc>,
    /// Who changed it last.
    pub updated_by: UserId,
    /// Reserved for attribute filters; absent when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Value>,
    /// The secret replaced by the last rotation, still signing next to
    /// `secret_key` until it expires. Never shown by the API.
    #[serde(skip)]
    pub previous_secret: Option<PreviousSecret>,
}

impl fmt::Debug for WebhookSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSubscription")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("subscribed_events", &self.subscribed_events)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("secret_key", &self.secret_key)
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .field("created_by", &self.created_by)
            .field("updated_at", &self.updated_at)
            .field("updated_by", &self.updated_by)
            .field("filters", &self.filters)
            .field("previous_secret", &self.previous_secret)
            .finish()
    }
}

impl WebhookSubscription {
    /// Whether deliveries of `event` go to this subscription now.
    pub fn wants(&self, event: &str) -> bool {
        self.enabled && self.subscribed_events.iter().any(|e| e == event)
    }

    /// The keys that sign an attempt made at `at`: the current secret, then
    /// the previous one while its grace period lasts.
    pub fn signing_keys(&self, at: DateTime<Utc>) -> impl Iterator<Item = &SecretKey> {
        let previous = self
            .previous_secret
            .as_ref()
            .filter(|previous| previous.signs_at(at))
            .map(|previous| &previous.key);
        std::iter::once(&self.secret_key).chain(previous)
    }

    /// The value of the `Authorization` header, if any.
    pub fn authorization_header(&self) -> Option<&str> {
        self.headers.get(AUTHORIZATION_HEADER).map(String::as_str)
    }

    /// The custom headers (everything in `headers` but `Authorization`).
    pub fn custom_headers(&self) -> impl Iterator<Item = (&String, &String)> {
        self.headers
            .iter()
            .filter(|(name, _)| name.as_str() != AUTHORIZATION_HEADER)
    }

    /// Applies a validated change; fields left `None` keep their value.
    pub fn apply(&mut self, change: &SubscriptionChange) {
        if let Some(name) = &change.name {
            self.name.clone_from(name);
        }
        if let Some(url) = &change.url {
            self.url.clone_from(url);
        }
        if let Some(events) = &change.events {
            self.subscribed_events.clone_from(events);
        }
        if let Some(authorization) = &change.authorization_header {
            match authorization {
                Some(value) => {
                    self.headers
                        .insert(AUTHORIZATION_HEADER.to_owned(), value.clone());
                }
                None => {
                    self.headers.remove(AUTHORIZATION_HEADER);
                }
            }
        }
        if let Some(custom) = &change.custom_headers {
            self.headers
                .retain(|name, _| name.as_str() == AUTHORIZATION_HEADER);
            self.headers
                .extend(custom.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(enabled) = change.enabled {
            self.enabled = enabled;
        }
        if let Some(rotation) = &change.rotate_secret {
            let old = std::mem::replace(&mut self.secret_key, rotation.secret_key.clone());
            self.previous_secret = rotation
                .previous_expires_at
                .map(|expires_at| PreviousSecret::new(old, expires_at));
        }
        self.updated_at = change.updated_at;
        self.updated_by = change.updated_by;
    }
}

/// A validated, field-level change to a subscription; `None` leaves a field
/// unchanged. Storage backends apply it atomically with
/// [`WebhookSubscription::apply`] so concurrent changes of different fields
/// all survive.
///
/// `Debug` shows which headers change but not their values.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionChange {
    /// New name.
    pub name: Option<String>,
    /// New URL.
    pub url: Option<String>,
    /// New event set (replaces the old one).
    pub events: Option<Vec<String>>,
    /// New `Authorization` header value; `Some(None)` removes it.
    pub authorization_header: Option<Option<String>>,
    /// New custom headers (replace the old ones; `Authorization` is kept).
    pub custom_headers: Option<BTreeMap<String, String>>,
    /// New enabled flag.
    pub enabled: Option<bool>,
    /// A new signing secret; the current one becomes the previous secret.
    pub rotate_secret: Option<SecretRotation>,
    /// Stamped into `updatedAt`.
    pub updated_at: DateTime<Utc>,
    /// Stamped into `updatedBy`.
    pub updated_by: UserId,
}

impl fmt::Debug for SubscriptionChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionChange")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field(
                "authorization_header",
                &self
                    .authorization_header
                    .as_ref()
                    .map(|value| RedactedOption(value.is_some())),
            )
            .field(
                "custom_headers",
                &self.custom_headers.as_ref().map(RedactedHeaders),
            )
            .field("enabled", &self.enabled)
            .field("rotate_secret", &self.rotate_secret)
            .field("updated_at", &self.updated_at)
            .field("updated_by", &self.updated_by)
            .finish()
    }
}

impl SubscriptionChange {
    /// A change that only moves `updatedAt`/`updatedBy`.
    pub fn touch(updated_at: DateTime<Utc>, updated_by: UserId) -> Self {
        Self {
            name: None,
            url: None,
            events: None,
            authorization_header: None,
            custom_headers: None,
            enabled: None,
            rotate_secret: None,
            updated_at,
            updated_by,
        }
    }
}

/// A secret rotation, applied atomically with the rest of a
/// [`SubscriptionChange`]: `secret_key` becomes the signing secret and the
/// secret it replaces keeps signing until `previous_expires_at` (not at all
/// when `None`). A secret retired by an earlier rotation is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretRotation {
    /// The new signing secret.
    pub secret_key: SecretKey,
    /// Until when the replaced secret signs too; `None` retires it at once.
    pub previous_expires_at: Option<DateTime<Utc>>,
}

impl SecretRotation {
    /// Rotates to `secret_key`, the replaced secret signing until `previous_expires_at`.
    pub fn new(secret_key: SecretKey, previous_expires_at: Option<DateTime<Utc>>) -> Self {
        Self {
            secret_key,
            previous_expires_at,
        }
    }
}
