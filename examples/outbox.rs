//! Publishing inside your own transaction (a transactional outbox): a shop
//! inserts an order and publishes `OrderCreated` in one PostgreSQL
//! transaction, so the webhook goes out if and only if the order is
//! committed. A second order is rolled back and publishes nothing.
//!
//! The shop's `orders` table comes from its own sqlx migrations in `public`
//! (`examples/outbox_migrations`); the store keeps its tables and its
//! migration history in its own schema. A worker delivers to a receiver on
//! 127.0.0.1, which checks the signature.
//!
//! Run it against a scratch database:
//!
//! ```sh
//! export DATABASE_URL="$(scripts/pg-test-db.sh create)"
//! cargo run --example outbox --features postgres
//! ```

use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::net::TcpListener;
use uuid::Uuid;
use webhook_subscriptions::delivery::{RunReport, Worker};
use webhook_subscriptions::model::{
    CreateWebhookSubscription, Event, EventCatalogue, EventId, Organization, OrganizationId, UserId,
};
use webhook_subscriptions::signature::{SignatureScheme, DEFAULT_TOLERANCE};
use webhook_subscriptions::storage::PostgresStore;
use webhook_subscriptions::transport::{AddressPolicy, HttpTransport, IpNetwork};
use webhook_subscriptions::validate::Validator;
use webhook_subscriptions::{Clock, RequestContext, SystemClock, WebhookService};

/// What the receiver got: headers and body of every request.
type Received = Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(database_url) = std::env::var("DATABASE_URL") else {
        eprintln!(
            "set DATABASE_URL to a scratch PostgreSQL database, e.g.\n  \
             export DATABASE_URL=\"$(scripts/pg-test-db.sh create)\""
        );
        std::process::exit(2);
    };

    // 1. A receiver on loopback.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let receiver_url = format!("http://{}/hooks", listener.local_addr()?);
    let received: Received = Arc::default();
    tokio::spawn(serve(listener, received.clone()));

    // 2. The shop's database: its own migrations (a host usually embeds
    //    them with `sqlx::migrate!()`), then the store's, in its own schema.
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .connect(&database_url)
        .await?;
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/outbox_migrations");
    Migrator::new(migrations.as_path())
        .await?
        .run(&pool)
        .await?;
    let store = PostgresStore::from_pool(pool.clone());
    store.migrate().await?;

    // 3. The service with the shop's own event catalogue.
    let catalogue = EventCatalogue::new(["OrderCreated", "OrderShipped", "OrderCancelled"])?;
    // The SSRF guard stays on; only this example's loopback receiver is
    // allowed, both when subscriptions are validated and when they are delivered.
    let address_policy = AddressPolicy::default()
        .allow_network(IpNetwork::new(std::net::Ipv4Addr::LOCALHOST.into(), 32)?);
    let validator = Validator::new(
        catalogue,
        SignatureScheme::default().reserved_header_names(),
    )
    .with_address_policy(address_policy.clone());
    let service = WebhookService::builder(Arc::new(store.clone()))
        .validator(validator)
        .build();
    let ctx = RequestContext::new(OrganizationId::new_v4(), UserId::new_v4());
    let organization = Organization::new(ctx.organization_id, "Acme Shop");
    let request: CreateWebhookSubscription = serde_json::from_value(json!({
        "name": "Order feed",
        "url": receiver_url,
        "events": ["OrderCreated"]
    }))?;
    let subscription = service.create(&ctx, &request).await?;

    // 4. Two orders, each in one transaction with its event; the second is
    //    rolled back, as a failed checkout would be.
    let committed = place_order(&pool, &service, &store, &organization, "ada", true).await?;
    let rolled_back = place_order(&pool, &service, &store, &organization, "bob", false).await?;

    // 5. A worker, driven by hand until the queue is empty.
    let transport = HttpTransport::builder()
        .address_policy(address_policy)
        .build()?;
    let worker = Worker::builder(Arc::new(store.clone()), Arc::new(transport)).build()?;
    let mut total = RunReport::default();
    for _ in 0..20 {
        let report = worker.run_once().await?;
        if report.claimed == 0 {
            break;
        }
        total.claimed += report.claimed;
        total.delivered += report.delivered;
    }
    println!(
        "worker: claimed {}, delivered {}",
        total.claimed, total.delivered
    );

    // 6. What the receiver got: the committed order, signed; nothing else.
    let scheme = SignatureScheme::default();
    let keys = [subscription.secret_key.clone()];
    let requests = received.lock().map(|r| r.clone()).unwrap_or_default();
    for (headers, body) in &requests {
        scheme.verify(&keys, headers, body, SystemClock.now(), DEFAULT_TOLERANCE)?;
        println!(
            "received (signature verified): {}",
            String::from_utf8_lossy(body)
        );
    }
    let event_ids: Vec<&str> = requests
        .iter()
        .filter_map(|(headers, _)| headers.get("x-webhook-event-id")?.to_str().ok())
        .collect();
    let expected = committed.to_string();
    if event_ids != [expected.as_str()] {
        return Err(format!(
            "expected one delivery of {committed}, not of {rolled_back}; got {event_ids:?}"
        )
        .into());
    }

    // Nothing of this run is left for the next one to send.
    service.delete(&ctx, subscription.id).await?;
    Ok(())
}

/// Inserts an order and publishes `OrderCreated` in one transaction, then
/// commits it or rolls it back. The order's id is the event's id, so a
/// retried transaction can never publish the same order twice.
async fn place_order(
    pool: &PgPool,
    service: &WebhookService,
    store: &PostgresStore,
    organization: &Organization,
    customer: &str,
    commit: bool,
) -> Result<Uuid, Box<dyn std::error::Error>> {
    let order_id = Uuid::new_v4();
    let total_cents: i64 = 4200;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO orders (id, organization_id, customer, total_cents) VALUES ($1, $2, $3, $4)",
    )
    .bind(order_id)
    .bind(organization.id.0)
    .bind(customer)
    .bind(total_cents)
    .execute(&mut *tx)
    .await?;
    let event = Event::new(
        "OrderCreated",
        json!({"orderId": order_id, "customer": customer, "totalCents": total_cents}),
    )
    .with_id(EventId(order_id));
    let receipt = service
        .publish_in(store, &mut tx, organization, event)
        .await?;
    if commit {
        tx.commit().await?;
        println!(
            "order {order_id} committed: {} delivery queued",
            receipt.enqueued
        );
    } else {
        tx.rollback().await?;
        println!("order {order_id} rolled back: its event is gone with it");
    }
    Ok(order_id)
}

/// Answers 200 to every request and keeps it, until the process ends.
async fn serve(listener: TcpListener, received: Received) {
    while let Ok((stream, _)) = listener.accept().await {
        let received = received.clone();
        tokio::spawn(async move {
            let handler = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let received = received.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    if let Ok(mut received) = received.lock() {
                        received.push((parts.headers, body));
                    }
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        });
    }
}
