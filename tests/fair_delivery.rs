//! Fair delivery under a bad endpoint, end to end on real sockets: tenant A
//! has 50 subscriptions to a loopback tarpit (accepts, never answers) and
//! publishes 500 events; tenant B, with one subscription to a fast loopback
//! receiver, publishes 20 events afterwards. With the default worker
//! settings and a 2 s transport timeout every B event arrives within 3 s of
//! publishing, and the tarpit never holds more than the per-subscription cap
//! of open requests per subscription. Runs on `MemoryStore`, and on
//! `PostgresStore` when `DATABASE_URL` is set.
#![cfg(feature = "http-client")]

#[cfg(feature = "postgres")]
mod postgres_support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::time::Instant;
use webhook_subscriptions::delivery::{Worker, DEFAULT_MAX_IN_FLIGHT_PER_SUBSCRIPTION};
use webhook_subscriptions::model::{
    EventId, OrganizationId, SecretKey, SubscriptionId, UserId, WebhookSubscription,
};
use webhook_subscriptions::storage::NewEvent;
use webhook_subscriptions::storage::{MemoryStore, Storage};
use webhook_subscriptions::transport::{AddressPolicy, HttpTransport};

const TARPIT_SUBSCRIPTIONS: usize = 50;
const TARPIT_EVENTS: usize = 500;
const FAST_EVENTS: usize = 20;
const TRANSPORT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_LATENCY: Duration = Duration::from_secs(3);
const EVENT: &str = "ConversationCreated";

/// Open requests at the tarpit, per path (one path per subscription).
#[derive(Default)]
struct Tarpit {
    open: Mutex<HashMap<String, usize>>,
    /// The most requests each path ever had open at once.
    peak: Mutex<HashMap<String, usize>>,
    peak_total: Mutex<(usize, usize)>,
}

impl Tarpit {
    fn opened(&self, path: &str) {
        let mut open = self.open.lock().unwrap();
        let now = open.entry(path.to_owned()).or_default();
        *now += 1;
        let mut peak = self.peak.lock().unwrap();
        let top = peak.entry(path.to_owned()).or_default();
        *top = (*top).max(*now);
        let mut total = self.peak_total.lock().unwrap();
        total.0 += 1;
        total.1 = total.1.max(total.0);
    }

    fn closed(&self, path: &str) {
        if let Some(now) = self.open.lock().unwrap().get_mut(path) {
            *now -= 1;
        }
        self.peak_total.lock().unwrap().0 -= 1;
    }
}

/// Accepts connections and never answers; a request counts as open from
/// its request line until the client hangs up.
async fn tarpit() -> (String, Arc<Tarpit>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Tarpit::default());
    let accepting = Arc::clone(&state);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let state = Arc::clone(&accepting);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                let mut path = None;
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            head.extend_from_slice(&buf[..n]);
                            if path.is_none() {
                                let line = String::from_utf8_lossy(&head);
                                if let Some(line) =
                                    line.split("\r\n").next().filter(|_| line.contains("\r\n"))
                                {
                                    let found = line.split(' ').nth(1).unwrap_or("").to_owned();
                                    state.opened(&found);
                                    path = Some(found);
                                }
                            }
                        }
                    }
                }
                if let Some(path) = path {
                    state.closed(&path);
                }
            });
        }
    });
    (base, state)
}

/// Answers 200 at once and notes when each event id arrived.
async fn fast_receiver() -> (String, Arc<Mutex<HashMap<String, Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let seen = Arc::clone(&arrivals);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        if let Some(id) = request.headers().get("x-webhook-event-id") {
                            let id = id.to_str().unwrap_or_default().to_owned();
                            seen.lock().unwrap().entry(id).or_insert_with(Instant::now);
                        }
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from("ok"))))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (base, arrivals)
}

fn subscription(url: String) -> WebhookSubscription {
    let user = UserId::new_v4();
    let now = Utc::now();
    WebhookSubscription {
        id: SubscriptionId::new_v4(),
        name: "fair".to_owned(),
        url,
        subscribed_events: vec![EVENT.to_owned()],
        headers: BTreeMap::new(),
        secret_key: SecretKey::from_bytes([3; 32]),
        enabled: true,
        created_at: now,
        created_by: user,
        updated_at: now,
        updated_by: user,
        filters: None,
        previous_secret: None,
    }
}

fn event(organization: OrganizationId) -> NewEvent {
    let event_id = EventId::new_v4();
    NewEvent {
        organization_id: organization,
        event_id,
        event_name: EVENT.to_owned(),
        payload: Bytes::from(format!("{{\"event_id\":\"{event_id}\",\"data\":{{}}}}")),
        published_at: Utc::now(),
    }
}

async fn a_tarpit_tenant_does_not_delay_another_tenant(store: Arc<dyn Storage>) {
    let (tarpit_base, tarpit) = tarpit().await;
    let (fast_base, arrivals) = fast_receiver().await;
    let slow_org = OrganizationId::new_v4();
    let fast_org = OrganizationId::new_v4();
    for i in 0..TARPIT_SUBSCRIPTIONS {
        let sub = subscription(format!("{tarpit_base}/tarpit/{i}"));
        store.insert_subscription(slow_org, &sub).await.unwrap();
    }
    let fast = subscription(format!("{fast_base}/fast"));
    store.insert_subscription(fast_org, &fast).await.unwrap();

    let transport = HttpTransport::builder()
        .timeout(TRANSPORT_TIMEOUT)
        .address_policy(AddressPolicy::allow_all())
        .build()
        .unwrap();
    let worker = Worker::builder(Arc::clone(&store), Arc::new(transport))
        .transport_timeout(TRANSPORT_TIMEOUT)
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));

    for _ in 0..TARPIT_EVENTS {
        let queued = store.enqueue_event(&event(slow_org)).await.unwrap();
        assert_eq!(queued, TARPIT_SUBSCRIPTIONS);
    }
    // Let the tarpit take every slot it can.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut published = HashMap::new();
    for _ in 0..FAST_EVENTS {
        let fresh = event(fast_org);
        let at = Instant::now();
        assert_eq!(store.enqueue_event(&fresh).await.unwrap(), 1);
        published.insert(fresh.event_id.to_string(), at);
    }
    let deadline = Instant::now() + MAX_LATENCY + Duration::from_secs(2);
    while arrivals.lock().unwrap().len() < FAST_EVENTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    let report = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the worker stops within the transport timeout")
        .unwrap();
    assert!(report.claimed > FAST_EVENTS, "the tarpit was tried too");

    let arrivals = arrivals.lock().unwrap().clone();
    for (id, at) in &published {
        let arrived = arrivals
            .get(id)
            .unwrap_or_else(|| panic!("event {id} of the fast tenant never arrived"));
        let latency = arrived.duration_since(*at);
        assert!(
            latency <= MAX_LATENCY,
            "event {id} of the fast tenant took {latency:?} behind the tarpit tenant's backlog"
        );
    }
    let peaks = tarpit.peak.lock().unwrap().clone();
    assert!(!peaks.is_empty(), "the tarpit saw requests");
    for (path, peak) in &peaks {
        assert!(
            *peak <= DEFAULT_MAX_IN_FLIGHT_PER_SUBSCRIPTION,
            "{path} had {peak} requests open at once, over the per-subscription cap"
        );
    }
    let peak_total = tarpit.peak_total.lock().unwrap().1;
    assert!(
        peak_total <= DEFAULT_MAX_IN_FLIGHT_PER_SUBSCRIPTION * TARPIT_SUBSCRIPTIONS,
        "the tarpit had {peak_total} requests open at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_keeps_a_fast_tenant_flowing_past_a_tarpit_tenant() {
    a_tarpit_tenant_does_not_delay_another_tenant(Arc::new(MemoryStore::new())).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_ignored, ignore = "needs PostgreSQL: set DATABASE_URL")]
async fn postgres_store_keeps_a_fast_tenant_flowing_past_a_tarpit_tenant() {
    let Some(db) = postgres_support::TestDb::connect(
        "postgres_store_keeps_a_fast_tenant_flowing_past_a_tarpit_tenant",
    )
    .await
    else {
        return;
    };
    let store = db.store().await;
    a_tarpit_tenant_does_not_delay_another_tenant(Arc::new(store)).await;
    db.cleanup().await;
}
