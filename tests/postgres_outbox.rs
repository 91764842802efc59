//! Publishing inside the host's own PostgreSQL transaction (the outbox):
//! commit and rollback, a host process killed around its commit, concurrent
//! transactions publishing one event id, isolation levels, and a host's own
//! sqlx migrations beside the store's schema. Deliveries go to a real
//! receiver on loopback. Needs `DATABASE_URL`.
#![cfg(feature = "postgres")]

mod postgres_support;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use postgres_support::TestDb;
use serde_json::json;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, SqlSafeStr, Transaction};
use tokio::net::TcpListener;
use webhook_subscriptions::delivery::{PublishLimits, PublishReceipt, Worker};
use webhook_subscriptions::model::{
    CreateWebhookSubscription, DeliveryStatus, Event, EventCatalogue, EventId, Organization,
    OrganizationId, PatchWebhookSubscription, UserId, WebhookSubscription,
};
use webhook_subscriptions::signature::SignatureScheme;
use webhook_subscriptions::storage::{PostgresStore, PostgresStoreConfig};
use webhook_subscriptions::transport::{AddressPolicy, HttpTransport, IpNetwork};
use webhook_subscriptions::validate::Validator;
use webhook_subscriptions::{Error, RequestContext, WebhookService};

const ORDER_CREATED: &str = "OrderCreated";

/// The largest envelope the shop accepts, small enough to exceed in a test.
const MAX_BODY_BYTES: usize = 4096;

/// A receiver on loopback answering 200; keeps the headers and body of every request.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>>,
}

impl Receiver {
    /// Starts serving; returns the receiver and its URL.
    async fn start() -> (Receiver, String) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind failed: {e}"));
        let url = format!(
            "http://{}/hooks",
            listener
                .local_addr()
                .unwrap_or_else(|e| panic!("local_addr failed: {e}"))
        );
        let receiver = Receiver::default();
        let seen = Arc::clone(&receiver.seen);
        // Ends with the test's runtime.
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let handler =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let seen = Arc::clone(&seen);
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                seen.lock().unwrap().push((parts.headers, body));
                                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                            }
                        });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), handler)
                        .await;
                });
            }
        });
        (receiver, url)
    }

    /// The value of header `name` in every request, in arrival order.
    fn header(&self, name: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(headers, _)| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// The event id of every request, in arrival order.
    fn event_ids(&self) -> Vec<String> {
        self.header("x-webhook-event-id")
    }

    /// The subscriptions `event_id` was delivered to, in arrival order.
    fn subscriptions_reached(&self, event_id: EventId) -> Vec<String> {
        let event_id = event_id.to_string();
        self.event_ids()
            .into_iter()
            .zip(self.header("x-webhook-subscription-id"))
            .filter(|(event, _)| *event == event_id)
            .map(|(_, subscription)| subscription)
            .collect()
    }

    /// The body of every request, in arrival order.
    fn bodies(&self) -> Vec<serde_json::Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| {
                serde_json::from_slice(body)
                    .unwrap_or_else(|e| panic!("a delivered body is not JSON: {e}"))
            })
            .collect()
    }
}

/// The host: a shop whose `orders` table lives in its own schema, beside
/// the store's schema in the same database.
#[derive(Clone)]
struct Shop {
    pool: PgPool,
    store: PostgresStore,
    service: WebhookService,
    organization: Organization,
    /// The shop's own schema, holding `orders`.
    schema: String,
}

impl Shop {
    /// A migrated store and a shop schema with its `orders` table, both fresh.
    async fn create(db: &TestDb) -> Shop {
        let store = db.store().await;
        let schema = db.schema();
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE SCHEMA \"{schema}\";
             CREATE TABLE \"{schema}\".orders (id uuid PRIMARY KEY, total_cents bigint NOT NULL)"
        )))
        .execute(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("creating the shop's schema failed: {e}"));
        let organization = Organization::new(OrganizationId::new_v4(), "Shop");
        Shop::open(db.pool.clone(), store, schema, organization)
    }

    /// The shop over existing schemas (as another process of it would be).
    fn open(
        pool: PgPool,
        store: PostgresStore,
        schema: String,
        organization: Organization,
    ) -> Shop {
        let catalogue = EventCatalogue::new([ORDER_CREATED, "OrderShipped"])
            .unwrap_or_else(|e| panic!("catalogue refused: {e}"));
        let validator = Validator::new(
            catalogue,
            SignatureScheme::default().reserved_header_names(),
        )
        .with_address_policy(loopback_policy());
        let service = WebhookService::builder(Arc::new(store.clone()))
            .validator(validator)
            .publish_limits(PublishLimits::new(MAX_BODY_BYTES))
            .build();
        Shop {
            pool,
            store,
            service,
            organization,
            schema,
        }
    }

    fn ctx(&self) -> RequestContext {
        RequestContext::new(self.organization.id, UserId::new_v4())
    }

    /// A subscription of the shop's organization to `OrderCreated` at `url`.
    async fn subscribe(&self, url: &str) -> WebhookSubscription {
        let request: CreateWebhookSubscription = serde_json::from_value(json!({
            "name": "orders", "url": url, "events": [ORDER_CREATED]
        }))
        .unwrap_or_else(|e| panic!("create request refused: {e}"));
        self.service
            .create(&self.ctx(), &request)
            .await
            .unwrap_or_else(|e| panic!("create failed: {e:?}"))
    }

    /// The host's unit of work: inserts an order (its id is the event id)
    /// and publishes `OrderCreated` on the same connection.
    async fn place_order(
        &self,
        connection: &mut PgConnection,
        event_id: EventId,
    ) -> Result<PublishReceipt, Error> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO \"{}\".orders (id, total_cents) VALUES ($1, 4200)",
            self.schema
        )))
        .bind(event_id.0)
        .execute(&mut *connection)
        .await
        .unwrap_or_else(|e| panic!("inserting the order failed: {e}"));
        let event = Event::new(
            ORDER_CREATED,
            json!({"orderId": event_id.0, "totalCents": 4200}),
        )
        .with_id(event_id);
        self.service
            .publish_in(&self.store, connection, &self.organization, event)
            .await
    }

    /// Whether the order of `event_id` is stored (committed).
    async fn has_order(&self, event_id: EventId) -> bool {
        sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM \"{}\".orders WHERE id = $1)",
            self.schema
        )))
        .bind(event_id.0)
        .fetch_one(&self.pool)
        .await
        .unwrap_or_else(|e| panic!("reading orders failed: {e}"))
    }

    /// A worker on `store` delivering to the loopback receivers of these tests.
    fn worker(store: PostgresStore) -> Worker {
        let transport = HttpTransport::builder()
            .address_policy(loopback_policy())
            .build()
            .unwrap_or_else(|e| panic!("transport refused: {e:?}"));
        Worker::builder(Arc::new(store), Arc::new(transport))
            .build()
            .unwrap_or_else(|e| panic!("worker refused: {e:?}"))
    }

    /// Runs a worker on `store` until nothing is due; returns the attempts made.
    async fn deliver_with(store: PostgresStore) -> usize {
        let worker = Shop::worker(store);
        let mut attempts = 0;
        for _ in 0..20 {
            let report = worker
                .run_once()
                .await
                .unwrap_or_else(|e| panic!("run_once failed: {e:?}"));
            if report.claimed == 0 {
                return attempts;
            }
            attempts += report.attempts();
        }
        panic!("the queue kept handing out deliveries");
    }

    async fn deliver(&self) -> usize {
        Shop::deliver_with(self.store.clone()).await
    }
}

/// The test's database, a fresh shop and a receiver on loopback with its
/// URL; `None` when the PostgreSQL tests are skipped.
async fn open_shop(test: &str) -> Option<(TestDb, Shop, Receiver, String)> {
    let db = TestDb::connect(test).await?;
    let shop = Shop::create(&db).await;
    let (receiver, url) = Receiver::start().await;
    Some((db, shop, receiver, url))
}

/// A transaction on `pool` at `isolation` (`READ COMMITTED`, ...).
async fn begin(pool: &PgPool, isolation: &str) -> Transaction<'static, Postgres> {
    let mut tx = pool
        .begin()
        .await
        .unwrap_or_else(|e| panic!("begin failed: {e}"));
    sqlx::query(AssertSqlSafe(format!(
        "SET TRANSACTION ISOLATION LEVEL {isolation}"
    )))
    .execute(&mut *tx)
    .await
    .unwrap_or_else(|e| panic!("setting the isolation level failed: {e}"));
    tx
}

async fn commit(tx: Transaction<'static, Postgres>) {
    tx.commit()
        .await
        .unwrap_or_else(|e| panic!("commit failed: {e}"));
}

async fn rollback(tx: Transaction<'static, Postgres>) {
    tx.rollback()
        .await
        .unwrap_or_else(|e| panic!("rollback failed: {e}"));
}

/// The recipe documented on `WebhookService::publish_in`.
fn is_serialization_failure(error: &Error) -> bool {
    let Some(store) = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<webhook_subscriptions::storage::Error>())
    else {
        return false;
    };
    store.kind() == webhook_subscriptions::storage::ErrorKind::Conflict
        && std::error::Error::source(store)
            .and_then(|source| source.downcast_ref::<sqlx::Error>())
            .and_then(|source| source.as_database_error())
            .and_then(|source| source.code())
            .is_some_and(|code| code == "40001")
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn a_committed_publish_is_delivered_once() {
    let Some((db, shop, receiver, url)) = open_shop("a_committed_publish_is_delivered_once").await
    else {
        return;
    };
    shop.subscribe(&url).await;
    let event_id = EventId::new_v4();

    let mut tx = begin(&shop.pool, "READ COMMITTED").await;
    let receipt = shop
        .place_order(&mut tx, event_id)
        .await
        .unwrap_or_else(|e| panic!("publish_in failed: {e:?}"));
    assert_eq!(receipt.event_id, event_id);
    assert_eq!(receipt.enqueued, 1, "one subscriber, one delivery");
    assert_eq!(
        shop.deliver().await,
        0,
        "workers must not see the event before the host commits"
    );
    commit(tx).await;

    assert_eq!(shop.deliver().await, 1);
    assert_eq!(
        shop.deliver().await,
        0,
        "a delivered event is not sent again"
    );
    assert_eq!(receiver.event_ids(), [event_id.to_string()]);
    let body = &receiver.bodies()[0];
    assert_eq!(body["event_fqn"], "ORDER_CREATED");
    assert_eq!(body["data"]["orderId"], event_id.to_string());
    assert!(shop.has_order(event_id).await);

    let mut tx = begin(&shop.pool, "READ COMMITTED").await;
    let again = shop
        .service
        .publish_in(
            &shop.store,
            &mut tx,
            &shop.organization,
            Event::new(ORDER_CREATED, json!({})).with_id(event_id),
        )
        .await
        .unwrap_or_else(|e| panic!("publish_in failed: {e:?}"));
    commit(tx).await;
    assert_eq!(again.enqueued, 0, "an event id is published once");
    assert_eq!(shop.deliver().await, 0);
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn a_rolled_back_publish_delivers_and_logs_nothing() {
    let Some((db, shop, receiver, url)) =
        open_shop("a_rolled_back_publish_delivers_and_logs_nothing").await
    else {
        return;
    };
    let subscription = shop.subscribe(&url).await;
    let event_id = EventId::new_v4();

    let mut tx = begin(&shop.pool, "READ COMMITTED").await;
    let receipt = shop
        .place_order(&mut tx, event_id)
        .await
        .unwrap_or_else(|e| panic!("publish_in failed: {e:?}"));
    assert_eq!(
        receipt.enqueued, 1,
        "inside the transaction the event is queued"
    );
    rollback(tx).await;

    assert_eq!(shop.deliver().await, 0);
    assert!(receiver.event_ids().is_empty(), "nothing may be delivered");
    let logs = shop
        .service
        .event_logs(&shop.ctx(), subscription.id, ORDER_CREATED)
        .await
        .unwrap_or_else(|e| panic!("event_logs failed: {e:?}"));
    assert!(logs.is_empty(), "nothing may be logged: {logs:?}");
    let statuses = shop
        .service
        .delivery_statuses(&shop.ctx(), subscription.id)
        .await
        .unwrap_or_else(|e| panic!("delivery_statuses failed: {e:?}"));
    assert!(statuses
        .iter()
        .all(|s| s.delivery_status == DeliveryStatus::NoRecentDelivery));
    assert!(!shop.has_order(event_id).await);

    // The rolled-back id was never used: the host's retry publishes it.
    let mut tx = begin(&shop.pool, "READ COMMITTED").await;
    let retried = shop
        .place_order(&mut tx, event_id)
        .await
        .unwrap_or_else(|e| panic!("publish_in failed: {e:?}"));
    commit(tx).await;
    assert_eq!(retried.enqueued, 1);
    assert_eq!(shop.deliver().await, 1);
    assert_eq!(receiver.event_ids(), [event_id.to_string()]);
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn an_invalid_event_is_refused_before_the_transaction_is_touched() {
    let Some(db) = TestDb::connect("an_invalid_event_is_refused_before_the_transaction").await
    else {
        return;
    };
    let shop = Shop::create(&db).await;
    let (_receiver, url) = Receiver::start().await;
    shop.subscribe(&url).await;
    let refused = [
        (
            Event::new("ConversationCreated", json!({})),
            "not in the shop's catalogue",
        ),
        (
            Event::new(ORDER_CREATED, json!([1, 2])),
            "data not an object",
        ),
        (
            Event::new(ORDER_CREATED, json!({"note": "x".repeat(MAX_BODY_BYTES)})),
            "over the size limit",
        ),
    ];
    let mut tx = begin(&shop.pool, "READ COMMITTED").await;
    for (event, why) in refused {
        let event_id = EventId::new_v4();
        let result = shop
            .service
            .publish_in(
                &shop.store,
                &mut tx,
                &shop.organization,
                event.with_id(event_id),
            )
            .await;
        assert!(
            matches!(result, Err(Error::InvalidEvent(_))),
            "{why}: expected InvalidEvent, got {result:?}"
        );
    }
    // Still usable: a refused event wrote nothing and aborted nothing.
    let event_id = EventId::new_v4();
    let receipt = shop
        .place_order(&mut tx, event_id)
        .await
        .unwrap_or_else(|e| panic!("publish_in after refusals failed: {e:?}"));
    commit(tx).await;
    assert_eq!(receipt.enqueued, 1);
    assert_eq!(shop.deliver().await, 1, "only the valid event is queued");
    db.cleanup().await;
}

/// A host process killed with SIGKILL around its commit: the test binary
/// runs one of these tests again as that process, told what to do by an
/// environment variable.
#[cfg(unix)]
mod host_process {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    use tokio::io::{AsyncBufReadExt, BufReader};

    use super::*;

    /// Set in a child process started by [`kill_host`]: what the child does.
    pub const CHILD_ENV: &str = "WEBHOOK_SUBSCRIPTIONS_OUTBOX_CHILD";

    /// What a child process started by [`kill_host`] does before it waits to be killed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum ChildStep {
        /// Publishes and commits.
        Commit,
        /// Publishes and never commits.
        Hold,
    }

    impl ChildStep {
        fn name(self) -> &'static str {
            match self {
                ChildStep::Commit => "commit",
                ChildStep::Hold => "hold",
            }
        }
    }

    /// In a child process started by [`kill_host`]: places the order described
    /// by [`CHILD_ENV`], says so on stdout and waits to be killed (exiting by
    /// itself after a minute). Does nothing in the test process itself.
    async fn run_as_child_if_asked() {
        let Ok(spec) = std::env::var(CHILD_ENV) else {
            return;
        };
        let parts: Vec<&str> = spec.split(' ').collect();
        let [step, store_schema, shop_schema, organization, event_id] = parts[..] else {
            panic!("malformed {CHILD_ENV}: {spec}");
        };
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|e| panic!("DATABASE_URL: {e}"));
        let pool = postgres_support::pool(&url).await;
        let store = PostgresStore::from_pool_with_config(
            pool.clone(),
            PostgresStoreConfig::new().with_schema(store_schema),
        )
        .unwrap_or_else(|e| panic!("store config refused: {e:?}"));
        let organization = Organization::new(
            OrganizationId(organization.parse().unwrap_or_else(|e| panic!("{e}"))),
            "Shop",
        );
        let shop = Shop::open(pool, store, shop_schema.to_owned(), organization);
        let event_id = EventId(event_id.parse().unwrap_or_else(|e| panic!("{e}")));
        let mut tx = begin(&shop.pool, "READ COMMITTED").await;
        shop.place_order(&mut tx, event_id)
            .await
            .unwrap_or_else(|e| panic!("publish_in failed: {e:?}"));
        // `Hold` keeps the transaction open until the process dies.
        let open = if step == ChildStep::Commit.name() {
            commit(tx).await;
            None
        } else {
            Some(tx)
        };
        println!("outbox child: {step} done");
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(open);
        std::process::exit(1);
    }

    /// Sets up a shop subscribed to a loopback receiver, runs `test` of this
    /// binary again as a child process that places an order and does `step`,
    /// then kills it with SIGKILL. Returns the database, the shop, the receiver
    /// and the order's event id (`None` when the PostgreSQL tests are skipped).
    /// In the child process itself, it never returns.
    async fn kill_host(test: &str, step: ChildStep) -> Option<(TestDb, Shop, Receiver, EventId)> {
        run_as_child_if_asked().await;
        let (db, shop, receiver, url) = open_shop(test).await?;
        shop.subscribe(&url).await;
        let event_id = EventId::new_v4();

        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe failed: {e}"));
        let spec = format!(
            "{} {} {} {} {}",
            step.name(),
            shop.store.config().schema,
            shop.schema,
            shop.organization.id,
            event_id
        );
        let mut child = tokio::process::Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, spec)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting the host process failed: {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("the child's stdout is not piped"));
        let marker = format!("outbox child: {} done", step.name());
        let mut lines = BufReader::new(stdout).lines();
        let reached = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains(&marker) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            reached,
            Ok(true),
            "the host process never reported `{marker}`"
        );
        child
            .start_kill()
            .unwrap_or_else(|e| panic!("killing the host process failed: {e}"));
        let status = child
            .wait()
            .await
            .unwrap_or_else(|e| panic!("waiting for the host process failed: {e}"));
        assert_eq!(status.signal(), Some(9), "the host must die of SIGKILL");
        Some((db, shop, receiver, event_id))
    }

    #[tokio::test]
    #[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
    async fn a_host_killed_after_its_commit_is_delivered_after_restart() {
        let test = "host_process::a_host_killed_after_its_commit_is_delivered_after_restart";
        let Some((db, shop, receiver, event_id)) = kill_host(test, ChildStep::Commit).await else {
            return;
        };
        assert!(shop.has_order(event_id).await, "the host's commit holds");
        // The restarted host: a new pool and a worker that never ran before.
        let restarted = postgres_support::store_in(&db.url, &shop.store.config().schema).await;
        assert_eq!(Shop::deliver_with(restarted.clone()).await, 1);
        assert_eq!(Shop::deliver_with(restarted).await, 0);
        assert_eq!(receiver.event_ids(), [event_id.to_string()]);
        db.cleanup().await;
    }

    #[tokio::test]
    #[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
    async fn a_host_killed_before_its_commit_publishes_nothing() {
        let test = "host_process::a_host_killed_before_its_commit_publishes_nothing";
        let Some((db, shop, receiver, event_id)) = kill_host(test, ChildStep::Hold).await else {
            return;
        };
        let restarted = postgres_support::store_in(&db.url, &shop.store.config().schema).await;
        assert_eq!(Shop::deliver_with(restarted).await, 0);
        // Waits, if need be, for PostgreSQL to roll back the dead host's
        // transaction: its event id is free again, its order gone.
        let mut tx = begin(&shop.pool, "READ COMMITTED").await;
        let retried = shop
            .place_order(&mut tx, event_id)
            .await
            .unwrap_or_else(|e| panic!("publish_in failed: {e:?}"));
        assert_eq!(retried.enqueued, 1, "the dead transaction queued nothing");
        rollback(tx).await;
        assert!(!shop.has_order(event_id).await);
        assert!(receiver.event_ids().is_empty());
        db.cleanup().await;
    }
}

/// How the first of two racing transactions ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstEnds {
    Committed,
    RolledBack,
}

/// Transaction A places an order for `event_id`; transaction B, at the same
/// isolation level, places another order publishing the same event id and
/// must wait for A; A then ends as `first` says. Returns A's receipt, B's
/// transaction and B's result.
async fn race(
    shop: &Shop,
    isolation: &'static str,
    first: FirstEnds,
    event_id: EventId,
) -> (
    PublishReceipt,
    Transaction<'static, Postgres>,
    Result<PublishReceipt, Error>,
) {
    let mut a = begin(&shop.pool, isolation).await;
    let mut b = begin(&shop.pool, isolation).await;
    // B's first statement also takes its snapshot (before A ends).
    let b_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *b)
        .await
        .unwrap_or_else(|e| panic!("pg_backend_pid failed: {e}"));
    let a_receipt = shop
        .place_order(&mut a, event_id)
        .await
        .unwrap_or_else(|e| panic!("A's publish_in failed: {e:?}"));

    let b_shop = shop.clone();
    let b_task = tokio::spawn(async move {
        let event = Event::new(ORDER_CREATED, json!({"by": "B"})).with_id(event_id);
        let result = b_shop
            .service
            .publish_in(&b_shop.store, &mut b, &b_shop.organization, event)
            .await;
        (b, result)
    });
    let mut waited = false;
    for _ in 0..500 {
        waited = sqlx::query_scalar("SELECT cardinality(pg_blocking_pids($1)) > 0")
            .bind(b_pid)
            .fetch_one(&shop.pool)
            .await
            .unwrap_or_else(|e| panic!("pg_blocking_pids failed: {e}"));
        if waited || b_task.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(waited, "B must wait for A, which holds the event id");
    match first {
        FirstEnds::Committed => commit(a).await,
        FirstEnds::RolledBack => rollback(a).await,
    }
    let (b, b_result) = tokio::time::timeout(Duration::from_secs(30), b_task)
        .await
        .unwrap_or_else(|_| panic!("B still waits after A ended"))
        .unwrap_or_else(|e| panic!("B's task failed: {e}"));
    (a_receipt, b, b_result)
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn concurrent_transactions_publishing_one_event_id_fan_out_once() {
    let Some((db, shop, receiver, url)) =
        open_shop("concurrent_transactions_publishing_one_event_id").await
    else {
        return;
    };
    let subscribers = 2;
    for _ in 0..subscribers {
        shop.subscribe(&url).await;
    }

    // Whoever commits the event id first fans it out; a rolled-back first
    // transaction leaves it to the second.
    for (first, second_enqueues) in [
        (FirstEnds::Committed, 0),
        (FirstEnds::RolledBack, subscribers),
    ] {
        let event_id = EventId::new_v4();
        let (a, b, b_result) = race(&shop, "READ COMMITTED", first, event_id).await;
        let b_receipt =
            b_result.unwrap_or_else(|e| panic!("{first:?}: B's publish_in failed: {e:?}"));
        commit(b).await;
        assert_eq!(a.enqueued, subscribers, "{first:?}");
        assert_eq!(b_receipt.enqueued, second_enqueues, "{first:?}");
        shop.deliver().await;
        let reached = receiver.subscriptions_reached(event_id);
        let distinct: BTreeSet<&String> = reached.iter().collect();
        assert_eq!(reached.len(), subscribers, "{first:?}: one fan-out");
        assert_eq!(distinct.len(), subscribers, "{first:?}: one per subscriber");
    }
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn under_snapshot_isolation_the_second_publisher_retries_and_enqueues_nothing() {
    let Some((db, shop, receiver, url)) =
        open_shop("under_snapshot_isolation_the_second_publisher").await
    else {
        return;
    };
    shop.subscribe(&url).await;

    for isolation in ["REPEATABLE READ", "SERIALIZABLE"] {
        let event_id = EventId::new_v4();
        let (a, b, b_result) = race(&shop, isolation, FirstEnds::Committed, event_id).await;
        assert_eq!(a.enqueued, 1);
        let error = b_result.expect_err("B's snapshot predates A's event id");
        assert!(
            is_serialization_failure(&error),
            "{isolation}: expected a serialization failure, got {error:?}"
        );
        rollback(b).await;

        // The host retries its whole transaction, the publish included.
        let mut retry = begin(&shop.pool, isolation).await;
        let event = Event::new(ORDER_CREATED, json!({"by": "B"})).with_id(event_id);
        let receipt = shop
            .service
            .publish_in(&shop.store, &mut retry, &shop.organization, event)
            .await
            .unwrap_or_else(|e| panic!("{isolation}: the retry failed: {e:?}"));
        commit(retry).await;
        assert_eq!(receipt.enqueued, 0, "{isolation}: A published it already");
        shop.deliver().await;
        assert_eq!(
            receiver.subscriptions_reached(event_id).len(),
            1,
            "{isolation}: one fan-out"
        );
    }
    db.cleanup().await;
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn the_fan_out_reaches_the_subscriptions_its_snapshot_sees() {
    let Some((db, shop, receiver, url)) = open_shop("the_fan_out_reaches_the_subscriptions").await
    else {
        return;
    };
    let steady = shop.subscribe(&url).await;
    let disable: PatchWebhookSubscription = serde_json::from_value(json!({"enabled": false}))
        .unwrap_or_else(|e| panic!("patch refused: {e}"));

    for isolation in ["READ COMMITTED", "REPEATABLE READ"] {
        let disabled = shop.subscribe(&url).await;
        let mut tx = begin(&shop.pool, isolation).await;
        // Takes a REPEATABLE READ transaction's snapshot.
        sqlx::query("SELECT 1")
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("select failed: {e}"));
        // Committed by others after that, before the publish.
        let created = shop.subscribe(&url).await;
        shop.service
            .patch(&shop.ctx(), disabled.id, &disable)
            .await
            .unwrap_or_else(|e| panic!("patch failed: {e:?}"));
        let event_id = EventId::new_v4();
        let receipt = shop
            .place_order(&mut tx, event_id)
            .await
            .unwrap_or_else(|e| panic!("publish_in failed: {e:?}"));
        commit(tx).await;
        shop.deliver().await;

        let mut reached = receiver.subscriptions_reached(event_id);
        reached.sort();
        let mut expected = match isolation {
            "READ COMMITTED" => vec![steady.id.to_string(), created.id.to_string()],
            _ => vec![steady.id.to_string()],
        };
        expected.sort();
        assert_eq!(reached, expected, "{isolation}");
        assert_eq!(receipt.enqueued, 2, "{isolation}");
        let skipped = shop
            .service
            .event_logs(&shop.ctx(), disabled.id, ORDER_CREATED)
            .await
            .unwrap_or_else(|e| panic!("event_logs failed: {e:?}"));
        let expected_skips = usize::from(isolation == "REPEATABLE READ");
        assert_eq!(
            skipped.len(),
            expected_skips,
            "{isolation}: a delivery queued for the disabled subscription is logged unsent"
        );
        assert!(skipped.iter().all(|entry| !entry.delivery_detail.success));
        for gone in [created.id, disabled.id] {
            shop.service
                .delete(&shop.ctx(), gone)
                .await
                .unwrap_or_else(|e| panic!("delete failed: {e:?}"));
        }
    }
    db.cleanup().await;
}

/// The host's own migrations, as `sqlx::migrate!()` would embed them. One
/// table is named like one of the store's.
fn host_migrator() -> Migrator {
    let migration = |version, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            description.into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(
            1,
            "orders",
            "CREATE TABLE orders (id uuid PRIMARY KEY, total_cents bigint NOT NULL)",
        ),
        migration(
            2,
            "audit events",
            "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
             kind text NOT NULL)",
        ),
    ])
}

async fn tables_in(pool: &PgPool, schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = $1 ORDER BY table_name",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("listing tables of {schema} failed: {e}"))
}

async fn versions(pool: &PgPool, table: &str) -> Vec<i64> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM {table} ORDER BY version"
    )))
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("reading {table} failed: {e}"))
}

#[tokio::test]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn host_migrations_in_public_and_the_store_schema_stay_apart() {
    let Some(db) = TestDb::connect("host_migrations_in_public_and_the_store_schema").await else {
        return;
    };
    // A database of its own, so `public` holds nothing but the host's.
    let name = format!("wh_outbox_host_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE failed (needs CREATEDB): {e}"));
    let mut url = url::Url::parse(&db.url).unwrap_or_else(|e| panic!("{e}"));
    url.set_path(&name);
    let pool = postgres_support::pool(url.as_str()).await;
    let store = PostgresStore::from_pool(pool.clone());

    // Both apply, in either order and again.
    host_migrator()
        .run(&pool)
        .await
        .unwrap_or_else(|e| panic!("the host's migrations failed: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("the store's migrations failed: {e:?}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("the store's migrations failed again: {e:?}"));
    host_migrator()
        .run(&pool)
        .await
        .unwrap_or_else(|e| panic!("the host's migrations failed again: {e}"));

    let schema = store.config().schema.clone();
    assert_eq!(
        tables_in(&pool, "public").await,
        ["_sqlx_migrations", "events", "orders"],
        "the store adds nothing to public"
    );
    let host_versions: Vec<i64> = host_migrator().iter().map(|m| m.version).collect();
    assert_eq!(
        versions(&pool, "public._sqlx_migrations").await,
        host_versions
    );
    let ours = tables_in(&pool, &schema).await;
    assert!(ours.contains(&"schema_migrations".to_owned()), "{ours:?}");
    assert!(ours.contains(&"events".to_owned()), "{ours:?}");
    assert!(
        !ours.contains(&"_sqlx_migrations".to_owned()) && !ours.contains(&"orders".to_owned()),
        "the host's migrations add nothing to the store's schema: {ours:?}"
    );
    assert!(!versions(&pool, &format!("\"{schema}\".schema_migrations"))
        .await
        .is_empty());

    // The outbox across the two schemas: the host writes its `orders` and
    // `events` (search_path `public`), the store its own.
    let shop = Shop::open(
        pool.clone(),
        store,
        "public".to_owned(),
        Organization::new(OrganizationId::new_v4(), "Shop"),
    );
    let (receiver, url) = Receiver::start().await;
    shop.subscribe(&url).await;
    let event_id = EventId::new_v4();
    let mut tx = begin(&pool, "READ COMMITTED").await;
    sqlx::query("INSERT INTO events (kind) VALUES ('order placed')")
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("the host's insert failed: {e}"));
    let receipt = shop
        .place_order(&mut tx, event_id)
        .await
        .unwrap_or_else(|e| panic!("publish_in failed: {e:?}"));
    commit(tx).await;
    assert_eq!(receipt.enqueued, 1);
    shop.deliver().await;
    assert_eq!(receiver.event_ids(), [event_id.to_string()]);
    let host_events: i64 = sqlx::query_scalar("SELECT count(*) FROM public.events")
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("counting the host's events failed: {e}"));
    assert_eq!(
        host_events, 1,
        "the fan-out never touches the host's tables"
    );

    pool.close().await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("DROP DATABASE failed: {e}"));
    db.cleanup().await;
}

/// The address policy of the service and the workers: the SSRF guard on,
/// with only 127.0.0.1 (the tests' receivers) allowed.
fn loopback_policy() -> AddressPolicy {
    let loopback = IpNetwork::new(std::net::Ipv4Addr::LOCALHOST.into(), 32)
        .unwrap_or_else(|e| panic!("network refused: {e:?}"));
    AddressPolicy::default().allow_network(loopback)
}
