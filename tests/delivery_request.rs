//! What goes on the wire: method, url, exactly the expected headers, the
//! same body bytes on every attempt, and a fresh, verifiable signature each time.
#![cfg(feature = "runtime-tokio")]

mod delivery_support;

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use delivery_support::{secret, start, subscription, Harness, SentRequest, EVENT};
use hmac::{Hmac, KeyInit, Mac};
use http::Method;
use sha2::Sha256;
use webhook_subscriptions::delivery::build_request;
use webhook_subscriptions::model::{
    DeliveryId, EventId, OrganizationId, SecretKey, SubscriptionId,
};
use webhook_subscriptions::signature::{
    SignatureScheme, StandardWebhooksScheme, DEFAULT_TOLERANCE,
};
use webhook_subscriptions::storage::{Delivery, DeliveryState};

fn header<'a>(request: &'a SentRequest, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

/// `v1` computed here, independently of the crate's signer.
fn expected_v1(key: &SecretKey, t: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Splits `t=<ms>,v1=<hex>`.
fn signature_parts(value: &str) -> (&str, &str) {
    let (t, v1) = value.split_once(',').unwrap();
    (
        t.strip_prefix("t=").unwrap(),
        v1.strip_prefix("v1=").unwrap(),
    )
}

#[tokio::test]
async fn the_request_carries_exactly_the_expected_headers() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    let receipt = h.publish_note().await;
    h.transport.respond(200, &[], b"");
    h.worker().run_once().await.unwrap();

    let sent = h.transport.sent();
    assert_eq!(sent.len(), 1);
    let request = &sent[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.uri, "https://receiver.example/hook");

    let mut names: Vec<&str> = request.headers.keys().map(|n| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "authorization",
            "content-type",
            "user-agent",
            "x-custom",
            "x-webhook-event-id",
            "x-webhook-signature",
            "x-webhook-subscription-id",
        ]
    );
    assert_eq!(request.headers.len(), 7, "each header once");
    assert_eq!(header(request, "content-type"), "application/json");
    assert_eq!(
        header(request, "user-agent"),
        format!("webhook-subscriptions/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(header(request, "authorization"), "Bearer s3cr3t");
    assert_eq!(header(request, "x-custom"), "custom value");
    assert_eq!(
        header(request, "x-webhook-subscription-id"),
        sub.id.to_string()
    );
    assert_eq!(
        header(request, "x-webhook-event-id"),
        receipt.event_id.to_string()
    );

    let (t, v1) = signature_parts(header(request, "x-webhook-signature"));
    assert_eq!(t, start().timestamp_millis().to_string());
    assert_eq!(v1, expected_v1(&secret(), t, &request.body));
}

#[tokio::test]
async fn the_body_is_identical_across_retries_while_each_attempt_is_signed_afresh() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    h.transport.respond(500, &[], b"");
    h.transport.respond(200, &[], b"");
    let worker = h.worker();
    worker.run_once().await.unwrap();
    h.clock.advance(TimeDelta::milliseconds(5_000));
    worker.run_once().await.unwrap();

    let sent = h.transport.sent();
    assert_eq!(sent.len(), 2);
    let logged = h.attempts(&sub).await;
    assert_eq!(sent[0].body, sent[1].body);
    assert_eq!(sent[0].body, logged[0].payload);
    assert_eq!(sent[1].body, logged[1].payload);
    // Shared, not copied per attempt.
    assert_eq!(sent[0].body.as_ptr(), sent[1].body.as_ptr());

    let first = header(&sent[0], "x-webhook-signature");
    let second = header(&sent[1], "x-webhook-signature");
    assert_ne!(first, second);
    let attempt_times: [DateTime<Utc>; 2] = [start(), start() + TimeDelta::seconds(5)];
    let scheme = SignatureScheme::default();
    for (request, at) in sent.iter().zip(attempt_times) {
        let (t, v1) = signature_parts(header(request, "x-webhook-signature"));
        assert_eq!(t, at.timestamp_millis().to_string());
        assert_eq!(v1, expected_v1(&secret(), t, &request.body));
        scheme
            .verify(
                &[secret()],
                &request.headers,
                &request.body,
                at,
                DEFAULT_TOLERANCE,
            )
            .unwrap();
        let wrong = SecretKey::from_bytes([8; 32]);
        assert!(scheme
            .verify(
                &[wrong],
                &request.headers,
                &request.body,
                at,
                DEFAULT_TOLERANCE
            )
            .is_err());
    }
}

fn delivery(payload: &'static [u8]) -> Delivery {
    Delivery {
        id: DeliveryId::new_v4(),
        organization_id: OrganizationId::new_v4(),
        subscription_id: SubscriptionId::new_v4(),
        event_id: EventId::new_v4(),
        event_name: EVENT.to_owned(),
        payload: Bytes::from_static(payload),
        attempts: 0,
        due_at: start(),
        state: DeliveryState::Leased,
    }
}

#[test]
fn build_request_shares_the_payload_and_hides_header_values() {
    let sub = subscription("https://receiver.example/hook?x=1", &[EVENT], true);
    let delivery = delivery(b"{\"a\":1}");
    let request = build_request(&SignatureScheme::default(), &sub, &delivery, start()).unwrap();
    assert_eq!(request.uri(), "https://receiver.example/hook?x=1");
    assert_eq!(request.body().as_ptr(), delivery.payload.as_ptr());
    assert!(request.headers()["authorization"].is_sensitive());
    assert!(request.headers()["x-custom"].is_sensitive());
}

#[test]
fn build_request_refuses_an_unusable_url_without_panicking() {
    let sub = subscription("not a url at all", &[EVENT], true);
    let error =
        build_request(&SignatureScheme::default(), &sub, &delivery(b"{}"), start()).unwrap_err();
    assert!(error.to_string().starts_with("url: "), "{error}");
}

#[tokio::test]
async fn a_configured_scheme_is_used_for_every_attempt() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    let receipt = h.publish_note().await;
    h.transport.respond(200, &[], b"");
    let scheme: SignatureScheme = StandardWebhooksScheme::default().into();
    let worker = h
        .worker_builder()
        .signature_scheme(scheme.clone())
        .build()
        .unwrap();
    worker.run_once().await.unwrap();

    let sent = h.transport.sent();
    let request = &sent[0];
    assert_eq!(header(request, "webhook-id"), receipt.event_id.to_string());
    assert_eq!(
        header(request, "webhook-timestamp"),
        start().timestamp().to_string()
    );
    assert!(header(request, "webhook-signature").starts_with("v1,"));
    assert_eq!(
        header(request, "x-webhook-subscription-id"),
        sub.id.to_string()
    );
    assert!(request.headers.get("x-webhook-signature").is_none());
    scheme
        .verify(
            &[secret()],
            &request.headers,
            &request.body,
            start(),
            DEFAULT_TOLERANCE,
        )
        .unwrap();
}
