//! `HttpTransport` against real receivers on loopback: timeouts, the body cap,
//! redirects, errors, keep-alive and the SSRF guard end to end.
#![cfg(feature = "http-client")]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use webhook_subscriptions::delivery::delivery_detail;
use webhook_subscriptions::transport::{
    AddressPolicy, HttpTransport, HttpTransportBuilder, Transport, TransportError,
    TransportResponse,
};
use webhook_subscriptions::Error;

/// What a receiver saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct Log {
    connections: AtomicUsize,
    requests: Mutex<Vec<Seen>>,
}

impl Log {
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }
}

/// A hyper receiver on `listener` answering with `handler`; counts accepted
/// connections and records every request it reads.
fn serve<F, Fut>(listener: TcpListener, handler: F) -> Arc<Log>
where
    F: Fn(Seen) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let log = Arc::new(Log::default());
    let handler = Arc::new(handler);
    let accept_log = Arc::clone(&log);
    tokio::spawn(async move {
        // Ends with the test's runtime.
        while let Ok((stream, _)) = listener.accept().await {
            accept_log.connections.fetch_add(1, Ordering::SeqCst);
            let (log, handler) = (Arc::clone(&accept_log), Arc::clone(&handler));
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let (log, handler) = (Arc::clone(&log), Arc::clone(&handler));
                    async move {
                        let (parts, body) = request.into_parts();
                        let seen = Seen {
                            method: parts.method,
                            uri: parts.uri,
                            headers: parts.headers,
                            body: body.collect().await?.to_bytes(),
                        };
                        log.requests.lock().unwrap().push(seen.clone());
                        Ok::<_, hyper::Error>(handler(seen).await)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    log
}

async fn ok_receiver() -> (SocketAddr, Arc<Log>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = serve(listener, |_| async {
        Response::new(Full::new(Bytes::from("ok")))
    });
    (addr, log)
}

/// A raw receiver: reads one request head, then runs `respond` on the stream.
fn serve_raw<F, Fut>(listener: TcpListener, respond: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            read_request(&mut stream).await;
            tokio::spawn(respond(stream));
        }
    });
}

/// Reads one request (head and `Content-Length` body) as raw bytes.
async fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if raw.len() >= end + 4 + length {
                return raw;
            }
        }
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            return raw;
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Body bytes that differ along the way, so a prefix check means something.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn builder() -> HttpTransportBuilder {
    HttpTransport::builder()
}

fn open_transport() -> HttpTransport {
    builder()
        .address_policy(AddressPolicy::allow_all())
        .build()
        .unwrap()
}

fn post(url: &str, body: &'static [u8]) -> Request<Bytes> {
    Request::post(url)
        .header("content-type", "application/json")
        .body(Bytes::from_static(body))
        .unwrap()
}

async fn send(transport: &HttpTransport, url: &str) -> Result<TransportResponse, TransportError> {
    transport.send(post(url, b"{}")).await
}

#[tokio::test]
async fn returns_status_headers_and_body_of_the_response() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = serve(listener, |_| async {
        Response::builder()
            .status(StatusCode::ACCEPTED)
            .header("x-receiver", "yes")
            .body(Full::new(Bytes::from("queued for later")))
            .unwrap()
    });

    let response = open_transport()
        .send(post(&format!("http://{addr}/hooks"), br#"{"a":1}"#))
        .await
        .unwrap();

    assert_eq!(response.status, StatusCode::ACCEPTED);
    assert_eq!(response.headers["x-receiver"], "yes");
    assert_eq!(response.body, Bytes::from("queued for later"));
    let requests = log.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, Method::POST);
    assert_eq!(requests[0].uri.path(), "/hooks");
    assert_eq!(requests[0].headers["content-type"], "application/json");
    assert_eq!(requests[0].body, Bytes::from(r#"{"a":1}"#));
}

#[tokio::test]
async fn headers_and_body_arrive_on_the_wire_as_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (raw_tx, raw_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let raw = read_request(&mut stream).await;
        stream
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
        raw_tx.send(raw).unwrap();
    });
    let body = br#"{"event_id":"e1","data":{"note":"caf\u00e9"}}"#;
    let request = Request::post(format!("http://{addr}/hooks/a?x=1"))
        .header("content-type", "application/json")
        .header("user-agent", "webhook-subscriptions/0.1.0")
        .header("x-webhook-signature", "t=1700000000000,v1=abc123")
        .header("authorization", "Bearer s3cr3t")
        .header("x-multi", "first")
        .header("x-multi", "second")
        .body(Bytes::from_static(body))
        .unwrap();

    let response = open_transport().send(request).await.unwrap();

    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let raw = raw_rx.await.unwrap();
    let head_end = find(&raw, b"\r\n\r\n").unwrap();
    let head = std::str::from_utf8(&raw[..head_end + 2]).unwrap();
    assert!(head.starts_with("POST /hooks/a?x=1 HTTP/1.1\r\n"), "{head}");
    for line in [
        "content-type: application/json\r\n",
        "user-agent: webhook-subscriptions/0.1.0\r\n",
        "x-webhook-signature: t=1700000000000,v1=abc123\r\n",
        "authorization: Bearer s3cr3t\r\n",
        "x-multi: first\r\n",
        "x-multi: second\r\n",
        &format!("host: {addr}\r\n"),
        &format!("content-length: {}\r\n", body.len()),
    ] {
        assert!(head.contains(line), "missing {line:?} in {head}");
    }
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert_eq!(&raw[head_end + 4..], body);
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let (addr, log) = ok_receiver().await;
    let transport = open_transport();

    for _ in 0..3 {
        let response = send(&transport, &format!("http://{addr}/")).await.unwrap();
        assert_eq!(response.status, StatusCode::OK);
    }

    assert_eq!(log.requests().len(), 3);
    assert_eq!(log.connections(), 1);
}

#[tokio::test]
async fn each_request_goes_to_its_own_url_when_urls_repeat() {
    let (addr, log) = ok_receiver().await;
    let transport = open_transport();
    let targets = [
        "/hooks/a?x=1",
        "/hooks/A?x=1",
        "/hooks/a?x=2",
        "/hooks/a?x=1",
        "/",
    ];

    for target in targets {
        let response = send(&transport, &format!("http://{addr}{target}"))
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::OK);
    }

    let seen: Vec<String> = log.requests().iter().map(|r| r.uri.to_string()).collect();
    assert_eq!(seen, targets);
}

#[tokio::test]
async fn slow_receiver_hits_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, |_| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Response::new(Full::new(Bytes::new()))
    });
    let transport = builder()
        .address_policy(AddressPolicy::allow_all())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();

    let err = send(&transport, &format!("http://{addr}/"))
        .await
        .unwrap_err();

    assert_eq!(
        err,
        TransportError::Timeout("request timed out after 300ms".to_owned())
    );
}

#[tokio::test]
async fn body_that_stalls_before_the_cap_hits_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve_raw(listener, |mut stream| async move {
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly ten.")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let transport = builder()
        .address_policy(AddressPolicy::allow_all())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();

    let err = send(&transport, &format!("http://{addr}/"))
        .await
        .unwrap_err();

    assert!(matches!(err, TransportError::Timeout(_)), "{err:?}");
}

#[tokio::test]
async fn two_megabyte_body_is_cut_at_the_default_64_kib() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = pattern(2 * 1024 * 1024);
    let sent = body.clone();
    serve_raw(listener, move |mut stream| {
        let body = sent.clone();
        async move {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
            // Fails once the transport hangs up without reading the rest.
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        }
    });

    let response = send(&open_transport(), &format!("http://{addr}/"))
        .await
        .unwrap();

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body.len(), 64 * 1024);
    assert_eq!(response.body[..], body[..64 * 1024]);
}

#[tokio::test]
async fn reading_stops_at_a_configured_cap_without_waiting_for_the_rest() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = pattern(4096);
    let sent = body.clone();
    serve_raw(listener, move |mut stream| {
        let body = sent.clone();
        async move {
            // Announces 2 MiB, sends 4 KiB, then stalls: only a transport that
            // stops at its cap can answer before its timeout.
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 2097152\r\n\r\n";
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(&body).await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
    let transport = builder()
        .address_policy(AddressPolicy::allow_all())
        .max_response_body(1000)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let response = send(&transport, &format!("http://{addr}/")).await.unwrap();

    assert_eq!(response.body[..], body[..1000]);
}

#[tokio::test]
async fn redirect_is_returned_not_followed() {
    let (target, target_log) = ok_receiver().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let location = format!("http://{target}/landing");
    let sent_location = location.clone();
    serve(listener, move |_| {
        let location = sent_location.clone();
        async move {
            Response::builder()
                .status(StatusCode::FOUND)
                .header("location", location)
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
    });

    let response = send(&open_transport(), &format!("http://{addr}/"))
        .await
        .unwrap();

    assert_eq!(response.status, StatusCode::FOUND);
    assert_eq!(response.headers["location"], location.as_str());
    // A followed redirect would have been answered before `send` returned.
    assert!(target_log.requests().is_empty());
    assert_eq!(target_log.connections(), 0);
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);

    let err = send(&open_transport(), &format!("http://{addr}/"))
        .await
        .unwrap_err();

    assert_eq!(
        err,
        TransportError::Connect("connection refused".to_owned())
    );
}

#[tokio::test]
async fn https_to_a_plaintext_receiver_is_a_tls_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        let _ = stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
    });

    let err = send(&open_transport(), &format!("https://{addr}/"))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, TransportError::Other(message) if message.starts_with("tls: ")),
        "{err:?}"
    );
}

#[tokio::test]
async fn default_policy_refuses_loopback_spellings_before_connecting() {
    let (v4, v4_log) = ok_receiver().await;
    let v6_listener = TcpListener::bind("[::1]:0").await.unwrap();
    let v6 = v6_listener.local_addr().unwrap();
    let v6_log = serve(v6_listener, |_| async {
        Response::new(Full::new(Bytes::new()))
    });
    let guarded = builder().build().unwrap();
    let port = v4.port();

    for (url, expected) in [
        (
            format!("http://localhost:{port}/"),
            "localhost resolves only to blocked addresses (loopback)",
        ),
        (
            format!("http://127.0.0.1:{port}/"),
            "127.0.0.1 is blocked (loopback)",
        ),
        (
            format!("http://2130706433:{port}/"),
            "127.0.0.1 is blocked (loopback)",
        ),
        (
            format!("http://0x7f.1:{port}/"),
            "127.0.0.1 is blocked (loopback)",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "::ffff:127.0.0.1 is blocked (loopback)",
        ),
        (
            format!("http://0.0.0.0:{port}/"),
            "0.0.0.0 is blocked (unspecified)",
        ),
        (
            format!("http://[::1]:{}/", v6.port()),
            "::1 is blocked (loopback)",
        ),
    ] {
        let err = send(&guarded, &url).await.unwrap_err();
        assert_eq!(err, TransportError::Blocked(expected.to_owned()), "{url}");
    }

    // The same receivers answer once the guard is off. Connections are
    // accepted in arrival order, so had any refused attempt connected, it
    // would be counted by the time these answers come back.
    let open = open_transport();
    let response = send(&open, &format!("http://{v4}/")).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    let response = send(&open, &format!("http://{v6}/")).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(v4_log.connections(), 1);
    assert_eq!(v6_log.connections(), 1);
}

#[tokio::test]
async fn loopback_spellings_do_reach_loopback_when_allowed() {
    let (addr, log) = ok_receiver().await;
    let port = addr.port();
    let open = open_transport();

    for url in [
        format!("http://localhost:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
    ] {
        let response = send(&open, &url).await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{url}");
    }
    assert_eq!(log.requests().len(), 4);
}

#[tokio::test]
async fn allowed_network_is_reachable_while_others_stay_blocked() {
    let (addr, log) = ok_receiver().await;
    let policy = AddressPolicy::default().allow_network("127.0.0.0/8".parse().unwrap());
    let transport = builder().address_policy(policy).build().unwrap();

    let response = send(&transport, &format!("http://{addr}/")).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(log.requests().len(), 1);

    let err = send(&transport, &format!("http://[::1]:{}/", addr.port()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TransportError::Blocked("::1 is blocked (loopback)".to_owned())
    );
}

#[tokio::test]
async fn a_name_resolving_to_blocked_addresses_tells_tenants_nothing_of_them() {
    let (addr, log) = ok_receiver().await;
    let guarded = builder().build().unwrap();
    let err = send(&guarded, &format!("http://localhost:{}/", addr.port()))
        .await
        .unwrap_err();
    // What a tenant sees as `responseText`...
    let shown = delivery_detail(&Err(err.clone()), chrono::Utc::now()).response_text;
    assert_eq!(shown, "blocked by address policy");
    // ...while operators still learn which class of address it was.
    assert!(matches!(err, TransportError::Blocked(_)), "{err:?}");
    assert!(err.detail().contains("loopback"), "{}", err.detail());
    assert_eq!(log.connections(), 0);
}

#[tokio::test]
async fn ports_outside_the_allowed_ones_are_blocked_before_connecting() {
    let (addr, log) = ok_receiver().await;
    let url = format!("http://{addr}/");
    let other_port = builder()
        .address_policy(AddressPolicy::allow_all().allowed_ports([443]))
        .build()
        .unwrap();
    let err = send(&other_port, &url).await.unwrap_err();
    assert_eq!(
        err,
        TransportError::Blocked(format!("port {} is not allowed", addr.port()))
    );

    let this_port = builder()
        .address_policy(AddressPolicy::allow_all().allowed_ports([addr.port()]))
        .build()
        .unwrap();
    let response = send(&this_port, &url).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(log.connections(), 1, "the refused attempt never connected");
}

#[test]
fn zero_timeouts_are_refused() {
    for builder in [
        builder().timeout(Duration::ZERO),
        builder().connect_timeout(Duration::ZERO),
    ] {
        assert!(matches!(
            builder.build(),
            Err(Error::InvalidConfiguration(_))
        ));
    }
}

#[test]
fn timeout_reports_the_configured_whole_request_timeout() {
    assert_eq!(
        builder().build().unwrap().timeout(),
        Duration::from_secs(15)
    );
    assert_eq!(
        builder()
            .timeout(Duration::from_secs(40))
            .build()
            .unwrap()
            .timeout(),
        Duration::from_secs(40)
    );
}

#[tokio::test]
async fn unsupported_scheme_is_refused() {
    let err = send(&open_transport(), "ftp://127.0.0.1/")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TransportError::Other("unsupported url scheme ftp".to_owned())
    );
}
