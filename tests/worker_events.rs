//! The worker's event hook (`WorkerBuilder::on_event`): which events an
//! attempt, a failure for good, a `410 Gone`, a delivery not sent, a store
//! error and a lost lease produce, with the ids they carry.
#![cfg(feature = "runtime-tokio")]

mod delivery_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use delivery_support::{Harness, EVENT};
use http::{HeaderMap, StatusCode};
use webhook_subscriptions::delivery::{
    CircuitBreaker, DisableReason, FailureReason, Outcome, RetryPolicy, StoreOperation, WorkerEvent,
};
use webhook_subscriptions::model::{
    DeliveryDetail, DeliveryId, OrganizationId, SubscriptionChange, SubscriptionId,
    WebhookSubscription,
};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::storage::{
    AttemptLog, ClaimLimits, ClaimedDelivery, Delivery, EndpointHealth, LeaseOutcome, NewEvent,
    NextStep, Recorded,
};
use webhook_subscriptions::storage::{
    Error as StoreError, ErrorKind, FailedSelection, MemoryStore, QueueStats, Result as StoreResult,
};
use webhook_subscriptions::transport::{from_fn, TransportResponse};
use webhook_subscriptions::Clock;

/// An owned copy of what a hook saw, so tests can compare after the run.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Attempt {
        subscription: SubscriptionId,
        event_name: String,
        attempt: u32,
        outcome: Outcome,
        status: Option<StatusCode>,
        next: NextStep,
    },
    Failed {
        delivery: DeliveryId,
        reason: FailureReason,
    },
    Disabled {
        organization: OrganizationId,
        subscription: SubscriptionId,
        reason: DisableReason,
    },
    StoreError(StoreOperation),
    LeaseLost(DeliveryId),
    CircuitOpened {
        subscription: SubscriptionId,
        until: DateTime<Utc>,
        failure_streak: u32,
    },
    CircuitClosed(SubscriptionId),
}

/// A hook that keeps every event it is given.
fn recorder() -> (
    Arc<Mutex<Vec<Seen>>>,
    impl Fn(&WorkerEvent<'_>) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let hook = move |event: &WorkerEvent<'_>| {
        let copy = match *event {
            WorkerEvent::AttemptFinished {
                delivery,
                outcome,
                status,
                next,
                ..
            } => Seen::Attempt {
                subscription: delivery.subscription_id,
                event_name: delivery.event_name.to_owned(),
                attempt: delivery.attempt,
                outcome,
                status,
                next,
            },
            WorkerEvent::DeliveryFailed {
                delivery, reason, ..
            } => Seen::Failed {
                delivery: delivery.delivery_id,
                reason,
            },
            WorkerEvent::SubscriptionDisabled {
                organization_id,
                subscription_id,
                reason,
                ..
            } => Seen::Disabled {
                organization: organization_id,
                subscription: subscription_id,
                reason,
            },
            WorkerEvent::StoreError { operation, .. } => Seen::StoreError(operation),
            WorkerEvent::LeaseLost { delivery, .. } => Seen::LeaseLost(delivery.delivery_id),
            WorkerEvent::CircuitOpened {
                subscription_id,
                until,
                failure_streak,
                ..
            } => Seen::CircuitOpened {
                subscription: subscription_id,
                until,
                failure_streak,
            },
            WorkerEvent::CircuitClosed {
                subscription_id, ..
            } => Seen::CircuitClosed(subscription_id),
            _ => return,
        };
        sink.lock().unwrap().push(copy);
    };
    (seen, hook)
}

fn seen(events: &Mutex<Vec<Seen>>) -> Vec<Seen> {
    events.lock().unwrap().clone()
}

#[tokio::test]
async fn a_delivered_attempt_is_reported_with_its_ids_status_and_latency() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    h.transport.respond(200, &[], b"");
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&latencies);
    let (events, record) = recorder();
    let worker = h
        .worker_builder()
        .on_event(move |event| {
            if let WorkerEvent::AttemptFinished {
                delivery, latency, ..
            } = event
            {
                sink.lock()
                    .unwrap()
                    .push((delivery.organization_id, *latency));
            }
            record(event);
        })
        .build()
        .unwrap();

    worker.run_once().await.unwrap();

    assert_eq!(
        seen(&events),
        vec![Seen::Attempt {
            subscription: sub.id,
            event_name: EVENT.to_owned(),
            attempt: 1,
            outcome: Outcome::Success,
            status: Some(StatusCode::OK),
            next: NextStep::Complete,
        }]
    );
    let latencies = latencies.lock().unwrap();
    assert_eq!(latencies.len(), 1);
    assert_eq!(latencies[0].0, h.organization.id);
    assert!(
        latencies[0].1 < Duration::from_secs(60),
        "latency is the time the attempt took, not a clock reading"
    );
}

#[tokio::test]
async fn retries_then_a_failure_for_good_are_reported_in_order() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    h.transport.respond(500, &[], b"boom");
    h.transport.respond(500, &[], b"boom again");
    let (events, hook) = recorder();
    let policy = RetryPolicy::new(vec![Duration::from_secs(5)], 0.0).unwrap();
    let worker = h
        .worker_builder()
        .retry_policy(policy)
        .on_event(hook)
        .build()
        .unwrap();

    worker.run_once().await.unwrap();
    h.advance_secs(5);
    let report = worker.run_once().await.unwrap();
    assert_eq!(report.failed, 1);

    let failed = h
        .store
        .failed_deliveries(h.organization.id, sub.id, 10)
        .await
        .unwrap();
    let events = seen(&events);
    let Seen::Attempt { next: first, .. } = &events[0] else {
        panic!("the first event must be the first attempt, got {events:?}");
    };
    assert!(matches!(first, NextStep::Retry { .. }), "{first:?}");
    assert_eq!(
        events[1..],
        [
            Seen::Attempt {
                subscription: sub.id,
                event_name: EVENT.to_owned(),
                attempt: 2,
                outcome: Outcome::Retryable,
                status: Some(StatusCode::INTERNAL_SERVER_ERROR),
                next: NextStep::Fail,
            },
            Seen::Failed {
                delivery: failed[0].id,
                reason: FailureReason::RetriesExhausted,
            },
        ]
    );
}

#[tokio::test]
async fn a_410_reports_the_failed_delivery_and_the_disabled_subscription() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    h.transport.status(410);
    let (events, hook) = recorder();
    let worker = h.worker_builder().on_event(hook).build().unwrap();

    worker.run_once().await.unwrap();

    let events = seen(&events);
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        matches!(
            events[0],
            Seen::Attempt {
                outcome: Outcome::Gone,
                next: NextStep::FailAndDisable,
                ..
            }
        ),
        "{events:?}"
    );
    assert!(matches!(
        events[1],
        Seen::Failed {
            reason: FailureReason::Gone,
            ..
        }
    ));
    assert_eq!(
        events[2],
        Seen::Disabled {
            organization: h.organization.id,
            subscription: sub.id,
            reason: DisableReason::Gone,
        }
    );
}

#[tokio::test]
async fn a_delivery_not_sent_is_reported_failed_without_an_attempt() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    h.disable(&sub).await;
    let (events, hook) = recorder();
    let worker = h.worker_builder().on_event(hook).build().unwrap();

    assert_eq!(worker.run_once().await.unwrap().skipped, 1);

    let events = seen(&events);
    assert!(
        matches!(
            events[..],
            [Seen::Failed {
                reason: FailureReason::NotSent,
                ..
            }]
        ),
        "{events:?}"
    );
    assert!(h.transport.sent().is_empty());
}

#[tokio::test]
async fn store_errors_are_reported_with_the_failing_call() {
    let h = Harness::new();
    h.subscribe().await;
    h.publish_note().await;
    h.transport.status(200);
    let store = Arc::new(FailingRecords(h.store.clone()));
    let (events, hook) = recorder();
    let worker = webhook_subscriptions::delivery::Worker::builder(store, h.transport.clone())
        .clock(Arc::new(h.clock.clone()))
        .on_event(hook)
        .build()
        .unwrap();

    let report = worker.run_once().await.unwrap();

    assert_eq!(report.errors, 1);
    let events = seen(&events);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[0], Seen::Attempt { .. }), "{events:?}");
    assert_eq!(events[1], Seen::StoreError(StoreOperation::RecordAttempt));
}

#[tokio::test]
async fn a_lease_taken_over_during_the_attempt_is_reported_lost() {
    let h = Harness::new();
    h.subscribe().await;
    h.publish_note().await;
    let lease = Duration::from_secs(60);
    // While the receiver answers, the lease runs out and another worker
    // claims the delivery.
    let taken_over = Arc::new(Mutex::new(Vec::new()));
    let (store, clock, taken) = (h.store.clone(), h.clock.clone(), taken_over.clone());
    let transport = from_fn(move |_request| {
        let (store, clock, taken) = (store.clone(), clock.clone(), taken.clone());
        async move {
            clock.advance(chrono::Duration::seconds(61));
            let lease = chrono::Duration::seconds(60);
            let claims = store
                .claim_deliveries(clock.now(), lease, 10)
                .await
                .unwrap();
            let mut taken = taken.lock().unwrap();
            taken.extend(claims.iter().map(|claim| claim.delivery.id));
            Ok(TransportResponse::new(
                StatusCode::OK,
                HeaderMap::new(),
                Bytes::new(),
            ))
        }
    });
    let (events, hook) = recorder();
    let worker = h
        .worker_builder_with(Arc::new(transport))
        .lease_duration(lease)
        .on_event(hook)
        .build()
        .unwrap();

    let report = worker.run_once().await.unwrap();

    assert_eq!(report.lease_lost, 1);
    let events = seen(&events);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[0], Seen::Attempt { .. }), "{events:?}");
    let taken = taken_over.lock().unwrap().clone();
    assert_eq!(taken.len(), 1, "the expired lease was claimed again");
    assert_eq!(events[1], Seen::LeaseLost(taken[0]));
}

/// A memory store whose `record_attempt` always fails.
#[derive(Debug)]
struct FailingRecords(Arc<MemoryStore>);

#[async_trait]
impl SubscriptionStore for FailingRecords {
    async fn insert_subscription(
        &self,
        organization: OrganizationId,
        subscription: &WebhookSubscription,
    ) -> StoreResult<()> {
        self.0.insert_subscription(organization, subscription).await
    }

    async fn get_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
    ) -> StoreResult<Option<WebhookSubscription>> {
        self.0.get_subscription(organization, id).await
    }

    async fn list_subscriptions(
        &self,
        organization: OrganizationId,
    ) -> StoreResult<Vec<WebhookSubscription>> {
        self.0.list_subscriptions(organization).await
    }

    async fn update_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
        change: &SubscriptionChange,
    ) -> StoreResult<Option<WebhookSubscription>> {
        self.0.update_subscription(organization, id, change).await
    }

    async fn delete_subscription(
        &self,
        organization: OrganizationId,
        id: SubscriptionId,
    ) -> StoreResult<bool> {
        self.0.delete_subscription(organization, id).await
    }
}

#[async_trait]
impl DeliveryQueue for FailingRecords {
    async fn enqueue_event(&self, event: &NewEvent) -> StoreResult<usize> {
        self.0.enqueue_event(event).await
    }

    async fn enqueue_deliveries(
        &self,
        event: &NewEvent,
        targets: &[SubscriptionId],
    ) -> StoreResult<Vec<DeliveryId>> {
        self.0.enqueue_deliveries(event, targets).await
    }

    async fn claim_deliveries_fairly(
        &self,
        now: DateTime<Utc>,
        lease_for: chrono::Duration,
        limits: ClaimLimits,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        self.0.claim_deliveries_fairly(now, lease_for, limits).await
    }

    async fn prune(&self, now: DateTime<Utc>, before: DateTime<Utc>) -> StoreResult<u64> {
        self.0.prune(now, before).await
    }

    async fn redeliver_failed(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        which: FailedSelection,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<usize> {
        self.0
            .redeliver_failed(organization, subscription, which, now, limit)
            .await
    }

    async fn enqueue_for_subscription(
        &self,
        event: &NewEvent,
        subscription: SubscriptionId,
    ) -> StoreResult<Option<DeliveryId>> {
        self.0.enqueue_for_subscription(event, subscription).await
    }

    async fn record_attempt_with_breaker(
        &self,
        _claim: &ClaimedDelivery,
        _detail: &DeliveryDetail,
        _next: NextStep,
        _breaker: Option<&CircuitBreaker>,
    ) -> StoreResult<Recorded> {
        Err(StoreError::new(
            "failing",
            ErrorKind::Unavailable,
            "the store is down",
        ))
    }

    async fn release(&self, claim: &ClaimedDelivery) -> StoreResult<LeaseOutcome> {
        self.0.release(claim).await
    }

    async fn failed_deliveries(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        self.0
            .failed_deliveries(organization, subscription, limit)
            .await
    }

    async fn redeliver(
        &self,
        organization: OrganizationId,
        delivery: DeliveryId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.0.redeliver(organization, delivery, now).await
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<QueueStats> {
        self.0.queue_stats(now).await
    }
}

#[async_trait]
impl AttemptHistory for FailingRecords {
    async fn endpoint_health(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
    ) -> StoreResult<Option<EndpointHealth>> {
        self.0.endpoint_health(organization, subscription).await
    }

    async fn list_attempts(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
        event: &str,
    ) -> StoreResult<Vec<AttemptLog>> {
        self.0
            .list_attempts(organization, subscription, event)
            .await
    }

    async fn latest_statuses(
        &self,
        organization: OrganizationId,
        subscription: SubscriptionId,
    ) -> StoreResult<Vec<(String, DeliveryDetail)>> {
        self.0.latest_statuses(organization, subscription).await
    }
}

/// Opens after 2 failures in a row for 60 s; disables after 1 hour.
fn quick_breaker() -> CircuitBreaker {
    CircuitBreaker::new(2, Duration::from_secs(60), Duration::from_secs(600))
        .and_then(|b| b.with_disable_after(Some(Duration::from_secs(3600))))
        .unwrap()
}

#[tokio::test]
async fn a_failing_endpoint_is_paused_without_spending_attempts_and_reported() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    for _ in 0..3 {
        h.publish_note().await;
    }
    let (events, record) = recorder();
    let worker = h
        .worker_builder()
        .circuit_breaker(quick_breaker())
        .max_in_flight_per_subscription(1)
        .on_event(record)
        .build()
        .unwrap();

    // Two failures in a row (one delivery at a time) open the circuit.
    for _ in 0..2 {
        h.transport.status(500);
        let report = worker.run_once().await.unwrap();
        assert_eq!(report.claimed, 1, "{report:?}");
    }
    let opened_at = h.clock.now();
    assert!(
        seen(&events).contains(&Seen::CircuitOpened {
            subscription: sub.id,
            until: opened_at + chrono::Duration::seconds(60),
            failure_streak: 2,
        }),
        "the hook hears that the circuit opened: {:?}",
        seen(&events)
    );

    // Paused: the third delivery is due but nothing is sent.
    h.advance_secs(30);
    let report = worker.run_once().await.unwrap();
    assert_eq!(
        report.claimed, 0,
        "a paused endpoint gets nothing: {report:?}"
    );
    assert_eq!(h.transport.sent().len(), 2, "no request while paused");

    // The cool-down over, one probe goes out; its success closes the circuit.
    h.advance_secs(31);
    h.transport.status(200);
    let report = worker.run_once().await.unwrap();
    assert_eq!(report.claimed, 1, "one probe: {report:?}");
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(seen(&events).last(), Some(&Seen::CircuitClosed(sub.id)));
    assert_eq!(
        h.store
            .endpoint_health(h.organization.id, sub.id)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn an_endpoint_failing_for_the_whole_window_is_disabled_and_reported() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    let (events, record) = recorder();
    let worker = h
        .worker_builder()
        .circuit_breaker(
            CircuitBreaker::never()
                .with_disable_after(Some(Duration::from_secs(3600)))
                .unwrap(),
        )
        .retry_policy(RetryPolicy::new(vec![Duration::from_secs(1800); 5], 0.0).unwrap())
        .on_event(record)
        .build()
        .unwrap();

    for _ in 0..3 {
        h.transport.status(500);
        worker.run_once().await.unwrap();
        h.advance_secs(1800);
    }
    let disabled = seen(&events)
        .into_iter()
        .find(|e| matches!(e, Seen::Disabled { .. }))
        .expect("the subscription is reported disabled");
    assert!(
        matches!(
            disabled,
            Seen::Disabled { subscription, reason: DisableReason::Failing { since, .. }, .. }
                if subscription == sub.id && since == delivery_support::start()
        ),
        "{disabled:?}"
    );
    let stored = h
        .store
        .get_subscription(h.organization.id, sub.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.enabled, "the subscription is disabled in the store");
}
