//! Event names, the host's event catalogue, and the envelope that is delivered.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::{EventId, OrganizationId};

/// The built-in catalogue: the conversation platform's event names.
pub const CONVERSATION_EVENTS: &[&str] = &[
    "ConversationCreated",
    "ConversationOpen",
    "ConversationPending",
    "ConversationPendingExpired",
    "ConversationClosed",
    "ConversationAbandoned",
    "ConversationEnqueued",
    "ConversationAssigned",
    "ConversationUnassigned",
    "ConversationTransferred",
    "ConversationNoteAdded",
    "ConversationMessageAdded",
    "ConversationTagAdded",
    "ConversationTagRemoved",
    "ConversationRated",
    "ConversationEndUserReplaced",
    "ConversationCustomAttributeUpdated",
    "ConversationTranscriptionAdded",
    "ConversationMessageDeliveryDelivered",
    "ConversationMessageDeliveryInfo",
    "ConversationMessageDeliveryFailed",
    "ConversationMessageDeliverySeen",
    "ConversationMessageDeliverySent",
    "ConversationMessageDeliverySpamComplaint",
    "AgentBannedEnduser",
    "AgentUnbannedEnduser",
    "AgentBannedIp",
    "AgentUnbannedIp",
    "TypingStarted",
    "SLAEvaluationPending",
    "SLAEvaluationBreached",
    "SLAEvaluationAchieved",
    "SLAEvaluationVoided",
];

/// The name of the test events sent to one subscription on request (see
/// `WebhookService::send_test_event`); its fully-qualified name is
/// `WEBHOOK_TEST`. It needs no place in the catalogue: a test event reaches
/// its subscription whatever events that subscribes to, and its attempts are
/// logged under this name.
pub const TEST_EVENT: &str = "WebhookTest";

/// The fully-qualified name of an event: its words upper-cased and joined by
/// `_` (`ConversationNoteAdded` -> `CONVERSATION_NOTE_ADDED`,
/// `SLAEvaluationBreached` -> `SLA_EVALUATION_BREACHED`).
///
/// A word starts at an upper-case letter that follows a lower-case letter or
/// digit, or that ends a run of capitals followed by a lower-case letter.
pub fn fully_qualified_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_uppercase() {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_uppercase() && next_is_lower)
            {
                out.push('_');
            }
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// The event names a host accepts, each with its fully-qualified name.
///
/// Cheap to clone (shared). The default is the conversation catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCatalogue {
    inner: Arc<CatalogueInner>,
}

#[derive(Debug, PartialEq, Eq)]
struct CatalogueInner {
    /// Names in declaration order.
    names: Vec<Arc<str>>,
    /// Name -> index into `names` / `fqns`.
    index: HashMap<Arc<str>, usize>,
    fqns: Vec<Arc<str>>,
}

/// Why an event catalogue could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event catalogue: {0}")]
pub struct InvalidCatalogue(String);

impl EventCatalogue {
    /// A catalogue of `names`; each must be a non-empty ASCII alphanumeric
    /// identifier starting with a letter, at most 128 bytes, and unique.
    pub fn new<I, S>(names: I) -> Result<Self, InvalidCatalogue>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut inner = CatalogueInner {
            names: Vec::new(),
            index: HashMap::new(),
            fqns: Vec::new(),
        };
        for name in names {
            let name = name.as_ref();
            let well_formed = name.len() <= 128
                && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric());
            if !well_formed {
                return Err(InvalidCatalogue(format!(
                    "event name `{name}` must be 1..=128 ASCII letters and digits starting with a letter"
                )));
            }
            let name: Arc<str> = Arc::from(name);
            if inner.index.contains_key(&name) {
                return Err(InvalidCatalogue(format!(
                    "event name `{name}` is listed twice"
                )));
            }
            inner.index.insert(name.clone(), inner.names.len());
            inner.fqns.push(Arc::from(fully_qualified_name(&name)));
            inner.names.push(name);
        }
        if inner.names.is_empty() {
            return Err(InvalidCatalogue("no event names given".to_owned()));
        }
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The built-in conversation catalogue.
    pub fn conversation() -> Self {
        Self::new(CONVERSATION_EVENTS.iter().copied())
            .unwrap_or_else(|e| unreachable!("built-in catalogue is valid: {e}"))
    }

    /// A catalogue with the names of `self` followed by `more`.
    pub fn extended<I, S>(&self, more: I) -> Result<Self, InvalidCatalogue>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names: Vec<String> = self.names().map(str::to_owned).collect();
        names.extend(more.into_iter().map(|s| s.as_ref().to_owned()));
        Self::new(names)
    }

    /// Whether `name` is in the catalogue.
    pub fn contains(&self, name: &str) -> bool {
        self.inner.index.contains_key(name)
    }

    /// The shared name and its fully-qualified name, if `name` is known.
    pub fn lookup(&self, name: &str) -> Option<(&Arc<str>, &Arc<str>)> {
        let i = *self.inner.index.get(name)?;
        Some((&self.inner.names[i], &self.inner.fqns[i]))
    }

    /// The fully-qualified name of `name`, if known.
    pub fn fqn(&self, name: &str) -> Option<&str> {
        self.lookup(name).map(|(_, fqn)| &**fqn)
    }

    /// All names, in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.names.iter().map(|n| &**n)
    }

    /// The names joined by `, `, for error messages that list allowed values.
    pub fn allowed_list(&self) -> String {
        self.names().collect::<Vec<_>>().join(", ")
    }
}

impl Default for EventCatalogue {
    fn default() -> Self {
        Self::conversation()
    }
}

/// The organization an event belongs to, as shown in the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// The tenant id.
    pub id: OrganizationId,
    /// Its display name.
    pub name: String,
}

impl Organization {
    /// An organization with `id` and display `name`.
    pub fn new(id: OrganizationId, name: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
        }
    }
}

/// The JSON body of every delivery; field order is the wire order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Idempotency key receivers dedupe on.
    pub event_id: EventId,
    /// e.g. `CONVERSATION_NOTE_ADDED`.
    pub event_fqn: String,
    /// Payload schema version, `"1"` by default.
    pub event_version: String,
    /// When the event happened, with milliseconds.
    #[serde(with = "super::time::millis")]
    pub event_timestamp: DateTime<Utc>,
    /// The tenant.
    pub organization: Organization,
    /// The host's JSON object.
    pub data: Value,
}

/// A domain event a host publishes (see `WebhookService::publish`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event {
    /// Catalogue name, e.g. `ConversationNoteAdded`.
    pub name: String,
    /// The host's JSON object, delivered as `data`.
    pub data: Value,
    /// Idempotency key; a new v4 UUID when `None`.
    pub id: Option<EventId>,
    /// When it happened; now when `None`.
    pub timestamp: Option<DateTime<Utc>>,
    /// Payload version; `"1"` when `None`.
    pub version: Option<String>,
}

impl Event {
    /// An event named `name` carrying `data` (a JSON object).
    pub fn new(name: impl Into<String>, data: Value) -> Self {
        Self {
            name: name.into(),
            data,
            id: None,
            timestamp: None,
            version: None,
        }
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn with_id(mut self, id: EventId) -> Self {
        self.id = Some(id);
        self
    }

    /// Sets when the event happened.
    #[must_use]
    pub fn with_timestamp(mut self, at: DateTime<Utc>) -> Self {
        self.timestamp = Some(at);
        self
    }

    /// Sets the payload version.
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }
}
