//! The HTTP request of one attempt: `POST` to the subscription's url with the
//! shared envelope bytes, the fixed headers, a fresh signature and the
//! subscription's own headers.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};

use crate::model::{SecretKey, WebhookSubscription};
use crate::signature::{SignatureScheme, SignedMessage};
use crate::storage::Delivery;

/// The `User-Agent` of every delivery.
pub const DELIVERY_USER_AGENT: &str = concat!("webhook-subscriptions/", env!("CARGO_PKG_VERSION"));

/// Headers a request carries besides the subscription's own: content type,
/// user agent, up to four of the signature scheme, and three the HTTP client adds.
const REQUEST_HEADER_ROOM: usize = 9;

/// Headers only the transport may set; stored data naming them is refused.
const TRANSPORT_HEADERS: [HeaderName; 4] = [CONTENT_LENGTH, HOST, TRANSFER_ENCODING, CONNECTION];

/// Why stored subscription data could not be turned into a request.
///
/// Validation keeps such data out, so this only happens with data written
/// around it; the attempt is then logged as failed (`responseCode` 0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(String);

/// Builds the request for an attempt at `at`: `POST` to the subscription's
/// url, the envelope as body (shared, not copied), `Content-Type`,
/// `User-Agent`, the headers of `scheme` signed for `at` (by the previous
/// secret too while a rotation's grace period lasts), and the
/// subscription's `headers` (marked sensitive, so `Debug` hides them).
pub fn build_request(
    scheme: &SignatureScheme,
    subscription: &WebhookSubscription,
    delivery: &Delivery,
    at: DateTime<Utc>,
) -> Result<Request<Bytes>, InvalidRequest> {
    let uri = Uri::try_from(subscription.url.as_str())
        .map_err(|e| InvalidRequest(format!("url: {e}")))?;

    // Room for ours, the signature's, the subscription's, and the ones the
    // HTTP client adds (host, accept, content-length) without regrowing.
    let mut headers = HeaderMap::with_capacity(REQUEST_HEADER_ROOM + subscription.headers.len());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static(DELIVERY_USER_AGENT));
    let message = SignedMessage {
        subscription_id: subscription.id,
        event_id: delivery.event_id,
        timestamp: at,
        body: &delivery.payload,
    };
    let keys: Vec<&SecretKey> = subscription.signing_keys(at).collect();
    scheme.sign_with_keys(&keys, &message, &mut headers);

    for (name, value) in &subscription.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| InvalidRequest(format!("header name {name:?} is not a valid token")))?;
        // Never override our own headers, nor send one twice under different cases.
        if TRANSPORT_HEADERS.contains(&header) || headers.contains_key(&header) {
            return Err(InvalidRequest(format!(
                "header {name:?} is reserved or repeated"
            )));
        }
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| InvalidRequest(format!("header {name:?} has an invalid value")))?;
        // Any of them may be a credential; keep them out of `Debug` output.
        value.set_sensitive(true);
        headers.append(header, value);
    }

    let mut request = Request::new(delivery.payload.clone());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}
