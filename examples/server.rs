//! A runnable server that mounts the REST handler with hyper.
//!
//! ```text
//! cargo run --example server -- [--addr HOST:PORT] [--allow-private-targets]
//!     [--retry-delays-ms 100,200,...] [--database-url URL] [--lease-ms N]
//! ```
//!
//! The first line on stdout, once the server accepts connections, is
//! `listening on http://HOST:PORT` (the actual port when `--addr` asks for
//! port 0). The request context comes from the `X-Organization-Id` and
//! `X-User-Id` headers (UUIDs). SIGINT or SIGTERM stops the server after the
//! requests in flight are answered, and the delivery worker after the
//! attempts in flight are recorded.
//!
//! Besides the REST API, an example-only route lets you publish events:
//! `POST /v1/events` with `{"event": NAME, "data": {...}, "eventId": UUID,
//! "organizationName": NAME}` (`eventId` and `organizationName` optional)
//! answers 202 `{"data": {"enqueued": N}}`. A delivery worker with the HTTP
//! transport runs in the same process:
//!
//! - `--allow-private-targets` lets it deliver to loopback and private
//!   addresses (refused by default);
//! - `--retry-delays-ms` sets the delays between attempts (no jitter);
//! - `--lease-ms` sets its lease; each attempt may take up to
//!   `min(15 s, lease - 5 s)`.
//!
//! `--database-url` stores everything in PostgreSQL (feature `postgres`)
//! instead of memory. The example needs feature `http-client`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;
use webhook_subscriptions::api::ApiHandler;
use webhook_subscriptions::model::{Event, Organization};
use webhook_subscriptions::storage::{MemoryStore, Storage};
use webhook_subscriptions::{Error, RequestContext, WebhookService};

/// The example-only route that publishes an event.
const EVENTS_PATH: &str = "/v1/events";

const USAGE: &str = "usage: server [--addr HOST:PORT] [--allow-private-targets] \
[--retry-delays-ms MS,MS,...] [--database-url URL] [--lease-ms N]";

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
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Options {
            addr: "127.0.0.1:8080".to_owned(),
            allow_private_targets: false,
            retry_delays_ms: None,
            database_url: None,
            lease_ms: None,
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

async fn serve(
    api: Arc<ApiHandler>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = read_body(body, api.max_body_bytes()).await?;
    let ctx = context_from_headers(&parts.headers);
    let response = if parts.uri.path() == EVENTS_PATH {
        publish_event(&api, &parts.method, ctx, &body).await
    } else {
        api.handle(ctx, Request::from_parts(parts, body)).await
    };
    Ok(response.map(Full::new))
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
        let message =
            format!("Method Not Allowed: {method} is not allowed on this path; allowed: POST");
        let mut response =
            json_response(StatusCode::METHOD_NOT_ALLOWED, &json!({"message": message}));
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
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
                eprintln!("internal error: {error:?}");
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
    let storage = open_store(options.database_url.as_deref()).await?;
    let service = WebhookService::builder(storage.clone()).build();
    let api = ApiHandler::builder(service)
        .on_internal_error(|e| eprintln!("internal error: {e:?}"))
        .build()
        .map_err(|e| e.to_string())?;
    let api = Arc::new(api);
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = start_worker(&options, storage, stop_rx.clone())?;

    let listener = TcpListener::bind(&options.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.addr))?;
    let local: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{local}").map_err(|e| e.to_string())?;
        stdout.flush().map_err(|e| e.to_string())?;
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
                let mut stop = stop_rx.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| serve(api.clone(), request));
                    let connection = http1::Builder::new()
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
    worker
        .await
        .map_err(|e| format!("the delivery worker failed: {e}"))
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
    storage: Arc<dyn Storage>,
    mut stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    use std::time::Duration;

    use webhook_subscriptions::delivery::{RetryPolicy, Worker, LEASE_MARGIN};
    use webhook_subscriptions::transport::{AddressPolicy, HttpTransport};

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
    let address_policy = if options.allow_private_targets {
        AddressPolicy::allow_all()
    } else {
        AddressPolicy::default()
    };
    let transport = HttpTransport::builder()
        .timeout(timeout)
        .address_policy(address_policy)
        .build()
        .map_err(|e| e.to_string())?;
    let mut worker = Worker::builder(storage, Arc::new(transport)).transport_timeout(timeout);
    if let Some(lease) = lease {
        worker = worker.lease_duration(lease);
    }
    if let Some(delays) = &options.retry_delays_ms {
        let delays = delays.iter().map(|ms| Duration::from_millis(*ms)).collect();
        let policy =
            RetryPolicy::new(delays, 0.0).map_err(|e| format!("--retry-delays-ms: {e}"))?;
        worker = worker.retry_policy(policy);
    }
    let worker = worker.build().map_err(|e| e.to_string())?;
    Ok(tokio::spawn(async move {
        let shutdown = async move {
            // An error means the sender is gone: stop then too.
            let _ = stop.wait_for(|stop| *stop).await;
        };
        let report = worker.run(shutdown).await;
        if report.errors > 0 {
            eprintln!("delivery worker: {} store failures", report.errors);
        }
    }))
}

/// Without an HTTP transport there is nothing to deliver with.
#[cfg(not(feature = "http-client"))]
fn start_worker(
    _options: &Options,
    _storage: Arc<dyn Storage>,
    _stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    Err(
        "this example delivers events over HTTP and needs feature `http-client`, \
         e.g. `cargo run --features http-client --example server`"
            .to_owned(),
    )
}

#[tokio::main]
async fn main() -> ExitCode {
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
