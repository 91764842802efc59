//! The whole product in a few seconds, in memory: a receiver on 127.0.0.1,
//! a subscription with BasicAuth and a custom header, three published
//! events, a worker that delivers them (the receiver fails the first request,
//! so one retry shows), every signature verified, then the subscription, its
//! statuses and its logs as the REST API shows them.
//!
//! One `Webhooks` builder configures the whole engine once: the address
//! policy the API validates URLs with is the one the HTTP transport connects
//! with, and the worker signs with the scheme the API reserves headers for.
//!
//! Run with `cargo run --example quickstart`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use webhook_subscriptions::delivery::RetryPolicy;
use webhook_subscriptions::model::{
    CreateWebhookSubscription, DataEnvelope, Event, Organization, OrganizationId, UserId,
};
use webhook_subscriptions::signature::DEFAULT_TOLERANCE;
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::transport::{AddressPolicy, IpNetwork};
use webhook_subscriptions::{Clock, RequestContext, SystemClock, Webhooks};

/// What the receiver saw: headers and body of every request.
type Received = Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A receiver on loopback that fails its first request.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let receiver_url = format!("http://{}/hooks", listener.local_addr()?);
    let received: Received = Arc::default();
    tokio::spawn(serve(listener, received.clone()));

    // 2. The engine, on the in-memory store. The SSRF guard stays on; only
    //    the loopback receiver of this example is allowed, both when a URL is
    //    validated and when a delivery connects.
    let address_policy = AddressPolicy::default()
        .allow_network(IpNetwork::new(std::net::Ipv4Addr::LOCALHOST.into(), 32)?);
    let webhooks = Webhooks::builder(Arc::new(MemoryStore::new()))
        .address_policy(address_policy)
        .transport_timeout(Duration::from_secs(5))
        .build()?;
    let service = webhooks.service();
    let ctx = RequestContext::new(OrganizationId::new_v4(), UserId::new_v4());
    let request: CreateWebhookSubscription = serde_json::from_value(json!({
        "name": "Quickstart receiver",
        "url": receiver_url,
        "events": ["ConversationCreated", "ConversationNoteAdded", "ConversationClosed"],
        "authorization": {"_type": "BasicAuth", "username": "hook", "password": "s3cret"},
        "customHeaders": {"X-Tenant": "acme"}
    }))?;
    let subscription = service.create(&ctx, &request).await?;

    // 3. Publish three events.
    let organization = Organization::new(ctx.organization_id, "Acme Support");
    for (name, data) in [
        (
            "ConversationCreated",
            json!({"conversation": {"csid": 1, "channel": "WIDGET_CHAT"}}),
        ),
        (
            "ConversationNoteAdded",
            json!({"conversation": {"csid": 1}, "text": "Called back"}),
        ),
        (
            "ConversationClosed",
            json!({"conversation": {"csid": 1, "status": "CLOSED"}}),
        ),
    ] {
        service
            .publish(&organization, Event::new(name, data))
            .await?;
    }

    // 4. A worker with the real HTTP transport, configured by the engine.
    let transport = webhooks.http_transport_builder().build()?;
    let worker = webhooks
        .worker_builder(Arc::new(transport))
        .retry_policy(RetryPolicy::new(vec![Duration::from_millis(300)], 0.0)?)
        .lease_duration(Duration::from_secs(15))
        .poll_interval(Duration::from_millis(50))
        .build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));

    // 5. Wait (at most 10 s) for three deliveries plus the one retry.
    for _ in 0..200 {
        if received.lock().map(|r| r.len()).unwrap_or(0) >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    let report = running.await?;
    println!("worker: {report:?}\n");

    // 6. Verify every request the receiver got, as a receiver would.
    let scheme = webhooks.signature_scheme();
    let keys = [subscription.secret_key.clone()];
    let requests = received.lock().map(|r| r.clone()).unwrap_or_default();
    for (headers, body) in &requests {
        let verdict = scheme.verify(&keys, headers, body, SystemClock.now(), DEFAULT_TOLERANCE);
        println!(
            "received {} bytes, {}: signature {}, authorization {:?}, x-tenant {:?}",
            body.len(),
            header(headers, "x-webhook-event-id"),
            if verdict.is_ok() {
                "verified"
            } else {
                "INVALID"
            },
            header(headers, "authorization"),
            header(headers, "x-tenant"),
        );
        verdict?;
    }

    // 7. What the REST API shows.
    let pretty = |value: &serde_json::Value| serde_json::to_string_pretty(value);
    println!("\nGET /v1/webhooks/{}", subscription.id);
    let current = service.get(&ctx, subscription.id).await?;
    println!(
        "{}",
        pretty(&serde_json::to_value(DataEnvelope::new(current))?)?
    );
    println!("\nGET /v1/webhooks/{}/delivery-status", subscription.id);
    let statuses = service.delivery_statuses(&ctx, subscription.id).await?;
    println!(
        "{}",
        pretty(&serde_json::to_value(DataEnvelope::new(statuses))?)?
    );
    for event in &subscription.subscribed_events {
        println!(
            "\nGET /v1/webhooks/{}/delivery-status/logs/{event}",
            subscription.id
        );
        let logs = service.event_logs(&ctx, subscription.id, event).await?;
        println!(
            "{}",
            pretty(&serde_json::to_value(DataEnvelope::new(logs))?)?
        );
    }
    Ok(())
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

/// Accepts connections until the process ends; the first request gets a 500.
async fn serve(listener: TcpListener, received: Received) {
    while let Ok((stream, _)) = listener.accept().await {
        let received = received.clone();
        tokio::spawn(async move {
            let handler = service_fn(move |request: Request<hyper::body::Incoming>| {
                let received = received.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let count = received
                        .lock()
                        .map(|mut r| {
                            r.push((parts.headers, body));
                            r.len()
                        })
                        .unwrap_or(0);
                    let (status, text) = if count == 1 {
                        (StatusCode::INTERNAL_SERVER_ERROR, "try again later")
                    } else {
                        (StatusCode::OK, "")
                    };
                    let mut response = Response::new(Full::new(Bytes::from(text)));
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        });
    }
}
