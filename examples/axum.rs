//! The REST API in an axum app, with the delivery worker in the same process.
//!
//! ```text
//! cargo run --features http-client,tower --example axum -- [HOST:PORT]
//! ```
//!
//! The first line on stdout is `listening on http://HOST:PORT`. The host's
//! authentication is played by a middleware that reads the `X-Organization-Id`
//! and `X-User-Id` headers (UUIDs) and inserts the [`RequestContext`] into the
//! request extensions, where the API reads it. Ctrl-C stops the server, then
//! the worker once the attempts in flight are recorded.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use http::HeaderMap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use uuid::Uuid;
use webhook_subscriptions::model::{OrganizationId, UserId};
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::{RequestContext, Webhooks};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());

    // Everything configured once: catalogue, signature scheme, timeouts.
    let webhooks = Webhooks::builder(Arc::new(MemoryStore::new()))
        .events(["InvoicePaid"])
        .build()?;
    let transport = webhooks.http_transport_builder().build()?;
    let worker = webhooks.worker(Arc::new(transport))?;

    // `nest_service` strips the prefix, so the handler serves at `/`.
    let app = Router::new()
        .nest_service(
            "/v1/webhooks",
            webhooks.api_builder().base_path("/").build()?,
        )
        .layer(middleware::from_fn(authenticate));

    let listener = TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);

    let (stop, mut stopped) = watch::channel(false);
    let worker = tokio::spawn(worker.run(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let _ = stop.send(true);
    let report = worker.await?;
    eprintln!(
        "delivery worker stopped after {} attempts",
        report.attempts()
    );
    Ok(())
}

/// Stands in for the host's authentication: a request with valid
/// `X-Organization-Id` and `X-User-Id` headers acts for them; any other goes
/// on without a context, which the API answers with 400.
async fn authenticate(mut request: Request, next: Next) -> Response {
    if let Some(ctx) = context(request.headers()) {
        request.extensions_mut().insert(ctx);
    }
    next.run(request).await
}

fn context(headers: &HeaderMap) -> Option<RequestContext> {
    let uuid = |name: &str| {
        let value = headers.get(name)?.to_str().ok()?;
        Uuid::parse_str(value).ok()
    };
    Some(RequestContext::new(
        OrganizationId(uuid("x-organization-id")?),
        UserId(uuid("x-user-id")?),
    ))
}
