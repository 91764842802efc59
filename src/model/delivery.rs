//! What the API shows of deliveries: one attempt (`DeliveryDetail`), the
//! latest status per event and log entries. The queue's own records live
//! with the storage contract (`crate::storage`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The most bytes of a response body kept in `responseText`.
pub const RESPONSE_TEXT_LIMIT: usize = 1024;

/// The outcome of one delivery attempt, as shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetail {
    /// When the attempt was made, with milliseconds.
    #[serde(with = "super::time::millis")]
    pub delivery_timestamp: DateTime<Utc>,
    /// Whether the receiver answered 2xx.
    pub success: bool,
    /// The HTTP status, or 0 when there was no response (timeout, connection error, blocked).
    pub response_code: u16,
    /// At most [`RESPONSE_TEXT_LIMIT`] bytes of the response body, the reason
    /// phrase when the body is empty, or a short description of the failure.
    pub response_text: String,
}

/// The first `limit` bytes of `text`, cut back to a UTF-8 character boundary.
pub(crate) fn truncate_utf8(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `responseText` for a response: at most [`RESPONSE_TEXT_LIMIT`] bytes of the
/// body (lossily decoded, cut on a character boundary), or `reason` when the
/// body is empty.
pub(crate) fn response_text(body: &[u8], reason: &str) -> String {
    if body.is_empty() {
        return reason.to_owned();
    }
    // Decode at most a few bytes past the limit: enough to finish a character.
    let prefix = &body[..body.len().min(RESPONSE_TEXT_LIMIT + 4)];
    let text = String::from_utf8_lossy(prefix);
    truncate_utf8(&text, RESPONSE_TEXT_LIMIT).to_owned()
}

/// The latest state of deliveries of one event to one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "_type")]
pub enum DeliveryStatus {
    /// The latest attempt.
    DeliveryDetail(DeliveryDetail),
    /// Nothing was attempted recently.
    NoRecentDelivery,
}

/// One entry of `GET /v1/webhooks/{id}/delivery-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDeliveryStatus {
    /// The event name.
    pub event: String,
    /// Its latest delivery state.
    pub delivery_status: DeliveryStatus,
}

/// One entry of `GET /v1/webhooks/{id}/delivery-status/logs/{event}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLogEntry {
    /// The attempt.
    pub delivery_detail: DeliveryDetail,
    /// The exact body sent.
    pub payload: String,
}
