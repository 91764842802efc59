//! A runnable server that mounts the REST handler with hyper.
//!
//! ```text
//! cargo run --example server -- [--addr HOST:PORT] [--allow-private-targets]
//!     [--retry-delays-ms 100,200,...] [--database-url URL] [--lease-ms N]
//!     [--max-in-flight-per-subscription N] [--insecure-trust-identity-headers]
//!     [--circuit-breaker off|THRESHOLD,COOL_DOWN_MS,MAX_COOL_DOWN_MS]
//! ```
//!
//! The first line on stdout, once the server accepts connections, is
//! `listening on http://HOST:PORT` (the actual port when `--addr` asks for
//! port 0); a warning about the identity headers goes to stderr at the same
//! moment. The request context comes from the `X-Organization-Id` and
//! `X-User-Id` headers (UUIDs), **trusted as sent**: anyone who can reach
//! the server can act for any organization.
//! A real host must authenticate callers and derive the context itself, so
//! the example binds only loopback addresses unless
//! `--insecure-trust-identity-headers` is given. SIGINT or SIGTERM stops the
//! server after the requests in flight are answered, and the delivery worker
//! after the attempts in flight are recorded.
//!
//! A client must send its request headers within 10 s and the whole
//! request must be answered within 30 s (slow clients cannot hold
//! connections open); REST request bodies must be sent as `application/json`.
//!
//! Besides the REST API, an example-only route lets you publish events:
//! `POST /v1/events` with `{"event": NAME, "data": {...}, "eventId": UUID,
//! "organizationName": NAME}` (`eventId` and `organizationName` optional)
//! answers 202 `{"data": {"enqueued": N}}`. A delivery worker with the HTTP
//! transport runs in the same process:
//!
//! - `--allow-private-targets` lets it deliver to loopback and private
//!   addresses, and the API accept URLs with such literal hosts (both
//!   refused by default);
//! - `--retry-delays-ms` sets the delays between attempts (no jitter);
//! - `--lease-ms` sets its lease; each attempt may take up to
//!   `min(15 s, lease - 5 s)`;
//! - `--max-in-flight-per-subscription` sets how many attempts one
//!   subscription may have in flight (default 4; a benchmark with one busy
//!   endpoint raises it);
//! - `--circuit-breaker` sets when a failing endpoint is paused: after
//!   THRESHOLD failures in a row, for COOL_DOWN_MS doubling up to
//!   MAX_COOL_DOWN_MS (default `5,30000,3600000`), or `off`.
//!
//! `--database-url` stores everything in PostgreSQL (feature `postgres`)
//! instead of memory. The example needs feature `http-client` and `metrics`
//! (both on in the crate's own dev builds).
//!
//! Operating it:
//!
//! - logs go to stderr through `tracing-subscriber`, filtered by `RUST_LOG`
//!   (default `info`: one line per failed attempt, disabled subscriptions,
//!   store errors); the worker's events (deliveries failed for good,
//!   disabled subscriptions, store errors, lost leases) are also logged by
//!   its `on_event` hook, target `server::events`, where a host would alert;
//! - `GET /metrics` answers the metrics in the Prometheus text format;
//! - `GET /healthz` answers 200 when the store answers, the worker runs and
//!   the oldest due delivery has waited less than 5 minutes, 503 otherwise,
//!   with `{"store", "worker", "queueDue", "oldestDueSeconds"}`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;
use webhook_subscriptions::api::ApiHandler;
use webhook_subscriptions::delivery::CircuitBreaker;
use webhook_subscriptions::model::{Event, Organization};
use webhook_subscriptions::storage::{MemoryStore, Storage};
use webhook_subscriptions::transport::AddressPolicy;
use webhook_subscriptions::validate::Validator;
use webhook_subscriptions::{Clock, Error, RequestContext, SystemClock, WebhookService};

/// The example-only route that publishes an event.
const EVENTS_PATH: &str = "/v1/events";
/// The Prometheus scrape route.
const METRICS_PATH: &str = "/metrics";
/// The health check route.
const HEALTH_PATH: &str = "/healthz";
/// `/healthz` fails once the oldest due delivery has waited this long.
const HEALTHY_QUEUE_LAG: Duration = Duration::from_secs(300);
/// How long `/healthz` waits for the store.
const HEALTH_STORE_TIMEOUT: Duration = Duration::from_secs(2);

const USAGE: &str = "usage: server [--addr HOST:PORT] [--allow-private-targets] \
[--retry-delays-ms MS,MS,...] [--database-url URL] [--lease-ms N] \
[--max-in-flight-per-subscription N] [--insecure-trust-identity-headers] \
[--circuit-breaker off|THRESHOLD,COOL_DOWN_MS,MAX_COOL_DOWN_MS]";

/// `off`, or `THRESHOLD,COOL_DOWN_MS,MAX_COOL_DOWN_MS`.
fn parse_breaker(text: &str) -> Result<CircuitBreaker, String> {
    if text == "off" {
        return Ok(CircuitBreaker::never());
    }
    let parts: Vec<&str> = text.split(',').collect();
    let [threshold, cool_down, max_cool_down] = parts[..] else {
        return Err(format!(
            "expected `off` or THRESHOLD,COOL_DOWN_MS,MAX_COOL_DOWN_MS, got `{text}`"
        ));
    };
    let number = |part: &str| {
        part.trim()
            .parse::<u64>()
            .map_err(|e| format!("`{part}`: {e}"))
    };
    let threshold = u32::try_from(number(threshold)?).map_err(|e| e.to_string())?;
    CircuitBreaker::new(
        threshold,
        Duration::from_millis(number(cool_down)?),
        Duration::from_millis(number(max_cool_down)?),
    )
    .map_err(|e| e.to_string())
}

/// How long a client may take to send its request headers (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading a request body and answering it may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Said at start-up: the identity headers are not authenticated.
const TRUST_WARNING: &str = "warning: X-Organization-Id and X-User-Id are trusted as sent; \
a real host must authenticate callers and derive the request context itself";

/// The command line.
#[derive(Debug)]
// Without `http-client` the delivery options are parsed but never used.
#[cfg_attr(not(feature = "http-client"), allow(dead_code))]
struct Options {
    addr: String,
    allow_private_targets: bool,
    retry_delays_ms: Option<Vec<u64>>,
    database_url: Option<String>,
    lease_ms: Option<u64>,
    max_in_flight_per_subscription: Option<usize>,
    insecure_trust_identity_headers: bool,
    circuit_breaker: Option<CircuitBreaker>,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Options {
            addr: "127.0.0.1:8080".to_owned(),
            allow_private_targets: false,
            retry_delays_ms: None,
            database_url: None,
            lease_ms: None,
            max_in_flight_per_subscription: None,
            insecure_trust_identity_headers: false,
            circuit_breaker: None,
        };
        while let Some(arg) = args.next() {
            // Both `--flag value` and `--flag=value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--addr" => options.addr = value()?,
                "--allow-private-targets" if inline.is_none() => {
                    options.allow_private_targets = true;
                }
                "--retry-delays-ms" => {
                    let delays = value()?
                        .split(',')
                        .map(|d| d.trim().parse::<u64>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("--retry-delays-ms: {e}"))?;
                    options.retry_delays_ms = Some(delays);
                }
                "--database-url" => options.database_url = Some(value()?),
                "--lease-ms" => {
                    let lease = value()?.parse().map_err(|e| format!("--lease-ms: {e}"))?;
                    options.lease_ms = Some(lease);
                }
                "--max-in-flight-per-subscription" => {
                    let cap = value()?
                        .parse()
                        .map_err(|e| format!("--max-in-flight-per-subscription: {e}"))?;
                    options.max_in_flight_per_subscription = Some(cap);
                }
                "--circuit-breaker" => {
                    options.circuit_breaker = Some(
                        parse_breaker(&value()?).map_err(|e| format!("--circuit-breaker: {e}"))?,
                    );
                }
                "--insecure-trust-identity-headers" if inline.is_none() => {
                    options.insecure_trust_identity_headers = true;
                }
                "--help" | "-h" => return Err(USAGE.to_owned()),
                _ => return Err(format!("unknown argument `{flag}`\n{USAGE}")),
            }
        }
        Ok(options)
    }
}

/// Reads the request context from the `X-Organization-Id` and `X-User-Id` headers.
fn context_from_headers(headers: &HeaderMap) -> Result<RequestContext, String> {
    let organization = uuid_header(headers, "X-Organization-Id")?;
    let user = uuid_header(headers, "X-User-Id")?;
    Ok(RequestContext::new(organization.into(), user.into()))
}

fn uuid_header(headers: &HeaderMap, name: &str) -> Result<Uuid, String> {
    let value = headers
        .get(name)
        .ok_or_else(|| format!("missing header {name}"))?;
    let text = value
        .to_str()
        .ok()
        .filter(|text| text.len() == 36)
        .ok_or_else(|| format!("header {name} must be a hyphenated UUID"))?;
    Uuid::try_parse(text).map_err(|e| format!("header {name} must be a hyphenated UUID: {e}"))
}

/// Reads the body, stopping once it exceeds `limit`: the handler then
/// answers 413 without the server buffering the rest.
async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, hyper::Error> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            buffer.extend_from_slice(&data);
            if buffer.len() > limit {
                break;
            }
        }
    }
    Ok(buffer.freeze())
}

/// Serves one request, answering 408 when reading and answering it takes
/// longer than [`REQUEST_TIMEOUT`] (a client trickling its body).
async fn serve(
    api: Arc<ApiHandler>,
    ops: Arc<Operations>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if let Some(response) = ops.respond(request.method(), request.uri().path()).await {
        return Ok(response.map(Full::new));
    }
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, respond(&api, request)).await {
        Ok(response) => response?,
        Err(_) => {
            let message = format!(
                "Request Timeout: the request was not received and answered within {} s",
                REQUEST_TIMEOUT.as_secs()
            );
            json_response(StatusCode::REQUEST_TIMEOUT, &json!({"message": message}))
        }
    };
    Ok(response.map(Full::new))
}

async fn respond(
    api: &ApiHandler,
    request: Request<Incoming>,
) -> Result<Response<Bytes>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = read_body(body, api.max_body_bytes()).await?;
    let ctx = context_from_headers(&parts.headers);
    Ok(if parts.uri.path() == EVENTS_PATH {
        publish_event(api, &parts.method, ctx, &body).await
    } else {
        api.handle(ctx, Request::from_parts(parts, body)).await
    })
}

/// What `/metrics` and `/healthz` look at.
struct Operations {
    storage: Arc<dyn Storage>,
    prometheus: PrometheusHandle,
    /// Cleared when the delivery worker stops, however it stops.
    worker_running: Arc<AtomicBool>,
}

impl Operations {
    /// Serves `GET /metrics` and `GET /healthz`; `None` for other routes.
    async fn respond(&self, method: &Method, path: &str) -> Option<Response<Bytes>> {
        if path != METRICS_PATH && path != HEALTH_PATH {
            return None;
        }
        if method != Method::GET {
            return Some(method_not_allowed(method, "GET"));
        }
        if path == METRICS_PATH {
            let mut response = Response::new(Bytes::from(self.prometheus.render()));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return Some(response);
        }
        Some(self.health().await)
    }

    /// Healthy when the store answers, the worker runs and the queue keeps up.
    async fn health(&self) -> Response<Bytes> {
        let now = SystemClock.now();
        let stats = tokio::time::timeout(HEALTH_STORE_TIMEOUT, self.storage.queue_stats(now)).await;
        let worker = self.worker_running.load(Ordering::SeqCst);
        let mut body = json!({
            "worker": if worker { "running" } else { "stopped" },
        });
        let healthy = match stats {
            Ok(Ok(stats)) => {
                let lag = stats.lag(now);
                body["store"] = json!("ok");
                body["queueDue"] = json!(stats.due);
                body["oldestDueSeconds"] = json!(lag.as_secs_f64());
                worker && lag < HEALTHY_QUEUE_LAG
            }
            Ok(Err(error)) => {
                tracing::warn!(error = ?error, "health check: the store failed");
                body["store"] = json!("failing");
                false
            }
            Err(_) => {
                body["store"] = json!("not answering");
                false
            }
        };
        body["status"] = json!(if healthy { "ok" } else { "unhealthy" });
        let status = if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(status, &body)
    }
}

/// Clears the worker's running flag when dropped, even by a panic.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The body of `POST /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PublishRequest {
    event: String,
    data: Value,
    event_id: Option<Uuid>,
    organization_name: Option<String>,
}

/// Serves `POST /v1/events`: publishes the event for the organization of
/// the request context.
async fn publish_event(
    api: &ApiHandler,
    method: &Method,
    ctx: Result<RequestContext, String>,
    body: &[u8],
) -> Response<Bytes> {
    if method != Method::POST {
        return method_not_allowed(method, "POST");
    }
    if body.len() > api.max_body_bytes() {
        let error = Error::InvalidBody(format!(
            "body is larger than the limit of {} bytes",
            api.max_body_bytes()
        ));
        return error_response(StatusCode::PAYLOAD_TOO_LARGE, &error);
    }
    match publish(api.service(), ctx, body).await {
        Ok(enqueued) => json_response(
            StatusCode::ACCEPTED,
            &json!({"data": {"enqueued": enqueued}}),
        ),
        Err(error) => {
            if error.status().is_server_error() {
                tracing::error!(error = ?error, "publishing failed");
            }
            error_response(error.status(), &error)
        }
    }
}

async fn publish(
    service: &WebhookService,
    ctx: Result<RequestContext, String>,
    body: &[u8],
) -> Result<usize, Error> {
    let ctx = ctx.map_err(Error::InvalidRequestContext)?;
    let request: PublishRequest =
        serde_json::from_slice(body).map_err(|e| Error::InvalidBody(e.to_string()))?;
    let name = request
        .organization_name
        .unwrap_or_else(|| ctx.organization_id.to_string());
    let organization = Organization::new(ctx.organization_id, name);
    let mut event = Event::new(request.event, request.data);
    if let Some(id) = request.event_id {
        event = event.with_id(id.into());
    }
    let receipt = service.publish(&organization, event).await?;
    Ok(receipt.enqueued)
}

/// 405 for `method` on a path that allows only `allow`.
fn method_not_allowed(method: &Method, allow: &'static str) -> Response<Bytes> {
    let message =
        format!("Method Not Allowed: {method} is not allowed on this path; allowed: {allow}");
    let mut response = json_response(StatusCode::METHOD_NOT_ALLOWED, &json!({"message": message}));
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn error_response(status: StatusCode, error: &Error) -> Response<Bytes> {
    json_response(status, &error.body())
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Bytes> {
    // Serializing these plain values cannot fail; answer 500 if it ever did.
    let (status, bytes) = match serde_json::to_vec(body) {
        Ok(bytes) => (status, bytes),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"message":"Internal Server Error"}"#.to_vec(),
        ),
    };
    let mut response = Response::new(Bytes::from(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Resolves when SIGINT or SIGTERM arrives.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(e) => {
                    eprintln!("cannot listen for SIGTERM: {e}");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

async fn run(options: Options) -> Result<(), String> {
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    webhook_subscriptions::delivery::metrics::describe();
    let storage = open_store(options.database_url.as_deref()).await?;
    // Validation refuses URLs the worker's transport would refuse anyway.
    let address_policy = if options.allow_private_targets {
        AddressPolicy::allow_all()
    } else {
        AddressPolicy::default()
    };
    let service = WebhookService::builder(storage.clone())
        .validator(Validator::default().with_address_policy(address_policy.clone()))
        .build();
    // The REST handler logs its 5xx errors itself (tracing, warn).
    let api = ApiHandler::builder(service)
        .require_content_type(true)
        .build()
        .map_err(|e| e.to_string())?;
    let api = Arc::new(api);

    let listener = TcpListener::bind(&options.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.addr))?;
    let local: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    if !local.ip().is_loopback() && !options.insecure_trust_identity_headers {
        return Err(format!(
            "refusing to listen on {local}: this example trusts the X-Organization-Id and \
             X-User-Id headers as sent, so anyone who reaches it can act for any \
             organization; bind a loopback address, or pass \
             --insecure-trust-identity-headers behind a proxy that authenticates callers"
        ));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker_running = Arc::new(AtomicBool::new(true));
    let worker = start_worker(
        &options,
        address_policy,
        storage.clone(),
        stop_rx.clone(),
        Running(worker_running.clone()),
    )?;
    let ops = Arc::new(Operations {
        storage,
        prometheus: prometheus.clone(),
        worker_running,
    });
    // The recorder drains its histograms only when asked to.
    let upkeep = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticks.tick().await;
            prometheus.run_upkeep();
        }
    });
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{local}").map_err(|e| e.to_string())?;
        stdout.flush().map_err(|e| e.to_string())?;
        eprintln!("{TRUST_WARNING}");
    }

    let mut connections = JoinSet::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        eprintln!("accept failed: {e}");
                        continue;
                    }
                };
                let api = api.clone();
                let ops = ops.clone();
                let mut stop = stop_rx.clone();
                connections.spawn(async move {
                    let service =
                        service_fn(move |request| serve(api.clone(), ops.clone(), request));
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        result = connection.as_mut() => {
                            if let Err(e) = result {
                                eprintln!("connection error: {e}");
                            }
                            return;
                        }
                        _ = stop.changed() => connection.as_mut().graceful_shutdown(),
                    }
                    if let Err(e) = connection.await {
                        eprintln!("connection error: {e}");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    let stopped = worker
        .await
        .map_err(|e| format!("the delivery worker failed: {e}"));
    upkeep.abort();
    stopped
}

/// The store: PostgreSQL for `--database-url`, else memory.
async fn open_store(database_url: Option<&str>) -> Result<Arc<dyn Storage>, String> {
    match database_url {
        None => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "postgres")]
        Some(url) => {
            let store = webhook_subscriptions::storage::PostgresStore::connect(url)
                .await
                .map_err(|e| format!("--database-url: {e}"))?;
            store
                .migrate()
                .await
                .map_err(|e| format!("--database-url: migration failed: {e}"))?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "postgres"))]
        Some(_) => Err("--database-url needs the example built with feature `postgres`".to_owned()),
    }
}

/// Starts the delivery worker with the HTTP transport; it runs until `stop`.
#[cfg(feature = "http-client")]
fn start_worker(
    options: &Options,
    address_policy: AddressPolicy,
    storage: Arc<dyn Storage>,
    mut stop: watch::Receiver<bool>,
    running: Running,
) -> Result<tokio::task::JoinHandle<()>, String> {
    use webhook_subscriptions::delivery::{RetryPolicy, Worker, LEASE_MARGIN};
    use webhook_subscriptions::transport::HttpTransport;

    const MAX_ATTEMPT_TIME: Duration = Duration::from_secs(15);

    // The lease must outlast an attempt by LEASE_MARGIN: shorten attempts
    // to fit a short lease rather than let a slow receiver get duplicates.
    let lease = options.lease_ms.map(Duration::from_millis);
    let timeout = match lease {
        None => MAX_ATTEMPT_TIME,
        Some(lease) => lease
            .checked_sub(LEASE_MARGIN)
            .filter(|room| !room.is_zero())
            .ok_or_else(|| {
                format!(
                    "--lease-ms: the lease must be longer than {} ms, the time kept \
                     to sign and record an attempt",
                    LEASE_MARGIN.as_millis()
                )
            })?
            .min(MAX_ATTEMPT_TIME),
    };
    let transport = HttpTransport::builder()
        .timeout(timeout)
        .address_policy(address_policy)
        .build()
        .map_err(|e| e.to_string())?;
    let mut worker = Worker::builder(storage, Arc::new(transport))
        .transport_timeout(timeout)
        .on_event(log_event);
    if let Some(lease) = lease {
        worker = worker.lease_duration(lease);
    }
    if let Some(cap) = options.max_in_flight_per_subscription {
        worker = worker.max_in_flight_per_subscription(cap);
    }
    if let Some(breaker) = options.circuit_breaker {
        worker = worker.circuit_breaker(breaker);
    }
    if let Some(delays) = &options.retry_delays_ms {
        let delays = delays.iter().map(|ms| Duration::from_millis(*ms)).collect();
        let policy =
            RetryPolicy::new(delays, 0.0).map_err(|e| format!("--retry-delays-ms: {e}"))?;
        worker = worker.retry_policy(policy);
    }
    let worker = worker.build().map_err(|e| e.to_string())?;
    Ok(tokio::spawn(async move {
        let _running = running;
        let shutdown = async move {
            // An error means the sender is gone: stop then too.
            let _ = stop.wait_for(|stop| *stop).await;
        };
        let report = worker.run(shutdown).await;
        tracing::info!(?report, "delivery worker stopped");
    }))
}

/// The worker's hook: where a host would alert or send operational
/// webhooks, this example logs. Each attempt is logged by the worker itself.
#[cfg(feature = "http-client")]
fn log_event(event: &webhook_subscriptions::delivery::WorkerEvent<'_>) {
    use webhook_subscriptions::delivery::WorkerEvent;

    match event {
        WorkerEvent::DeliveryFailed {
            delivery, reason, ..
        } => tracing::warn!(
            target: "server::events",
            subscription_id = %delivery.subscription_id,
            delivery_id = %delivery.delivery_id,
            %reason,
            "alert: delivery failed for good"
        ),
        WorkerEvent::SubscriptionDisabled {
            organization_id,
            subscription_id,
            reason,
            ..
        } => tracing::warn!(
            target: "server::events",
            %organization_id,
            %subscription_id,
            %reason,
            "alert: subscription disabled"
        ),
        WorkerEvent::CircuitOpened {
            subscription_id,
            until,
            ..
        } => tracing::warn!(
            target: "server::events",
            %subscription_id,
            paused_until = %until,
            "alert: endpoint paused after repeated failures"
        ),
        WorkerEvent::StoreError {
            operation, error, ..
        } => tracing::error!(
            target: "server::events",
            %operation,
            error = ?error,
            "alert: store error"
        ),
        WorkerEvent::LeaseLost { delivery, .. } => tracing::warn!(
            target: "server::events",
            delivery_id = %delivery.delivery_id,
            "alert: lease lost (attempts outlast the lease?)"
        ),
        _ => {}
    }
}

/// Without an HTTP transport there is nothing to deliver with.
#[cfg(not(feature = "http-client"))]
fn start_worker(
    _options: &Options,
    _address_policy: AddressPolicy,
    _storage: Arc<dyn Storage>,
    _stop: watch::Receiver<bool>,
    _running: Running,
) -> Result<tokio::task::JoinHandle<()>, String> {
    Err(
        "this example delivers events over HTTP and needs feature `http-client`, \
         e.g. `cargo run --features http-client --example server`"
            .to_owned(),
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("server: {message}");
            ExitCode::FAILURE
        }
    }
}
