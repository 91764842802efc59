//! Retention under a receiver that never heals: with the worker pruning,
//! a `MemoryStore` holds a bounded number of failed deliveries, log entries
//! and event ids however long the failures go on (simulated time).
#![cfg(feature = "runtime-tokio")]

mod delivery_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use delivery_support::Harness;
use http::{HeaderMap, StatusCode};
use webhook_subscriptions::storage::DEFAULT_LOG_CAP;
use webhook_subscriptions::transport::{from_fn, TransportResponse};

const EVENTS_PER_HOUR: usize = 5;
const RETENTION_DAYS: usize = 1;
const DAYS: usize = 8;

#[tokio::test]
async fn memory_stays_bounded_under_a_receiver_answering_500_forever() {
    let h = Harness::new();
    h.subscribe().await;
    let always_500 = from_fn(|_request: http::Request<Bytes>| async {
        Ok(TransportResponse::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            HeaderMap::new(),
            Bytes::from_static(b"still down"),
        ))
    });
    let worker = h
        .worker_builder_with(Arc::new(always_500))
        .retention(Duration::from_secs(RETENTION_DAYS as u64 * 24 * 3600))
        .build()
        .unwrap();

    // Deliveries fail for good about 32 hours after publishing (the default
    // schedule); the retention then keeps them a day, the dedup window keeps
    // ids a day. Everything published over three days bounds what is held.
    let bound = EVENTS_PER_HOUR * 24 * (RETENTION_DAYS + 2);
    let mut pruned = 0;
    let mut peak_failed = 0;
    for _hour in 0..DAYS * 24 {
        for _ in 0..EVENTS_PER_HOUR {
            h.publish_note().await;
        }
        // Everything due now is attempted.
        while worker.run_once().await.unwrap().claimed > 0 {}
        pruned += worker.prune().await.unwrap();
        let stats = h.store.stats();
        peak_failed = peak_failed.max(stats.failed_deliveries);
        assert!(
            stats.failed_deliveries <= bound,
            "{} failed deliveries held, more than {bound}",
            stats.failed_deliveries
        );
        assert!(
            stats.event_ids <= bound,
            "{} event ids held",
            stats.event_ids
        );
        assert!(
            stats.log_entries <= DEFAULT_LOG_CAP,
            "{} log entries",
            stats.log_entries
        );
        h.advance_secs(3600);
    }
    assert!(pruned > 0, "retention removed failed deliveries");
    assert!(
        peak_failed > 0,
        "deliveries failed for good and were kept for a while"
    );
}
