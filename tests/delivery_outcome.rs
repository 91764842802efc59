//! Classifying attempt results and turning them into log records.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue, StatusCode};
use webhook_subscriptions::delivery::{delivery_detail, AttemptResult, Outcome};
use webhook_subscriptions::transport::{TransportError, TransportResponse};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap()
}

fn response(status: u16, retry_after: Option<&str>, body: &[u8]) -> AttemptResult {
    let mut headers = HeaderMap::new();
    if let Some(value) = retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
    }
    Ok(TransportResponse::new(
        StatusCode::from_u16(status).unwrap(),
        headers,
        Bytes::copy_from_slice(body),
    ))
}

fn classify(status: u16, retry_after: Option<&str>) -> Outcome {
    Outcome::classify(&response(status, retry_after, b""), now())
}

#[test]
fn two_hundreds_are_success() {
    for status in [200, 201, 202, 204, 299] {
        assert_eq!(classify(status, None), Outcome::Success, "{status}");
    }
}

#[test]
fn gone_is_final() {
    assert_eq!(classify(410, None), Outcome::Gone);
    assert_eq!(classify(410, Some("60")), Outcome::Gone);
}

#[test]
fn redirects_client_and_server_errors_are_retryable() {
    for status in [100, 301, 302, 304, 400, 401, 404, 409, 422, 500, 502, 504] {
        assert_eq!(classify(status, None), Outcome::Retryable, "{status}");
    }
    // Retry-After only counts on 429 and 503.
    assert_eq!(classify(500, Some("60")), Outcome::Retryable);
}

#[test]
fn transport_errors_are_retryable() {
    for error in [
        TransportError::Timeout("no response within 15s".into()),
        TransportError::Connect("connection refused".into()),
        TransportError::Blocked("127.0.0.1 is loopback".into()),
        TransportError::Other("tls handshake".into()),
    ] {
        assert_eq!(Outcome::classify(&Err(error), now()), Outcome::Retryable);
    }
}

#[test]
fn retry_after_in_seconds_is_read_on_429_and_503() {
    assert_eq!(
        classify(429, Some("120")),
        Outcome::RetryAfter(Duration::from_secs(120))
    );
    assert_eq!(
        classify(503, Some(" 0 ")),
        Outcome::RetryAfter(Duration::ZERO)
    );
    assert_eq!(
        classify(429, Some("99999999999999999999999")),
        Outcome::RetryAfter(Duration::from_secs(u64::MAX))
    );
}

#[test]
fn retry_after_as_an_http_date_is_relative_to_now() {
    // now() is Wed, 21 Oct 2015 07:28:00 GMT.
    assert_eq!(
        classify(503, Some("Wed, 21 Oct 2015 07:29:30 GMT")),
        Outcome::RetryAfter(Duration::from_secs(90))
    );
    assert_eq!(
        classify(429, Some("Wednesday, 21-Oct-15 07:28:45 GMT")),
        Outcome::RetryAfter(Duration::from_secs(45))
    );
    assert_eq!(
        classify(429, Some("Wed Oct 21 08:28:00 2015")),
        Outcome::RetryAfter(Duration::from_secs(3600))
    );
    assert_eq!(
        classify(429, Some("Wed, 21 Oct 2015 07:00:00 GMT")),
        Outcome::RetryAfter(Duration::ZERO),
        "a date in the past asks for no wait"
    );
}

#[test]
fn missing_or_unreadable_retry_after_is_plain_retryable() {
    assert_eq!(classify(429, None), Outcome::Retryable);
    for garbage in ["soon", "-5", "1.5", "", "Wed, 99 Foo 2015"] {
        assert_eq!(
            classify(503, Some(garbage)),
            Outcome::Retryable,
            "{garbage:?}"
        );
    }
}

#[test]
fn detail_of_a_success_uses_the_reason_phrase_for_an_empty_body() {
    let at = Utc.with_ymd_and_hms(2023, 9, 15, 12, 0, 0).unwrap()
        + chrono::Duration::microseconds(123_456);
    let detail = delivery_detail(&response(200, None, b""), at);
    assert!(detail.success);
    assert_eq!(detail.response_code, 200);
    assert_eq!(detail.response_text, "OK");
    assert_eq!(
        detail.delivery_timestamp,
        Utc.with_ymd_and_hms(2023, 9, 15, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(123)
    );
}

#[test]
fn detail_of_a_failure_keeps_at_most_1024_bytes_of_body() {
    let body = "é".repeat(600); // 1200 bytes, 2 per character
    let detail = delivery_detail(&response(500, None, body.as_bytes()), now());
    assert!(!detail.success);
    assert_eq!(detail.response_code, 500);
    assert_eq!(detail.response_text, "é".repeat(512));

    let detail = delivery_detail(&response(404, None, b"no such hook"), now());
    assert_eq!(detail.response_text, "no such hook");
    let detail = delivery_detail(&response(503, None, b""), now());
    assert_eq!(detail.response_text, "Service Unavailable");
}

#[test]
fn detail_of_a_transport_error_has_code_zero_and_a_description() {
    let timeout = Err(TransportError::Timeout("no response within 15s".into()));
    let detail = delivery_detail(&timeout, now());
    assert!(!detail.success);
    assert_eq!(detail.response_code, 0);
    assert_eq!(detail.response_text, "timeout: no response within 15s");

    let refused = Err(TransportError::Connect("connection refused".into()));
    assert_eq!(
        delivery_detail(&refused, now()).response_text,
        "connection error: connection refused"
    );
    // Which address a name resolved to is for operators, never for tenants.
    let blocked = TransportError::Blocked(
        "internal.example resolves only to blocked addresses (private)".into(),
    );
    assert_eq!(
        blocked.detail(),
        "internal.example resolves only to blocked addresses (private)"
    );
    assert_eq!(
        delivery_detail(&Err(blocked), now()).response_text,
        "blocked by address policy"
    );
    let long = Err(TransportError::Other("x".repeat(5000)));
    assert_eq!(delivery_detail(&long, now()).response_text.len(), 1024);
}
