//! [`ApiHandler`] as a `tower::Service` (feature `tower`), for any request
//! body type, so it mounts in axum, hyper or any tower stack as it is.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};

use super::{ApiHandler, RequestBody};
use crate::{BoxError, RequestContext};

/// Answered (400) when a request reaches the handler without a context.
const MISSING_CONTEXT: &str =
    "no RequestContext in the request extensions (the host's authentication inserts one)";

/// Serves the REST API as a tower service: the request context is the
/// [`RequestContext`] the host's authentication middleware inserted into the
/// request extensions (a request without one is answered with the 400
/// request-context error), and the body is read up to
/// [`ApiHandler::max_body_bytes`] (a longer one is answered with 413 without
/// reading the rest). Never fails: every problem is a response.
///
/// Under a router that strips a prefix (axum's `nest_service`), build the
/// handler with base path `/`:
///
/// ```
/// # use std::sync::Arc;
/// # use webhook_subscriptions::{storage::MemoryStore, Webhooks};
/// # fn main() -> webhook_subscriptions::Result<()> {
/// let webhooks = Webhooks::builder(Arc::new(MemoryStore::new())).build()?;
/// let api = webhooks.api_builder().base_path("/").build()?;
/// // axum: Router::new().nest_service("/v1/webhooks", api)
/// # let _ = api;
/// # Ok(())
/// # }
/// ```
impl<B> tower_service::Service<Request<B>> for ApiHandler
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let handler = self.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let ctx = parts
                .extensions
                .get::<RequestContext>()
                .copied()
                .ok_or_else(|| MISSING_CONTEXT.to_owned());
            let body = read_body(body, &parts.headers, handler.max_body_bytes).await;
            let response = handler
                .serve(ctx, &parts.method, parts.uri.path(), &parts.headers, body)
                .await;
            Ok(response.map(Full::new))
        })
    }
}

/// Reads at most `limit` bytes of `body`; a declared length over the limit
/// is refused before anything is read.
async fn read_body<B>(body: B, headers: &HeaderMap, limit: usize) -> RequestBody
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return RequestBody::TooLarge;
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => RequestBody::Read(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => RequestBody::TooLarge,
        Err(e) => RequestBody::Unreadable(e.to_string()),
    }
}
