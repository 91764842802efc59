//! Signing through `SignatureScheme`: which headers are set, with which
//! names and values, and which names the schemes reserve.

mod signature_reference;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use http::HeaderMap;
use signature_reference::{at_millis, reference_b64, reference_hex};
use uuid::Uuid;
use webhook_subscriptions::model::{EventId, SecretKey, SubscriptionId};
use webhook_subscriptions::signature::{
    SignatureScheme, SignedMessage, StandardWebhooksScheme, StandardWebhooksSecret,
    TimestampedScheme, DEFAULT_TOLERANCE,
};
use webhook_subscriptions::Error;

const KEY: [u8; 32] = [0x5a; 32];
const T_MS: i64 = 1_689_238_949_803;
const BODY: &[u8] = br#"{"data":{"text":"Some Note Added"}}"#;
const SUBSCRIPTION: &str = "a1b15dc2-bba8-48a8-a92e-852014a166e9";
const EVENT: &str = "8967e0c6-fe64-4105-bf71-14ae0c256aa4";

fn message(timestamp: DateTime<Utc>) -> SignedMessage<'static> {
    SignedMessage {
        subscription_id: SubscriptionId(Uuid::parse_str(SUBSCRIPTION).unwrap()),
        event_id: EventId(Uuid::parse_str(EVENT).unwrap()),
        timestamp,
        body: BODY,
    }
}

fn sign(scheme: &SignatureScheme, timestamp: DateTime<Utc>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    scheme.sign(
        &SecretKey::from_bytes(KEY),
        &message(timestamp),
        &mut headers,
    );
    headers
}

fn value<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("header {name} not set"))
        .to_str()
        .unwrap()
}

fn dixa() -> SignatureScheme {
    SignatureScheme::Timestamped(
        TimestampedScheme::new(
            "X-DIXA-SIGNATURE",
            "X-DIXA-SUBSCRIPTION-ID",
            "X-Dixa-Event-Id",
        )
        .unwrap(),
    )
}

#[test]
fn default_scheme_sets_signature_subscription_and_event_headers() {
    let headers = sign(&SignatureScheme::default(), at_millis(T_MS));
    assert_eq!(headers.len(), 3);
    assert_eq!(
        value(&headers, "X-Webhook-Signature"),
        format!("t={T_MS},v1={}", reference_hex(&KEY, T_MS, BODY))
    );
    assert_eq!(value(&headers, "X-Webhook-Subscription-Id"), SUBSCRIPTION);
    assert_eq!(value(&headers, "X-Webhook-Event-Id"), EVENT);
}

#[test]
fn default_scheme_reserves_its_three_headers() {
    assert_eq!(
        SignatureScheme::default().reserved_header_names(),
        [
            "x-webhook-signature",
            "x-webhook-subscription-id",
            "x-webhook-event-id"
        ]
    );
}

#[test]
fn timestamped_signature_uses_whole_milliseconds() {
    let timestamp = at_millis(T_MS) + Duration::microseconds(999);
    let headers = sign(&SignatureScheme::default(), timestamp);
    assert!(value(&headers, "x-webhook-signature").starts_with(&format!("t={T_MS},v1=")));
}

#[test]
fn custom_header_names_replace_the_defaults() {
    let headers = sign(&dixa(), at_millis(T_MS));
    assert_eq!(headers.len(), 3);
    assert_eq!(
        value(&headers, "x-dixa-signature"),
        format!("t={T_MS},v1={}", reference_hex(&KEY, T_MS, BODY))
    );
    assert_eq!(value(&headers, "x-dixa-subscription-id"), SUBSCRIPTION);
    assert_eq!(value(&headers, "x-dixa-event-id"), EVENT);
    assert!(headers.get("x-webhook-signature").is_none());
}

#[test]
fn custom_header_names_are_reserved_in_lowercase() {
    assert_eq!(
        dixa().reserved_header_names(),
        [
            "x-dixa-signature",
            "x-dixa-subscription-id",
            "x-dixa-event-id"
        ]
    );
}

#[test]
fn invalid_header_names_are_refused() {
    for bad in ["", "bad name", "x:y", "caf\u{e9}", "x\r\ny"] {
        let result = TimestampedScheme::new(bad, "x-sub", "x-event");
        assert!(
            matches!(result, Err(Error::InvalidConfiguration(_))),
            "{bad:?}: {result:?}"
        );
        let result = StandardWebhooksScheme::new(bad);
        assert!(
            matches!(result, Err(Error::InvalidConfiguration(_))),
            "{bad:?}: {result:?}"
        );
    }
}

#[test]
fn header_names_that_collide_are_refused() {
    let result = TimestampedScheme::new("X-Sig", "x-sig", "x-event");
    assert!(matches!(result, Err(Error::InvalidConfiguration(_))));
    let result = TimestampedScheme::new("x-sig", "x-sub", "X-SUB");
    assert!(matches!(result, Err(Error::InvalidConfiguration(_))));
    for taken in ["webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE"] {
        let result = StandardWebhooksScheme::new(taken);
        assert!(
            matches!(result, Err(Error::InvalidConfiguration(_))),
            "{taken}"
        );
    }
}

#[test]
fn standard_scheme_sets_the_webhook_headers_and_subscription_id() {
    let scheme = SignatureScheme::StandardWebhooks(StandardWebhooksScheme::default());
    let timestamp = at_millis(T_MS);
    let secs = T_MS / 1000;
    let headers = sign(&scheme, timestamp);
    assert_eq!(headers.len(), 4);
    assert_eq!(value(&headers, "webhook-id"), EVENT);
    assert_eq!(value(&headers, "webhook-timestamp"), secs.to_string());
    assert_eq!(
        value(&headers, "webhook-signature"),
        format!("v1,{}", reference_b64(&KEY, EVENT, secs, BODY))
    );
    assert_eq!(value(&headers, "x-webhook-subscription-id"), SUBSCRIPTION);
}

#[test]
fn standard_scheme_reserves_its_four_headers() {
    let scheme = SignatureScheme::StandardWebhooks(StandardWebhooksScheme::default());
    assert_eq!(
        scheme.reserved_header_names(),
        [
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "x-webhook-subscription-id"
        ]
    );
}

#[test]
fn standard_scheme_with_custom_subscription_header() {
    let scheme = SignatureScheme::StandardWebhooks(
        StandardWebhooksScheme::new("X-Acme-Subscription").unwrap(),
    );
    let headers = sign(&scheme, at_millis(T_MS));
    assert_eq!(value(&headers, "x-acme-subscription"), SUBSCRIPTION);
    assert!(headers.get("x-webhook-subscription-id").is_none());
    assert!(scheme
        .reserved_header_names()
        .contains(&"x-acme-subscription".to_owned()));
}

#[test]
fn signing_again_replaces_the_previous_attempts_headers() {
    for scheme in [
        SignatureScheme::default(),
        SignatureScheme::StandardWebhooks(StandardWebhooksScheme::default()),
    ] {
        let key = SecretKey::from_bytes(KEY);
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        scheme.sign(&key, &message(at_millis(T_MS)), &mut headers);
        let first = headers.clone();
        scheme.sign(&key, &message(at_millis(T_MS + 5_000)), &mut headers);
        for name in scheme.reserved_header_names() {
            assert_eq!(headers.get_all(&name).iter().count(), 1, "{name}");
        }
        assert_ne!(headers, first);
        assert_eq!(value(&headers, "content-type"), "application/json");
    }
}

#[test]
fn signed_requests_verify_with_the_same_scheme() {
    for scheme in [
        SignatureScheme::default(),
        dixa(),
        SignatureScheme::StandardWebhooks(StandardWebhooksScheme::default()),
    ] {
        let headers = sign(&scheme, at_millis(T_MS));
        let keys = [SecretKey::from_bytes([1; 32]), SecretKey::from_bytes(KEY)];
        let now = at_millis(T_MS) + Duration::seconds(10);
        assert_eq!(
            scheme.verify(&keys, &headers, BODY, now, DEFAULT_TOLERANCE),
            Ok(()),
            "{scheme:?}"
        );
    }
}

#[test]
fn whsec_form_of_a_secret_key_is_its_base64() {
    let key = SecretKey::from_bytes(KEY);
    let secret = StandardWebhooksSecret::from(&key);
    assert_eq!(secret.to_whsec(), format!("whsec_{}", BASE64.encode(KEY)));
    assert_eq!(secret.as_bytes(), KEY);
}

#[test]
fn whsec_secrets_parse_with_or_without_prefix_and_padding() {
    let expected = b"0123456789abcdefghijklmnopqrstuv".to_vec();
    let padded = BASE64.encode(&expected[..31]);
    assert!(padded.ends_with('='));
    for text in [
        format!("whsec_{}", BASE64.encode(&expected)),
        BASE64.encode(&expected),
    ] {
        assert_eq!(
            StandardWebhooksSecret::parse(&text).unwrap().as_bytes(),
            expected
        );
    }
    let unpadded = padded.trim_end_matches('=');
    assert_eq!(
        StandardWebhooksSecret::parse(&format!("whsec_{unpadded}"))
            .unwrap()
            .as_bytes(),
        &expected[..31]
    );
}

#[test]
fn malformed_whsec_secrets_are_refused() {
    for text in ["", "whsec_", "whsec_!!!!", "whsec_a", "whsec_ YWJj"] {
        assert!(StandardWebhooksSecret::parse(text).is_err(), "{text:?}");
    }
}

#[test]
fn whsec_secret_debug_is_redacted() {
    let secret = StandardWebhooksSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let debug = format!("{secret:?}");
    assert!(!debug.contains("MfKQ"), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
}

const OLD_KEY: [u8; 32] = [0xa5; 32];

/// Signs with the new key, then the old one, as during a secret rotation.
fn sign_rotating(scheme: &SignatureScheme, timestamp: DateTime<Utc>) -> HeaderMap {
    let (new, old) = (SecretKey::from_bytes(KEY), SecretKey::from_bytes(OLD_KEY));
    let mut headers = HeaderMap::new();
    scheme.sign_with_keys(&[&new, &old], &message(timestamp), &mut headers);
    headers
}

#[test]
fn rotating_timestamped_signature_carries_one_v1_per_key_in_order() {
    let headers = sign_rotating(&SignatureScheme::default(), at_millis(T_MS));
    assert_eq!(
        value(&headers, "x-webhook-signature"),
        format!(
            "t={T_MS},v1={},v1={}",
            reference_hex(&KEY, T_MS, BODY),
            reference_hex(&OLD_KEY, T_MS, BODY)
        )
    );
}

#[test]
fn rotating_standard_signature_carries_space_separated_v1_entries_in_order() {
    let scheme = SignatureScheme::StandardWebhooks(StandardWebhooksScheme::default());
    let headers = sign_rotating(&scheme, at_millis(T_MS));
    let secs = T_MS / 1000;
    assert_eq!(
        value(&headers, "webhook-signature"),
        format!(
            "v1,{} v1,{}",
            reference_b64(&KEY, EVENT, secs, BODY),
            reference_b64(&OLD_KEY, EVENT, secs, BODY)
        )
    );
}

#[test]
fn a_rotating_signature_verifies_with_either_key_alone() {
    for scheme in [
        SignatureScheme::default(),
        dixa(),
        SignatureScheme::StandardWebhooks(StandardWebhooksScheme::default()),
    ] {
        let now = at_millis(T_MS);
        let headers = sign_rotating(&scheme, now);
        for key in [KEY, OLD_KEY] {
            let key = SecretKey::from_bytes(key);
            assert_eq!(
                scheme.verify(&[key], &headers, BODY, now, DEFAULT_TOLERANCE),
                Ok(()),
                "{scheme:?}"
            );
        }
        let stranger = SecretKey::from_bytes([0x11; 32]);
        assert!(
            scheme
                .verify(&[stranger], &headers, BODY, now, DEFAULT_TOLERANCE)
                .is_err(),
            "{scheme:?}: a third key must not verify"
        );
    }
}
