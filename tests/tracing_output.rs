//! What the worker and the REST handler log through `tracing`: a failed
//! attempt gives one line with the subscription id and the status, no log
//! line or span ever carries the signing secret or a custom header's value,
//! and API requests are logged with their route template and status.
#![cfg(feature = "runtime-tokio")]

mod delivery_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use delivery_support::{secret, Harness};
use tracing_subscriber::fmt::MakeWriter;
use webhook_subscriptions::api::ApiHandler;
use webhook_subscriptions::model::{OrganizationId, SubscriptionId, UserId};
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::{RequestContext, WebhookService};

/// Collects everything a `fmt` subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs `body` with every level logged (spans entered and closed too) into
/// the returned capture; the test runtime is single-threaded, so the
/// worker's tasks log there as well.
fn capture(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(level)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn a_failed_attempt_logs_one_warning_with_ids_and_status() {
    let (captured, _guard) = capture(tracing::Level::INFO);
    let h = Harness::new();
    let sub = h.subscribe().await;
    let receipt = h.publish_note().await;
    h.transport.respond(500, &[], b"receiver body");

    h.worker().run_once().await.unwrap();

    let text = captured.text();
    let failures: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("webhook attempt failed"))
        .collect();
    assert_eq!(failures.len(), 1, "one line per failed attempt:\n{text}");
    let line = failures[0];
    assert!(line.contains(" WARN "), "{line}");
    assert!(
        line.contains(&format!("subscription_id={}", sub.id)),
        "{line}"
    );
    assert!(
        line.contains(&format!("event_id={}", receipt.event_id)),
        "{line}"
    );
    assert!(line.contains("status=500"), "{line}");
    assert!(line.contains("attempt=1"), "{line}");
}

#[tokio::test]
async fn no_log_or_span_carries_the_secret_or_header_values() {
    let (captured, _guard) = capture(tracing::Level::TRACE);
    let h = Harness::new();
    let sub = h.subscribe().await;
    h.publish_note().await;
    h.transport.respond(500, &[], b"receiver body");
    h.transport.status(410);
    let worker = h.worker();

    worker.run_once().await.unwrap();
    h.advance_secs(5);
    worker.run_once().await.unwrap();

    let text = captured.text();
    assert!(
        text.contains(&format!("subscription_id={}", sub.id)),
        "the attempt span must be logged at trace level:\n{text}"
    );
    assert!(text.contains("webhook subscription disabled"), "{text}");
    let secret_hex = secret().to_hex();
    for (value, what) in [
        (
            sub.headers["Authorization"].as_str(),
            "the Authorization value",
        ),
        (sub.headers["X-Custom"].as_str(), "a custom header value"),
        (secret_hex.as_str(), "the secret key"),
        ("receiver body", "the receiver's body"),
    ] {
        assert!(
            !text.contains(value),
            "{what} leaked into the logs:\n{text}"
        );
    }
}

#[tokio::test]
async fn an_api_request_is_logged_with_its_route_template_and_status() {
    let (captured, _guard) = capture(tracing::Level::DEBUG);
    let service = WebhookService::builder(Arc::new(MemoryStore::new())).build();
    let api = ApiHandler::new(service);
    let ctx = RequestContext::new(OrganizationId::new_v4(), UserId::new_v4());
    let missing = SubscriptionId::new_v4();
    let request = http::Request::get(format!("/v1/webhooks/{missing}"))
        .body(Bytes::new())
        .unwrap();

    let response = api.handle(Ok(ctx), request).await;

    assert_eq!(response.status(), 404);
    let text = captured.text();
    let served: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("webhook api request served"))
        .collect();
    assert_eq!(served.len(), 1, "one line per request:\n{text}");
    let line = served[0];
    assert!(line.contains("method=GET"), "{line}");
    assert!(
        line.contains("route=/v1/webhooks/{webhookSubscriptionId}"),
        "{line}"
    );
    assert!(line.contains("status=404"), "{line}");
    assert!(
        !text.contains(&missing.to_string()),
        "the raw path is not logged:\n{text}"
    );
}
