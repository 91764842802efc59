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
//! requests in flight are answered.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;
use webhook_subscriptions::api::ApiHandler;
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::{RequestContext, WebhookService};

const USAGE: &str = "usage: server [--addr HOST:PORT] [--allow-private-targets] \
[--retry-delays-ms MS,MS,...] [--database-url URL] [--lease-ms N]";

/// The command line.
#[derive(Debug)]
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
    let response = api.handle(ctx, Request::from_parts(parts, body)).await;
    Ok(response.map(Full::new))
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
    if options.database_url.is_some() {
        return Err(
            "--database-url: the PostgreSQL store is not available in this build".to_owned(),
        );
    }
    if options.allow_private_targets
        || options.retry_delays_ms.is_some()
        || options.lease_ms.is_some()
    {
        return Err("the delivery worker is not available in this build".to_owned());
    }
    let service = WebhookService::builder(Arc::new(MemoryStore::new())).build();
    let api = ApiHandler::builder(service)
        .on_internal_error(|e| eprintln!("internal error: {e:?}"))
        .build()
        .map_err(|e| e.to_string())?;
    let api = Arc::new(api);

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

    let (stop_tx, stop_rx) = watch::channel(false);
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
    Ok(())
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
