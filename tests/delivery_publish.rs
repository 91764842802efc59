//! `publish` against a store: fan-out counts, generated ids, refusals that
//! enqueue nothing.
#![cfg(feature = "runtime-tokio")]

mod delivery_support;

use chrono::TimeDelta;
use delivery_support::{subscription, Harness, EVENT};
use serde_json::{json, Value};
use webhook_subscriptions::delivery::{publish, PublishLimits};
use webhook_subscriptions::model::{Event, EventCatalogue};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::{Clock, Error};

#[tokio::test]
async fn publish_fans_out_to_every_wanting_subscription_with_one_event_id() {
    let h = Harness::new();
    h.add(subscription("https://one.example/hook", &[EVENT], true))
        .await;
    h.add(subscription(
        "https://two.example/hook",
        &["ConversationCreated", EVENT],
        true,
    ))
    .await;
    let receipt = h.publish(Event::new(EVENT, json!({"text": "hi"}))).await;
    assert_eq!(receipt.enqueued, 2);
    assert_eq!(receipt.event_id.as_uuid().get_version_num(), 4);

    h.transport.respond(200, &[], b"");
    h.transport.respond(200, &[], b"");
    h.worker().run_once().await.unwrap();
    let sent = h.transport.sent();
    assert_eq!(sent.len(), 2);
    for request in &sent {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["event_id"], receipt.event_id.to_string());
        assert_eq!(body["data"], json!({"text": "hi"}));
        assert_eq!(body["organization"]["name"], "Test Org");
    }
    assert_eq!(sent[0].body, sent[1].body, "serialized once for everyone");
}

#[tokio::test]
async fn refused_events_enqueue_nothing() {
    let h = Harness::new();
    h.subscribe().await;
    let refusals = [
        Event::new("NoSuchEvent", json!({})),
        Event::new(EVENT, json!(["not", "an", "object"])),
        Event::new(EVENT, json!({"pad": "x".repeat(300 * 1024)})),
    ];
    for event in refusals {
        let result = publish(
            &*h.store,
            &h.clock,
            &EventCatalogue::default(),
            &PublishLimits::default(),
            &h.organization,
            event,
        )
        .await;
        assert!(matches!(result, Err(Error::InvalidEvent(_))), "{result:?}");
    }
    let claimed = h
        .store
        .claim_deliveries(h.clock.now(), TimeDelta::seconds(60), 10)
        .await
        .unwrap();
    assert!(claimed.is_empty());
}
