//! The worker driven by `run_once` on a manual clock with a scripted
//! transport: outcomes, retries, `Retry-After`, `410 Gone`, exhaustion and
//! manual redelivery.
#![cfg(feature = "runtime-tokio")]

mod delivery_support;

use std::time::Duration;

use chrono::TimeDelta;
use delivery_support::{subscription, Harness, EVENT};
use webhook_subscriptions::delivery::RetryPolicy;
use webhook_subscriptions::model::{DeliveryId, OrganizationId};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::transport::TransportError;
use webhook_subscriptions::Error;

#[tokio::test]
async fn a_2xx_answer_is_logged_as_success_and_completes_the_delivery() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    assert_eq!(h.publish_note().await.enqueued, 1);
    h.transport.respond(200, &[], b"");

    let report = h.worker().run_once().await.unwrap();
    assert_eq!((report.claimed, report.delivered), (1, 1));

    let attempts = h.attempts(&sub).await;
    assert_eq!(attempts.len(), 1);
    let detail = &attempts[0].detail;
    assert!(detail.success);
    assert_eq!(detail.response_code, 200);
    assert_eq!(detail.response_text, "OK");
    assert_eq!(detail.delivery_timestamp, delivery_support::start());
    assert_eq!(attempts[0].payload, h.transport.sent()[0].body);

    h.advance_secs(3600);
    let again = h.worker().run_once().await.unwrap();
    assert_eq!(again.claimed, 0, "a completed delivery is not sent again");
}

#[tokio::test]
async fn a_500_then_a_200_gives_two_log_entries_newest_first() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    h.transport.respond(500, &[], b"boom");
    h.transport.respond(200, &[], b"thanks");
    let worker = h.worker();

    let first = worker.run_once().await.unwrap();
    assert_eq!(first.retrying, 1);
    h.advance_secs(4);
    assert_eq!(
        worker.run_once().await.unwrap().claimed,
        0,
        "not due before 5 s"
    );
    h.advance_secs(1);
    assert_eq!(worker.run_once().await.unwrap().delivered, 1);

    let attempts = h.attempts(&sub).await;
    let codes: Vec<u16> = attempts.iter().map(|a| a.detail.response_code).collect();
    assert_eq!(codes, [200, 500]);
    assert_eq!(attempts[0].detail.response_text, "thanks");
    assert_eq!(attempts[1].detail.response_text, "boom");
    assert!(!attempts[1].detail.success);

    let statuses = h
        .store
        .latest_statuses(h.organization.id, sub.id)
        .await
        .unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].0, EVENT);
    assert!(statuses[0].1.success);
    assert_eq!(statuses[0].1.response_code, 200);
}

#[tokio::test]
async fn a_timeout_is_logged_with_code_zero_and_retried() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    h.transport.reply(Err(TransportError::Timeout(
        "no response within 15s".into(),
    )));

    let report = h.worker().run_once().await.unwrap();
    assert_eq!(report.retrying, 1);
    let attempts = h.attempts(&sub).await;
    assert_eq!(attempts[0].detail.response_code, 0);
    assert!(!attempts[0].detail.success);
    assert_eq!(
        attempts[0].detail.response_text,
        "timeout: no response within 15s"
    );
}

#[tokio::test]
async fn gone_disables_the_subscription_and_stops_retrying() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    h.transport.respond(410, &[], b"");
    let worker = h.worker();

    let report = worker.run_once().await.unwrap();
    assert_eq!(report.disabled, 1);
    let stored = h
        .store
        .get_subscription(h.organization.id, sub.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.enabled);
    let failed = h
        .store
        .failed_deliveries(h.organization.id, sub.id, 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);

    h.advance_secs(48 * 3600);
    assert_eq!(worker.run_once().await.unwrap().claimed, 0);
    assert_eq!(h.transport.sent().len(), 1);
    let attempts = h.attempts(&sub).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].detail.response_code, 410);
    assert_eq!(attempts[0].detail.response_text, "Gone");
}

/// Sends one 429 with `retry_after`, then checks the next attempt is due
/// exactly `expected_secs` later (not a second earlier).
async fn next_attempt_after_429(retry_after: impl Fn(&Harness) -> String, expected_secs: i64) {
    let h = Harness::new();
    h.subscribe().await;
    h.publish_note().await;
    h.transport
        .respond(429, &[("retry-after", &retry_after(&h))], b"slow down");
    h.transport.respond(200, &[], b"");
    let worker = h.worker();
    assert_eq!(worker.run_once().await.unwrap().retrying, 1);

    h.advance_secs(expected_secs - 1);
    assert_eq!(
        worker.run_once().await.unwrap().claimed,
        0,
        "due no earlier than {expected_secs} s"
    );
    h.advance_secs(1);
    assert_eq!(worker.run_once().await.unwrap().delivered, 1);
}

fn http_date(h: &Harness, secs: i64) -> String {
    use webhook_subscriptions::Clock;
    (h.clock.now() + TimeDelta::seconds(secs))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

#[tokio::test]
async fn retry_after_in_seconds_is_honoured_within_bounds() {
    // The first scheduled delay is 5 s: Retry-After may move it to 5..=10 s.
    next_attempt_after_429(|_| "7".to_owned(), 7).await;
}

#[tokio::test]
async fn retry_after_in_seconds_is_clamped_both_ways() {
    next_attempt_after_429(|_| "1".to_owned(), 5).await;
    next_attempt_after_429(|_| "86400".to_owned(), 10).await;
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured_and_clamped() {
    next_attempt_after_429(|h| http_date(h, 8), 8).await;
    next_attempt_after_429(|h| http_date(h, 2), 5).await;
    next_attempt_after_429(|h| http_date(h, 3600), 10).await;
}

#[tokio::test]
async fn exhausting_the_schedule_fails_then_manual_redelivery_succeeds() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    let receipt = h.publish_note().await;
    let worker = h.worker();

    // The default policy: 8 attempts, the longest wait 10 h.
    for attempt in 1..=8 {
        h.transport.respond(503, &[], b"");
        let report = worker.run_once().await.unwrap();
        assert_eq!(report.claimed, 1, "attempt {attempt}");
        h.advance_secs(11 * 3600);
    }
    assert_eq!(worker.run_once().await.unwrap().claimed, 0);
    assert_eq!(h.transport.sent().len(), 8);
    let failed = h
        .store
        .failed_deliveries(h.organization.id, sub.id, 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].event_id, receipt.event_id);

    worker
        .redeliver(h.organization.id, failed[0].id)
        .await
        .unwrap();
    h.transport.respond(200, &[], b"");
    assert_eq!(worker.run_once().await.unwrap().delivered, 1);
    let attempts = h.attempts(&sub).await;
    assert_eq!(attempts.len(), 9);
    assert!(attempts[0].detail.success);
    assert!(h
        .store
        .failed_deliveries(h.organization.id, sub.id, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_custom_schedule_fails_after_its_last_attempt() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    let policy =
        RetryPolicy::new(vec![Duration::from_secs(1), Duration::from_secs(2)], 0.0).unwrap();
    let worker = h.worker_builder().retry_policy(policy).build().unwrap();
    for _ in 0..3 {
        h.transport.respond(500, &[], b"");
    }
    assert_eq!(worker.run_once().await.unwrap().retrying, 1);
    h.advance_secs(1);
    assert_eq!(worker.run_once().await.unwrap().retrying, 1);
    h.advance_secs(2);
    assert_eq!(worker.run_once().await.unwrap().failed, 1);
    h.advance_secs(3600);
    assert_eq!(worker.run_once().await.unwrap().claimed, 0);
    assert_eq!(h.attempts(&sub).await.len(), 3);
}

#[tokio::test]
async fn redelivering_an_unknown_or_foreign_delivery_is_not_found() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    h.transport.respond(410, &[], b"");
    let worker = h.worker();
    worker.run_once().await.unwrap();
    let failed = h
        .store
        .failed_deliveries(h.organization.id, sub.id, 10)
        .await
        .unwrap();

    let other_org = OrganizationId::new_v4();
    assert!(matches!(
        worker.redeliver(other_org, failed[0].id).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        worker
            .redeliver(h.organization.id, DeliveryId::new_v4())
            .await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn disabled_unsubscribed_and_foreign_subscriptions_receive_nothing() {
    let h = Harness::new();
    let wanted = h
        .add(subscription("https://wanted.example/hook", &[EVENT], true))
        .await;
    h.add(subscription(
        "https://disabled.example/hook",
        &[EVENT],
        false,
    ))
    .await;
    h.add(subscription(
        "https://other-event.example/hook",
        &["ConversationCreated"],
        true,
    ))
    .await;
    h.add_in(
        OrganizationId::new_v4(),
        subscription("https://other-org.example/hook", &[EVENT], true),
    )
    .await;

    assert_eq!(h.publish_note().await.enqueued, 1);
    h.transport.respond(200, &[], b"");
    h.worker().run_once().await.unwrap();
    let sent = h.transport.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].uri, "https://wanted.example/hook");
    assert_eq!(h.attempts(&wanted).await.len(), 1);
}

#[tokio::test]
async fn a_subscription_disabled_after_publish_is_not_sent_to() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    h.disable(&sub).await;

    let report = h.worker().run_once().await.unwrap();
    assert_eq!(report.skipped, 1);
    assert!(h.transport.sent().is_empty());
    // Not dropped: failed with the reason, so it can be redelivered by hand.
    let attempts = h.attempts(&sub).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].detail.response_code, 0);
    assert_eq!(
        attempts[0].detail.response_text,
        "not sent: subscription is disabled"
    );
    let failed = h
        .store
        .failed_deliveries(h.organization.id, sub.id, 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
}

#[tokio::test]
async fn publishing_the_same_event_id_twice_enqueues_nothing_the_second_time() {
    let h = Harness::new();
    h.subscribe().await;
    let id = delivery_support::event_id("8967e0c6-fe64-4105-bf71-14ae0c256aa4");
    let event =
        webhook_subscriptions::model::Event::new(EVENT, serde_json::json!({"n": 1})).with_id(id);
    let first = h.publish(event.clone()).await;
    let second = h.publish(event).await;
    assert_eq!((first.enqueued, first.event_id), (1, id));
    assert_eq!((second.enqueued, second.event_id), (0, id));

    h.transport.respond(200, &[], b"");
    h.transport.respond(200, &[], b"");
    h.worker().run_once().await.unwrap();
    assert_eq!(h.transport.sent().len(), 1);
}

#[tokio::test]
async fn invalid_stored_headers_fail_the_attempt_without_sending() {
    let h = Harness::new();
    let mut bad = subscription("https://receiver.example/hook", &[EVENT], true);
    bad.headers
        .insert("X-Bad".to_owned(), "line\nbreak".to_owned());
    let bad = h.add(bad).await;
    let mut worse = subscription("https://receiver.example/other", &[EVENT], true);
    worse
        .headers
        .insert("not a token".to_owned(), "x".to_owned());
    let worse = h.add(worse).await;
    let mut reserved = subscription("https://receiver.example/third", &[EVENT], true);
    reserved
        .headers
        .insert("Content-Type".to_owned(), "text/plain".to_owned());
    let reserved = h.add(reserved).await;
    h.publish_note().await;

    let report = h.worker().run_once().await.unwrap();
    assert_eq!(report.retrying, 3);
    assert!(h.transport.sent().is_empty());
    for (sub, expected) in [
        (
            &bad,
            "request failed: header \"X-Bad\" has an invalid value",
        ),
        (
            &worse,
            "request failed: header name \"not a token\" is not a valid token",
        ),
        (
            &reserved,
            "request failed: header \"Content-Type\" is reserved or repeated",
        ),
    ] {
        let attempts = h.attempts(sub).await;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].detail.response_code, 0);
        assert_eq!(attempts[0].detail.response_text, expected);
    }
}

#[tokio::test]
async fn the_lease_must_outlast_the_transport_timeout() {
    let h = Harness::new();
    let refused = h
        .worker_builder()
        .transport_timeout(Duration::from_secs(30))
        .lease_duration(Duration::from_secs(34))
        .build();
    match refused {
        Err(Error::InvalidConfiguration(message)) => {
            assert!(
                message.contains("does not outlast the transport timeout"),
                "{message}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(h
        .worker_builder()
        .transport_timeout(Duration::from_secs(30))
        .lease_duration(Duration::from_secs(35))
        .build()
        .is_ok());
    // The defaults (60 s lease, 15 s timeout) are accepted.
    assert!(h.worker_builder().build().is_ok());
    assert!(h
        .worker_builder()
        .lease_duration(Duration::from_secs(19))
        .build()
        .is_err());
}

#[tokio::test]
async fn other_out_of_range_settings_are_refused() {
    let h = Harness::new();
    assert!(h.worker_builder().concurrency(0).build().is_err());
    if let Ok(too_many) = usize::try_from(u64::from(u32::MAX) + 1) {
        assert!(h.worker_builder().concurrency(too_many).build().is_err());
    }
    assert!(h.worker_builder().batch_size(0).build().is_err());
    assert!(h
        .worker_builder()
        .poll_interval(Duration::ZERO)
        .build()
        .is_err());
    assert!(h
        .worker_builder()
        .transport_timeout(Duration::ZERO)
        .build()
        .is_err());
}

#[tokio::test]
async fn fairness_and_retention_settings_out_of_range_are_refused() {
    let h = Harness::new();
    let refused = |result: Result<_, Error>, what: &str| match result {
        Err(Error::InvalidConfiguration(message)) => {
            assert!(message.contains(what), "{message}")
        }
        other => panic!("expected a refusal naming {what}, got {other:?}"),
    };
    refused(
        h.worker_builder().max_in_flight_per_subscription(0).build(),
        "max in flight per subscription",
    );
    refused(
        h.worker_builder()
            .maintenance_interval(Duration::ZERO)
            .build(),
        "maintenance interval",
    );
    refused(
        h.worker_builder().retention(Duration::MAX).build(),
        "retention",
    );
    assert!(h
        .worker_builder()
        .max_in_flight_per_subscription(1)
        .retention(Duration::from_secs(3600))
        .maintenance_interval(Duration::from_secs(60))
        .build()
        .is_ok());
}

#[tokio::test]
async fn a_subscription_gets_no_more_than_its_cap_per_run() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    for _ in 0..6 {
        h.publish_note().await;
    }
    for _ in 0..6 {
        h.transport.status(200);
    }
    let worker = h
        .worker_builder()
        .max_in_flight_per_subscription(2)
        .build()
        .unwrap();
    let report = worker.run_once().await.unwrap();
    assert_eq!(
        (report.claimed, report.delivered),
        (2, 2),
        "one run claims at most the cap of one subscription"
    );
    assert_eq!(h.attempts(&sub).await.len(), 2);
}
