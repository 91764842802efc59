//! The engine builder: one configuration gives a service, a REST handler and
//! a worker that agree on the catalogue, the signature scheme and the timeout.
#![cfg(feature = "runtime-tokio")]

mod delivery_support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use delivery_support::ScriptedTransport;
use http::{Request, StatusCode};
use serde_json::json;
use webhook_subscriptions::model::{
    CreateWebhookSubscription, Event, EventCatalogue, Organization, OrganizationId, UserId,
};
use webhook_subscriptions::signature::{
    SignatureScheme, StandardWebhooksScheme, DEFAULT_TOLERANCE,
};
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::transport::{AddressPolicy, IpNetwork};
use webhook_subscriptions::{Error, RequestContext, Webhooks, DEFAULT_TRANSPORT_TIMEOUT};

fn create_request(events: &[&str], headers: serde_json::Value) -> CreateWebhookSubscription {
    serde_json::from_value(json!({
        "name": "Receiver",
        "url": "https://receiver.example/hooks",
        "events": events,
        "customHeaders": headers,
    }))
    .expect("a well-formed create request")
}

/// A transport that answers every request with 200 and keeps it.
fn recording_transport() -> Arc<ScriptedTransport> {
    let transport = Arc::new(ScriptedTransport::default());
    for _ in 0..4 {
        transport.status(200);
    }
    transport
}

#[tokio::test]
async fn custom_catalogue_and_standard_webhooks_configured_once_validate_and_sign_consistently() {
    let scheme = SignatureScheme::from(StandardWebhooksScheme::default());
    let webhooks = Webhooks::builder(Arc::new(MemoryStore::new()))
        .events(["InvoicePaid", "InvoiceOverdue"])
        .signature_scheme(scheme.clone())
        .build()
        .expect("a valid configuration");
    let ctx = RequestContext::new(OrganizationId::new_v4(), UserId::new_v4());
    let service = webhooks.service();

    // Validation knows the host's events and the scheme's headers...
    let refused = service
        .create(
            &ctx,
            &create_request(&["InvoicePaid"], json!({"webhook-signature": "x"})),
        )
        .await
        .expect_err("the scheme's signature header is reserved");
    assert!(
        refused.to_string().contains("webhook-signature"),
        "{refused}"
    );
    let refused = service
        .create(&ctx, &create_request(&["InvoiceRefunded"], json!({})))
        .await
        .expect_err("an event outside the catalogue");
    assert!(refused.to_string().contains("InvoiceRefunded"), "{refused}");
    // ...and the built-in conversation events are still there.
    let subscription = service
        .create(
            &ctx,
            &create_request(&["InvoicePaid", "ConversationCreated"], json!({})),
        )
        .await
        .expect("host and built-in events are accepted");

    // The REST handler validates with the same rules.
    let body = serde_json::to_vec(&json!({
        "name": "Via REST", "url": "https://receiver.example/rest",
        "events": ["InvoiceOverdue"], "customHeaders": {"webhook-id": "x"}
    }))
    .unwrap();
    let response = webhooks
        .api()
        .handle(
            Ok(ctx),
            Request::post("/v1/webhooks")
                .body(Bytes::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(response.body()).contains("webhook-id"));

    // The worker signs with the same scheme, which verifies with the secret.
    let transport = recording_transport();
    let worker = webhooks.worker(transport.clone()).expect("a valid worker");
    let organization = Organization::new(ctx.organization_id, "Acme");
    let receipt = service
        .publish(
            &organization,
            Event::new("InvoicePaid", json!({"invoice": 7})),
        )
        .await
        .expect("published");
    assert_eq!(receipt.enqueued, 1);
    let report = worker.run_once().await.expect("worker ran");
    assert_eq!(report.delivered, 1);

    let sent = transport.sent();
    let request = sent.first().expect("one request sent");
    assert!(request.headers.contains_key("webhook-signature"));
    assert!(!request.headers.contains_key("x-webhook-signature"));
    scheme
        .verify(
            std::slice::from_ref(&subscription.secret_key),
            &request.headers,
            &request.body,
            chrono::Utc::now(),
            DEFAULT_TOLERANCE,
        )
        .expect("the delivery verifies with the subscription's secret");
}

#[tokio::test]
async fn invalid_host_event_names_are_refused_at_build() {
    let err = Webhooks::builder(Arc::new(MemoryStore::new()))
        .events(["Invoice Paid"])
        .build()
        .expect_err("a name with a space");
    assert!(
        matches!(&err, Error::InvalidConfiguration(m) if m.contains("Invoice Paid")),
        "{err:?}"
    );
    let err = Webhooks::builder(Arc::new(MemoryStore::new()))
        .events(["ConversationCreated"])
        .build()
        .expect_err("a name already in the catalogue");
    assert!(
        matches!(&err, Error::InvalidConfiguration(m) if m.contains("listed twice")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_worker_waits_as_long_as_the_configured_transport_timeout() {
    let transport = recording_transport();
    assert!(DEFAULT_TRANSPORT_TIMEOUT < Duration::from_secs(60));
    // The default lease (60 s) cannot outlast a 2-minute attempt: the worker
    // refuses it, which shows it got the engine's timeout.
    let webhooks = Webhooks::builder(Arc::new(MemoryStore::new()))
        .transport_timeout(Duration::from_secs(120))
        .build()
        .expect("a valid configuration");
    let err = webhooks
        .worker(transport.clone())
        .expect_err("lease shorter than the transport timeout");
    assert!(
        matches!(&err, Error::InvalidConfiguration(m) if m.contains("120s")),
        "{err:?}"
    );
    // Settings of the worker's own are set on its builder.
    webhooks
        .worker_builder(transport)
        .lease_duration(Duration::from_secs(130))
        .build()
        .expect("a lease that outlasts the timeout");
    assert_eq!(webhooks.transport_timeout(), Duration::from_secs(120));
}

#[tokio::test]
async fn zero_transport_timeout_and_bad_base_paths_are_refused_at_build() {
    let store = Arc::new(MemoryStore::new());
    let err = Webhooks::builder(store.clone())
        .transport_timeout(Duration::ZERO)
        .build()
        .expect_err("zero timeout");
    assert!(matches!(err, Error::InvalidConfiguration(_)), "{err:?}");
    let err = Webhooks::builder(store)
        .base_path("no-slash")
        .build()
        .expect_err("a base path without a leading slash");
    assert!(matches!(err, Error::InvalidConfiguration(_)), "{err:?}");
}

#[cfg(feature = "http-client")]
#[test]
fn the_http_transport_gets_the_configured_timeout() {
    let webhooks = Webhooks::builder(Arc::new(MemoryStore::new()))
        .transport_timeout(Duration::from_secs(7))
        .build()
        .expect("a valid configuration");
    let transport = webhooks
        .http_transport_builder()
        .build()
        .expect("a transport");
    assert_eq!(transport.timeout(), Duration::from_secs(7));
}

#[test]
fn a_host_catalogue_replaces_the_built_in_one_and_events_add_to_it() {
    let catalogue = EventCatalogue::new(["InvoicePaid"]).unwrap();
    let webhooks = Webhooks::builder(Arc::new(MemoryStore::new()))
        .catalogue(catalogue)
        .events(["InvoiceOverdue"])
        .build()
        .expect("a valid configuration");
    let names: Vec<&str> = webhooks.service().catalogue().names().collect();
    assert_eq!(names, ["InvoicePaid", "InvoiceOverdue"]);
}

#[tokio::test]
async fn the_address_policy_is_configured_once_for_validation() {
    let ctx = RequestContext::new(OrganizationId::new_v4(), UserId::new_v4());
    let loopback_target: CreateWebhookSubscription = serde_json::from_value(json!({
        "name": "Local", "url": "http://127.0.0.1:9/hooks", "events": ["ConversationCreated"],
    }))
    .expect("a well-formed create request");

    let guarded = Webhooks::builder(Arc::new(MemoryStore::new()))
        .build()
        .expect("a valid configuration");
    let refused = guarded.service().create(&ctx, &loopback_target).await;
    assert!(
        matches!(&refused, Err(Error::Validation { .. })),
        "the default policy refuses a loopback target: {refused:?}"
    );

    let loopback = IpNetwork::new(Ipv4Addr::LOCALHOST.into(), 32).expect("a network");
    let allowing = Webhooks::builder(Arc::new(MemoryStore::new()))
        .address_policy(AddressPolicy::default().allow_network(loopback))
        .build()
        .expect("a valid configuration");
    let created = allowing.service().create(&ctx, &loopback_target).await;
    assert!(created.is_ok(), "the allowing policy takes it: {created:?}");
}
