//! The background loop: draining the queue, picking up new events, the
//! worker's own transport timeout, and graceful shutdown.
#![cfg(feature = "runtime-tokio")]

mod delivery_support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::TimeDelta;
use delivery_support::{Harness, EVENT};
use http::{HeaderMap, Request, StatusCode};
use tokio::sync::{mpsc, oneshot, Semaphore};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::transport::{from_fn, Transport, TransportError, TransportResponse};
use webhook_subscriptions::Clock;

/// Waits (in bounded steps of tokio time) until `done` holds.
async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached");
}

fn shutdown_signal() -> (oneshot::Sender<()>, impl std::future::Future<Output = ()>) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

#[tokio::test(start_paused = true)]
async fn run_drains_the_queue_with_bounded_concurrency_and_stops_on_shutdown() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    for _ in 0..7 {
        h.publish_note().await;
        h.transport.respond(200, &[], b"");
    }
    let worker = h
        .worker_builder()
        .concurrency(2)
        .batch_size(2)
        .build()
        .unwrap();
    let (stop, shutdown) = shutdown_signal();
    let running = tokio::spawn(worker.run(shutdown));

    let transport = h.transport.clone();
    wait_until(|| transport.sent().len() == 7).await;
    stop.send(()).unwrap();
    let report = running.await.unwrap();
    assert_eq!((report.claimed, report.delivered), (7, 7));
    assert_eq!(h.attempts(&sub).await.len(), 7);
}

#[tokio::test(start_paused = true)]
async fn run_picks_up_events_published_while_it_waits() {
    let h = Harness::new();
    h.subscribe().await;
    let (stop, shutdown) = shutdown_signal();
    let running = tokio::spawn(h.worker().run(shutdown));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.transport.sent().is_empty());

    h.transport.respond(500, &[], b"");
    h.transport.respond(200, &[], b"");
    h.publish_note().await;
    let transport = h.transport.clone();
    wait_until(|| transport.sent().len() == 1).await;
    // The retry is due 5 s later on the worker's clock.
    h.advance_secs(5);
    wait_until(|| transport.sent().len() == 2).await;

    stop.send(()).unwrap();
    let report = running.await.unwrap();
    assert_eq!((report.retrying, report.delivered), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn the_worker_enforces_the_transport_timeout() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    let silent = from_fn(|_request: Request<Bytes>| {
        std::future::pending::<Result<TransportResponse, TransportError>>()
    });
    let worker = h
        .worker_builder_with(Arc::new(silent))
        .transport_timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let report = worker.run_once().await.unwrap();
    assert_eq!(report.retrying, 1);
    let attempts = h.attempts(&sub).await;
    assert_eq!(attempts[0].detail.response_code, 0);
    assert_eq!(
        attempts[0].detail.response_text,
        "timeout: no response within 10s"
    );
}

/// Reports each request as it starts, then holds it until the test lets one through.
#[derive(Debug)]
struct GatedTransport {
    started: mpsc::UnboundedSender<()>,
    gate: Semaphore,
}

#[async_trait]
impl Transport for GatedTransport {
    async fn send(&self, _request: Request<Bytes>) -> Result<TransportResponse, TransportError> {
        let _ = self.started.send(());
        let permit = self.gate.acquire().await;
        permit
            .map_err(|_| TransportError::Other("gate closed".into()))?
            .forget();
        Ok(TransportResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::new(),
        ))
    }
}

#[tokio::test]
async fn shutdown_lets_the_attempt_in_flight_finish_and_leaves_the_rest_claimable() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    let first = h.publish_note().await;
    let second = h.publish_note().await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let transport = Arc::new(GatedTransport {
        started: started_tx,
        gate: Semaphore::new(0),
    });
    let worker = h
        .worker_builder_with(transport.clone())
        .concurrency(1)
        .build()
        .unwrap();
    let (stop, shutdown) = shutdown_signal();
    let running = tokio::spawn(worker.run(shutdown));

    started.recv().await.unwrap();
    stop.send(()).unwrap();
    transport.gate.add_permits(1);
    let report = running.await.unwrap();

    assert_eq!((report.claimed, report.delivered), (1, 1));
    let attempts = h.attempts(&sub).await;
    assert_eq!(attempts.len(), 1, "the attempt in flight was recorded");
    assert!(attempts[0].detail.success);
    // Nothing is left leased: the sent delivery is done, the other one can be claimed now.
    let left = h
        .store
        .claim_deliveries(h.clock.now(), TimeDelta::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    let delivered = attempts[0].event_id;
    assert!(delivered == first.event_id || delivered == second.event_id);
    assert_ne!(left[0].delivery.event_id, delivered);
}

#[tokio::test]
async fn claims_not_yet_sent_at_shutdown_are_released() {
    let h = Harness::new();
    h.subscribe().await;
    for _ in 0..3 {
        h.publish_note().await;
    }
    // Shutdown is already due: the loop claims once, then stops before any
    // claimed delivery has started (this is a single-threaded runtime).
    let report = h.worker().run(std::future::ready(())).await;
    assert_eq!((report.claimed, report.released), (3, 3));
    assert!(h.transport.sent().is_empty());
    let again = h
        .store
        .claim_deliveries(h.clock.now(), TimeDelta::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 3, "released claims are claimable at once");
    assert!(again.iter().all(|c| c.delivery.attempts == 0));
    assert_eq!(again[0].delivery.event_name, EVENT);
}

#[tokio::test]
async fn run_never_sends_more_than_concurrency_attempts_at_once() {
    let h = Harness::new();
    let sub = h.subscribe().await;
    for _ in 0..5 {
        h.publish_note().await;
    }
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let transport = Arc::new(GatedTransport {
        started: started_tx,
        gate: Semaphore::new(0),
    });
    let worker = h
        .worker_builder_with(transport.clone())
        .concurrency(2)
        .poll_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    let (stop, shutdown) = shutdown_signal();
    let running = tokio::spawn(worker.run(shutdown));

    for _ in 0..2 {
        started.recv().await.unwrap();
    }
    // Both slots are taken: no third attempt starts, however long we wait.
    let third = tokio::time::timeout(Duration::from_millis(300), started.recv()).await;
    assert!(third.is_err(), "a third attempt started with two in flight");
    // Each response frees one slot for one more attempt.
    transport.gate.add_permits(1);
    started.recv().await.unwrap();
    let fourth = tokio::time::timeout(Duration::from_millis(300), started.recv()).await;
    assert!(fourth.is_err(), "one freed slot let two attempts start");

    // Two attempts are held now; let them and the last two through.
    transport.gate.add_permits(4);
    for _ in 0..2 {
        started.recv().await.unwrap();
    }
    for _ in 0..200 {
        if h.attempts(&sub).await.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    let report = running.await.unwrap();
    assert_eq!((report.claimed, report.delivered), (5, 5));
    assert_eq!(h.store.stats().pending_deliveries, 0);
}
