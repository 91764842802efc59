//! The REST handler as a tower service: mounted in axum with one
//! `nest_service`, context from the request extensions, body limit enforced
//! while reading.
#![cfg(feature = "tower")]

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::{Extension, Router};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::ServiceExt;
use webhook_subscriptions::model::{OrganizationId, UserId};
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::{RequestContext, Webhooks};

fn webhooks() -> Webhooks {
    Webhooks::builder(Arc::new(MemoryStore::new()))
        .max_body_bytes(4096)
        .build()
        .expect("a valid configuration")
}

/// An axum app as a host writes it: the API nested under `/v1/webhooks`,
/// and (for `ctx`) a layer standing in for authentication.
fn app(webhooks: &Webhooks, ctx: Option<RequestContext>) -> Router {
    let api = webhooks.api_builder().base_path("/").build().unwrap();
    let router = Router::new().nest_service("/v1/webhooks", api);
    match ctx {
        Some(ctx) => router.layer(Extension(ctx)),
        None => router,
    }
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{status}: not JSON ({e})"))
    };
    (status, json)
}

fn new_ctx() -> RequestContext {
    RequestContext::new(OrganizationId::new_v4(), UserId::new_v4())
}

#[tokio::test]
async fn axum_nest_service_serves_every_route() {
    let webhooks = webhooks();
    let app = app(&webhooks, Some(new_ctx()));
    let create = json!({"name": "Receiver", "url": "https://receiver.example/hooks",
                        "events": ["ConversationCreated"]});

    let (status, created) = call(&app, Method::POST, "/v1/webhooks", Some(create)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let one = format!("/v1/webhooks/{id}");

    let (status, listed) = call(&app, Method::GET, "/v1/webhooks/", None).await;
    assert_eq!(status, StatusCode::OK, "trailing slash: {listed}");
    assert_eq!(listed["data"][0]["id"], id);
    let (status, got) = call(&app, Method::GET, &one, None).await;
    assert_eq!((status, &got["data"]["id"]), (StatusCode::OK, &json!(id)));
    let (status, patched) = call(&app, Method::PATCH, &one, Some(json!({"name": "Renamed"}))).await;
    assert_eq!(
        (status, &patched["data"]["name"]),
        (StatusCode::OK, &json!("Renamed"))
    );
    let (status, statuses) = call(&app, Method::GET, &format!("{one}/delivery-status"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(statuses["data"][0]["event"], "ConversationCreated");
    let logs = format!("{one}/delivery-status/logs/ConversationCreated");
    let (status, logs) = call(&app, Method::GET, &logs, None).await;
    assert_eq!((status, logs), (StatusCode::OK, json!({"data": []})));

    let (status, error) = call(&app, Method::PUT, "/v1/webhooks", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{error}");
    let (status, error) = call(&app, Method::GET, &format!("{one}/nothing"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");

    let (status, deleted) = call(&app, Method::DELETE, &one, None).await;
    assert_eq!((status, deleted), (StatusCode::NO_CONTENT, Value::Null));
    let (status, _) = call(&app, Method::GET, &one, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_request_without_a_context_in_its_extensions_is_refused() {
    let app = app(&webhooks(), None);
    let (status, error) = call(&app, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("Invalid value extracted from request context: ")
            && message.contains("RequestContext"),
        "{message}"
    );
}

#[tokio::test]
async fn contexts_in_extensions_scope_requests_to_their_organization() {
    let webhooks = webhooks();
    let create = json!({"name": "Receiver", "url": "https://receiver.example/hooks",
                        "events": ["ConversationCreated"]});
    let (status, _) = call(
        &app(&webhooks, Some(new_ctx())),
        Method::POST,
        "/v1/webhooks",
        Some(create),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, listed) = call(
        &app(&webhooks, Some(new_ctx())),
        Method::GET,
        "/v1/webhooks",
        None,
    )
    .await;
    assert_eq!((status, listed), (StatusCode::OK, json!({"data": []})));
}

/// A body of `chunks` chunks of 1 KiB, sent without a length, that counts
/// how many chunks were read.
struct CountingBody {
    chunks: usize,
    read: Arc<AtomicUsize>,
    fail: bool,
}

impl http_body::Body for CountingBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let read = this.read.fetch_add(1, Ordering::SeqCst);
        if read >= this.chunks {
            return Poll::Ready(None);
        }
        if this.fail {
            return Poll::Ready(Some(Err(std::io::Error::other("client went away"))));
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; 1024])))))
    }
}

impl CountingBody {
    /// The body, and the count of chunks read from it.
    fn new(chunks: usize, fail: bool) -> (Self, Arc<AtomicUsize>) {
        let read = Arc::new(AtomicUsize::new(0));
        let body = CountingBody {
            chunks,
            read: Arc::clone(&read),
            fail,
        };
        (body, read)
    }
}

/// POSTs `body` to the handler itself (no router), with a context and
/// `content_length` if given; the status and the JSON answer.
async fn post(body: CountingBody, content_length: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::post("/v1/webhooks").extension(new_ctx());
    if let Some(length) = content_length {
        request = request.header("content-length", length);
    }
    let response = webhooks()
        .api()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn an_oversized_streamed_body_is_refused_with_413_without_reading_the_rest() {
    let (body, read) = CountingBody::new(10_000, false);
    let (status, error) = post(body, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        error["message"],
        "Invalid value for: body: body is larger than the limit of 4096 bytes"
    );
    // 4 KiB is four chunks: reading stopped right after the limit.
    assert!(read.load(Ordering::SeqCst) <= 6, "{read:?} chunks read");
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_reading() {
    let (body, read) = CountingBody::new(1, false);
    let (status, _) = post(body, Some("5000")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(read.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_body_that_fails_to_arrive_is_a_400_saying_so() {
    let (body, _) = CountingBody::new(1, true);
    let (status, error) = post(body, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("client went away"), "{message}");
}

#[tokio::test]
async fn routing_comes_before_the_body_limit() {
    let handler = webhooks().api();
    let request = Request::get("/elsewhere")
        .extension(new_ctx())
        .body(Full::new(Bytes::from(vec![b' '; 10_000])))
        .unwrap();
    let response = handler.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
