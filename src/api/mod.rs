//! The framework-free REST handler: [`ApiHandler`] turns an
//! `http::Request<Bytes>` into an `http::Response<Bytes>`, so hosts can mount
//! it in any web framework and supply the [`RequestContext`] from their own
//! authentication.
//!
//! Routes, under a configurable base path (default `/v1/webhooks`):
//!
//! | method + path | success |
//! |---|---|
//! | `POST {base}` | 201 `{"data": subscription}` |
//! | `GET {base}` | 200 `{"data": [subscription]}` |
//! | `GET {base}/{webhookSubscriptionId}` | 200 `{"data": subscription}` |
//! | `PATCH {base}/{webhookSubscriptionId}` | 200 `{"data": subscription}` |
//! | `DELETE {base}/{webhookSubscriptionId}` | 204, empty body |
//! | `GET {base}/{webhookSubscriptionId}/delivery-status` | 200 `{"data": [{event, deliveryStatus}], "endpoint": {state, failureStreak, failingSince, pausedUntil}}` |
//! | `GET {base}/{webhookSubscriptionId}/delivery-status/logs/{event}` | 200 `{"data": [{deliveryDetail, payload}]}` |
//! | `GET {base}/{webhookSubscriptionId}/failed-deliveries` | 200 `{"data": [{id, event, eventId, attempts, lastAttemptDueAt}]}` |
//! | `POST {base}/{webhookSubscriptionId}/failed-deliveries/redeliver` with `{"since": RFC 3339}` | 202 `{"data": {"redelivered": N}}` |
//! | `POST {base}/{webhookSubscriptionId}/failed-deliveries/{deliveryId}/redeliver` | 202 `{"data": {"redelivered": 1}}` |
//! | `POST {base}/{webhookSubscriptionId}/test-event` | 202 `{"data": {eventId, deliveryId}}` |
//! | `POST {base}/{webhookSubscriptionId}/rotate-secret` with optional `{"gracePeriodSeconds": N}` | 200 `{"data": {secretKey, previousSecretExpiresAt}}` |
//!
//! Path matching: segments are percent-decoded before they are compared or
//! parsed; one trailing slash is ignored (`/v1/webhooks/` is
//! `/v1/webhooks`); the query string is ignored. An unknown path answers 404,
//! a known path with another method 405 with an `Allow` header. Every body
//! is JSON (`Content-Type: application/json`); errors are
//! `{"message": "..."}` as described by [`Error`], and never larger than a
//! few KiB whatever the request (see [`MAX_REPORTED_ERRORS`](crate::MAX_REPORTED_ERRORS)
//! and [`MAX_ERROR_MESSAGE_BYTES`](crate::MAX_ERROR_MESSAGE_BYTES)). A request body larger than
//! [`ApiHandlerBuilder::max_body_bytes`] answers 413. A request body sent
//! with a `Content-Type` other than `application/json` (parameters such as
//! `charset=utf-8` allowed) answers 415, so an HTML form on another site
//! cannot post to the API with a browser's cookies; see
//! [`ApiHandlerBuilder::require_content_type`] to refuse bodies without one.
//! Every response carries `Cache-Control: no-store`: subscriptions include
//! their secret and credentials.
//!
//! Checks happen in this order: route, path parameters, request context,
//! body (size, media type, JSON), then the operation itself.
//!
//! With feature `tower`, [`ApiHandler`] is also a `tower::Service` for
//! `http::Request<B>` of any body type: the context comes from the request
//! extensions and the body is read up to the limit, so it mounts in axum with
//! one `nest_service`.
//!
//! ```
//! # use std::sync::Arc;
//! # use bytes::Bytes;
//! # use webhook_subscriptions::{api::ApiHandler, RequestContext, WebhookService};
//! # use webhook_subscriptions::storage::MemoryStore;
//! # async fn demo(ctx: RequestContext) {
//! let service = WebhookService::builder(Arc::new(MemoryStore::default())).build();
//! let api = ApiHandler::new(service);
//! let request = http::Request::get("/v1/webhooks").body(Bytes::new()).unwrap();
//! let response = api.handle(Ok(ctx), request).await;
//! assert_eq!(response.status(), 200);
//! # }
//! ```

mod route;
#[cfg(feature = "tower")]
mod tower;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::field::{display, Empty};
use tracing::{debug, debug_span, warn, Instrument, Span};

use crate::error::{Error, ErrorBody, Result};
use crate::model::{
    truncate_utf8, CreateWebhookSubscription, DataEnvelope, DeliveryId, PatchWebhookSubscription,
    RedeliverFailedSince, RotateSecret, SubscriptionId,
};
use crate::service::{WebhookService, DEFAULT_GRACE_PERIOD};
use crate::RequestContext;

pub use route::Route;
use route::{
    match_path, percent_decode, Op, DELIVERY_ID_PARAM, EVENT_PARAM, SUBSCRIPTION_ID_PARAM,
};

/// The default base path of the routes.
pub const DEFAULT_BASE_PATH: &str = "/v1/webhooks";
/// The default limit on request bodies: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// How much of a request path an error message repeats.
const ECHOED_PATH_BYTES: usize = 256;
/// How much of a refused `Content-Type` an error message repeats.
const ECHOED_MEDIA_TYPE_BYTES: usize = 128;

type ErrorHook = Arc<dyn Fn(&Error) + Send + Sync>;

/// The REST handler: routes a request to the [`WebhookService`] and renders
/// its result. Cheap to clone; clones share the service.
#[derive(Clone)]
pub struct ApiHandler {
    service: WebhookService,
    base_path: String,
    base_segments: Vec<String>,
    max_body_bytes: usize,
    require_content_type: bool,
    on_internal_error: Option<ErrorHook>,
}

impl fmt::Debug for ApiHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiHandler")
            .field("service", &self.service)
            .field("base_path", &self.base_path)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// Configures an [`ApiHandler`].
#[must_use]
pub struct ApiHandlerBuilder {
    service: WebhookService,
    base_path: String,
    max_body_bytes: usize,
    require_content_type: bool,
    on_internal_error: Option<ErrorHook>,
}

impl fmt::Debug for ApiHandlerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiHandlerBuilder")
            .field("base_path", &self.base_path)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl ApiHandlerBuilder {
    /// Serves the routes under `path` instead of [`DEFAULT_BASE_PATH`]: `/`
    /// followed by non-empty segments of unreserved URL characters (a
    /// trailing `/` is dropped; `/` alone serves at the root).
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        self.base_path = path.into();
        self
    }

    /// Refuses request bodies larger than `bytes` (413) instead of
    /// [`DEFAULT_MAX_BODY_BYTES`].
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Also refuses (415) request bodies sent without a `Content-Type`
    /// header. Off by default, for clients that never set one; turn it on
    /// when browsers can reach the API with ambient credentials (cookies),
    /// since a cross-site `fetch` of a typeless body sends none either.
    pub fn require_content_type(mut self, required: bool) -> Self {
        self.require_content_type = required;
        self
    }

    /// Calls `hook` with every error answered as 500, whose details clients
    /// never see: the place to log them.
    pub fn on_internal_error(mut self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_internal_error = Some(Arc::new(hook));
        self
    }

    /// The configured handler; [`Error::InvalidConfiguration`] for a
    /// malformed base path or a zero body limit.
    pub fn build(self) -> Result<ApiHandler> {
        let base_segments = base_segments(&self.base_path)?;
        if self.max_body_bytes == 0 {
            return Err(Error::InvalidConfiguration(
                "max body bytes must be positive".to_owned(),
            ));
        }
        let base_path = base_segments
            .iter()
            .map(|segment| format!("/{segment}"))
            .collect();
        Ok(ApiHandler {
            service: self.service,
            base_path,
            base_segments,
            max_body_bytes: self.max_body_bytes,
            require_content_type: self.require_content_type,
            on_internal_error: self.on_internal_error,
        })
    }
}

/// The segments of a configured base path, checked.
fn base_segments(path: &str) -> Result<Vec<String>> {
    let invalid = || {
        Error::InvalidConfiguration(format!(
            "base path `{}` must be `/` followed by non-empty segments of letters, digits and -._~",
            path.escape_debug()
        ))
    };
    let rest = path.strip_prefix('/').ok_or_else(invalid)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    rest.split('/')
        .map(|segment| {
            let unreserved = !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if unreserved {
                Ok(segment.to_owned())
            } else {
                Err(invalid())
            }
        })
        .collect()
}

/// A request body as far as it was read.
// Only the tower service reads bodies itself and meets the last two.
#[cfg_attr(not(feature = "tower"), allow(dead_code))]
enum RequestBody {
    Read(Bytes),
    /// Longer than the limit; the rest was not read.
    TooLarge,
    /// Reading failed (e.g. the client went away), for this reason.
    Unreadable(String),
}

/// Why a request was not served; each kind renders as one error response.
enum Failure {
    NoRoute,
    MethodNotAllowed { allow: String },
    BodyTooLarge,
    UnsupportedMediaType(String),
    Error(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Error(error)
    }
}

impl ApiHandler {
    /// A handler over `service` with the default base path and body limit.
    pub fn new(service: WebhookService) -> Self {
        Self {
            service,
            base_path: DEFAULT_BASE_PATH.to_owned(),
            base_segments: DEFAULT_BASE_PATH
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            require_content_type: false,
            on_internal_error: None,
        }
    }

    /// Starts configuring a handler over `service`.
    pub fn builder(service: WebhookService) -> ApiHandlerBuilder {
        ApiHandlerBuilder {
            service,
            base_path: DEFAULT_BASE_PATH.to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            require_content_type: false,
            on_internal_error: None,
        }
    }

    /// The service requests are routed to.
    pub fn service(&self) -> &WebhookService {
        &self.service
    }

    /// The base path the routes are served under (without a trailing `/`;
    /// empty when they are served at the root).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The largest request body accepted, in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Every operation served, with its method and path template (the same
    /// as in `openapi.yaml` for the default base path).
    pub fn routes(&self) -> Vec<Route> {
        Op::ALL
            .into_iter()
            .map(|op| op.route(&self.base_path))
            .collect()
    }

    /// Serves one request acting for `ctx`: the host's [`RequestContext`],
    /// or why it could not be determined (answered with 400 `Invalid value
    /// extracted from request context: <reason>` on routes that need it).
    ///
    /// Never panics and never fails: every problem is rendered as a response.
    pub async fn handle(
        &self,
        ctx: std::result::Result<RequestContext, String>,
        request: Request<Bytes>,
    ) -> Response<Bytes> {
        let (parts, body) = request.into_parts();
        self.serve(
            ctx,
            &parts.method,
            parts.uri.path(),
            &parts.headers,
            RequestBody::Read(body),
        )
        .await
    }

    /// Serves a request whose body was read as far as the limit allows, in
    /// a span with the route template and status.
    async fn serve(
        &self,
        ctx: std::result::Result<RequestContext, String>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: RequestBody,
    ) -> Response<Bytes> {
        // The route is a template, never the raw path (which carries ids).
        let span = debug_span!(
            "webhook_api",
            method = %method,
            route = Empty,
            status = Empty,
        );
        let mut response = match self
            .respond(ctx, method, path, headers, &body)
            .instrument(span.clone())
            .await
        {
            Ok(response) => response,
            Err(failure) => self.failure_response(failure, method, path),
        };
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        span.record("status", response.status().as_u16());
        span.in_scope(|| debug!("webhook api request served"));
        response
    }

    async fn respond(
        &self,
        ctx: std::result::Result<RequestContext, String>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &RequestBody,
    ) -> std::result::Result<Response<Bytes>, Failure> {
        let found = match_path(&self.base_segments, path).ok_or(Failure::NoRoute)?;
        let op = found
            .resource
            .operation(method)
            .ok_or_else(|| Failure::MethodNotAllowed {
                allow: found.resource.allow(),
            })?;
        let span = Span::current();
        if !span.is_disabled() {
            span.record("route", display(op.route(&self.base_path).path));
        }
        // The matcher yields an id for every route that uses one; an absent
        // one would be refused like an empty path parameter.
        let id = || subscription_id(found.subscription_id.unwrap_or_default());
        match op {
            Op::Create => {
                let ctx = context(ctx)?;
                let request: CreateWebhookSubscription = self.parse_body(headers, body)?;
                let created = self.service.create(&ctx, &request).await?;
                json_response(StatusCode::CREATED, &DataEnvelope::new(created))
            }
            Op::List => {
                let ctx = context(ctx)?;
                let all = self.service.list(&ctx).await?;
                json_response(StatusCode::OK, &DataEnvelope::new(all))
            }
            Op::Get => {
                let id = id()?;
                let ctx = context(ctx)?;
                let found = self.service.get(&ctx, id).await?;
                json_response(StatusCode::OK, &DataEnvelope::new(found))
            }
            Op::Patch => {
                let id = id()?;
                let ctx = context(ctx)?;
                let request: PatchWebhookSubscription = self.parse_body(headers, body)?;
                let patched = self.service.patch(&ctx, id, &request).await?;
                json_response(StatusCode::OK, &DataEnvelope::new(patched))
            }
            Op::Delete => {
                let id = id()?;
                let ctx = context(ctx)?;
                self.service.delete(&ctx, id).await?;
                Ok(empty_response(StatusCode::NO_CONTENT))
            }
            Op::DeliveryStatuses => {
                let id = id()?;
                let ctx = context(ctx)?;
                let report = self.service.delivery_status_report(&ctx, id).await?;
                json_response(StatusCode::OK, &report)
            }
            Op::EventLogs => {
                let id = id()?;
                let event = self.event(found.event.unwrap_or_default())?;
                let ctx = context(ctx)?;
                let logs = self.service.event_logs(&ctx, id, &event).await?;
                json_response(StatusCode::OK, &DataEnvelope::new(logs))
            }
            Op::ListFailedDeliveries => {
                let id = id()?;
                let ctx = context(ctx)?;
                let failed = self.service.failed_deliveries(&ctx, id).await?;
                json_response(StatusCode::OK, &DataEnvelope::new(failed))
            }
            Op::RedeliverFailedSince => {
                let id = id()?;
                let ctx = context(ctx)?;
                let request: RedeliverFailedSince = self.parse_body(headers, body)?;
                let done = self
                    .service
                    .redeliver_failed_since(&ctx, id, request.since)
                    .await?;
                json_response(StatusCode::ACCEPTED, &DataEnvelope::new(done))
            }
            Op::RedeliverFailed => {
                let id = id()?;
                let delivery =
                    uuid_param(DELIVERY_ID_PARAM, found.delivery_id.unwrap_or_default())?;
                let ctx = context(ctx)?;
                let done = self
                    .service
                    .redeliver_failed(&ctx, id, DeliveryId(delivery))
                    .await?;
                json_response(StatusCode::ACCEPTED, &DataEnvelope::new(done))
            }
            Op::SendTestEvent => {
                let id = id()?;
                let ctx = context(ctx)?;
                let receipt = self.service.send_test_event(&ctx, id).await?;
                json_response(StatusCode::ACCEPTED, &DataEnvelope::new(receipt))
            }
            Op::RotateSecret => {
                let id = id()?;
                let ctx = context(ctx)?;
                // The body is optional: none means the default grace period.
                let request: RotateSecret = if matches!(&body, RequestBody::Read(read) if read.is_empty())
                {
                    RotateSecret::default()
                } else {
                    self.parse_body(headers, body)?
                };
                let grace = request
                    .grace_period_seconds
                    .map_or(DEFAULT_GRACE_PERIOD, Duration::from_secs);
                let rotated = self.service.rotate_secret(&ctx, id, grace).await?;
                json_response(StatusCode::OK, &DataEnvelope::new(rotated))
            }
        }
    }

    /// The `event` path parameter, decoded and checked against the catalogue.
    fn event(&self, raw: &str) -> Result<String> {
        let decoded = percent_decode(raw).ok_or_else(|| Error::InvalidPathParameter {
            parameter: EVENT_PARAM.to_owned(),
            detail: "must be valid UTF-8 after percent-decoding".to_owned(),
        })?;
        self.service
            .validator()
            .validate_event_parameter(EVENT_PARAM, &decoded)?;
        Ok(decoded.into_owned())
    }

    /// Decodes a JSON request body, refusing oversized, non-JSON-typed,
    /// empty, non-UTF-8 and malformed bodies with a message that says what
    /// is wrong and where.
    fn parse_body<T: DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        body: &RequestBody,
    ) -> std::result::Result<T, Failure> {
        let body = match body {
            RequestBody::Read(body) if body.len() <= self.max_body_bytes => body,
            RequestBody::Read(_) | RequestBody::TooLarge => return Err(Failure::BodyTooLarge),
            RequestBody::Unreadable(reason) => {
                return Err(Error::InvalidBody(format!("body could not be read: {reason}")).into())
            }
        };
        if !body.is_empty() {
            self.check_media_type(headers)?;
        }
        let text = std::str::from_utf8(body)
            .map_err(|e| Error::InvalidBody(format!("body is not valid UTF-8 ({e})")))?;
        let trimmed = text.trim_start();
        if trimmed.is_empty() {
            return Err(
                Error::InvalidBody("body is empty; expected a JSON object".to_owned()).into(),
            );
        }
        // Derived deserializers also take a struct as a positional array;
        // only the object form is part of the API.
        if !trimmed.starts_with('{') {
            return Err(Error::InvalidBody("expected a JSON object".to_owned()).into());
        }
        serde_json::from_str(text).map_err(|e| Error::InvalidBody(e.to_string()).into())
    }

    /// Refuses a body whose `Content-Type` is not `application/json`
    /// (parameters allowed), or that has none when one is required.
    fn check_media_type(&self, headers: &HeaderMap) -> std::result::Result<(), Failure> {
        let mut values = headers.get_all(CONTENT_TYPE).iter();
        let (value, extra) = (values.next(), values.next());
        let refused = match (value, extra) {
            (None, _) if self.require_content_type => "none".to_owned(),
            (None, _) => return Ok(()),
            (Some(value), None) if is_json_media_type(value) => return Ok(()),
            (Some(value), None) => {
                let text = String::from_utf8_lossy(value.as_bytes());
                truncate_utf8(&text, ECHOED_MEDIA_TYPE_BYTES)
                    .escape_debug()
                    .to_string()
            }
            (Some(_), Some(_)) => "several Content-Type headers".to_owned(),
        };
        Err(Failure::UnsupportedMediaType(refused))
    }

    fn failure_response(&self, failure: Failure, method: &Method, path: &str) -> Response<Bytes> {
        let (status, message) = match failure {
            Failure::NoRoute => (
                StatusCode::NOT_FOUND,
                format!(
                    "Not Found: no route for {method} {}",
                    truncate_utf8(path, ECHOED_PATH_BYTES)
                ),
            ),
            Failure::MethodNotAllowed { allow } => {
                let message = format!(
                    "Method Not Allowed: {method} is not allowed on this path; allowed: {allow}"
                );
                let mut response = message_response(StatusCode::METHOD_NOT_ALLOWED, message);
                if let Ok(value) = HeaderValue::from_str(&allow) {
                    response.headers_mut().insert(ALLOW, value);
                }
                return response;
            }
            // No size in the message: a server may stop reading past the limit.
            Failure::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Error::InvalidBody(format!(
                    "body is larger than the limit of {} bytes",
                    self.max_body_bytes
                ))
                .body()
                .message,
            ),
            Failure::UnsupportedMediaType(refused) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Unsupported media type: {refused}; expected application/json"),
            ),
            Failure::Error(error) => {
                let status = error.status();
                if status.is_server_error() {
                    warn!(error = ?error, "webhook api request failed");
                    if let Some(hook) = &self.on_internal_error {
                        hook(&error);
                    }
                }
                (status, error.body().message)
            }
        };
        message_response(status, message)
    }
}

/// Whether `value` is `application/json`, in any case, with or without
/// parameters (`application/json; charset=utf-8`).
fn is_json_media_type(value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    let essence = text.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

fn context(ctx: std::result::Result<RequestContext, String>) -> Result<RequestContext> {
    ctx.map_err(Error::InvalidRequestContext)
}

/// Parses the `webhookSubscriptionId` path parameter.
fn subscription_id(raw: &str) -> Result<SubscriptionId> {
    uuid_param(SUBSCRIPTION_ID_PARAM, raw).map(SubscriptionId)
}

/// Parses the UUID path parameter `name`: a UUID in its hyphenated form
/// (the `uuid` format of JSON Schema), after percent-decoding.
fn uuid_param(name: &str, raw: &str) -> Result<uuid::Uuid> {
    const EXAMPLE: &str = "e.g. 123e4567-e89b-12d3-a456-426614174000";
    let invalid = |detail: String| Error::InvalidPathParameter {
        parameter: name.to_owned(),
        detail,
    };
    let decoded = percent_decode(raw)
        .ok_or_else(|| invalid(format!("must be a UUID ({EXAMPLE}), not invalid UTF-8")))?;
    match uuid::Uuid::try_parse(&decoded) {
        // Hyphenated is the only 36-character form the parser accepts.
        Ok(id) if decoded.len() == 36 => Ok(id),
        Ok(_) => Err(invalid(format!("must be a hyphenated UUID ({EXAMPLE})"))),
        Err(e) => Err(invalid(format!("must be a UUID ({EXAMPLE}): {e}"))),
    }
}

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

fn json_response(
    status: StatusCode,
    body: &impl Serialize,
) -> std::result::Result<Response<Bytes>, Failure> {
    let bytes = serde_json::to_vec(body).map_err(Error::internal)?;
    Ok(with_json_body(status, bytes))
}

fn message_response(status: StatusCode, message: String) -> Response<Bytes> {
    // Serializing a struct of one string cannot fail; fall back to a fixed body anyway.
    let bytes = serde_json::to_vec(&ErrorBody { message })
        .unwrap_or_else(|_| br#"{"message":"Internal Server Error"}"#.to_vec());
    with_json_body(status, bytes)
}

fn with_json_body(status: StatusCode, bytes: Vec<u8>) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, APPLICATION_JSON);
    response
}

fn empty_response(status: StatusCode) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_checked_and_normalized() {
        assert_eq!(
            base_segments("/v1/webhooks/").ok(),
            Some(vec!["v1".to_owned(), "webhooks".to_owned()])
        );
        assert_eq!(base_segments("/").ok(), Some(Vec::new()));
        for bad in ["", "v1", "/v1//x", "/a b", "/a?b", "/a%20"] {
            assert!(
                matches!(base_segments(bad), Err(Error::InvalidConfiguration(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn subscription_ids_must_be_hyphenated_uuids() {
        let id = "123e4567-e89b-12d3-a456-426614174000";
        assert_eq!(
            subscription_id(id).ok().map(|i| i.to_string()).as_deref(),
            Some(id)
        );
        assert!(subscription_id("123E4567-E89B-12D3-A456-426614174000").is_ok());
        assert!(subscription_id("123e4567%2De89b-12d3-a456-426614174000").is_ok());
        for bad in [
            "",
            "123e4567e89b12d3a456426614174000",
            "{123e4567-e89b-12d3-a456-426614174000}",
            "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
            "123e4567-e89b-12d3-a456-42661417400g",
            "%FF",
        ] {
            let err = subscription_id(bad).err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|m| m.starts_with(
                    "Invalid value for: path parameter webhookSubscriptionId: must be a"
                )),
                "{bad:?} gave {err:?}"
            );
        }
    }
}
