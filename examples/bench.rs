//! Headline figures: signing overhead, fan-out scaling, end-to-end delivery
//! rate against a bare HTTP client, PostgreSQL delivery rate, and memory per
//! subscription. Prints one `name: value` line per figure.
//!
//! `cargo run --release --all-features --example bench -- --quick`
//! (set `DATABASE_URL` to a loopback PostgreSQL for the PostgreSQL figure).
//! Everything talks to 127.0.0.1 only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use webhook_subscriptions::delivery::{build_request, prepare_event, PublishLimits, Worker};
use webhook_subscriptions::model::{
    DeliveryId, Event, EventCatalogue, EventId, Organization, OrganizationId, SecretKey,
    SubscriptionId, UserId, WebhookSubscription,
};
use webhook_subscriptions::signature::{hex, sign_timestamped, SignatureScheme, TimestampedScheme};
use webhook_subscriptions::storage::prelude::*;
use webhook_subscriptions::storage::{Delivery, DeliveryState};
use webhook_subscriptions::storage::{MemoryStore, PostgresStore, PostgresStoreConfig, Storage};
use webhook_subscriptions::transport::{AddressPolicy, HttpTransport};
use webhook_subscriptions::WebhookService;

/// Counts live heap bytes so the memory figure needs no external tool.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const KEY: [u8; 32] = [0x5a; 32];
const T_MS: i64 = 1_748_264_463_123;
const EVENT: &str = "ConversationNoteAdded";
const OTHER: &str = "ConversationClosed";
const CONCURRENCY: usize = 32;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Settings {
    rounds: usize,
    fanout_events: usize,
    deliveries: usize,
    delivery_rounds: usize,
    postgres_deliveries: usize,
    repeats: usize,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only delivery` (or signing, fanout, memory, postgres) runs one part,
    // e.g. under a profiler.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let runs = |part: &str| only.as_deref().is_none_or(|o| o == part);
    // `--async-commit`: the PostgreSQL store commits recorded attempts
    // asynchronously (`PostgresStoreConfig::asynchronous_attempt_commit`).
    let async_commit = args.iter().any(|a| a == "--async-commit");
    let settings = if quick {
        Settings {
            rounds: 31,
            fanout_events: 200,
            deliveries: 10_000,
            delivery_rounds: 3,
            postgres_deliveries: 10_000,
            repeats: 1,
        }
    } else {
        Settings {
            rounds: 101,
            fanout_events: 1_000,
            deliveries: 30_000,
            delivery_rounds: 7,
            postgres_deliveries: 30_000,
            repeats: 3,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    if runs("signing") {
        let (ours, raw) = signing(settings.rounds);
        println!("sign_ns_per_1k: {ours:.0}");
        println!("raw_hmac_hex_ns_per_1k: {raw:.0}");
        println!("sign_overhead_ratio: {:.3}", ours / raw);
    }

    if runs("fanout") {
        let (small, large) = rt.block_on(fanout(settings.rounds, settings.fanout_events))?;
        println!("publish_us_100_subscriptions: {:.1}", small * 1e6);
        println!("publish_us_10000_subscriptions: {:.1}", large * 1e6);
        println!("fanout_scaling_ratio: {:.3}", large / small);
    }

    if runs("memory") {
        println!(
            "memory_bytes_per_subscription: {:.0}",
            rt.block_on(memory_per_subscription(100_000))?
        );
    }

    let receiver = rt.block_on(Receiver::start())?;
    if runs("delivery") {
        rt.block_on(delivery_rates(
            &receiver,
            settings.deliveries,
            settings.delivery_rounds,
        ))?;
    }

    match std::env::var("DATABASE_URL") {
        _ if !runs("postgres") => {}
        Ok(url) => {
            for _ in 0..settings.repeats {
                let rate = rt.block_on(drain_postgres(
                    &receiver,
                    &url,
                    settings.postgres_deliveries,
                    async_commit,
                ))?;
                let name = if async_commit {
                    "postgres_async_commit_deliveries_per_s"
                } else {
                    "postgres_deliveries_per_s"
                };
                println!("{name}: {:.0}", rate.per_s);
            }
        }
        Err(_) => println!("postgres_deliveries_per_s: skipped (DATABASE_URL unset)"),
    }
    Ok(())
}

/// User + system CPU seconds of this process so far (Linux `/proc`; 0 elsewhere),
/// receiver included, at the kernel's 10 ms tick.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// What `sign_timestamped` computes with nothing around it: the baseline.
fn raw_hmac_hex(key: &[u8], t: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(t);
    mac.update(b".");
    mac.update(body);
    hex::encode(&mac.finalize().into_bytes())
}

/// Median ns per signature of a 1 KiB body, ours and raw, in alternating rounds.
fn signing(rounds: usize) -> (f64, f64) {
    const PER_ROUND: u32 = 20_000;
    let body = vec![b'x'; 1024];
    let t = T_MS.to_string();
    let time = |f: &dyn Fn()| {
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            f();
        }
        start.elapsed().as_nanos() as f64 / f64::from(PER_ROUND)
    };
    let sign_ours = || {
        black_box(sign_timestamped(
            black_box(&KEY),
            black_box(T_MS),
            black_box(&body),
        ));
    };
    let sign_raw = || {
        black_box(raw_hmac_hex(
            black_box(&KEY),
            black_box(t.as_bytes()),
            black_box(&body),
        ));
    };
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Swap the order every round so neither side always runs warm.
        if round % 2 == 0 {
            ours.push(time(&sign_ours));
            raw.push(time(&sign_raw));
        } else {
            raw.push(time(&sign_raw));
            ours.push(time(&sign_ours));
        }
    }
    (median(ours), median(raw))
}

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(T_MS).unwrap_or(DateTime::UNIX_EPOCH)
}

/// A subscription with realistic field sizes and a bearer token.
fn subscription(url: &str, events: &[&str]) -> WebhookSubscription {
    let user = UserId::new_v4();
    let mut headers = BTreeMap::new();
    headers.insert(
        "Authorization".to_owned(),
        "Bearer 0123456789abcdef0123".to_owned(),
    );
    WebhookSubscription {
        id: SubscriptionId::new_v4(),
        name: "orders webhook (prod)".to_owned(),
        url: url.to_owned(),
        subscribed_events: events.iter().map(|e| (*e).to_owned()).collect(),
        headers,
        secret_key: SecretKey::from_bytes(KEY),
        enabled: true,
        created_at: at(),
        created_by: user,
        updated_at: at(),
        updated_by: user,
        filters: None,
        previous_secret: None,
    }
}

/// An organization with `total` subscriptions of which `matching` want [`EVENT`].
async fn organization(store: &dyn Storage, total: usize, matching: usize) -> Result<Organization> {
    let org = Organization::new(OrganizationId::new_v4(), "Bench Org");
    for i in 0..total {
        let events: &[&str] = if i < matching {
            &[EVENT, OTHER]
        } else {
            &[OTHER]
        };
        store
            .insert_subscription(
                org.id,
                &subscription("https://hooks.example.com/webhooks/orders", events),
            )
            .await?;
    }
    Ok(org)
}

/// A ~1 KiB event.
fn event() -> Event {
    Event::new(EVENT, json!({"note_id": "n-1", "text": "x".repeat(800)}))
}

/// Median seconds per publish with 100 and with 10,000 subscriptions (100
/// matching in both), in alternating rounds.
async fn fanout(rounds: usize, events: usize) -> Result<(f64, f64)> {
    let per_round = (events / rounds).max(1);
    let mut services = Vec::new();
    for total in [100, 10_000] {
        let store = Arc::new(MemoryStore::new());
        let org = organization(&*store, total, 100).await?;
        services.push((WebhookService::builder(store).build(), org));
    }
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let (service, org) = &services[i];
            let start = Instant::now();
            for _ in 0..per_round {
                black_box(service.publish(org, event()).await?);
            }
            times[i].push(start.elapsed().as_secs_f64() / per_round as f64);
        }
    }
    let [small, large] = times;
    Ok((median(small), median(large)))
}

async fn memory_per_subscription(count: usize) -> Result<f64> {
    let before = LIVE.load(Ordering::SeqCst);
    let store = MemoryStore::new();
    let org = OrganizationId::new_v4();
    for _ in 0..count {
        let sub = subscription("https://hooks.example.com/webhooks/orders", &[EVENT, OTHER]);
        store.insert_subscription(org, &sub).await?;
    }
    let after = LIVE.load(Ordering::SeqCst);
    drop(store);
    Ok(after.saturating_sub(before) as f64 / count as f64)
}

/// A keep-alive hyper server on 127.0.0.1 answering 200 at once, counting requests.
struct Receiver {
    url: String,
    seen: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_request| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        async {
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { url, seen })
    }

    /// Waits (bounded) until the receiver has seen `target` requests.
    async fn wait_for(&self, target: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(180);
        while self.seen.load(Ordering::Relaxed) < target {
            if Instant::now() > deadline {
                return Err(format!(
                    "receiver saw {} of {target} requests before the timeout",
                    self.seen.load(Ordering::Relaxed)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }
}

/// A rate and the process's CPU time per request while it was measured.
#[derive(Clone, Copy)]
struct Rate {
    per_s: f64,
    cpu_us: f64,
}

impl Rate {
    fn new(count: usize, seconds: f64, cpu_seconds: f64) -> Self {
        Self {
            per_s: count as f64 / seconds,
            cpu_us: cpu_seconds * 1e6 / count as f64,
        }
    }
}

/// End to end on `MemoryStore`, a bare reqwest client, and a bare reqwest
/// client sending the same signed headers (HMAC computed per request by hand),
/// in `rounds` interleaved rounds of `count` requests; prints medians, and the
/// ratios as medians of each round's ratio.
async fn delivery_rates(receiver: &Receiver, count: usize, rounds: usize) -> Result<()> {
    let mut ours = Vec::new();
    let mut raw = Vec::new();
    let mut signed = Vec::new();
    for round in 0..rounds {
        // Rotate the order so no side always runs first.
        for part in 0..3 {
            match (round + part) % 3 {
                0 => ours.push(drain_memory(receiver, count).await?),
                1 => raw.push(raw_http(receiver, count, None).await?),
                _ => signed.push(raw_http(receiver, count, Some(&KEY)).await?),
            }
        }
    }
    let per_s = |rates: &[Rate]| median(rates.iter().map(|r| r.per_s).collect());
    let cpu_us = |rates: &[Rate]| median(rates.iter().map(|r| r.cpu_us).collect());
    let ratio = |to: &[Rate]| {
        median(
            ours.iter()
                .zip(to)
                .map(|(ours, to)| ours.per_s / to.per_s)
                .collect(),
        )
    };
    println!("deliveries_per_s: {:.0}", per_s(&ours));
    println!("delivery_cpu_us_per_delivery: {:.1}", cpu_us(&ours));
    println!("raw_http_per_s: {:.0}", per_s(&raw));
    println!("raw_http_cpu_us_per_request: {:.1}", cpu_us(&raw));
    println!("raw_signed_http_per_s: {:.0}", per_s(&signed));
    println!("raw_signed_http_cpu_us_per_request: {:.1}", cpu_us(&signed));
    println!("delivery_vs_raw_http_ratio: {:.3}", ratio(&raw));
    println!("delivery_vs_raw_signed_http_ratio: {:.3}", ratio(&signed));
    Ok(())
}

/// Publishes `count` events to one subscription of `store`, then times the
/// worker draining them until the receiver has seen them all.
async fn drain(receiver: &Receiver, store: Arc<dyn Storage>, count: usize) -> Result<Rate> {
    let org = Organization::new(OrganizationId::new_v4(), "Bench Org");
    store
        .insert_subscription(org.id, &subscription(&receiver.url, &[EVENT]))
        .await?;
    let service = WebhookService::builder(store.clone()).build();
    // Publish from a few tasks: a PostgreSQL store would otherwise wait a round trip per event.
    let publishers: Vec<_> = (0..8)
        .map(|p| {
            let (service, org) = (service.clone(), org.clone());
            tokio::spawn(async move {
                for _ in (p..count).step_by(8) {
                    service.publish(&org, event()).await?;
                }
                Ok::<_, webhook_subscriptions::Error>(())
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await??;
    }
    let transport = HttpTransport::builder()
        .address_policy(AddressPolicy::allow_all())
        .build()?;
    let worker = Worker::builder(store, Arc::new(transport))
        .concurrency(CONCURRENCY)
        .batch_size(CONCURRENCY)
        // One subscription: let it use every slot, as the claim path is measured.
        .max_in_flight_per_subscription(CONCURRENCY)
        .poll_interval(Duration::from_millis(5))
        .build()?;
    let target = receiver.seen.load(Ordering::Relaxed) + count;
    let (stop, stopped) = oneshot::channel::<()>();
    let start = Instant::now();
    let cpu = cpu_seconds();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    let waited = receiver.wait_for(target).await;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let _ = stop.send(());
    let report = running.await?;
    waited?;
    if report.delivered != count {
        return Err(format!("worker delivered {} of {count}", report.delivered).into());
    }
    Ok(Rate::new(count, elapsed, cpu))
}

async fn drain_memory(receiver: &Receiver, count: usize) -> Result<Rate> {
    drain(receiver, Arc::new(MemoryStore::new()), count).await
}

async fn drain_postgres(
    receiver: &Receiver,
    url: &str,
    count: usize,
    async_commit: bool,
) -> Result<Rate> {
    let schema = format!("wh_bench_{}", uuid::Uuid::new_v4().simple());
    let config = PostgresStoreConfig::new()
        .with_schema(&schema)
        .with_asynchronous_attempt_commit(async_commit);
    let store = PostgresStore::connect_with_config(url, config).await?;
    store.migrate().await?;
    let rate = drain(receiver, Arc::new(store), count).await;
    let pool = sqlx::PgPool::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&pool)
    .await?;
    pool.close().await;
    rate
}

/// A bare reqwest client posting `count` bodies with the same concurrency:
/// the envelope bytes a delivery of [`event`] sends. With a `key`, each request also carries the headers a
/// delivery carries, its signature computed with a bare HMAC-SHA256 + hex:
/// the least work any signed webhook delivery needs.
async fn raw_http(receiver: &Receiver, count: usize, key: Option<&[u8]>) -> Result<Rate> {
    let client = reqwest::Client::new();
    let org = Organization::new(OrganizationId::new_v4(), "Bench Org");
    let limits = PublishLimits::default();
    let body = prepare_event(&EventCatalogue::default(), &limits, &org, event(), at())?.payload;
    let headers = Arc::new(match key {
        Some(_) => delivery_headers(&receiver.url, &body)?,
        None => {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            headers
        }
    });
    let key = key.map(<[u8]>::to_vec);
    let signature_header = TimestampedScheme::default().signature_header().clone();
    let next = Arc::new(AtomicUsize::new(0));
    let target = receiver.seen.load(Ordering::Relaxed) + count;
    let start = Instant::now();
    let cpu = cpu_seconds();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, body, next, url, headers, key, signature_header) = (
                client.clone(),
                body.clone(),
                next.clone(),
                receiver.url.clone(),
                headers.clone(),
                key.clone(),
                signature_header.clone(),
            );
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let mut headers = http::HeaderMap::clone(&headers);
                    if let Some(key) = &key {
                        let t = Utc::now().timestamp_millis().to_string();
                        let tag = raw_hmac_hex(key, t.as_bytes(), &body);
                        let value =
                            http::HeaderValue::try_from(format!("t={t},v1={tag}")).expect("ascii");
                        headers.insert(&signature_header, value);
                    }
                    let response = client
                        .post(&url)
                        .headers(headers)
                        .body(body.clone())
                        .send()
                        .await?;
                    response.bytes().await?;
                }
                Ok::<_, reqwest::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    receiver.wait_for(target).await?;
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Rate::new(count, elapsed, cpu_seconds() - cpu))
}

/// The headers of a delivery of `body` to `url` (the signature is replaced
/// per request): built once with the library, then sent by the bare client.
fn delivery_headers(url: &str, body: &Bytes) -> Result<http::HeaderMap> {
    let sub = subscription(url, &[EVENT]);
    let delivery = Delivery {
        id: DeliveryId::new_v4(),
        organization_id: OrganizationId::new_v4(),
        subscription_id: sub.id,
        event_id: EventId::new_v4(),
        event_name: EVENT.to_owned(),
        payload: body.clone(),
        attempts: 0,
        due_at: at(),
        state: DeliveryState::Leased,
    };
    let request = build_request(&SignatureScheme::default(), &sub, &delivery, at())?;
    Ok(request.headers().clone())
}
