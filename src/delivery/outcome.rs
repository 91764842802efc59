//! What an attempt's result means: its [`Outcome`] for the retry policy and
//! its [`DeliveryDetail`] for the logs.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use http::header::RETRY_AFTER;
use http::{HeaderMap, StatusCode};

use crate::model::time::truncate_to_millis;
use crate::model::{response_text, truncate_utf8, DeliveryDetail, RESPONSE_TEXT_LIMIT};
use crate::transport::{TransportError, TransportResponse};

/// The result of one attempt: the receiver's answer, or why there was none.
pub type AttemptResult = Result<TransportResponse, TransportError>;

/// How an attempt went, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A 2xx answer: delivered.
    Success,
    /// `410 Gone`: the receiver is gone for good; stop and disable the subscription.
    Gone,
    /// `429` or `503` with a usable `Retry-After`: retry, preferably after this long.
    RetryAfter(Duration),
    /// Anything else (3xx, other 4xx and 5xx, timeouts, connection errors): retry.
    Retryable,
}

impl Outcome {
    /// Classifies an attempt's result; `now` is the reference for a
    /// `Retry-After` given as an HTTP date.
    pub fn classify(result: &AttemptResult, now: DateTime<Utc>) -> Self {
        let Ok(response) = result else {
            return Outcome::Retryable;
        };
        match response.status {
            status if status.is_success() => Outcome::Success,
            StatusCode::GONE => Outcome::Gone,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                retry_after(&response.headers, now).map_or(Outcome::Retryable, Outcome::RetryAfter)
            }
            _ => Outcome::Retryable,
        }
    }
}

/// The wait a `Retry-After` header asks for, relative to `now`: delta-seconds
/// or an HTTP date (IMF-fixdate, RFC 850 or asctime form). A date in the
/// past asks for no wait. `None` when the header is absent or unreadable.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long waits saturate; the policy clamps them anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = parse_http_date(value)?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc2822(value) {
        return Some(at.with_timezone(&Utc));
    }
    // The two obsolete forms HTTP recipients must still accept (RFC 9110 5.6.7).
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
        .map(|at| at.and_utc())
}

/// The log record of an attempt made at `at`: success for 2xx, the status
/// (0 when there was no response), and at most [`RESPONSE_TEXT_LIMIT`] bytes
/// of the body (the reason phrase when it is empty) or a short description
/// of why there was no response.
pub fn delivery_detail(result: &AttemptResult, at: DateTime<Utc>) -> DeliveryDetail {
    let (success, response_code, response_text) = match result {
        Ok(response) => (
            response.status.is_success(),
            response.status.as_u16(),
            response_text(
                &response.body,
                response.status.canonical_reason().unwrap_or_default(),
            ),
        ),
        Err(error) => (
            false,
            0,
            truncate_utf8(&error.to_string(), RESPONSE_TEXT_LIMIT).to_owned(),
        ),
    };
    DeliveryDetail {
        delivery_timestamp: truncate_to_millis(at),
        success,
        response_code,
        response_text,
    }
}
