//! The metrics the worker and publishing record (feature `metrics`), read
//! back through the Prometheus exporter installed as the global recorder.
//! One test: the recorder is process-wide.
#![cfg(all(feature = "runtime-tokio", feature = "metrics"))]

mod delivery_support;

use std::time::Duration;

use delivery_support::Harness;
use metrics_exporter_prometheus::PrometheusBuilder;

/// The value of the sample `series` (name and labels) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn attempts_publishes_and_the_queue_are_measured() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).unwrap();
    webhook_subscriptions::delivery::metrics::describe();

    let h = Harness::new();
    h.subscribe().await;
    for _ in 0..3 {
        h.publish_note().await;
    }
    h.transport.status(200);
    h.transport.status(200);
    h.transport.status(500);
    let report = h.worker().run_once().await.unwrap();
    assert_eq!((report.delivered, report.retrying), (2, 1));

    let text = handle.render();
    assert_eq!(
        sample(&text, r#"webhook_attempts_total{outcome="success"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"webhook_attempts_total{outcome="failure"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "webhook_attempt_duration_seconds_count"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "webhook_events_published_total"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "webhook_deliveries_enqueued_total"),
        Some(3.0),
        "{text}"
    );
    assert!(text.contains("# HELP webhook_attempts_total"), "{text}");

    // The retry is due 5 s after the failure; 30 s later it has waited 30 s.
    h.advance_secs(35);
    h.transport.status(200);
    let worker = h
        .worker_builder()
        .queue_stats_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    for _ in 0..1000 {
        if h.transport.sent().len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    assert_eq!(running.await.unwrap().delivered, 1);

    // Sampled when the worker started, before it claimed the retry.
    let text = handle.render();
    assert_eq!(sample(&text, "webhook_queue_due"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "webhook_queue_oldest_due_seconds"),
        Some(30.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"webhook_attempts_total{outcome="success"}"#),
        Some(3.0),
        "{text}"
    );
}
