//! The shared test vectors (`tests/fixtures/signature_vectors.json`)
//! reproduce exactly with the signing functions and pass the verifiers.

use chrono::{DateTime, Duration, Utc};
use http::HeaderMap;
use serde_json::Value;
use webhook_subscriptions::model::SecretKey;
use webhook_subscriptions::signature::{
    sign_standard, sign_timestamped, verify_standard, verify_timestamped, StandardWebhooksScheme,
    StandardWebhooksSecret, DEFAULT_TOLERANCE,
};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/signature_vectors.json"
);

fn vectors(scheme: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(VECTORS).expect("read signature vectors");
    let all: Value = serde_json::from_str(&text).expect("parse signature vectors");
    let list = all[scheme].as_array().expect("vector list").clone();
    assert!(!list.is_empty(), "no {scheme} vectors");
    list
}

fn text<'v>(vector: &'v Value, field: &str) -> &'v str {
    vector[field].as_str().expect(field)
}

fn number(vector: &Value, field: &str) -> i64 {
    vector[field].as_i64().expect(field)
}

fn at_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("timestamp in range")
}

#[test]
fn timestamped_vectors_sign_to_the_expected_header() {
    for vector in vectors("scheme_t_v1") {
        let key = SecretKey::from_hex(text(&vector, "secretKey")).expect("secret key");
        let header = sign_timestamped(
            key.as_bytes(),
            number(&vector, "t"),
            text(&vector, "body").as_bytes(),
        );
        assert_eq!(header, text(&vector, "header"));
    }
}

#[test]
fn timestamped_vectors_verify_near_their_timestamp() {
    for vector in vectors("scheme_t_v1") {
        let key = SecretKey::from_hex(text(&vector, "secretKey")).expect("secret key");
        let t = number(&vector, "t");
        for offset in [-1_000, 0, 90_000] {
            let result = verify_timestamped(
                [key.as_bytes()],
                text(&vector, "header"),
                text(&vector, "body").as_bytes(),
                at_millis(t + offset),
                DEFAULT_TOLERANCE,
            );
            assert_eq!(result, Ok(()), "vector t={t}, now offset {offset} ms");
        }
    }
}

#[test]
fn standard_webhooks_vectors_sign_to_the_expected_signature() {
    for vector in vectors("standard_webhooks_v1") {
        let secret = StandardWebhooksSecret::parse(text(&vector, "secret")).expect("whsec secret");
        let signature = sign_standard(
            secret.as_bytes(),
            text(&vector, "webhook-id"),
            number(&vector, "webhook-timestamp"),
            text(&vector, "body").as_bytes(),
        );
        assert_eq!(signature, text(&vector, "webhook-signature"));
    }
}

#[test]
fn standard_webhooks_vectors_verify_near_their_timestamp() {
    for vector in vectors("standard_webhooks_v1") {
        let secret = StandardWebhooksSecret::parse(text(&vector, "secret")).expect("whsec secret");
        let timestamp = number(&vector, "webhook-timestamp");
        for offset in [-1, 0, 90] {
            let result = verify_standard(
                [&secret],
                text(&vector, "webhook-id"),
                &timestamp.to_string(),
                text(&vector, "webhook-signature"),
                text(&vector, "body").as_bytes(),
                at_millis((timestamp + offset) * 1000),
                DEFAULT_TOLERANCE,
            );
            assert_eq!(
                result,
                Ok(()),
                "vector ts={timestamp}, now offset {offset} s"
            );
        }
    }
}

#[test]
fn standard_webhooks_vectors_verify_through_request_headers() {
    let scheme = StandardWebhooksScheme::default();
    for vector in vectors("standard_webhooks_v1") {
        let secret = StandardWebhooksSecret::parse(text(&vector, "secret")).expect("whsec secret");
        let timestamp = number(&vector, "webhook-timestamp");
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("webhook-id", text(&vector, "webhook-id").to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            (
                "webhook-signature",
                text(&vector, "webhook-signature").to_owned(),
            ),
        ] {
            headers.insert(name, value.parse().expect("header value"));
        }
        let result = scheme.verify(
            [&secret],
            &headers,
            text(&vector, "body").as_bytes(),
            at_millis(timestamp * 1000) + Duration::seconds(30),
            DEFAULT_TOLERANCE,
        );
        assert_eq!(result, Ok(()));
    }
}

#[test]
fn whsec_secrets_of_the_vectors_round_trip_to_text() {
    for vector in vectors("standard_webhooks_v1") {
        let text_form = text(&vector, "secret");
        let secret = StandardWebhooksSecret::parse(text_form).expect("whsec secret");
        assert_eq!(secret.to_whsec(), text_form);
    }
}
