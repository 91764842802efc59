//! The create and patch request bodies.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::authorization::Authorization;
use super::redact::RedactedHeaders;

fn default_true() -> bool {
    true
}

/// Body of `POST /v1/webhooks`. Unknown fields are refused.
///
/// `Debug` redacts credentials and custom header values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhookSubscription {
    /// Display name.
    pub name: String,
    /// Delivery URL.
    pub url: String,
    /// Event names to deliver; empty by default.
    #[serde(default)]
    pub events: Vec<String>,
    /// Credentials; `NoAuth` by default.
    #[serde(default)]
    pub authorization: Authorization,
    /// Extra headers for every delivery; empty by default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_headers: BTreeMap<String, String>,
    /// `true` by default.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl CreateWebhookSubscription {
    /// A request with `name` and `url` and every other field at its default.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            events: Vec::new(),
            authorization: Authorization::NoAuth,
            custom_headers: BTreeMap::new(),
            enabled: true,
        }
    }
}

/// Body of `PATCH /v1/webhooks/{id}`: every field optional.
///
/// Each field is `None` when absent and `Some(None)` when sent as `null`
/// (which validation refuses). Unknown fields are refused. `Debug` redacts
/// credentials and custom header values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchWebhookSubscription {
    /// New name.
    #[serde(default, with = "nullable", skip_serializing_if = "Option::is_none")]
    pub name: Option<Option<String>>,
    /// New URL.
    #[serde(default, with = "nullable", skip_serializing_if = "Option::is_none")]
    pub url: Option<Option<String>>,
    /// New event set (replaces the old one).
    #[serde(default, with = "nullable", skip_serializing_if = "Option::is_none")]
    pub events: Option<Option<Vec<String>>>,
    /// New credentials (replace the old ones).
    #[serde(default, with = "nullable", skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Option<Authorization>>,
    /// New custom headers (replace the old map).
    #[serde(default, with = "nullable", skip_serializing_if = "Option::is_none")]
    pub custom_headers: Option<Option<BTreeMap<String, String>>>,
    /// New enabled flag.
    #[serde(default, with = "nullable", skip_serializing_if = "Option::is_none")]
    pub enabled: Option<Option<bool>>,
}

impl fmt::Debug for CreateWebhookSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateWebhookSubscription")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("authorization", &self.authorization)
            .field("custom_headers", &RedactedHeaders(&self.custom_headers))
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl fmt::Debug for PatchWebhookSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatchWebhookSubscription")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("authorization", &self.authorization)
            .field(
                "custom_headers",
                &self
                    .custom_headers
                    .as_ref()
                    .map(|headers| headers.as_ref().map(RedactedHeaders)),
            )
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// Tells a present `null` (`Some(None)`) from an absent field (`None`, via
/// `#[serde(default)]`).
mod nullable {
    use super::*;

    pub(super) fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}
